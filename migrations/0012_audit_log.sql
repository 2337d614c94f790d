-- The audit log: one row per admin change (issue 8), written in the change's own transaction,
-- so it commits or rolls back with it. Never rewritten. `before`/`after` are the stored row
-- as the admin API shows it (create: after only; delete: before only; update: only the keys
-- that changed, in both); secrets (tokens, their hashes, passwords) are never stored.
-- action mirrors domain/audit.py AuditAction.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    agent_id    bigint REFERENCES agents (id) ON DELETE SET NULL,
    -- the agent's name as it was, so the log still says who after the agent is deleted
    agent_name  text,
    action      text NOT NULL CHECK (action IN ('create', 'update', 'delete', 'other')),
    entity      text NOT NULL,
    entity_id   text,
    before      jsonb,
    after       jsonb,
    request_id  text
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id, at);
CREATE INDEX audit_log_at ON audit_log (at);
