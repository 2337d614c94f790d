"""Satisfaction surveys of follow-up visits: the signed link a customer opens (no login), what
and reading it back.

The token names one follow-up visit, signed with SECRET_KEY and dated; it is taken for
care_settings.survey_valid_days. The visit itself decides the rest (services/satisfaction.py):
sent, not answered yet, sent within the same number of days. This module stays free of the
database so that whatever sends the link can import it."""

from __future__ import annotations

from datetime import datetime, timedelta

from itsdangerous import BadData, URLSafeTimedSerializer

from contactcenter.domain.errors import DomainError
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


# --- reading a token back ---------------------------------------------------------------------


class InvalidLink(DomainError):
    """Not a link we signed (tampered, cut short, made up)."""

    code = "invalid_link"


class SurveyExpired(DomainError):
    """The link, or the visit it answers, is older than survey_valid_days."""

    code = "link_expired"


def read_survey_token(settings: Settings, token: str, now: datetime, valid_days: int) -> int:
    """The follow-up visit a token names; InvalidLink when we did not sign it, SurveyExpired
    when it was signed more than `valid_days` before `now` (read by our clock, not the
    library's, so that tests can move it)."""
    try:
        payload, signed_at = _serializer(settings).loads(token, return_timestamp=True)
    except BadData:
        raise InvalidLink("this link is not valid") from None
    care_send_id = payload.get("s") if isinstance(payload, dict) else None
    if type(care_send_id) is not int or care_send_id < 1:
        raise InvalidLink("this link is not valid")
    if now - signed_at > timedelta(days=valid_days):
        raise SurveyExpired("this survey link has expired")
    return care_send_id
