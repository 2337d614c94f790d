-- The SMS channel over Twilio: numbers, the consent ledger, delivery details.

CREATE TABLE sms_numbers (
    id                     bigserial PRIMARY KEY,
    name                   text NOT NULL UNIQUE,
    account_sid            text NOT NULL,
    -- sealed with a key derived from SECRET_KEY (contactcenter/sealing.py)
    auth_token             text NOT NULL,
    -- E.164; or a Messaging Service (a pool of numbers) that picks the sender
    from_number            text UNIQUE,
    messaging_service_sid  text,
    enabled                boolean NOT NULL DEFAULT true,
    from_environment       boolean NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (from_number IS NOT NULL OR messaging_service_sid IS NOT NULL)
);

-- every change of a number's consent, when and why: the ledger a regulator asks for
CREATE TABLE sms_consent_events (
    id          bigserial PRIMARY KEY,
    phone       text NOT NULL,
    opted_out   boolean NOT NULL,
    source      text NOT NULL CHECK (source IN ('keyword', 'agent', 'import', 'carrier')),
    detail      text,
    message_id  bigint REFERENCES messages (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_consent_events_phone ON sms_consent_events (phone, id DESC);

-- where each number stands now (the latest event); checked before every send
CREATE TABLE sms_consent (
    phone       text PRIMARY KEY,
    opted_out   boolean NOT NULL,
    changed_at  timestamptz NOT NULL
);

ALTER TABLE conversations ADD COLUMN sms_number_id bigint REFERENCES sms_numbers (id);

-- how many segments an SMS cost; a reply's delivery channel can differ from its
-- conversation's (a failed SMS answered by e-mail)
ALTER TABLE messages ADD COLUMN segments smallint;
ALTER TABLE messages ADD COLUMN fallback_of bigint REFERENCES messages (id);
CREATE UNIQUE INDEX messages_fallback_once ON messages (fallback_of) WHERE fallback_of IS NOT NULL;

-- Twilio reports 'undelivered' besides the statuses we had
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('received', 'queued', 'sent', 'delivered', 'undelivered', 'failed'));

-- MMS media: kept as attachment metadata, pointing at the provider's copy
ALTER TABLE attachments ADD COLUMN url text;
