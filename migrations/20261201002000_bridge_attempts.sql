-- Bridge attempts: `route-call` records the attempt to call the agent (its id
-- and start) with the reservation, before Twilio is asked. The attempt id
-- rides in the agent leg's StatusCallback URL (`?bridge=<id>`), so the leg's
-- first status finds the caller even when it beats Twilio's answer to us, and
-- a re-run of the job sees the attempt in flight instead of dialling again.
--
-- routing_state `reserved` now means: an attempt is in flight (Twilio may or
-- may not have placed the leg); `bridged`: Twilio placed it (its answer or a
-- status of the leg said so, and `bridge_call_sid` names the leg).
ALTER TABLE calls
    ADD COLUMN bridge_attempt_id uuid,
    ADD COLUMN bridge_started_at timestamptz;
-- Reservations made before attempts were recorded: in flight since their last change.
UPDATE calls SET bridge_started_at = updated_at WHERE routing_state = 'reserved';
ALTER TABLE calls ADD CONSTRAINT calls_reserved_has_bridge_start
    CHECK (routing_state <> 'reserved' OR bridge_started_at IS NOT NULL);
CREATE UNIQUE INDEX calls_bridge_attempt_id ON calls (bridge_attempt_id) WHERE bridge_attempt_id IS NOT NULL;
