-- Scheduled care: what contacts tell us for it (birthday, time zone, locale, preferred channel,
-- consent per channel), the templates messages are rendered from, the care settings, the care
-- sends (one per contact, kind and occasion: the unique key that makes "never twice" hold), and
-- satisfaction scores from follow-up visits. Allowed values in CHECK constraints are mirrored by
-- the str Enums of contactcenter/domain/enums.py and domain/care.py; change both together.

ALTER TABLE contacts
    ADD COLUMN birthday date,
    -- an IANA zone ("Asia/Shanghai"); null: care_settings.default_timezone
    ADD COLUMN timezone text,
    -- "en", "zh-CN"; null: care_settings.default_locale
    ADD COLUMN locale text,
    ADD COLUMN preferred_channel text CHECK (preferred_channel IN ('email', 'sms', 'web'));
-- the birthday cron looks up today's (and the neighbouring days') birthdays by month and day
CREATE INDEX contacts_birthday ON contacts
    ((extract(month FROM birthday)::int), (extract(day FROM birthday)::int))
    WHERE birthday IS NOT NULL;

-- consent to automated care messages (greetings, follow-ups) per channel; no row: not asked.
-- An SMS opt-out (STOP, TD, 退订) in sms_consent always wins over a grant here.
CREATE TABLE contact_consents (
    contact_id  bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('email', 'sms', 'web')),
    granted     boolean NOT NULL,
    -- who said so: api (an agent or admin), import, customer (a survey page, a keyword)
    source      text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, channel)
);

CREATE TABLE templates (
    id          bigserial PRIMARY KEY,
    purpose     text NOT NULL
                CHECK (purpose IN ('birthday', 'birthday_task', 'follow_up', 'recovery',
                                   'auto_reply', 'help')),
    channel     text NOT NULL CHECK (channel IN ('email', 'sms', 'web')),
    locale      text NOT NULL,
    -- e-mail only
    subject     text,
    body_text   text NOT NULL,
    -- e-mail only; rendered with HTML escaping
    body_html   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (purpose, channel, locale)
);

-- one row: how care behaves
CREATE TABLE care_settings (
    id                    boolean PRIMARY KEY DEFAULT true CHECK (id),
    birthday_enabled      boolean NOT NULL DEFAULT true,
    -- the customer's local hour a greeting goes at
    birthday_hour         smallint NOT NULL DEFAULT 9 CHECK (birthday_hour BETWEEN 0 AND 23),
    -- tiers (ranks) whose greeting becomes a task for the account manager instead
    birthday_task_tiers   smallint[] NOT NULL DEFAULT '{}',
    follow_up_enabled     boolean NOT NULL DEFAULT true,
    -- days after resolving a follow-up visit goes, per tier rank ("1".."4"); a tier left out
    -- gets no follow-up
    follow_up_days        jsonb NOT NULL DEFAULT '{"1": 1, "2": 2, "3": 3, "4": 3}'
                          CHECK (jsonb_typeof(follow_up_days) = 'object'),
    -- a score at or below this opens a recovery conversation
    recovery_threshold    smallint NOT NULL DEFAULT 2 CHECK (recovery_threshold BETWEEN 0 AND 5),
    recovery_priority     smallint NOT NULL DEFAULT 9 CHECK (recovery_priority BETWEEN 0 AND 10),
    -- automated messages go only between these local times (08:00-21:00)
    quiet_end             time NOT NULL DEFAULT '08:00',
    quiet_start           time NOT NULL DEFAULT '21:00',
    default_timezone      text NOT NULL DEFAULT 'UTC',
    default_locale        text NOT NULL DEFAULT 'en',
    -- how long a survey link (and an SMS digit answer) is taken after the visit was sent
    survey_valid_days     smallint NOT NULL DEFAULT 14 CHECK (survey_valid_days BETWEEN 1 AND 90),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (quiet_end < quiet_start)
);
INSERT INTO care_settings DEFAULT VALUES;

-- each greeting or follow-up visit: scheduled, then sent (or skipped, cancelled, failed, or
-- turned into a task), once per contact, kind and occasion whatever runs it
CREATE TABLE care_sends (
    id               bigserial PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('birthday', 'follow_up')),
    -- birthday: the customer's local year; follow_up: "conversation:<id>"
    occasion         text NOT NULL,
    contact_id       bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    -- follow_up: the resolved conversation; birthday: the conversation it went out in (or the
    -- account manager's task)
    conversation_id  bigint REFERENCES conversations (id) ON DELETE CASCADE,
    channel          text CHECK (channel IN ('email', 'sms', 'web')),
    locale           text,
    -- when it may go: the occasion's hour, moved out of quiet hours
    due_at           timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'scheduled'
                     CHECK (status IN ('scheduled', 'sent', 'task', 'skipped', 'cancelled',
                                       'failed')),
    -- why it was skipped, cancelled or failed (no_consent, opted_out, no_address, written_again
    -- ...)
    reason           text,
    message_id       bigint REFERENCES messages (id) ON DELETE SET NULL,
    sent_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (contact_id, kind, occasion)
);
CREATE INDEX care_sends_due ON care_sends (due_at) WHERE status = 'scheduled';
CREATE INDEX care_sends_conversation ON care_sends (conversation_id)
    WHERE conversation_id IS NOT NULL;
-- "has this contact a follow-up by SMS waiting for a digit?"
CREATE INDEX care_sends_contact_sent ON care_sends (contact_id, sent_at DESC)
    WHERE kind = 'follow_up' AND status = 'sent';

-- a follow-up's answer: with the conversation, its agent, team, tier and channel as they were
CREATE TABLE satisfaction_scores (
    id                         bigserial PRIMARY KEY,
    care_send_id               bigint NOT NULL UNIQUE REFERENCES care_sends (id)
                               ON DELETE CASCADE,
    conversation_id            bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    contact_id                 bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    agent_id                   bigint REFERENCES agents (id) ON DELETE SET NULL,
    team_id                    bigint REFERENCES teams (id) ON DELETE SET NULL,
    tier                       smallint NOT NULL,
    channel                    text NOT NULL,
    score                      smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment                    text,
    -- sms (a digit) or link (the survey page)
    answered_by                text NOT NULL CHECK (answered_by IN ('sms', 'link')),
    -- the conversation a low score opened with a person
    recovery_conversation_id   bigint REFERENCES conversations (id) ON DELETE SET NULL,
    created_at                 timestamptz NOT NULL
);
CREATE INDEX satisfaction_scores_created ON satisfaction_scores (created_at);
CREATE INDEX satisfaction_scores_conversation ON satisfaction_scores (conversation_id);

-- what care opened: a recovery conversation, a birthday task (for reports and the card)
ALTER TABLE conversations ADD COLUMN care_kind text
    CHECK (care_kind IN ('birthday', 'birthday_task', 'recovery'));

-- default templates in English and Simplified Chinese (admins change them at
-- /v1/admin/templates). Placeholders: {{ name }}, {{ salutation }}, {{ agent }},
-- {{ survey_link }}, {{ reply_digits }}; a missing value renders as nothing.
INSERT INTO templates (purpose, channel, locale, subject, body_text, body_html) VALUES
('birthday', 'email', 'en', 'Happy birthday, {{ name }}!',
 E'{{ salutation }},\n\nall of us wish you a very happy birthday and a wonderful year ahead.\n\nWith warm regards,\nYour service team',
 '<p>{{ salutation }},</p><p>all of us wish you a very happy birthday and a wonderful year ahead.</p><p>With warm regards,<br>Your service team</p>'),
('birthday', 'sms', 'en', NULL,
 'Happy birthday, {{ name }}! All of us wish you a wonderful year ahead.', NULL),
('birthday', 'email', 'zh-CN', '{{ name }},生日快乐!',
 E'{{ salutation }}:\n\n祝您生日快乐,新的一岁万事如意!\n\n您的客服团队',
 '<p>{{ salutation }}:</p><p>祝您生日快乐,新的一岁万事如意!</p><p>您的客服团队</p>'),
('birthday', 'sms', 'zh-CN', NULL, '{{ name }},祝您生日快乐,新的一岁万事如意!', NULL),
('birthday_task', 'email', 'en', 'Birthday: {{ name }}',
 E'Today is {{ name }}''s birthday. A personal word from you is the best greeting.', NULL),
('birthday_task', 'email', 'zh-CN', '生日:{{ name }}',
 '今天是{{ name }}的生日,请亲自向客户送上祝福。', NULL),
('follow_up', 'email', 'en', 'How did we do, {{ name }}?',
 E'{{ salutation }},\n\na few days ago {{ agent }} helped you. Is all well now? Tell us how satisfied you are (1 to 5):\n\n{{ survey_link }}\n\nThank you,\nYour service team',
 '<p>{{ salutation }},</p><p>a few days ago {{ agent }} helped you. Is all well now? Tell us how satisfied you are (1 to 5):</p><p><a href="{{ survey_link }}">{{ survey_link }}</a></p><p>Thank you,<br>Your service team</p>'),
('follow_up', 'sms', 'en', NULL,
 'Hi {{ name }}, is all well since we helped you? Reply {{ reply_digits }} to rate us (5 = very satisfied).', NULL),
('follow_up', 'web', 'en', NULL,
 E'Is all well since we helped you? Tell us how satisfied you are: {{ survey_link }}', NULL),
('follow_up', 'email', 'zh-CN', '{{ name }},您对我们的服务满意吗?',
 E'{{ salutation }}:\n\n几天前{{ agent }}为您提供了帮助。问题解决了吗?请为我们的服务打分(1 到 5 分):\n\n{{ survey_link }}\n\n谢谢!\n您的客服团队',
 '<p>{{ salutation }}:</p><p>几天前{{ agent }}为您提供了帮助。问题解决了吗?请为我们的服务打分(1 到 5 分):</p><p><a href="{{ survey_link }}">{{ survey_link }}</a></p><p>谢谢!<br>您的客服团队</p>'),
('follow_up', 'sms', 'zh-CN', NULL,
 '{{ name }}您好,问题解决了吗?请回复{{ reply_digits }}为我们的服务打分(5 分为非常满意)。', NULL),
('follow_up', 'web', 'zh-CN', NULL, '问题解决了吗?请为我们的服务打分:{{ survey_link }}', NULL);
