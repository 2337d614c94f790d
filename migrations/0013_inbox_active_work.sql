-- The inbox mostly lists the work going on (open, pending, snoozed): a tenth of the rows or
-- less once resolved and closed history piles up. The same order as conversations_inbox
-- (migrations/0007) over those rows only, and again per team for the team views, so a page
-- of the active work reads a few index entries instead of the whole history. A partial index
-- is used only when the planner sees the statuses asked for, so store/inbox.py plans the
-- inbox query for its values each time (plan_cache_mode = force_custom_plan).
CREATE INDEX conversations_inbox_active
    ON conversations (priority DESC, coalesce(sla_due_at, 'infinity'::timestamptz), created_at, id)
    WHERE status IN ('open', 'pending', 'snoozed');
CREATE INDEX conversations_inbox_team_active
    ON conversations (team_id, priority DESC, coalesce(sla_due_at, 'infinity'::timestamptz),
                      created_at, id)
    WHERE status IN ('open', 'pending', 'snoozed');
