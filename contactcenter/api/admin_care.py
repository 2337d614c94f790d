"""/v1/admin/care: how scheduled care behaves (birthday greetings, follow-up visits, recovery,
quiet hours, defaults for contacts who have no time zone or locale). Supervisors and admins
read; admins write.

PUT replaces the settings it names and keeps the rest; the result is checked whole (quiet
hours in order, the birthday hour inside the allowed hours) before it is written, with the
row locked from read to write so two PUTs cannot interleave. follow_up_days is replaced whole:
a tier left out of it gets no follow-up.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import time
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)

from contactcenter.api.auth import require_agent
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import View, documented
from contactcenter.api.parsing import CleanStr, Patch, read_json
from contactcenter.conns import Conns
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.care import MAX_FOLLOW_UP_DAYS, TIERS, CareSettings, check_timezone
from contactcenter.domain.enums import Role
from contactcenter.domain.errors import Invalid
from contactcenter.services import audit
from contactcenter.services.templates import normalise_locale
from contactcenter.store import care_settings

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
MAX_SURVEY_VALID_DAYS = 90
MAX_TIMEZONE_CHARS = 64
MAX_LOCALE_CHARS = 35

_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])\Z")
# what the document says a time of day is (JSON Schema's "time" format wants seconds and an
# offset, which these have not)
HH_MM_SCHEMA = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}


def _clock_time(value: object) -> time:
    match = _HH_MM.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be a time of day as HH:MM, 00:00 to 23:59")
    return time(int(match[1]), int(match[2]))


def _unique(tiers: list[int]) -> list[int]:
    if len(set(tiers)) != len(tiers):
        raise ValueError("each tier once")
    return tiers


def _tier_keys(days: dict[str, int]) -> dict[str, int]:
    allowed = {str(rank) for rank in TIERS}
    unknown = sorted(set(days) - allowed)
    if unknown:
        raise ValueError(
            f"keys are tier ranks {', '.join(sorted(allowed))}; not {unknown[0][:20]!r}"
        )
    return days


ClockTime = Annotated[time, BeforeValidator(_clock_time), WithJsonSchema(HH_MM_SCHEMA)]
Tier = Annotated[StrictInt, Field(ge=min(TIERS), le=max(TIERS))]
# 0: as soon as allowed after resolving (the next dispatch outside quiet hours)
Days = Annotated[StrictInt, Field(ge=0, le=MAX_FOLLOW_UP_DAYS)]
# by tier rank, as text ("1" .. "4"): the document names the keys _tier_keys allows
FollowUpDays = Annotated[
    dict[str, Days],
    AfterValidator(_tier_keys),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"enum": [str(rank) for rank in TIERS]},
            "additionalProperties": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_FOLLOW_UP_DAYS,
            },
        }
    ),
]


class CarePatch(Patch):
    """Every setting is optional (left out: kept) and none takes null."""

    not_null = (
        "birthday_enabled",
        "birthday_hour",
        "birthday_task_tiers",
        "follow_up_enabled",
        "follow_up_days",
        "recovery_threshold",
        "recovery_priority",
        "quiet_end",
        "quiet_start",
        "default_timezone",
        "default_locale",
        "survey_valid_days",
    )

    birthday_enabled: StrictBool | None = None
    birthday_hour: Annotated[StrictInt, Field(ge=0, le=23)] | None = None
    # tiers whose greeting becomes a task for the account manager
    birthday_task_tiers: Annotated[list[Tier], AfterValidator(_unique)] | None = None
    follow_up_enabled: StrictBool | None = None
    follow_up_days: FollowUpDays | None = None
    recovery_threshold: Annotated[StrictInt, Field(ge=0, le=5)] | None = None
    recovery_priority: Annotated[StrictInt, Field(ge=0, le=10)] | None = None
    quiet_end: ClockTime | None = None
    quiet_start: ClockTime | None = None
    # an IANA zone (invalid_timezone) and a language tag (invalid_locale), checked below
    default_timezone: Annotated[CleanStr, Field(max_length=MAX_TIMEZONE_CHARS)] | None = None
    default_locale: Annotated[CleanStr, Field(max_length=MAX_LOCALE_CHARS)] | None = None
    survey_valid_days: Annotated[StrictInt, Field(ge=1, le=MAX_SURVEY_VALID_DAYS)] | None = None


TierKey = Literal["1", "2", "3", "4"]
ClockText = Annotated[str, WithJsonSchema(HH_MM_SCHEMA)]


class CareView(View):
    birthday_enabled: bool
    # the local hour birthday greetings are sent at
    birthday_hour: int
    # tiers whose greeting becomes a task for the account manager
    birthday_task_tiers: list[int]
    follow_up_enabled: bool
    # days after resolving that a follow-up is sent, by tier rank; a tier left out gets none
    follow_up_days: dict[TierKey, int]
    recovery_threshold: int
    recovery_priority: int
    # messages may be sent from quiet_end until quiet_start, local time (HH:MM)
    quiet_end: ClockText
    quiet_start: ClockText
    default_timezone: str
    default_locale: str
    survey_valid_days: int


def _hh_mm(value: time) -> str:
    return value.strftime("%H:%M")


def _view(settings: CareSettings) -> dict[str, Any]:
    return {
        "birthday_enabled": settings.birthday_enabled,
        "birthday_hour": settings.birthday_hour,
        "birthday_task_tiers": sorted(settings.birthday_task_tiers),
        "follow_up_enabled": settings.follow_up_enabled,
        "follow_up_days": {str(k): v for k, v in sorted(settings.follow_up_days.items())},
        "recovery_threshold": settings.recovery_threshold,
        "recovery_priority": settings.recovery_priority,
        "quiet_end": _hh_mm(settings.quiet_end),
        "quiet_start": _hh_mm(settings.quiet_start),
        "default_timezone": settings.default_timezone,
        "default_locale": settings.default_locale,
        "survey_valid_days": settings.survey_valid_days,
    }


def check(settings: CareSettings) -> CareSettings:
    """The settings, or Invalid: invalid_quiet_hours (quiet_end not before quiet_start),
    birthday_hour_in_quiet_hours (a greeting hour outside [quiet_end, quiet_start): it would
    wait for the next morning, a day late)."""
    quiet = {"quiet_end": _hh_mm(settings.quiet_end), "quiet_start": _hh_mm(settings.quiet_start)}
    if settings.quiet_end >= settings.quiet_start:
        raise Invalid(
            "quiet_end (when messages may start) must come before quiet_start (when they stop)",
            code="invalid_quiet_hours",
            details={"field": "quiet_end", **quiet},
        )
    if not settings.quiet_end <= time(settings.birthday_hour) < settings.quiet_start:
        raise Invalid(
            f"birthday_hour {settings.birthday_hour} is in the quiet hours: choose an hour from"
            f" {quiet['quiet_end']} to before {quiet['quiet_start']}",
            code="birthday_hour_in_quiet_hours",
            details={"field": "birthday_hour", **quiet},
        )
    return settings


def apply_changes(stored: CareSettings, body: CarePatch) -> CareSettings:
    """The stored settings with what the admin sent, checked whole."""
    updates: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "birthday_task_tiers" in updates:
        updates["birthday_task_tiers"] = frozenset(updates["birthday_task_tiers"])
    if "follow_up_days" in updates:
        updates["follow_up_days"] = {int(k): v for k, v in updates["follow_up_days"].items()}
    if "default_timezone" in updates:
        updates["default_timezone"] = check_timezone(
            updates["default_timezone"].strip(), "default_timezone"
        )
    if "default_locale" in updates:
        updates["default_locale"] = normalise_locale(updates["default_locale"], "default_locale")
    return check(replace(stored, **updates))


async def _replace(conns: Conns, body: CarePatch, *, by: Agent | None = None) -> CareSettings:
    async with conns.db.acquire() as conn, conn.transaction():
        stored = await care_settings.load_for_update(conn)
        settings = apply_changes(stored, body)
        # the birthday scan converts in PostgreSQL: a zone it does not know would stop it
        if not await care_settings.zone_known(conn, settings.default_timezone):
            raise Invalid(
                "default_timezone is not a time zone the database knows",
                code="invalid_timezone",
                details={"field": "default_timezone"},
            )
        await care_settings.save(conn, settings)
        await audit.record(
            conn,
            by,
            AuditAction.UPDATE,
            "care_settings",
            None,
            before=_view(stored),
            after=_view(settings),
        )
    return settings


@documented("The care settings", access="readers", responses={200: CareView})
async def get_care(request: web.Request) -> web.Response:
    """Birthday greetings, follow-ups, recovery, quiet hours and the defaults for contacts."""
    await require_agent(request, roles=READERS)
    settings = await care_settings.load(request.app[CONNS].db)
    return web.json_response(_view(settings))


@documented("Change the care settings", access="admin", body=CarePatch, responses={200: CareView})
async def put_care(request: web.Request) -> web.Response:
    """Change the settings sent (the rest are kept); the result is checked whole."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, CarePatch)
    settings = await _replace(request.app[CONNS], body, by=by)
    return web.json_response(_view(settings))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/care", get_care)
    app.router.add_put("/v1/admin/care", put_care)
