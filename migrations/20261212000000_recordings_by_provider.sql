-- Sids are the provider's: an Exotel CallSid may be any alphanumerics, a
-- Twilio RecordingSid included, so a recording is unique per (provider, sid)
-- and looked up by (provider, call sid), never by sid alone.
ALTER TABLE recordings DROP CONSTRAINT recordings_recording_sid_key;
ALTER TABLE recordings ADD CONSTRAINT recordings_provider_recording_sid_key UNIQUE (provider, recording_sid);
DROP INDEX recordings_call_sid;
CREATE INDEX recordings_provider_call_sid ON recordings (provider, call_sid);
