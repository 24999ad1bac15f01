-- A failed run's outcome (retry later, dead, snoozed), as our job service
-- decided it, waiting for apalis's own acknowledgement of that run.
--
-- apalis acknowledges a run after the handler returns, in a batch flushed at
-- the worker's next wakeup (`handle_result.sql`: status, attempts, done_at,
-- for rows still locked by the worker). Writing our decision to the job row
-- before that ack would make the job claimable while the ack is in flight:
-- the same worker could claim it again, and the late ack would then land on
-- the new claim. So the decision waits here, and the ack applies it: the job
-- stays claimed by its worker until the ack, and nothing can land on the run
-- after it. Any other way a claimed job is let go (orphan recovery after a
-- lost heartbeat, our hand-back on shutdown) applies a waiting decision too.
--
-- A decision is only stored while its worker still holds the job (the row is
-- share-locked while it is written), and only applied to that worker's claim.
-- Which worker ran each failed run, for `jobs show`.
ALTER TABLE job_errors ADD COLUMN worker text;

CREATE TABLE job_settlements (
    job_id text PRIMARY KEY REFERENCES apalis.jobs (id) ON DELETE CASCADE,
    worker text NOT NULL,
    attempt integer NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('retry', 'dead', 'snoozed')),
    message text NOT NULL,
    retry_in interval CHECK ((outcome = 'retry') = (retry_in IS NOT NULL)),
    snooze_until timestamptz CHECK ((outcome = 'snoozed') = (snooze_until IS NOT NULL)),
    decided_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION apply_job_settlement() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    decision job_settlements;
BEGIN
    DELETE FROM job_settlements WHERE job_id = NEW.id RETURNING * INTO decision;
    IF NOT FOUND OR decision.worker IS DISTINCT FROM OLD.lock_by THEN
        IF NEW.status = 'Pending' AND NEW.last_result ->> 'Err' = 'Re-enqueued due to worker shutdown' THEN
            -- apalis hands back the jobs a stopping worker had claimed but not
            -- started, counting an attempt for each: they never ran.
            NEW.attempts := OLD.attempts;
            NEW.last_result := OLD.last_result;
        END IF;
        RETURN NEW;
    END IF;
    INSERT INTO job_errors (job_id, attempt, outcome, message, worker)
    VALUES (decision.job_id, decision.attempt, decision.outcome, decision.message, decision.worker);
    NEW.lock_by := NULL;
    NEW.lock_at := NULL;
    IF decision.outcome = 'snoozed' THEN
        -- Not an attempt: the count stays what it was before this run.
        NEW.status := 'Pending';
        NEW.attempts := OLD.attempts;
        -- Never sooner than a second: a snooze to a time already past would spin.
        NEW.run_at := GREATEST(decision.snooze_until, now() + interval '1 second');
        NEW.done_at := NULL;
        NEW.last_result := OLD.last_result;
    ELSE
        NEW.attempts := decision.attempt;
        NEW.done_at := now();
        NEW.last_result := jsonb_build_object('Err', decision.message);
        IF decision.outcome = 'retry' THEN
            NEW.status := 'Failed';
            NEW.run_at := now() + decision.retry_in;
        ELSE
            NEW.status := 'Killed';
        END IF;
    END IF;
    RETURN NEW;
EXCEPTION WHEN OTHERS THEN
    -- This runs inside apalis's own acknowledgements and orphan recovery: an
    -- error here would fail them all, over and over. Leave apalis's update as
    -- it is (the job is retried at once) and say why.
    RAISE WARNING 'switchboard: could not apply the settlement of job %: %', NEW.id, SQLERRM;
    RETURN NEW;
END
$$;

-- Fires only when a claimed job is let go with anything but success, so a
-- successful run's ack costs nothing extra.
CREATE TRIGGER settle_on_ack
    BEFORE UPDATE OF status ON apalis.jobs
    FOR EACH ROW
    WHEN (OLD.status IN ('Queued', 'Running') AND NEW.status IN ('Failed', 'Killed', 'Pending'))
    EXECUTE FUNCTION apply_job_settlement();
