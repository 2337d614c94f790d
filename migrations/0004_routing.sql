-- Customer tiers, teams and agents as routing knows them, routing rules, business hours, and
-- what routing decided (and why) on each conversation. Allowed values in CHECK constraints
-- are mirrored by the str Enums of contactcenter/domain/enums.py; change both together.

-- The customer pyramid: four ordered layers, rank 1 the top. Labels are the admin's; rules,
-- conversations and contacts refer to a tier by its rank.
CREATE TABLE tiers (
    rank           smallint PRIMARY KEY CHECK (rank BETWEEN 1 AND 4),
    label          text NOT NULL UNIQUE,
    -- by thresholds: a contact whose value is at least this is in the tier (the bottom tier
    -- takes everyone else, so its threshold is unused)
    min_value      numeric(16, 2),
    -- by shares: this tier's share of the customer base ranked by value, in percent
    share_percent  numeric(6, 3) CHECK (share_percent IS NULL OR share_percent BETWEEN 0 AND 100),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tiers (rank, label, min_value, share_percent) VALUES
    (1, 'platinum', 100000, 1),
    (2, 'gold', 20000, 4),
    (3, 'silver', 2000, 15),
    (4, 'bronze', NULL, NULL);

-- how tiers are computed from value: one row
CREATE TABLE tier_settings (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    method          text NOT NULL DEFAULT 'shares' CHECK (method IN ('thresholds', 'shares')),
    recomputed_at   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tier_settings DEFAULT VALUES;

-- what a customer is worth (e.g. revenue over the last 12 months, from the API or the CSV
-- import), the tier computed from it, a tier an admin pinned by hand (the pin wins), and
-- the tier in force
ALTER TABLE contacts
    ADD COLUMN value numeric(16, 2) NOT NULL DEFAULT 0 CHECK (value >= 0),
    ADD COLUMN computed_tier smallint NOT NULL DEFAULT 4 REFERENCES tiers (rank),
    ADD COLUMN pinned_tier smallint REFERENCES tiers (rank),
    ADD COLUMN tier smallint NOT NULL DEFAULT 4 REFERENCES tiers (rank),
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
    -- the admin's own fields about a customer (plan, region ...), which rules can test
    ADD COLUMN fields jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN account_manager_id bigint REFERENCES agents (id) ON DELETE SET NULL,
    ADD CONSTRAINT contacts_tier_in_force CHECK (tier = coalesce(pinned_tier, computed_tier));
CREATE INDEX contacts_value ON contacts (value DESC);
CREATE INDEX contacts_account_manager ON contacts (account_manager_id)
    WHERE account_manager_id IS NOT NULL;

-- every change of a contact's tier in force, with its reason
CREATE TABLE tier_changes (
    id           bigserial PRIMARY KEY,
    contact_id   bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    from_tier    smallint,
    to_tier      smallint NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('recompute', 'value', 'pin', 'unpin')),
    -- the value and method behind a computed change, or the admin's note on a pin
    detail       jsonb NOT NULL DEFAULT '{}',
    changed_by   bigint REFERENCES agents (id) ON DELETE SET NULL,
    changed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tier_changes_contact ON tier_changes (contact_id, id DESC);

-- A weekly schedule in a time zone, with public holidays and the admin's own dates. The
-- default calendar is what "inside business hours" means when a rule names none.
CREATE TABLE business_hours (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    timezone      text NOT NULL,
    -- {"mon": [["09:00", "17:00"], ...], ...}: periods per weekday, local time
    weekly        jsonb NOT NULL,
    -- public holidays from the `holidays` package (ISO country, optional subdivision)
    country       text,
    subdivision   text,
    closed_dates  date[] NOT NULL DEFAULT '{}',
    -- extra working days (a weekend made a working day): they work the hours of the
    -- schedule's first weekday that has any (usually Monday)
    open_dates    date[] NOT NULL DEFAULT '{}',
    is_default    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX business_hours_one_default ON business_hours (is_default) WHERE is_default;

-- service standards; issue 6 gives them targets and timers. A routing rule can name one.
CREATE TABLE sla_policies (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- teams: the skills their work needs, how they hand it out, and where it overflows
ALTER TABLE teams
    ADD COLUMN skills text[] NOT NULL DEFAULT '{}',
    ADD COLUMN strategy text NOT NULL DEFAULT 'least_loaded'
               CHECK (strategy IN ('least_loaded', 'round_robin')),
    -- how long a conversation waits for its preferred agent (account manager or last agent)
    -- before anyone in the team may take it; 0 = only when that agent is free at once
    ADD COLUMN sticky_wait_seconds integer NOT NULL DEFAULT 0 CHECK (sticky_wait_seconds >= 0),
    -- prefer the agent who last served the customer
    ADD COLUMN sticky_last_agent boolean NOT NULL DEFAULT true,
    ADD COLUMN overflow_team_id bigint REFERENCES teams (id) ON DELETE SET NULL,
    ADD COLUMN overflow_after_seconds integer CHECK (overflow_after_seconds > 0),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT teams_overflow_elsewhere CHECK (overflow_team_id <> id),
    ADD CONSTRAINT teams_overflow_complete
        CHECK ((overflow_team_id IS NULL) = (overflow_after_seconds IS NULL));

-- agents: what they can do, and how much of each channel at once (null: only the total)
ALTER TABLE agents
    ADD COLUMN skills text[] NOT NULL DEFAULT '{}',
    ADD COLUMN channel_capacity jsonb NOT NULL DEFAULT '{}',
    -- when they last got work, as a strictly increasing number (round robin goes to the
    -- smallest; ties of least-loaded too), so agents given work in one batch stay in order
    ADD COLUMN served_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE SEQUENCE agents_served_seq;

CREATE TABLE routing_rules (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    -- evaluated in position order (then id); positions are rewritten on reorder
    position    integer NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    -- {"match": "all"|"any", "conditions": [...]} and [...] as domain/rules.py reads them
    conditions  jsonb NOT NULL,
    actions     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_rules_order ON routing_rules (position, id);

-- what routing decided for a conversation
ALTER TABLE conversations
    -- the contact's tier when it was routed: the queue serves higher tiers first
    ADD COLUMN tier smallint NOT NULL DEFAULT 4,
    ADD COLUMN is_complaint boolean NOT NULL DEFAULT false,
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN language text,
    ADD COLUMN sla_policy_id bigint REFERENCES sla_policies (id) ON DELETE SET NULL,
    -- the nearest SLA due time (issue 6 keeps it): the queue's third key
    ADD COLUMN sla_due_at timestamptz,
    -- skills an agent needs to take it (the team's and the rules')
    ADD COLUMN required_skills text[] NOT NULL DEFAULT '{}',
    -- stickiness: the agent it waits for, and until when, before the team may take it
    ADD COLUMN preferred_agent_id bigint REFERENCES agents (id) ON DELETE SET NULL,
    ADD COLUMN preferred_until timestamptz,
    -- since when it waits in its current team (team overflow counts from here)
    ADD COLUMN team_since timestamptz,
    ADD COLUMN auto_replied_at timestamptz,
    -- why: the matched rules, the tier, the team, and the agent chosen and why
    ADD COLUMN routing jsonb NOT NULL DEFAULT '{}';

UPDATE conversations SET team_since = waiting_since WHERE waiting_since IS NOT NULL;

DROP INDEX conversations_queue;
CREATE INDEX conversations_queue
    ON conversations (team_id, tier, priority DESC, sla_due_at, waiting_since, id)
    WHERE waiting_since IS NOT NULL;
-- the agents a team's waiting conversations prefer, locked before its queue is served
CREATE INDEX conversations_preferred_waiting ON conversations (team_id, preferred_agent_id)
    WHERE waiting_since IS NOT NULL AND preferred_agent_id IS NOT NULL;

ALTER TABLE messages ADD COLUMN author_rule_id bigint REFERENCES routing_rules (id)
    ON DELETE SET NULL;
