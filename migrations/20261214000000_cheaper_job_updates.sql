-- Every job is an insert and two updates (its claim, its outcome), and
-- PostgreSQL re-evaluates a table's CHECK constraints and its foreign keys'
-- triggers on updates too. A profile of no-op jobs (`perf record` under
-- `switchboard bench queue`) put a fifth of the database's time there:
--
-- * `jobs_id_is_ulid` ran its regular expression at the insert and again at
--   each update (about 2 us each), though the id never changes. A domain's
--   check runs only where a value becomes the domain (an insert, or an
--   update that sets `id`), so the same rule now costs one evaluation per job.
--   The domain also compares ids bytewise (`COLLATE "C"`), the same order for
--   ULIDs as any locale's, without the locale's comparison at every index
--   probe of the primary key.
-- * `fk_worker_lock_by` (apalis's) ran a query on `apalis.workers` for every
--   claimed row. Nothing needs it: only a claim sets `lock_by`, after its
--   worker's row was registered; worker rows are pruned only when silent for
--   a day and holding no job; and orphan recovery treats a claim whose worker
--   row is missing as lost (jobs/src/queue/liveness.rs).
--
-- Changing the column's type checks every row against the domain and
-- rebuilds the primary key, under a lock on `apalis.jobs`: on a large table
-- the release phase holds writes to it for seconds (3.9 s for 1,000,000
-- finished jobs here). `job_overview` reads the
-- column, so it is dropped and created again as it was.

CREATE DOMAIN apalis.job_id AS text COLLATE "C" CHECK (VALUE ~ '^[0-9A-HJKMNP-TV-Z]{26}$');

CREATE TEMPORARY TABLE overview_definition ON COMMIT DROP AS
    SELECT pg_get_viewdef('job_overview'::regclass) AS definition;
DROP VIEW job_overview;

ALTER TABLE apalis.jobs DROP CONSTRAINT jobs_id_is_ulid;
ALTER TABLE apalis.jobs ALTER COLUMN id TYPE apalis.job_id;
ALTER TABLE apalis.jobs DROP CONSTRAINT IF EXISTS fk_worker_lock_by;

DO $$ BEGIN
    EXECUTE 'CREATE VIEW job_overview AS ' || (SELECT definition FROM overview_definition);
END $$;
