"""Every setting the processes read, from the environment, in one place.

Nothing else in the code base reads ``os.environ``: a process builds one ``Settings`` at start
and passes it on. ``require()`` stops a process with a clear message when something it cannot
run without is missing (a production secret, a server URL).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


MIN_SECRET_KEY_LENGTH = 32


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: str | None = None
    public_base_url: str | None = None
    log_level: str = "INFO"

    # limits
    max_body_bytes: int = 1024 * 1024
    # a CSV import is streamed, so it has a cap of its own
    contact_import_max_bytes: int = 50 * 1024 * 1024
    max_message_chars: int = 10_000
    visitor_token_ttl_seconds: int = 30 * 24 * 3600
    db_pool_min: int = 2
    db_pool_max: int = 10
    # prepared statements cached per connection; 0 behind PgBouncer in transaction mode
    db_statement_cache_size: int = 100
    worker_max_jobs: int = 10
    # how long an idle worker waits between looks at the queue: the floor of a job's start lag
    worker_poll_seconds: float = 0.01

    # e-mail: a default mailbox from the environment (more through /v1/admin/channels)
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: str = "ssl"
    imap_user: str | None = None
    imap_password: str | None = None
    imap_folder: str = "INBOX"
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    email_from: str | None = None
    email_from_name: str | None = None
    email_webhook_secret: str | None = None
    max_attachment_bytes: int = 10 * 1024 * 1024
    # how often a mailbox whose server has no IDLE is polled, and how long one IDLE lasts
    # (servers drop an IDLE after 30 minutes; RFC 2177 says re-issue it before 29)
    mail_poll_seconds: float = 5.0
    # re-issued well before servers (29 minutes) and NAT boxes (often 10) drop it
    mail_idle_seconds: float = 9 * 60
    # how far back a mailbox connected for the first time is read (0: from now on)
    mail_first_sync_days: int = 0

    # SMS over Twilio: a default number from the environment
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    sms_max_segments: int = 10
    # a reply that fails for good by SMS goes by e-mail when the customer has an address
    sms_fallback_to_email: bool = False
    sms_help_reply: str = "Reply to this number to reach our support team. Reply STOP to opt out."

    # routing
    default_agent_capacity: int = 5
    reconcile_after_seconds: float = 3.0
    default_phone_region: str | None = None

    # customer tiers: the hour (UTC) of the nightly recompute
    tier_recompute_hour: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: int) -> int:
            raw = text(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None

        def decimal(name: str, default: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                return float(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None

        defaults = cls()
        return cls(
            database_url=text("DATABASE_URL"),
            redis_url=text("REDIS_URL"),
            host=text("HOST") or defaults.host,
            port=number("PORT", defaults.port),
            secret_key=text("SECRET_KEY"),
            public_base_url=text("PUBLIC_BASE_URL"),
            log_level=(text("LOG_LEVEL") or defaults.log_level).upper(),
            max_body_bytes=number("MAX_BODY_BYTES", defaults.max_body_bytes),
            contact_import_max_bytes=number(
                "CONTACT_IMPORT_MAX_BYTES", defaults.contact_import_max_bytes
            ),
            max_message_chars=number("MAX_MESSAGE_CHARS", defaults.max_message_chars),
            visitor_token_ttl_seconds=number(
                "VISITOR_TOKEN_TTL_SECONDS", defaults.visitor_token_ttl_seconds
            ),
            db_pool_min=number("DB_POOL_MIN", defaults.db_pool_min),
            db_pool_max=number("DB_POOL_MAX", defaults.db_pool_max),
            db_statement_cache_size=number(
                "DB_STATEMENT_CACHE_SIZE", defaults.db_statement_cache_size
            ),
            worker_max_jobs=number("WORKER_MAX_JOBS", defaults.worker_max_jobs),
            worker_poll_seconds=decimal("WORKER_POLL_SECONDS", defaults.worker_poll_seconds),
            default_agent_capacity=number(
                "DEFAULT_AGENT_CAPACITY", defaults.default_agent_capacity
            ),
            reconcile_after_seconds=decimal(
                "RECONCILE_AFTER_SECONDS", defaults.reconcile_after_seconds
            ),
            default_phone_region=text("DEFAULT_PHONE_REGION"),
            tier_recompute_hour=_hour(
                "TIER_RECOMPUTE_HOUR", number("TIER_RECOMPUTE_HOUR", defaults.tier_recompute_hour)
            ),
            imap_host=text("IMAP_HOST"),
            imap_port=number("IMAP_PORT", 0) or None,
            imap_security=_choice(
                "IMAP_SECURITY", text("IMAP_SECURITY"), defaults.imap_security, IMAP_SECURITY
            ),
            imap_user=text("IMAP_USER"),
            imap_password=text("IMAP_PASSWORD"),
            imap_folder=text("IMAP_FOLDER") or defaults.imap_folder,
            smtp_host=text("SMTP_HOST"),
            smtp_port=number("SMTP_PORT", 0) or None,
            smtp_security=_choice(
                "SMTP_SECURITY", text("SMTP_SECURITY"), defaults.smtp_security, MAIL_SECURITY
            ),
            smtp_user=text("SMTP_USER"),
            smtp_password=text("SMTP_PASSWORD"),
            email_from=text("EMAIL_FROM"),
            email_from_name=text("EMAIL_FROM_NAME"),
            email_webhook_secret=text("EMAIL_WEBHOOK_SECRET"),
            max_attachment_bytes=number("MAX_ATTACHMENT_BYTES", defaults.max_attachment_bytes),
            mail_poll_seconds=decimal("MAIL_POLL_SECONDS", defaults.mail_poll_seconds),
            mail_idle_seconds=decimal("MAIL_IDLE_SECONDS", defaults.mail_idle_seconds),
            mail_first_sync_days=number("MAIL_FIRST_SYNC_DAYS", defaults.mail_first_sync_days),
            twilio_account_sid=text("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=text("TWILIO_AUTH_TOKEN"),
            twilio_from_number=text("TWILIO_FROM_NUMBER"),
            twilio_messaging_service_sid=text("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_api_base=(text("TWILIO_API_BASE") or defaults.twilio_api_base).rstrip("/"),
            sms_max_segments=number("SMS_MAX_SEGMENTS", defaults.sms_max_segments),
            sms_fallback_to_email=_flag("SMS_FALLBACK_TO_EMAIL", text("SMS_FALLBACK_TO_EMAIL")),
            sms_help_reply=text("SMS_HELP_REPLY") or defaults.sms_help_reply,
        )

    @property
    def max_mail_bytes(self) -> int:
        """A whole mail: its attachments' limit plus room for text and headers."""
        return self.max_attachment_bytes + 5 * 1024 * 1024

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def require(self, *names: str) -> None:
        """Refuse to go on when a named setting is unset or too weak, saying how to fix it."""
        problems = []
        for name in names:
            value = getattr(self, name)
            env_name = name.upper()
            if value is None:
                problems.append(f"{env_name} is not set{_HINTS.get(name, '')}")
            elif name == "secret_key" and len(value) < MIN_SECRET_KEY_LENGTH:
                problems.append(
                    f"SECRET_KEY is too short ({len(value)} characters; at least "
                    f"{MIN_SECRET_KEY_LENGTH}){_HINTS['secret_key']}"
                )
        if problems:
            raise SettingsError("; ".join(problems))

    @property
    def database(self) -> str:
        self.require("database_url")
        assert self.database_url is not None
        return self.database_url

    @property
    def redis(self) -> str:
        self.require("redis_url")
        assert self.redis_url is not None
        return self.redis_url

    @property
    def secret(self) -> str:
        self.require("secret_key")
        assert self.secret_key is not None
        return self.secret_key


MAIL_SECURITY = ("ssl", "starttls", "none")
IMAP_SECURITY = ("ssl", "none")  # IMAP STARTTLS is not supported yet


def _flag(name: str, value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {value!r}")


def _hour(name: str, value: int) -> int:
    if not 0 <= value <= 23:
        raise SettingsError(f"{name} must be an hour from 0 to 23, got {value}")
    return value


def _choice(name: str, value: str | None, default: str, allowed: tuple[str, ...]) -> str:
    if value is None:
        return default
    if value.lower() not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value.lower()


_HINTS = {
    "secret_key": (
        " — it signs visitor tokens and links; generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    ),
    "database_url": (
        " — e.g. postgresql://user:password@host:5432/contactcenter "
        "(`contactcenter up` starts an embedded PostgreSQL when it is unset)"
    ),
    "redis_url": (
        " — e.g. redis://host:6379/0 (`contactcenter up` starts an embedded Redis when it is unset)"
    ),
}
