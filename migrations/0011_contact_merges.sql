-- Contact merges: the audit of POST /v1/contacts/merge. One row per merge, never rewritten:
-- `from` is gone (its row, as it was, is in from_snapshot), and `into` may itself be merged
-- later, so neither id is a foreign key; GET /v1/contacts/{id}/merges follows the chain.
CREATE TABLE contact_merges (
    id             bigserial PRIMARY KEY,
    into_id        bigint NOT NULL,
    from_id        bigint NOT NULL,
    agent_id       bigint REFERENCES agents (id) ON DELETE SET NULL,
    -- the agent's name as it was, so the audit still says who after the agent is deleted
    agent_name     text,
    merged_at      timestamptz NOT NULL,
    -- {"contact": the from row, "identities": [...], "dropped": {"care_sends": [...],
    -- "consents": [...]}}: everything of `from` that did not survive as a row of its own
    from_snapshot  jsonb NOT NULL,
    -- rows moved per table, and rows dropped on a conflict (the survivor's were kept)
    counts         jsonb NOT NULL,
    CHECK (into_id <> from_id)
);
CREATE INDEX contact_merges_into ON contact_merges (into_id, id);
CREATE INDEX contact_merges_from ON contact_merges (from_id);
