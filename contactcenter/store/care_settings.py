"""care_settings: the one row saying how scheduled care behaves (domain.care.CareSettings).

The care crons and sender read it with load(); /v1/admin/care writes it with save() after
checking the whole of it (api/admin_care.py). follow_up_days is stored as JSON with the tier
ranks as text keys ({"1": 1, ...}) and read back with int keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from contactcenter.db import Connection, Executor
from contactcenter.domain.care import CareSettings

COLUMNS = """
birthday_enabled, birthday_hour, birthday_task_tiers, follow_up_enabled, follow_up_days,
recovery_threshold, recovery_priority, quiet_end, quiet_start, default_timezone,
default_locale, survey_valid_days
"""
LOAD = f"SELECT {COLUMNS} FROM care_settings"
# a change is merged into what is stored: the row stays locked until it is written back
LOAD_FOR_UPDATE = LOAD + " FOR UPDATE"
# an upsert, so a row deleted by hand comes back rather than the save doing nothing
SAVE = f"""
INSERT INTO care_settings (id, {COLUMNS}, updated_at)
VALUES (true, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
ON CONFLICT (id) DO UPDATE SET
    birthday_enabled = excluded.birthday_enabled, birthday_hour = excluded.birthday_hour,
    birthday_task_tiers = excluded.birthday_task_tiers,
    follow_up_enabled = excluded.follow_up_enabled, follow_up_days = excluded.follow_up_days,
    recovery_threshold = excluded.recovery_threshold,
    recovery_priority = excluded.recovery_priority, quiet_end = excluded.quiet_end,
    quiet_start = excluded.quiet_start, default_timezone = excluded.default_timezone,
    default_locale = excluded.default_locale, survey_valid_days = excluded.survey_valid_days,
    updated_at = excluded.updated_at
"""


def _follow_up_days(stored: Mapping[str, Any]) -> dict[int, int]:
    return {int(rank): int(days) for rank, days in stored.items()}


def settings_from_row(row: asyncpg.Record) -> CareSettings:
    return CareSettings(
        birthday_enabled=row["birthday_enabled"],
        birthday_hour=row["birthday_hour"],
        birthday_task_tiers=frozenset(row["birthday_task_tiers"]),
        follow_up_enabled=row["follow_up_enabled"],
        follow_up_days=_follow_up_days(row["follow_up_days"]),
        recovery_threshold=row["recovery_threshold"],
        recovery_priority=row["recovery_priority"],
        quiet_end=row["quiet_end"],
        quiet_start=row["quiet_start"],
        default_timezone=row["default_timezone"],
        default_locale=row["default_locale"],
        survey_valid_days=row["survey_valid_days"],
    )


async def load(conn: Executor) -> CareSettings:
    """The care settings (the defaults when the row is missing)."""
    row = await conn.fetchrow(LOAD)
    return CareSettings() if row is None else settings_from_row(row)


async def load_for_update(conn: Connection) -> CareSettings:
    """As load(), with the row locked until the caller's transaction ends."""
    row = await conn.fetchrow(LOAD_FOR_UPDATE)
    return CareSettings() if row is None else settings_from_row(row)


async def save(conn: Executor, settings: CareSettings) -> None:
    """Writes every setting (the caller has checked them: the table's CHECKs are the
    backstop)."""
    await conn.execute(
        SAVE,
        settings.birthday_enabled,
        settings.birthday_hour,
        sorted(settings.birthday_task_tiers),
        settings.follow_up_enabled,
        {str(rank): days for rank, days in sorted(settings.follow_up_days.items())},
        settings.recovery_threshold,
        settings.recovery_priority,
        settings.quiet_end,
        settings.quiet_start,
        settings.default_timezone,
        settings.default_locale,
        settings.survey_valid_days,
    )


ZONE_KNOWN = "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)"


async def zone_known(conn: Executor, name: str) -> bool:
    """Whether PostgreSQL knows the time zone (the birthday scan converts with it)."""
    return bool(await conn.fetchval(ZONE_KNOWN, name))
