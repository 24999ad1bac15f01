-- A call whose agent's slot reconciliation gave back (`reconcile-call`: the
-- final status came from the provider's REST API, its webhook was lost).
ALTER TABLE calls ADD COLUMN released_by_reconcile boolean NOT NULL DEFAULT false;
