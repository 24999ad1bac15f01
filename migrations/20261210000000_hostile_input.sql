-- Hostile input (issue 10).

-- A call whose caller has no usable number (anonymous, SIP, client) is
-- analysed but gets no lead: the lead step says why here.
ALTER TABLE insights ADD COLUMN no_lead_reason text;
