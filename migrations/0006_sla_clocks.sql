-- The SLA engine: each conversation's clocks (contactcenter/domain/sla.py SlaClocks, one row per
-- conversation held to a policy) and what fired (sla_events, one row per warning or breach).
-- Allowed values in CHECK constraints are mirrored by the str Enums of
-- contactcenter/domain/sla.py and enums.py; change both together.

CREATE TABLE conversation_sla (
    conversation_id            bigint PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    -- the policy the clocks run by (null: it was deleted after the conversation ended; the
    -- clocks then stay as they are)
    policy_id                  bigint REFERENCES sla_policies (id) ON DELETE SET NULL,
    started_at                 timestamptz NOT NULL,
    last_event_at              timestamptz NOT NULL,
    first_response_due_at      timestamptz,
    first_response_warning_at  timestamptz,
    first_responded_at         timestamptz,
    first_response_stopped_at  timestamptz,
    awaiting_customer          boolean NOT NULL DEFAULT false,
    next_response_started_at   timestamptz,
    next_response_due_at       timestamptz,
    next_response_warning_at   timestamptz,
    resolution_due_at          timestamptz,
    resolution_warning_at      timestamptz,
    resolution_spent           interval NOT NULL DEFAULT '0',
    resolution_running_since   timestamptz,
    resolution_breached_at     timestamptz,
    stopped_at                 timestamptz,
    -- measured on the policy's clock (business or calendar time), for reports: from the start
    -- to the first reply sent, and the resolution time counted when it was last resolved
    first_response_time        interval,
    resolution_time            interval,
    -- the earliest warning or breach still to act on: the timer job is armed for it, and the
    -- sweeper finds it when that job was lost
    next_timer_at              timestamptz,
    -- the timers of the running clocks already acted on (domain/sla.py timer_key)
    fired_timers               text[] NOT NULL DEFAULT '{}',
    -- as of the last event or timer: ok, at_risk (a warning passed) or breached (a running
    -- clock is past due, or resolution was breached before it was resolved)
    state                      text NOT NULL DEFAULT 'ok'
                               CHECK (state IN ('ok', 'at_risk', 'breached')),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_sla_next_timer ON conversation_sla (next_timer_at, conversation_id)
    WHERE next_timer_at IS NOT NULL;
-- reports select by when the clocks started
CREATE INDEX conversation_sla_started ON conversation_sla (started_at);
CREATE INDEX conversation_sla_policy ON conversation_sla (policy_id) WHERE policy_id IS NOT NULL;

CREATE TABLE sla_events (
    id               bigserial PRIMARY KEY,
    conversation_id  bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    policy_id        bigint REFERENCES sla_policies (id) ON DELETE SET NULL,
    kind             text NOT NULL
                     CHECK (kind IN ('first_response', 'next_response', 'resolution')),
    stage            text NOT NULL CHECK (stage IN ('warning', 'breach')),
    -- the instant the clock fell due (or reached its warning), and when we acted on it
    due_at           timestamptz NOT NULL,
    fired_at         timestamptz NOT NULL,
    -- the conversation as it was when it fired
    team_id          bigint REFERENCES teams (id) ON DELETE SET NULL,
    assignee_id      bigint REFERENCES agents (id) ON DELETE SET NULL,
    tier             smallint NOT NULL,
    channel          text NOT NULL,
    -- what the escalation did: {"priority": [from, to], "team": [from, to], "notify_email": ...}
    escalation       jsonb NOT NULL DEFAULT '{}',
    -- the supervisor e-mail of a breach: an outbox, sent by the notify job, re-enqueued by the
    -- reconciler until sent or given up on
    notify_email     text,
    notify_attempts  integer NOT NULL DEFAULT 0,
    notified_at      timestamptz,
    notify_error     text,
    -- one warning and one breach per clock stretch, however many timers and sweeps fire
    UNIQUE (conversation_id, kind, stage, due_at)
);
CREATE INDEX sla_events_fired ON sla_events (fired_at);
CREATE INDEX sla_events_to_notify ON sla_events (fired_at)
    WHERE notify_email IS NOT NULL AND notified_at IS NULL AND notify_error IS NULL;
