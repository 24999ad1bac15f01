-- apalis indexes every row's lock_by (twice: `lidx` and `idx_apalis_jobs_lock_by`),
-- and done rows keep theirs. Its batched ack (`WHERE lock_by = $worker AND
-- id IN (...)`) then walks every job the worker ever finished, so acks slow
-- down as done rows pile up. Only claimed jobs need finding by worker: orphan
-- recovery and our hand-back on shutdown. The other legacy duplicates of
-- primary keys and indexes only cost writes on every job.
DROP INDEX IF EXISTS apalis.lidx;
DROP INDEX IF EXISTS apalis.idx_apalis_jobs_lock_by;
DROP INDEX IF EXISTS apalis.unique_job_id;
DROP INDEX IF EXISTS apalis.wtidx;
DROP INDEX IF EXISTS apalis.lsidx;
CREATE INDEX jobs_claimed_by ON apalis.jobs (lock_by) WHERE status IN ('Queued', 'Running');

-- Every failed, snoozed or replayed run of a job, so operators see the whole story.
CREATE TABLE job_errors (
    id bigserial PRIMARY KEY,
    job_id text NOT NULL REFERENCES apalis.jobs (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('retry', 'dead', 'snoozed', 'replayed')),
    message text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_errors_job_id ON job_errors (job_id);

-- Operators list dead jobs often; finished jobs are pruned by age.
CREATE INDEX jobs_dead ON apalis.jobs (job_type, done_at) WHERE status IN ('Killed', 'Failed');
CREATE INDEX jobs_done_at ON apalis.jobs (done_at) WHERE status = 'Done';

-- A payload that is not JSON would stop apalis's worker when it decodes it:
-- refuse it at the door instead.
ALTER TABLE apalis.jobs ADD CONSTRAINT jobs_payload_is_json
    CHECK (convert_from(job, 'UTF8')::jsonb IS NOT NULL);

-- apalis's columns in the states operators reason in (see README, job states).
CREATE VIEW job_overview AS
SELECT id, job_type AS kind,
    CASE
        WHEN status = 'Done' THEN 'done'
        WHEN status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts) THEN 'dead'
        WHEN status IN ('Queued', 'Running') THEN 'running'
        WHEN status = 'Failed' THEN 'retrying'
        WHEN run_at > now() THEN 'scheduled'
        ELSE 'pending'
    END AS state,
    attempts, max_attempts, run_at, done_at, lock_by AS worker, last_result ->> 'Err' AS last_error, job
FROM apalis.jobs;

-- So is an id that is not a ULID (apalis cannot parse it back).
ALTER TABLE apalis.jobs ADD CONSTRAINT jobs_id_is_ulid CHECK (id ~ '^[0-9A-HJKMNP-TV-Z]{26}$');
