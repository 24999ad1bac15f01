-- Inbound calls: every provider webhook as received, the calls they are
-- about, the agents and departments calls are routed to, and IVR menus.

-- Every webhook we accepted, raw, once: a provider's retry hits the unique key.
CREATE TABLE webhook_events (
    id bigserial PRIMARY KEY,
    provider text NOT NULL CHECK (provider IN ('twilio', 'exotel')),
    endpoint text NOT NULL,
    dedupe_key text NOT NULL,
    call_sid text,
    headers jsonb NOT NULL DEFAULT '{}',
    query text NOT NULL DEFAULT '',
    body text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, dedupe_key)
);
CREATE INDEX webhook_events_call_sid ON webhook_events (call_sid);

CREATE TABLE departments (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    -- Calls to this number with no IVR menu go straight to this department.
    inbound_number text UNIQUE,
    strategy text NOT NULL DEFAULT 'round_robin' CHECK (strategy IN ('round_robin', 'least_busy', 'skill_based')),
    required_skills text[] NOT NULL DEFAULT '{}',
    max_wait_secs integer NOT NULL DEFAULT 120 CHECK (max_wait_secs > 0),
    overflow_action text NOT NULL DEFAULT 'voicemail' CHECK (overflow_action IN ('voicemail', 'callback', 'transfer')),
    overflow_number text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (overflow_action <> 'transfer' OR overflow_number IS NOT NULL)
);

CREATE TABLE agents (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    phone text NOT NULL UNIQUE,
    department_id bigint REFERENCES departments (id) ON DELETE SET NULL,
    skills text[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'offline' CHECK (status IN ('available', 'break', 'offline')),
    max_concurrent_calls integer NOT NULL DEFAULT 1 CHECK (max_concurrent_calls > 0),
    current_calls integer NOT NULL DEFAULT 0 CHECK (current_calls >= 0),
    last_assigned_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_routable ON agents (department_id, last_assigned_at) WHERE status = 'available';

CREATE TABLE calls (
    id bigserial PRIMARY KEY,
    provider text NOT NULL CHECK (provider IN ('twilio', 'exotel')),
    call_sid text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_number text,
    to_number text,
    status text NOT NULL,
    -- The newest status callback applied (-1: none yet); older ones change nothing.
    last_sequence integer NOT NULL DEFAULT -1,
    department_id bigint REFERENCES departments (id) ON DELETE SET NULL,
    -- none -> waiting -> reserved -> bridged, or waiting -> overflowing -> overflowed
    routing_state text NOT NULL DEFAULT 'none'
        CHECK (routing_state IN ('none', 'waiting', 'reserved', 'bridged', 'overflowing', 'overflowed', 'abandoned')),
    agent_id bigint REFERENCES agents (id) ON DELETE SET NULL,
    -- Set once, when the agent's slot is given back: a slot is freed exactly once.
    agent_released_at timestamptz,
    -- The agent leg placed to bridge this caller (Twilio); a missed one re-routes the call.
    bridge_call_sid text,
    -- How many times the call went back to waiting after a missed bridge.
    reroutes integer NOT NULL DEFAULT 0,
    overflow_action text,
    -- An outbound attempt this call belongs to (Twilio `attempt_id` query parameter, Exotel CustomField).
    attempt_id text,
    queued_at timestamptz,
    answered_at timestamptz,
    ended_at timestamptz,
    duration_secs integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, call_sid)
);
CREATE INDEX calls_created_at ON calls (created_at DESC, id DESC);
CREATE INDEX calls_waiting ON calls (queued_at) WHERE routing_state = 'waiting';
CREATE INDEX calls_bridge_call_sid ON calls (bridge_call_sid) WHERE bridge_call_sid IS NOT NULL;

-- IVR menus: a root menu per called number, sub-menus reached by digits.
CREATE TABLE ivr_menus (
    id bigserial PRIMARY KEY,
    phone_number text UNIQUE,
    prompt text NOT NULL,
    timeout_secs integer NOT NULL DEFAULT 5 CHECK (timeout_secs BETWEEN 1 AND 60),
    max_retries integer NOT NULL DEFAULT 2 CHECK (max_retries BETWEEN 0 AND 10),
    -- Where a caller goes after the retries run out; NULL: voicemail.
    fallback_department_id bigint REFERENCES departments (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ivr_options (
    menu_id bigint NOT NULL REFERENCES ivr_menus (id) ON DELETE CASCADE,
    digit text NOT NULL CHECK (digit ~ '^[0-9*#]$'),
    department_id bigint REFERENCES departments (id) ON DELETE CASCADE,
    submenu_id bigint REFERENCES ivr_menus (id) ON DELETE CASCADE,
    PRIMARY KEY (menu_id, digit),
    CHECK ((department_id IS NULL) <> (submenu_id IS NULL))
);
