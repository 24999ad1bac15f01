-- Outcomes from what each leg of an outbound attempt did
-- (`jobs/src/outbound/outcome.rs`): a machine answered the customer
-- (`voicemail`), the agent's leg went unanswered (`agent-*`), or both
-- answered without a second of conversation (`no-conversation`).
ALTER TABLE scheduled_call_attempts DROP CONSTRAINT scheduled_call_attempts_outcome_check;
ALTER TABLE scheduled_call_attempts ADD CONSTRAINT scheduled_call_attempts_outcome_check
    CHECK (outcome IN ('completed', 'busy', 'no-answer', 'failed', 'canceled', 'rejected', 'no-agent', 'no-outcome',
                       'voicemail', 'agent-busy', 'agent-no-answer', 'agent-failed', 'agent-canceled',
                       'no-conversation'));
