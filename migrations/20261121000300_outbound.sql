-- Outbound calls scheduled inside the legal calling window (issue 5).

-- The calling window per purpose: 'default' applies to every purpose without
-- its own row. The policy is the JSON of `window::CallingPolicy`, validated by
-- the API before it is saved; no row at all means the built-in defaults.
CREATE TABLE calling_policies (
    purpose text PRIMARY KEY CHECK (purpose IN ('default', 'transactional', 'service', 'promotional')),
    policy jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What we know about a number we call: its own zone (wins over the policy's)
-- and whether it is on the NCPR/DND registry (no promotional calls).
CREATE TABLE contacts (
    phone text PRIMARY KEY CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    timezone text,
    ncpr_registered boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Our internal do-not-call list: no promotional or service call; transactional calls still go.
CREATE TABLE opt_outs (
    phone text PRIMARY KEY CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    reason text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scheduled_calls (
    id uuid PRIMARY KEY,
    customer_phone text NOT NULL CHECK (customer_phone ~ '^\+[1-9][0-9]{7,14}$'),
    -- Plain columns: the agents and departments tables belong to routing.
    agent_phone text CHECK (agent_phone ~ '^\+[1-9][0-9]{7,14}$'),
    department text,
    purpose text NOT NULL CHECK (purpose IN ('transactional', 'service', 'promotional')),
    context jsonb NOT NULL DEFAULT '{}',
    preferred_time timestamptz NOT NULL,
    max_attempts integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 10),
    retry_initial_delay_s integer NOT NULL CHECK (retry_initial_delay_s > 0),
    retry_multiplier double precision NOT NULL CHECK (retry_multiplier >= 1),
    retry_max_delay_s integer NOT NULL CHECK (retry_max_delay_s >= retry_initial_delay_s),
    -- scheduled: waiting for its next attempt; dialing: an attempt is with the provider.
    status text NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'dialing', 'completed', 'exhausted', 'failed', 'blocked', 'cancelled')),
    next_attempt_at timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (agent_phone IS NOT NULL OR department IS NOT NULL)
);
CREATE INDEX scheduled_calls_status ON scheduled_calls (status, next_attempt_at);
CREATE INDEX scheduled_calls_created_at ON scheduled_calls (created_at);

-- One row per call placed, written before the provider is asked (creating a
-- call is not idempotent): its id travels as the provider's CustomField.
CREATE TABLE scheduled_call_attempts (
    id uuid PRIMARY KEY,
    scheduled_call_id uuid NOT NULL REFERENCES scheduled_calls (id) ON DELETE CASCADE,
    number integer NOT NULL CHECK (number >= 1),
    dialed_at timestamptz NOT NULL,
    provider_call_sid text,
    -- NULL while the provider's answer or the status webhook is awaited.
    outcome text CHECK (outcome IN ('completed', 'busy', 'no-answer', 'failed', 'canceled', 'rejected')),
    outcome_at timestamptz,
    error text,
    UNIQUE (scheduled_call_id, number)
);
