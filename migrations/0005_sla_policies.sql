-- SLA policies get their targets, clock, warning and escalation; each tier may name a default
-- policy (a routing rule's sla_policy action wins over it). Allowed values in CHECK constraints
-- are mirrored by the str Enums of contactcenter/domain/enums.py; change both together.

ALTER TABLE sla_policies
    -- targets in seconds (the API speaks minutes); null: no such target. At most 90 days.
    ADD COLUMN first_response_seconds integer
        CHECK (first_response_seconds > 0 AND first_response_seconds <= 7776000),
    ADD COLUMN next_response_seconds integer
        CHECK (next_response_seconds > 0 AND next_response_seconds <= 7776000),
    ADD COLUMN resolution_seconds integer
        CHECK (resolution_seconds > 0 AND resolution_seconds <= 7776000),
    -- business: only time inside business hours counts (business_hours_id, or when it is null
    -- the default calendar at evaluation time); calendar: every second counts
    ADD COLUMN clock text NOT NULL DEFAULT 'business' CHECK (clock IN ('business', 'calendar')),
    ADD COLUMN business_hours_id bigint REFERENCES business_hours (id) ON DELETE RESTRICT,
    -- warn at this share of each target (80: at 80 %); null: no warning
    ADD COLUMN warning_percent smallint CHECK (warning_percent BETWEEN 1 AND 99),
    -- what a breach does: {"raise_priority_to": 0..10, "team_id": N, "notify_email": "..."},
    -- each key optional (domain/sla_policies.py checks the shape)
    ADD COLUMN escalation jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(escalation) = 'object'),
    -- the escalation team as a column of its own, so a team a policy escalates to cannot be
    -- deleted (the team's delete answers 409 team_in_use)
    ADD COLUMN escalation_team_id bigint
        GENERATED ALWAYS AS ((escalation ->> 'team_id')::bigint) STORED
        REFERENCES teams (id) ON DELETE RESTRICT,
    ADD COLUMN description text,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT sla_policies_calendar_clock
        CHECK (clock = 'business' OR business_hours_id IS NULL);

-- A policy has at least one target. NOT VALID: a policy named before this migration (a name
-- only) stays, with no targets and so no timers, until an admin gives it one; every new or
-- changed row is checked.
ALTER TABLE sla_policies ADD CONSTRAINT sla_policies_some_target
    CHECK (first_response_seconds IS NOT NULL OR next_response_seconds IS NOT NULL
           OR resolution_seconds IS NOT NULL) NOT VALID;

CREATE INDEX sla_policies_business_hours ON sla_policies (business_hours_id)
    WHERE business_hours_id IS NOT NULL;
CREATE INDEX sla_policies_escalation_team ON sla_policies (escalation_team_id)
    WHERE escalation_team_id IS NOT NULL;

-- the policy a conversation of this tier gets when no routing rule names one
ALTER TABLE tiers ADD COLUMN sla_policy_id bigint REFERENCES sla_policies (id) ON DELETE RESTRICT;

-- "is any open conversation on this policy?" (a policy in use is not deleted)
CREATE INDEX conversations_sla_policy ON conversations (sla_policy_id)
    WHERE sla_policy_id IS NOT NULL;
