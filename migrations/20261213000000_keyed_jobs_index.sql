-- apalis's unique index on (job_type, idempotency_key) holds an entry for
-- every job, keyless ones (NULL) included, and every claim and every outcome
-- of a job (two non-HOT updates) adds another. Only keyed jobs need it:
-- `enqueue_with` (jobs/src/queue/enqueue.rs) names this index's predicate in
-- its ON CONFLICT. Built in the release phase's transaction: on a large
-- table, writes to apalis.jobs wait for the build.
CREATE UNIQUE INDEX jobs_idempotency_key ON apalis.jobs (job_type, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX apalis.idx_jobs_idempotency_key;
