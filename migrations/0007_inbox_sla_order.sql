-- The inbox lists by priority, then the nearest SLA due time (none: last), then age.
DROP INDEX conversations_inbox;
CREATE INDEX conversations_inbox
    ON conversations (priority DESC, coalesce(sla_due_at, 'infinity'::timestamptz), created_at, id);
