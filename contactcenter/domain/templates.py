"""Message templates: what care (and auto-replies) say, per purpose, channel and locale, with
placeholders filled in Jinja's sandbox.

Admins write templates, so they are rendered in jinja2's SandboxedEnvironment: no attribute
of a Python object beyond plain values, no imports, no file access. The values are plain
strings (name, salutation, agent, survey_link, reply_digits ...). A placeholder without a
value renders as nothing, never an error: a missing name must not stop a birthday greeting. An
HTML body is rendered with every value escaped. A template that does not parse is refused when
it is saved (Invalid, code invalid_template, with the line), so a send never meets one.

What a template may use is kept small on purpose: placeholders, text, `{% if %}` (with tests,
comparisons, `and`/`or`/`not`, `~` and `x if y else z`) and a few string filters (FILTERS).
No attributes, calls, loops, macros, assignments, includes or arithmetic: so a template cannot
reach a Python object, cannot take unbounded time or memory (a loop in a loop, "x" * 10**9),
and cannot print a value unescaped into HTML (`|safe`). A name that is not a placeholder is
refused too: a typo would otherwise render as nothing in every message.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from jinja2 import TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment

from contactcenter.domain.errors import Invalid

MAX_TEMPLATE_CHARS = 20_000
MAX_SUBJECT_CHARS = 300
# what a rendered text may grow to (a loop in a template cannot make a huge message)
MAX_RENDERED_CHARS = 50_000
PLACEHOLDERS = ("name", "salutation", "agent", "survey_link", "reply_digits", "company")
LOCALES = ("en", "zh-CN")
# string filters that cannot grow a text much or bypass HTML escaping (no safe, center, indent,
# replace, format ...)
FILTERS = frozenset(
    {
        "capitalize",
        "count",
        "d",
        "default",
        "e",
        "escape",
        "first",
        "last",
        "length",
        "lower",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "wordcount",
    }
)
# the syntax a template is made of; anything else is refused at save (see the docstring)
_ALLOWED_NODES = frozenset(
    {
        nodes.Template,
        nodes.Output,
        nodes.TemplateData,
        nodes.Name,
        nodes.Const,
        nodes.Tuple,
        nodes.List,
        nodes.If,
        nodes.CondExpr,
        nodes.And,
        nodes.Or,
        nodes.Not,
        nodes.Compare,
        nodes.Operand,
        nodes.Test,
        nodes.Filter,
        nodes.Keyword,
        nodes.Concat,
    }
)
# what can go wrong rendering a template that parsed (a comparison of a text with a number, a
# filter given a bad argument ...): reported, never raised as something else
_RENDER_ERRORS = (
    TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    RecursionError,
)


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


def _refused(field: str, message: str, line: int | None) -> Invalid:
    return Invalid(
        f"{field} is not a template we can render: {message}",
        code="invalid_template",
        details={"field": field, "line": line},
    )


_TAGS = {
    "For": "a loop ({% for %})",
    "Macro": "{% macro %}",
    "CallBlock": "{% call %}",
    "Assign": "{% set %}",
    "AssignBlock": "{% set %}",
    "Scope": "{% with %} and {% autoescape %}",
    "ScopedEvalContextModifier": "{% autoescape %}",
    "FilterBlock": "{% filter %}",
    "Include": "{% include %}",
    "Import": "{% import %}",
    "FromImport": "{% from ... import %}",
    "Extends": "{% extends %}",
    "Block": "{% block %}",
}


def _what(node: nodes.Node) -> str:
    """The part of a template that is not allowed, in an admin's words."""
    if isinstance(node, nodes.Name):
        return f"{{{{ {node.name} }}}} is not a placeholder ({', '.join(PLACEHOLDERS)})"
    if isinstance(node, nodes.Filter):
        return f"the filter {node.name} is not allowed (allowed: {', '.join(sorted(FILTERS))})"
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        return "placeholders are plain values: attributes and items (a.b, a[0]) are not allowed"
    if isinstance(node, nodes.Call):
        return "calling a function is not allowed"
    kind = type(node).__name__
    what = _TAGS.get(kind, f"{kind} (arithmetic, a dict, a slice ...)")
    return (
        f"{what} is not allowed: templates use placeholders, {{% if %}}, ~ and the filters"
        f" {', '.join(sorted(FILTERS))}"
    )


def _line(node: nodes.Node) -> int | None:
    """Its line, or its first child's (a few nodes Jinja adds carry none)."""
    return next((n.lineno for n in (node, *node.find_all(nodes.Node)) if n.lineno), None)


def _check_syntax(tree: nodes.Template, field: str) -> None:
    for node in tree.find_all(nodes.Node):
        allowed = type(node) in _ALLOWED_NODES
        if isinstance(node, nodes.Name):
            allowed = node.ctx == "load" and node.name in PLACEHOLDERS
        elif isinstance(node, nodes.Filter):
            allowed = node.name in FILTERS
        if not allowed:
            raise _refused(field, _what(node), _line(node))


def _template_line(error: BaseException) -> int | None:
    """The template's line an error was raised at (Jinja rewrites tracebacks to point there)."""
    if isinstance(error, TemplateSyntaxError):
        return error.lineno
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else None


def check_source(source: str, field: str) -> str:
    """The template source, or Invalid(invalid_template) saying where it does not parse, what
    it uses that is not allowed, or where it fails when rendered."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise Invalid(
            f"{field} is at most {MAX_TEMPLATE_CHARS} characters",
            code="invalid_template",
            details={"field": field, "line": None},
        )
    try:
        tree = _CHECK.parse(source)
    except TemplateSyntaxError as error:
        raise _refused(field, error.message or str(error), error.lineno) from None
    except RecursionError:
        raise _refused(field, "it is nested too deeply", None) from None
    _check_syntax(tree, field)
    try:
        compiled = _CHECK.from_string(tree)
        # tried with every placeholder and with none, so a send never meets an error
        compiled.render(**SAMPLE)
        compiled.render()
    except (SyntaxError, *_RENDER_ERRORS) as error:
        message = error.message if isinstance(error, TemplateError) else None
        reason = "it is nested too deeply" if isinstance(error, SyntaxError) else str(error)
        raise _refused(field, message or reason, _template_line(error)) from None
    return source


class RenderFailed(Exception):
    """A stored template that fails when rendered (checked on save, so only one stored before
    a check existed, or one that fails on a value only a real customer has)."""


def _render(environment: SandboxedEnvironment, source: str, values: Mapping[str, str]) -> str:
    try:
        text = environment.from_string(source).render(**values)
    except (SyntaxError, *_RENDER_ERRORS) as error:
        raise RenderFailed(str(error)) from None
    return text[:MAX_RENDERED_CHARS]


def render(template: Template, values: Mapping[str, str]) -> Rendered:
    """The template filled with `values` (missing ones render as nothing); RenderFailed when
    it cannot be."""
    subject = None
    if template.subject is not None:
        subject = " ".join(_render(_TEXT, template.subject, values).split())[:MAX_SUBJECT_CHARS]
    html = None if template.body_html is None else _render(_HTML, template.body_html, values)
    return Rendered(subject=subject, text=render_text(template.body_text, values), html=html)


def render_text(source: str, values: Mapping[str, str]) -> str:
    """A plain-text source (a template's body, a canned response) filled with `values`;
    RenderFailed when it cannot be."""
    return _render(_TEXT, source, values).strip()


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
