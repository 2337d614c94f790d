"""Satisfaction surveys of follow-up visits: the signed link a customer opens (no login)."""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer

from contactcenter.settings import Settings

_SALT = "contactcenter.care.survey.v1"
SURVEY_PATH = "/v1/care/survey/"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret, salt=_SALT)


def survey_token(settings: Settings, care_send_id: int) -> str:
    """A token naming exactly one follow-up visit, signed with SECRET_KEY and dated."""
    return str(_serializer(settings).dumps({"s": care_send_id}))


def survey_link(settings: Settings, care_send_id: int) -> str:
    """The page where the customer gives their score: PUBLIC_BASE_URL, else this server."""
    base = settings.public_base_url or f"http://{settings.host}:{settings.port}"
    return f"{base.rstrip('/')}{SURVEY_PATH}{survey_token(settings, care_send_id)}"
