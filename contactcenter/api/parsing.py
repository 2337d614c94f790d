"""Reading what callers send: JSON bodies into pydantic models, ids, query values, tokens."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from typing import Annotated, Any, ClassVar, Self, TypeVar

from aiohttp import web
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    model_validator,
)

from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.domain.errors import Invalid

Model = TypeVar("Model", bound=BaseModel)

MAX_ID = 2**63 - 1
# every 401 says how to authenticate (RFC 9110)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="contactcenter"'}


def _storable(value: str) -> str:
    # PostgreSQL text holds neither NUL nor lone surrogates (JSON "\ud800"); refuse them here
    # rather than fail on insert
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


CleanStr = Annotated[str, AfterValidator(_storable)]


def _not_a_number(token: str) -> float:
    # NaN and Infinity are not JSON (RFC 8259), though Python's json reads them
    raise ValueError(f"{token} is not a JSON number")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"{token[:40]} is out of range")
    return value


def _text_only(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be a date as text, YYYY-MM-DD")
    return value


# a date written as a date ("2026-10-01"), never a number of seconds
IsoDate = Annotated[date, BeforeValidator(_text_only)]

# RFC 3339, which OpenAPI's "date-time" means (pydantic alone also takes 1700000000, "1700000000"
# and "2026-10-01 09:00")
_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)


def _date_time_text(value: object) -> object:
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise ValueError("must be a date and time with its offset, e.g. 2026-10-01T09:00:00+08:00")
    return value


# a moment written as RFC 3339 text with an offset, never a number of seconds
DateTimeText = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]


class Body(BaseModel):
    """A request body: unknown fields are refused, so a typo is an error and not a no-op."""

    model_config = ConfigDict(extra="forbid")


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's JSON Schema for a value that is given or left out, never null: pydantic's
    `T | None = None` (anyOf [T, null], default null) as T."""
    found = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    branches = [b for b in found.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" in found and len(branches) == 1:
        del found["anyOf"]
        found = {**branches[0], **found}
    elif "anyOf" in found:
        found["anyOf"] = branches
    return found


def _no_null_documented(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The JSON Schema of a Patch: a `not_null` field is documented without null."""
    properties = schema.get("properties", {})
    for name in getattr(model, "not_null", ()):
        if name in properties:
            properties[name] = without_null(properties[name])


class Patch(Body):
    """A PATCH body: a field left out keeps its value. A field named in `not_null` always
    holds one, so null is refused there (leave it out to keep it)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_documented)
    not_null: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _no_null_where_a_value_is_needed(self) -> Self:
        for name in self.not_null:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null (leave it out to keep it)")
        return self


async def read_json(request: web.Request, model: type[Model]) -> Model:
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send a JSON body with Content-Type: application/json",
        )
    raw = await request.read()  # refuses a body over the app's client_max_size with 413
    try:
        # JSON between systems is UTF-8 (RFC 8259); json.loads would guess UTF-16 from bytes.
        # ValueError also covers integers of over 4,300 digits, RecursionError deep nesting.
        data = json.loads(
            raw.decode("utf-8"), parse_constant=_not_a_number, parse_float=_finite_float
        )
    except (ValueError, RecursionError) as exc:
        reason = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {reason}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422,
            "validation_error",
            "some fields are missing or wrong",
            {"fields": [_field_error(e) for e in exc.errors()]},
        ) from None


def _field_error(error: Any) -> dict[str, str]:
    location = ".".join(str(part) for part in error["loc"]) or "body"
    return {"field": location, "message": error["msg"], "type": error["type"]}


_DIGITS = re.compile(r"^[0-9]{1,19}\Z")


def whole_number(raw: str, *, low: int = 0, high: int = MAX_ID) -> int | None:
    """An ASCII decimal within [low, high], or None (str.isdigit would let '²' through)."""
    if not _DIGITS.match(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def path_id(request: web.Request, name: str = "id") -> int:
    value = whole_number(request.match_info[name], low=1)
    if value is None:
        raise ApiError(404, "not_found", f"no such {name}")
    return value


def bearer_token(request: web.Request, *, allow_query: bool = False) -> str | None:
    """The token the caller sent, None when there is none; ours are ASCII, others are refused."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    found: str | None = None
    if scheme.lower() == "bearer" and token.strip():
        found = token.strip()
    elif allow_query:
        # browsers cannot set headers on a WebSocket; the access log never prints queries
        found = request.query.get("token") or None
    if found is not None and not (found.isascii() and found.isprintable()):
        raise ApiError(
            401,
            "invalid_token",
            "the token is not valid",
            headers=CHALLENGE,
        )
    return found


def check_text(request: web.Request, text: str) -> str:
    """Message text: not blank, and no longer than the configured limit."""
    if not text.strip():
        raise Invalid("text must not be empty", code="empty_text")
    limit = request.app[CONNS].settings.max_message_chars
    if len(text) > limit:
        raise Invalid(
            f"text is longer than {limit} characters", code="text_too_long", details={"max": limit}
        )
    return text
