-- The watchdog of outbound attempts (`jobs/src/outbound/watchdog.rs`).

-- no-outcome: no final status came within the watchdog's deadline; the
-- attempt counts as failed and its slot was given back.
ALTER TABLE scheduled_call_attempts DROP CONSTRAINT scheduled_call_attempts_outcome_check;
ALTER TABLE scheduled_call_attempts ADD CONSTRAINT scheduled_call_attempts_outcome_check
    CHECK (outcome IN ('completed', 'busy', 'no-answer', 'failed', 'canceled', 'rejected', 'no-agent', 'no-outcome'));

-- The watchdog looks for the call row of an attempt.
CREATE INDEX calls_attempt_id ON calls (attempt_id) WHERE attempt_id IS NOT NULL;

-- A call row takes over the slot its attempt reserved (`calls::upsert` copies
-- the attempt's agent) only while the attempt still holds it. An attempt with
-- an outcome holds none: a refused one and one the watchdog gave up gave it
-- back already, so the row of a status webhook arriving after that must not
-- release it a second time. The scheduled call's row is locked first, as the
-- watchdog and `record_outcome` do, so that neither settles the attempt
-- between this check and the webhook's own release.
CREATE FUNCTION calls_take_over_only_held_attempt_slots() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    attempt uuid;
BEGIN
    IF NEW.agent_id IS NULL OR NEW.attempt_id IS NULL THEN
        RETURN NEW;
    END IF;
    BEGIN
        attempt := NEW.attempt_id::uuid;
    EXCEPTION WHEN invalid_text_representation THEN
        RETURN NEW;
    END;
    PERFORM 1 FROM scheduled_calls
    WHERE id = (SELECT scheduled_call_id FROM scheduled_call_attempts WHERE id = attempt)
    FOR UPDATE;
    IF EXISTS (SELECT 1 FROM scheduled_call_attempts WHERE id = attempt AND outcome IS NOT NULL) THEN
        NEW.agent_id := NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER calls_take_over_only_held_attempt_slots
    BEFORE INSERT ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_take_over_only_held_attempt_slots();
