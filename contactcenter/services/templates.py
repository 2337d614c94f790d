"""Templates: checked whole before anything is written (one transaction each), previewed for a
contact, and chosen for a send.

A template is checked as a whole, with what was stored merged with the change, so no change
can leave a row that breaks a rule (a subject on an SMS template, a body that does not render).
The unique (purpose, channel, locale) key is the database's: two admins creating the same
template at once get one row and one 409, never two rows. Locales are kept normalised
("zh-cn" is stored as "zh-CN"), so the key sees a differently written tag as the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import asyncpg

from contactcenter.conns import Conns
from contactcenter.db import Executor
from contactcenter.domain import care
from contactcenter.domain.agents import Agent
from contactcenter.domain.audit import AuditAction
from contactcenter.domain.enums import Channel
from contactcenter.domain.errors import Conflict, Invalid, NotFound
from contactcenter.domain.sla_policies import is_one_line
from contactcenter.domain.templates import (
    MAX_SUBJECT_CHARS,
    Purpose,
    Rendered,
    RenderFailed,
    Template,
    check_source,
    pick,
    render,
)
from contactcenter.services import audit
from contactcenter.store import care_settings
from contactcenter.store import templates as store

logger = logging.getLogger(__name__)
ENTITY = "template"

FIELDS = ("purpose", "channel", "locale", "subject", "body_text", "body_html")
REQUIRED = ("purpose", "channel", "locale", "body_text")
# what only an e-mail has
EMAIL_ONLY = ("subject", "body_html")
# what a preview puts where the real send puts the customer's own signed link
SAMPLE_SURVEY_LINK = "https://example.invalid/survey/preview"

# a language (2-3 letters), then optionally a script (4 letters) and a region (2 letters or 3
# digits): "en", "zh-CN", "zh-Hant-TW", "es-419"; "_" is read as "-"
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|[0-9]{3}))?\Z")


def normalise_locale(raw: str, field: str = "locale") -> str:
    """A language tag written one way: language lower case, script title case, region upper
    case ("ZH_cn" -> "zh-CN"); Invalid(invalid_locale) when it is not one."""
    match = _LOCALE.match(raw.strip())
    if match is None:
        raise Invalid(
            f"{field} is a language tag such as en or zh-CN",
            code="invalid_locale",
            details={"field": field},
        )
    language, script, region = match.groups()
    parts = [language.lower(), script.title() if script else "", region.upper() if region else ""]
    return "-".join(part for part in parts if part)


def _choice(value: object, allowed: tuple[str, ...], field: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise Invalid(
            f"{field} is one of {', '.join(allowed)}",
            code="validation_error",
            details={"field": field},
        )
    return value


def _subject(subject: str) -> str:
    text = subject.strip()
    if not text or len(text) > MAX_SUBJECT_CHARS or not is_one_line(text):
        raise Invalid(
            f"subject is one line of 1 to {MAX_SUBJECT_CHARS} characters",
            code="invalid_subject",
            details={"field": "subject", "max": MAX_SUBJECT_CHARS},
        )
    return check_source(text, "subject")


def _body(source: str, field: str) -> str:
    if not source.strip():
        raise Invalid(
            f"{field} must not be blank",
            code="invalid_template",
            details={"field": field, "line": None},
        )
    return check_source(source, field)


def check(template: Template) -> Template:
    """The template with its locale normalised, or Invalid with the code of what is wrong:
    validation_error (purpose, channel), invalid_locale, email_only (a subject or HTML body
    on SMS or web), invalid_subject, invalid_template (with the field and line)."""
    purpose = Purpose(_choice(template.purpose, tuple(Purpose), "purpose"))
    channel = _choice(template.channel, tuple(Channel), "channel")
    locale = normalise_locale(template.locale)
    if channel != Channel.EMAIL:
        for field in EMAIL_ONLY:
            if getattr(template, field) is not None:
                raise Invalid(
                    f"{field} is for e-mail templates only (send null on {channel})",
                    code="email_only",
                    details={"field": field},
                )
    return replace(
        template,
        purpose=purpose,
        channel=channel,
        locale=locale,
        subject=None if template.subject is None else _subject(template.subject),
        body_text=_body(template.body_text, "body_text"),
        body_html=None if template.body_html is None else _body(template.body_html, "body_html"),
    )


def draft(values: Mapping[str, Any]) -> Template:
    """A new template from what an admin sent (FIELDS), checked; id 0 until inserted."""
    for name in REQUIRED:
        if values.get(name) is None:
            raise Invalid(f"{name} is required", details={"field": name})
    fields = {name: values[name] for name in FIELDS if name in values}
    return check(Template(**fields))


def _not_found() -> NotFound:
    return NotFound("no such template", code="template_not_found")


def _exists(template: Template) -> Conflict:
    return Conflict(
        f"a {template.purpose} template for {template.channel} in {template.locale} exists:"
        " change that one",
        code="template_exists",
        details={
            "purpose": str(template.purpose),
            "channel": template.channel,
            "locale": template.locale,
        },
    )


async def create(
    conns: Conns, values: Mapping[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    template = draft(values)
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            row = await store.insert(conn, template)
            await audit.record(conn, by, AuditAction.CREATE, ENTITY, row["id"], after=row)
    except asyncpg.UniqueViolationError:
        raise _exists(template) from None
    logger.info("template created", extra={"template_id": row["id"]})
    return row


async def update(
    conns: Conns, template_id: int, changes: Mapping[str, Any], *, by: Agent | None = None
) -> asyncpg.Record:
    """The template with the change (a field left out keeps its value; subject and body_html
    set to null are removed), checked whole."""
    template: Template | None = None
    try:
        async with conns.db.acquire() as conn, conn.transaction():
            stored = await store.get_for_update(conn, template_id)
            if stored is None:
                raise _not_found()
            given = {name: changes[name] for name in FIELDS if name in changes}
            template = check(replace(store.template_from_row(stored), **given))
            row = await store.update(conn, template)
            assert row is not None  # locked above
            await audit.record(
                conn, by, AuditAction.UPDATE, ENTITY, template_id, before=stored, after=row
            )
    except asyncpg.UniqueViolationError:
        assert template is not None
        raise _exists(template) from None
    logger.info("template changed", extra={"template_id": template_id})
    return row


async def delete(conns: Conns, template_id: int, *, by: Agent | None = None) -> None:
    async with conns.db.acquire() as conn, conn.transaction():
        stored = await store.get_for_update(conn, template_id)
        if stored is None or not await store.delete(conn, template_id):
            raise _not_found()
        await audit.record(conn, by, AuditAction.DELETE, ENTITY, template_id, before=stored)
    logger.info("template deleted", extra={"template_id": template_id})


async def get(conns: Conns, template_id: int) -> asyncpg.Record:
    row = await store.get(conns.db, template_id)
    if row is None:
        raise _not_found()
    return row


async def load_for(
    conn: Executor, purpose: Purpose, channel: str, locale: str, default_locale: str
) -> Template | None:
    """The template a message for `purpose` on `channel` is rendered from, for a customer in
    `locale`: theirs, else one in their language ("zh-TW" finds "zh-CN"), else the default
    locale's; None when there is none."""
    candidates = await store.for_purpose_and_channel(conn, str(purpose), str(channel))
    return pick(candidates, purpose, str(channel), locale, default_locale)


async def preview(
    conns: Conns,
    template: Template,
    contact_id: int,
    *,
    agent: str | None = None,
    survey_link: str | None = None,
) -> Rendered:
    """The template rendered as the care sender would for this contact: their name, and the
    salutation of their locale (the care settings' default when they have none). A survey
    link stands in for the signed one a real follow-up carries."""
    contact = await store.contact_name_and_locale(conns.db, contact_id)
    if contact is None:
        raise NotFound("no such contact", code="contact_not_found")
    locale = contact["locale"] or (await care_settings.load(conns.db)).default_locale
    values = care.placeholder_values(
        name=contact["name"],
        locale=locale,
        agent=agent,
        survey_link=survey_link or SAMPLE_SURVEY_LINK,
    )
    try:
        return render(template, values)
    except RenderFailed as error:
        raise Invalid(
            f"the template does not render: {error}", code="render_failed", details={}
        ) from None


async def preview_stored(
    conns: Conns,
    template_id: int,
    contact_id: int,
    *,
    agent: str | None = None,
    survey_link: str | None = None,
) -> Rendered:
    row = await get(conns, template_id)
    return await preview(
        conns, store.template_from_row(row), contact_id, agent=agent, survey_link=survey_link
    )
