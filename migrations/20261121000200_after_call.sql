-- After the call: recording -> transcript -> insight -> lead. Keyed by the
-- provider's call sid (text), independent of the calls table.

CREATE TABLE recordings (
    id bigserial PRIMARY KEY,
    provider text NOT NULL CHECK (provider IN ('twilio', 'exotel')),
    call_sid text NOT NULL,
    recording_sid text NOT NULL UNIQUE,
    source_url text NOT NULL,
    -- The customer's number (E.164), when the webhook knew it: the lead's key.
    customer_phone text CHECK (customer_phone ~ '^\+[1-9][0-9]{6,14}$'),
    -- As the provider reported it; decides whether the call is worth transcribing.
    duration_seconds integer CHECK (duration_seconds >= 0),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'stored')),
    storage_key text,
    content_type text,
    bytes bigint CHECK (bytes >= 0),
    sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    stored_at timestamptz,
    CHECK (status = 'pending' OR (storage_key IS NOT NULL AND bytes IS NOT NULL AND sha256 IS NOT NULL))
);
CREATE INDEX recordings_call_sid ON recordings (call_sid);

-- One per recording: the text, or why there is none.
CREATE TABLE transcripts (
    id bigserial PRIMARY KEY,
    recording_id bigint NOT NULL UNIQUE REFERENCES recordings (id) ON DELETE CASCADE,
    call_sid text NOT NULL,
    status text NOT NULL CHECK (status IN ('transcribed', 'skipped')),
    skip_reason text,
    text text,
    language text,
    duration_seconds numeric(10, 3),
    segments jsonb,
    model text,
    request_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- 'simple': no stemming, so Hinglish and English words are matched alike.
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(text, ''))) STORED,
    CHECK ((status = 'skipped') = (skip_reason IS NOT NULL)),
    CHECK (status = 'skipped' OR text IS NOT NULL)
);
CREATE INDEX transcripts_call_sid ON transcripts (call_sid);
CREATE INDEX transcripts_search ON transcripts USING gin (search);

-- One per transcript: the validated extraction and what it cost.
CREATE TABLE insights (
    id bigserial PRIMARY KEY,
    transcript_id bigint NOT NULL UNIQUE REFERENCES transcripts (id) ON DELETE CASCADE,
    call_sid text NOT NULL,
    data jsonb NOT NULL,
    lead_score integer NOT NULL CHECK (lead_score BETWEEN 0 AND 100),
    sentiment text NOT NULL CHECK (sentiment IN ('positive', 'neutral', 'negative', 'mixed')),
    model text NOT NULL,
    request_id text,
    prompt_tokens bigint NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens bigint NOT NULL CHECK (completion_tokens >= 0),
    cost_micro_usd bigint NOT NULL CHECK (cost_micro_usd >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX insights_call_sid ON insights (call_sid);

CREATE TABLE leads (
    id bigserial PRIMARY KEY,
    phone text NOT NULL UNIQUE CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    name text,
    email text,
    budget_min_inr bigint,
    budget_max_inr bigint,
    preferred_locations text[] NOT NULL DEFAULT '{}',
    property_type text,
    property_size text,
    purpose text,
    timeline text,
    financing_needed boolean,
    score integer CHECK (score BETWEEN 0 AND 100),
    hot boolean NOT NULL DEFAULT false,
    sentiment text,
    summary text,
    next_best_action text,
    follow_up_due_at timestamptz,
    -- The insight the newest facts came from: an older one replayed later never wins.
    latest_insight_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leads_score ON leads (score);
CREATE INDEX leads_created_at ON leads (created_at);

-- Which calls a lead came from, and whether the CRM has been told.
CREATE TABLE lead_calls (
    insight_id bigint PRIMARY KEY REFERENCES insights (id) ON DELETE CASCADE,
    lead_id bigint NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    call_sid text NOT NULL,
    linked_at timestamptz NOT NULL DEFAULT now(),
    crm_delivered_at timestamptz
);
CREATE INDEX lead_calls_lead_id ON lead_calls (lead_id);
CREATE INDEX lead_calls_call_sid ON lead_calls (call_sid);
