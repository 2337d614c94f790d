-- A care send's attempts, counted before each decision in a transaction of its own: a send
-- that keeps failing (an error, not a refusal) is marked failed after a few, instead of being
-- handed to a job again every minute for ever.
ALTER TABLE care_sends ADD COLUMN attempts smallint NOT NULL DEFAULT 0;
