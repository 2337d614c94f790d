-- Canned responses: texts agents insert with a shortcut ("refund-delay"), rendered with the
-- same placeholders and sandbox as the templates ({{ name }}, {{ salutation }}, {{ agent }}).
-- One for everyone (team_id null) or for one team's agents; supervisors and admins see all.

CREATE TABLE canned_responses (
    id          bigserial PRIMARY KEY,
    -- stored lower case (the service lowercases it), so the unique index below is
    -- case-insensitive by construction; the CHECK is the same pattern the service enforces
    shortcut    text NOT NULL CHECK (shortcut ~ '^[a-z0-9][a-z0-9-]{0,49}$'),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body_text   text NOT NULL CHECK (length(body_text) BETWEEN 1 AND 5000),
    -- "en", "zh-CN" (normalised as the templates' locales); null: any language
    locale      text,
    -- null: every agent; a team in use by a response cannot be deleted (409 team_in_use)
    team_id     bigint REFERENCES teams (id) ON DELETE RESTRICT,
    created_by  bigint REFERENCES agents (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX canned_responses_shortcut ON canned_responses (lower(shortcut));
CREATE INDEX canned_responses_team ON canned_responses (team_id);
