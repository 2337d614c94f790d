"""Message templates: what care (and auto-replies) say, per purpose, channel and locale, with
placeholders filled in Jinja's sandbox.

Admins write templates, so they are rendered in jinja2's SandboxedEnvironment: no attribute
of a Python object beyond plain values, no imports, no file access. The values are plain
strings (name, salutation, agent, survey_link, reply_digits ...). A placeholder without a
value renders as nothing, never an error: a missing name must not stop a birthday greeting. An
HTML body is rendered with every value escaped. A template that does not parse is refused when
it is saved (Invalid, code invalid_template, with the line), so a send never meets one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from contactcenter.domain.errors import Invalid

MAX_TEMPLATE_CHARS = 20_000
MAX_SUBJECT_CHARS = 300
# what a rendered text may grow to (a loop in a template cannot make a huge message)
MAX_RENDERED_CHARS = 50_000
PLACEHOLDERS = ("name", "salutation", "agent", "survey_link", "reply_digits", "company")
LOCALES = ("en", "zh-CN")


class Purpose(StrEnum):
    BIRTHDAY = "birthday"
    BIRTHDAY_TASK = "birthday_task"
    FOLLOW_UP = "follow_up"
    RECOVERY = "recovery"
    AUTO_REPLY = "auto_reply"
    HELP = "help"


@dataclass(frozen=True)
class Template:
    purpose: Purpose
    channel: str
    locale: str
    body_text: str
    subject: str | None = None
    body_html: str | None = None
    id: int = 0


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str
    html: str | None


class _Blank(Undefined):
    """A placeholder with no value renders as nothing (and tests as false)."""

    def __str__(self) -> str:
        return ""


def _environment(*, html: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=_Blank, autoescape=html, keep_trailing_newline=True, auto_reload=False
    )


_TEXT = _environment(html=False)
_HTML = _environment(html=True)
_CHECK = SandboxedEnvironment(undefined=_Blank)
SAMPLE = {name: f"<{name}>" for name in PLACEHOLDERS}


def check_source(source: str, field: str) -> str:
    """The template source, or Invalid(invalid_template) saying where it does not parse."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise Invalid(
            f"{field} is at most {MAX_TEMPLATE_CHARS} characters",
            code="invalid_template",
            details={"field": field},
        )
    try:
        # parsed, and tried once with every placeholder: what the sandbox refuses (an
        # attribute of a Python object) is refused now, not at a customer's birthday
        _CHECK.from_string(source).render(**SAMPLE)
    except TemplateError as error:
        line = getattr(error, "lineno", None)
        raise Invalid(
            f"{field} is not a template we can render: {error.message or error}",
            code="invalid_template",
            details={"field": field, "line": line},
        ) from None
    return source


class RenderFailed(Exception):
    """A stored template that fails when rendered (checked on save, so only one stored before
    a check existed, or one that fails on a value only a real customer has)."""


def _render(environment: SandboxedEnvironment, source: str, values: Mapping[str, str]) -> str:
    try:
        text = environment.from_string(source).render(**values)
    except TemplateError as error:
        raise RenderFailed(str(error)) from None
    return text[:MAX_RENDERED_CHARS]


def render(template: Template, values: Mapping[str, str]) -> Rendered:
    """The template filled with `values` (missing ones render as nothing); RenderFailed when
    it cannot be."""
    subject = None
    if template.subject is not None:
        subject = " ".join(_render(_TEXT, template.subject, values).split())[:MAX_SUBJECT_CHARS]
    html = None if template.body_html is None else _render(_HTML, template.body_html, values)
    text = _render(_TEXT, template.body_text, values).strip()
    return Rendered(subject=subject, text=text, html=html)


def _language(locale: str) -> str:
    return locale.split("-")[0].lower()


def pick(
    templates: list[Template], purpose: Purpose, channel: str, locale: str, default_locale: str
) -> Template | None:
    """The template for the purpose on the channel in the customer's locale; else one in the
    same language ("zh-TW" finds "zh-CN"); else one in the default locale; else None."""
    mine = [t for t in templates if t.purpose == purpose and t.channel == channel]
    for found in (
        [t for t in mine if t.locale.lower() == locale.lower()],
        [t for t in mine if _language(t.locale) == _language(locale)],
        [t for t in mine if t.locale.lower() == default_locale.lower()],
    ):
        if found:
            return found[0]
    return None
