"""The e-mail channel: IMAP intake, MIME parsing, SMTP replies."""
