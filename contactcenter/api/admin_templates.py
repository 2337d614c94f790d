"""/v1/admin/templates: what care messages say, per purpose, channel and locale (admins write,
supervisors read), and a preview of one rendered for a contact.

Sources are Jinja templates with placeholders ({{ name }}, {{ salutation }}, {{ agent }},
{{ survey_link }}, {{ reply_digits }}, {{ company }}); what they may use, and the codes of what
is refused, are domain.templates' and services.templates'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

import asyncpg
from aiohttp import web
from pydantic import Field, StrictInt, model_validator

from contactcenter.api.auth import require_agent
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Page, View, documented
from contactcenter.api.parsing import MAX_ID, Body, CleanStr, Patch, path_id, read_json
from contactcenter.api.serialize import jsonable
from contactcenter.domain.enums import Channel, Role
from contactcenter.domain.errors import Invalid
from contactcenter.domain.templates import Purpose, Rendered
from contactcenter.services import templates as service
from contactcenter.store import templates

READERS = (Role.SUPERVISOR, Role.ADMIN)
WRITERS = (Role.ADMIN,)
MAX_AGENT_CHARS = 200
MAX_LINK_CHARS = 2000

Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


class TemplatePatch(Patch):
    """A field left out keeps its value; subject and body_html take null (none)."""

    not_null = service.REQUIRED

    purpose: Purpose | None = None
    channel: Channel | None = None
    # normalised and checked by the service (invalid_locale)
    locale: CleanStr | None = None
    # e-mail only; one line (invalid_subject); a template itself (invalid_template)
    subject: CleanStr | None = None
    body_text: CleanStr | None = None
    # e-mail only; values are HTML-escaped when it is rendered
    body_html: CleanStr | None = None


class TemplateBody(TemplatePatch):
    purpose: Purpose
    channel: Channel
    locale: CleanStr
    body_text: CleanStr


class PreviewValues(Body):
    agent: Annotated[CleanStr, Field(max_length=MAX_AGENT_CHARS)] | None = None
    survey_link: Annotated[CleanStr, Field(max_length=MAX_LINK_CHARS)] | None = None


class PreviewBody(Body):
    # a stored template, or a draft (what an admin is editing, not saved yet): one of them
    template_id: Id | None = None
    template: TemplateBody | None = None
    contact_id: Id
    values: PreviewValues | None = None

    @model_validator(mode="after")
    def _one_template(self) -> Self:
        if (self.template_id is None) == (self.template is None):
            raise ValueError("send either template_id or template")
        return self


class TemplatesQuery(Body):
    """Documentation only: list_templates reads the query by hand. Every filter is optional."""

    purpose: Purpose | None = None
    channel: Channel | None = None
    locale: str | None = Field(None, description='a language tag ("en", "zh-CN"), any case')


class TemplateView(View):
    id: int
    purpose: Purpose
    channel: Channel
    locale: str
    # e-mail only
    subject: str | None
    body_text: str
    # e-mail only
    body_html: str | None
    created_at: datetime
    updated_at: datetime


class RenderedView(View):
    # e-mail only
    subject: str | None
    text: str
    # e-mail only, when the template has an HTML body
    html: str | None


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return dict(jsonable(dict(row)))


def _rendered_view(rendered: Rendered) -> dict[str, Any]:
    return {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}


def _query_choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in allowed:
        raise ApiError(
            422, "invalid_query", f"{name} must be one of {', '.join(allowed)}", {"field": name}
        )
    return value


def _query_locale(request: web.Request) -> str | None:
    value = request.query.get("locale")
    if value is None:
        return None
    try:
        return service.normalise_locale(value)
    except Invalid as error:
        raise ApiError(422, "invalid_query", error.message, {"field": "locale"}) from None


@documented(
    "List templates",
    access="readers",
    query=TemplatesQuery,
    responses={200: Page[TemplateView]},
)
async def list_templates(request: web.Request) -> web.Response:
    """Every template that matches the filters, by purpose, channel and locale (not
    paginated: next_cursor is null)."""
    await require_agent(request, roles=READERS)
    rows = await templates.list_all(
        request.app[CONNS].db,
        purpose=_query_choice(request, "purpose", tuple(Purpose)),
        channel=_query_choice(request, "channel", tuple(Channel)),
        locale=_query_locale(request),
    )
    return web.json_response({"items": [_view(r) for r in rows], "next_cursor": None})


@documented("Create a template", access="admin", body=TemplateBody, responses={201: TemplateView})
async def create_template(request: web.Request) -> web.Response:
    """A template for one purpose, channel and locale (at most one for each)."""
    by = await require_agent(request, roles=WRITERS)
    body = await read_json(request, TemplateBody)
    row = await service.create(request.app[CONNS], body.model_dump(exclude_unset=True), by=by)
    return web.json_response(_view(row), status=201)


@documented("A template", access="readers", responses={200: TemplateView})
async def get_template(request: web.Request) -> web.Response:
    """One template, with its sources."""
    await require_agent(request, roles=READERS)
    row = await service.get(request.app[CONNS], path_id(request))
    return web.json_response(_view(row))


@documented("Change a template", access="admin", body=TemplatePatch, responses={200: TemplateView})
async def update_template(request: web.Request) -> web.Response:
    """Change what is sent (a field left out keeps its value); the template is checked whole."""
    by = await require_agent(request, roles=WRITERS)
    template_id = path_id(request)
    body = await read_json(request, TemplatePatch)
    changes = body.model_dump(exclude_unset=True)
    row = await service.update(request.app[CONNS], template_id, changes, by=by)
    return web.json_response(_view(row))


@documented("Delete a template", access="admin", responses={204: None})
async def delete_template(request: web.Request) -> web.Response:
    """Delete a template; care falls back to another locale's, as for one never written."""
    by = await require_agent(request, roles=WRITERS)
    await service.delete(request.app[CONNS], path_id(request), by=by)
    return web.Response(status=204)


@documented(
    "Preview a template rendered for a contact",
    access="readers",
    body=PreviewBody,
    responses={200: RenderedView},
)
async def preview_template(request: web.Request) -> web.Response:
    """The template rendered for a contact; writes nothing (so supervisors may use it too)."""
    await require_agent(request, roles=READERS)
    body = await read_json(request, PreviewBody)
    values = body.values or PreviewValues()
    options = {"agent": values.agent, "survey_link": values.survey_link}
    conns = request.app[CONNS]
    if body.template is not None:
        draft = service.draft(body.template.model_dump(exclude_unset=True))
        rendered = await service.preview(conns, draft, body.contact_id, **options)
    else:
        assert body.template_id is not None  # one of them, checked by PreviewBody
        rendered = await service.preview_stored(conns, body.template_id, body.contact_id, **options)
    return web.json_response(_rendered_view(rendered))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/admin/templates", list_templates)
    app.router.add_post("/v1/admin/templates", create_template)
    # before /{id}, which would otherwise take "preview" for an id
    app.router.add_post("/v1/admin/templates/preview", preview_template)
    app.router.add_get("/v1/admin/templates/{id}", get_template)
    app.router.add_patch("/v1/admin/templates/{id}", update_template)
    app.router.add_delete("/v1/admin/templates/{id}", delete_template)
