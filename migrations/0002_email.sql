-- The e-mail channel: mailboxes, the IMAP checkpoint, attachments, quarantine.

CREATE TABLE mailboxes (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    -- the From address of our replies, and where customers write
    address         text NOT NULL UNIQUE,
    display_name    text,
    imap_host       text,
    imap_port       integer CHECK (imap_port BETWEEN 1 AND 65535),
    imap_security   text NOT NULL DEFAULT 'ssl' CHECK (imap_security IN ('ssl', 'starttls', 'none')),
    imap_user       text,
    -- passwords are sealed with a key derived from SECRET_KEY (contactcenter/sealing.py)
    imap_password   text,
    imap_folder     text NOT NULL DEFAULT 'INBOX',
    smtp_host       text,
    smtp_port       integer CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_security   text NOT NULL DEFAULT 'starttls'
                    CHECK (smtp_security IN ('ssl', 'starttls', 'none')),
    smtp_user       text,
    smtp_password   text,
    enabled         boolean NOT NULL DEFAULT true,
    -- configured by the IMAP_* / SMTP_* environment, not by the admin API
    from_environment boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- where intake stands per mailbox: advanced in the transaction that stores the mail
CREATE TABLE imap_state (
    mailbox_id   bigint PRIMARY KEY REFERENCES mailboxes (id) ON DELETE CASCADE,
    uidvalidity  bigint,
    last_uid     bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE conversations ADD COLUMN mailbox_id bigint REFERENCES mailboxes (id);

-- the sanitised HTML of a mail, and its full text when body_text shows it with quoted
-- earlier replies folded away
ALTER TABLE messages ADD COLUMN body_html text;
ALTER TABLE messages ADD COLUMN body_full text;
-- mails sent by machines (auto-replies, bounces): stored, never opening work
ALTER TABLE messages ADD COLUMN is_automatic boolean NOT NULL DEFAULT false;
-- the addresses of a mail (from, reply_to, to, cc): where an answer goes
ALTER TABLE messages ADD COLUMN email_meta jsonb;

CREATE TABLE attachments (
    id            bigserial PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    filename      text,
    content_type  text NOT NULL,
    size          bigint NOT NULL,
    -- NULL when the attachment was over the size limit: its metadata is kept
    content       bytea,
    content_id    text,
    inline        boolean NOT NULL DEFAULT false
);
CREATE INDEX attachments_message ON attachments (message_id);

-- mails that could not be read: the raw source is kept for an admin, the mailbox goes on
CREATE TABLE email_quarantine (
    id          bigserial PRIMARY KEY,
    mailbox_id  bigint REFERENCES mailboxes (id) ON DELETE SET NULL,
    uid         bigint,
    raw         bytea NOT NULL,
    error       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
