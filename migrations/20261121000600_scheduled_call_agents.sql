-- Scheduled calls reach a real agent (issue 5 meets issue 3): the agent or
-- department a call is for, and the agent whose slot each attempt holds.

ALTER TABLE scheduled_calls
    ADD COLUMN agent_id bigint REFERENCES agents (id) ON DELETE SET NULL,
    ADD COLUMN department_id bigint REFERENCES departments (id) ON DELETE SET NULL,
    -- Since when the next attempt waits for a free agent; NULL while it is not waiting.
    ADD COLUMN agent_wait_started_at timestamptz;
-- `department` stays as the department's name when scheduled. A call whose
-- agent or department is deleted later has nobody to dial and fails at dial time.
ALTER TABLE scheduled_calls DROP CONSTRAINT scheduled_calls_check1;
UPDATE scheduled_calls s SET department_id = d.id FROM departments d WHERE d.name = s.department;

-- The agent reserved for the attempt; its `calls` row takes the slot over
-- (released by the terminal status webhook), a refused placement gives it back.
ALTER TABLE scheduled_call_attempts ADD COLUMN agent_id bigint REFERENCES agents (id) ON DELETE SET NULL;
-- no-agent: nobody in the department was free within its max wait; nothing was dialled.
ALTER TABLE scheduled_call_attempts DROP CONSTRAINT scheduled_call_attempts_outcome_check;
ALTER TABLE scheduled_call_attempts ADD CONSTRAINT scheduled_call_attempts_outcome_check
    CHECK (outcome IN ('completed', 'busy', 'no-answer', 'failed', 'canceled', 'rejected', 'no-agent'));
