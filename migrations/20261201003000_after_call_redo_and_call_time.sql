-- Reprocessing without losing results, and leads ordered by when calls happened.
--
-- `redo_requested_at`: a reprocess asked for this result to be made again.
-- The result stays in place until the step's job replaces it (and clears the
-- mark); a redo that fails leaves the previous result, still marked.
ALTER TABLE recordings ADD COLUMN redo_requested_at timestamptz;
ALTER TABLE transcripts ADD COLUMN redo_requested_at timestamptz;
ALTER TABLE insights ADD COLUMN redo_requested_at timestamptz;

-- How many analyses this insight has been through: a re-analysis replaces it
-- in place (the lead link stays) and is a new CRM delivery.
ALTER TABLE insights ADD COLUMN revision integer NOT NULL DEFAULT 1 CHECK (revision >= 1);
COMMENT ON COLUMN insights.prompt_tokens IS 'summed over every analysis of this transcript';
COMMENT ON COLUMN insights.completion_tokens IS 'summed over every analysis of this transcript';
COMMENT ON COLUMN insights.cost_micro_usd IS 'summed over every analysis of this transcript';

-- When the call happened: the call's first webhook (calls.created_at) when
-- we saw the call, else when its recording was announced.
ALTER TABLE recordings ADD COLUMN called_at timestamptz;
UPDATE recordings r SET called_at = coalesce(
    (SELECT c.created_at FROM calls c WHERE c.provider = r.provider AND c.call_sid = r.call_sid),
    r.created_at);
ALTER TABLE recordings ALTER COLUMN called_at SET DEFAULT now(), ALTER COLUMN called_at SET NOT NULL;

-- The call the lead's newest score came from: a later call wins, whatever
-- order the calls were analysed (or re-analysed) in.
ALTER TABLE leads ADD COLUMN latest_called_at timestamptz;
UPDATE leads l SET latest_called_at = coalesce(
    (SELECT r.called_at FROM insights i
     JOIN transcripts t ON t.id = i.transcript_id JOIN recordings r ON r.id = t.recording_id
     WHERE i.id = l.latest_insight_id),
    l.updated_at);
ALTER TABLE leads ALTER COLUMN latest_called_at SET DEFAULT now(), ALTER COLUMN latest_called_at SET NOT NULL;
