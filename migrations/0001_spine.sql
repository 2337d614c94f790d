-- The spine: contacts and their identities, teams and agents, conversations and messages.
-- Allowed values in CHECK constraints are mirrored by the str Enums of
-- contactcenter/domain/enums.py; change both together.

CREATE TABLE teams (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- at most one default team: where a conversation goes when nothing else decides
CREATE UNIQUE INDEX teams_one_default ON teams (is_default) WHERE is_default;
INSERT INTO teams (name, is_default) VALUES ('General', true);

CREATE TABLE agents (
    id                   bigserial PRIMARY KEY,
    name                 text NOT NULL,
    email                text NOT NULL,
    role                 text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    token_hash           bytea NOT NULL UNIQUE,
    presence             text NOT NULL DEFAULT 'offline'
                         CHECK (presence IN ('online', 'away', 'offline')),
    presence_changed_at  timestamptz NOT NULL DEFAULT now(),
    capacity             integer NOT NULL DEFAULT 5 CHECK (capacity >= 0),
    last_assigned_at     timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX agents_email ON agents (lower(email));

CREATE TABLE team_members (
    team_id   bigint NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    agent_id  bigint NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, agent_id)
);
CREATE INDEX team_members_agent ON team_members (agent_id);

CREATE TABLE contacts (
    id          bigserial PRIMARY KEY,
    name        text,
    profile     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- one row per way of reaching a contact; the normalised value is unique per kind, so the
-- same address or number always resolves to the same contact
CREATE TABLE contact_identities (
    id          bigserial PRIMARY KEY,
    contact_id  bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('email', 'phone', 'web')),
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, value)
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);

CREATE TABLE conversations (
    id                  bigserial PRIMARY KEY,
    contact_id          bigint NOT NULL REFERENCES contacts (id),
    channel             text NOT NULL CHECK (channel IN ('web', 'email', 'sms')),
    status              text NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'pending', 'snoozed', 'resolved', 'closed')),
    priority            smallint NOT NULL DEFAULT 0,
    -- a team with conversations cannot simply vanish: they would wait for nobody
    team_id             bigint REFERENCES teams (id),
    assignee_id         bigint REFERENCES agents (id) ON DELETE SET NULL,
    subject             text,
    -- routing is due: set by ingest, cleared by the route job; the reconciler re-enqueues
    -- what stays set too long. The version makes each request's job id unique.
    route_requested_at  timestamptz,
    route_version       integer NOT NULL DEFAULT 0,
    -- in the team's queue, waiting for an agent with a free slot
    waiting_since       timestamptz,
    assigned_at         timestamptz,
    snoozed_until       timestamptz,
    first_responded_at  timestamptz,
    resolved_at         timestamptz,
    last_message_at     timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (snoozed_until IS NOT NULL OR status <> 'snoozed')
);
CREATE INDEX conversations_contact ON conversations (contact_id, created_at DESC);
CREATE INDEX conversations_route_due ON conversations (route_requested_at)
    WHERE route_requested_at IS NOT NULL;
CREATE INDEX conversations_queue ON conversations (team_id, priority DESC, waiting_since, id)
    WHERE waiting_since IS NOT NULL;
CREATE INDEX conversations_assignee ON conversations (assignee_id, status)
    WHERE assignee_id IS NOT NULL;
CREATE INDEX conversations_snoozed ON conversations (snoozed_until)
    WHERE status = 'snoozed';
CREATE INDEX conversations_inbox ON conversations (priority DESC, created_at, id);

CREATE TABLE messages (
    id               bigserial PRIMARY KEY,
    conversation_id  bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    direction        text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    is_note          boolean NOT NULL DEFAULT false,
    channel          text NOT NULL CHECK (channel IN ('web', 'email', 'sms')),
    -- the channel's own id (web client message id, e-mail Message-ID, Twilio MessageSid):
    -- ingest is idempotent on it
    external_id      text,
    author_agent_id  bigint REFERENCES agents (id) ON DELETE SET NULL,
    body_text        text NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('received', 'queued', 'sent', 'delivered', 'failed')),
    -- delivery attempts begun, counted in PostgreSQL so that no re-enqueue resets the count
    send_attempts    smallint NOT NULL DEFAULT 0,
    error_code       text,
    error_message    text,
    sent_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (direction = 'outbound' OR NOT is_note),
    UNIQUE (channel, external_id)
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_unsent ON messages (created_at) WHERE status = 'queued';
