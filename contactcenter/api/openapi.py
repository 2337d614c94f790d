"""GET /v1/openapi.json: one OpenAPI 3.1 document of every route.

The document is built from the app's own route table, so a route cannot be left out by
forgetting it here: each handler declares what it takes and answers with @documented, beside
the code that does it. Request bodies are the pydantic models the handler parses with;
responses are `View` models, which list every field (extra fields are refused), so a test
that checks real responses against the document finds a field the document does not name.

Every operation also answers 4XX with the error envelope of API.md and 503 (with
Retry-After) while PostgreSQL or Redis is away; a 400 may also be aiohttp's own plain-text
refusal of a request it could not read (a request line or a header over 8190 bytes).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Generic, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from contactcenter import __version__
from contactcenter.api.keys import CONNS
from contactcenter.api.parsing import MAX_ID, without_null

OPENAPI_VERSION = "3.1.0"
OPERATION_ATTRIBUTE = "openapi_operation"
REF_TEMPLATE = "#/components/schemas/{model}"

# who may call an operation, and how the caller proves it
Access = Literal["any", "readers", "admin", "public", "visitor", "twilio", "email_webhook"]
ROLES_BY_ACCESS: dict[str, list[str]] = {
    "any": ["agent", "supervisor", "admin"],
    "readers": ["supervisor", "admin"],
    "admin": ["admin"],
}
SECURITY_BY_ACCESS: dict[str, list[dict[str, list[str]]]] = {
    "any": [{"agentToken": []}],
    "readers": [{"agentToken": []}],
    "admin": [{"agentToken": []}],
    "visitor": [{"visitorToken": []}],
    "twilio": [{"twilioSignature": []}],
    "email_webhook": [{"emailWebhookSecret": []}],
    "public": [],
}
SECURITY_SCHEMES = {
    "agentToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An agent's token (contactcenter create-agent, or POST /v1/admin/agents).",
    },
    "visitorToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The visitor token POST /v1/web/conversations gave; it scopes one "
        "conversation (on the WebSocket it may be sent as ?token=).",
    },
    "twilioSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Twilio-Signature",
        "description": "Twilio's signature of the request, made with the account's auth token.",
    },
    "emailWebhookSecret": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Webhook-Secret",
        "description": "EMAIL_WEBHOOK_SECRET.",
    },
}


class View(BaseModel):
    """A response shape. Every field is listed: a field the server sends and the view does not
    name is an error wherever responses are checked against the document."""

    model_config = ConfigDict(extra="forbid")


def left_out(description: str | None = None) -> Any:
    """A field of a view that the server may leave out, but never sends as null: documented
    as not required, with its type alone (no null, no default)."""
    return Field(default=None, description=description, json_schema_extra=_no_default)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class ErrorDetail(View):
    code: str
    message: str
    details: dict[str, Any]


class Error(View):
    """The error envelope of API.md."""

    error: ErrorDetail


Item = TypeVar("Item")


class Page(View, Generic[Item]):
    """A list of API.md: the items, and the cursor of the next page (null on the last)."""

    items: list[Item]
    next_cursor: str | None


@dataclass(frozen=True)
class Media:
    """A body that is not one of our JSON models: its media type and, when known, a schema
    (a model or a JSON Schema) and a description."""

    content_type: str
    schema: type[BaseModel] | dict[str, Any] | None = None
    description: str = ""


# a response: a model (JSON), a Media, or None for no body (204, 101)
Answer = type[BaseModel] | Media | None


@dataclass(frozen=True)
class Operation:
    summary: str
    access: Access
    responses: Mapping[int | str, Answer]
    body: type[BaseModel] | Media | None = None
    query: type[BaseModel] | None = None
    tag: str | None = None
    description: str | None = None
    # path parameters other than {id} (which is an integer id): name -> JSON Schema
    path: Mapping[str, dict[str, Any]] = field(default_factory=dict)


Handler = TypeVar("Handler", bound=Callable[..., Any])


def documented(
    summary: str,
    *,
    access: Access,
    responses: Mapping[int | str, Answer],
    body: type[BaseModel] | Media | None = None,
    query: type[BaseModel] | None = None,
    tag: str | None = None,
    path: Mapping[str, dict[str, Any]] | None = None,
) -> Callable[[Handler], Handler]:
    """Declare what a handler takes and answers; the handler's docstring is the description."""

    def mark(handler: Handler) -> Handler:
        operation = Operation(
            summary=summary,
            access=access,
            responses=responses,
            body=body,
            query=query,
            tag=tag,
            description=handler.__doc__,
            path=path or {},
        )
        setattr(handler, OPERATION_ATTRIBUTE, operation)
        return handler

    return mark


def operation_of(handler: Callable[..., Any]) -> Operation | None:
    found = getattr(handler, OPERATION_ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


def documented_routes(app: web.Application) -> list[tuple[str, str, Callable[..., Any]]]:
    """(method, path template, handler) of every route a caller can name (HEAD is GET's)."""
    return [
        (route.method, route.resource.canonical, route.handler)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS") and route.resource is not None
    ]


_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def build(app: web.Application, *, server_url: str | None = None) -> dict[str, Any]:
    """The document of every documented route of `app` (a route without @documented is left
    out; tests/test_openapi.py fails on one)."""
    operations = [
        (method, path, operation_of(handler), handler.__name__)
        for method, path, handler in documented_routes(app)
    ]
    found = [(m, p, op, name) for m, p, op, name in operations if op is not None]
    schemas, ref_of = _schemas(op for _, _, op, _ in found if op is not None)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, operation, name in found:
        assert operation is not None
        paths.setdefault(path, {})[method.lower()] = _operation(
            operation, name, path, ref_of, schemas
        )
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "contactcenter",
            "version": __version__,
            "description": "The omnichannel contact center's API: the unified inbox for "
            "agents, configuration for admins, reports for supervisors, web chat and "
            "channel webhooks for customers. Errors are "
            '{"error": {"code", "message", "details"}}; times are RFC 3339 with offset.',
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": _shared_responses(),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def _models(operation: Operation) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    if isinstance(operation.body, type):
        found.append((operation.body, "validation"))
    elif isinstance(operation.body, Media) and isinstance(operation.body.schema, type):
        found.append((operation.body.schema, "validation"))
    if operation.query is not None:
        found.append((operation.query, "validation"))
    for answer in operation.responses.values():
        if isinstance(answer, type):
            found.append((answer, "serialization"))
        elif isinstance(answer, Media) and isinstance(answer.schema, type):
            found.append((answer.schema, "serialization"))
    return found


RefOf = dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]


def _schemas(operations: Iterable[Operation]) -> tuple[dict[str, Any], RefOf]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Error, "serialization"): None}
    for operation in operations:
        for pair in _models(operation):
            wanted[pair] = None
    ref_of, definitions = models_json_schema(list(wanted), ref_template=REF_TEMPLATE)
    refs: RefOf = {(model, mode): ref_of[(model, mode)] for model, mode in wanted}
    return dict(definitions.get("$defs", {})), refs


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    prefix = REF_TEMPLATE.format(model="")
    if isinstance(ref, str) and ref.startswith(prefix):
        resolved: dict[str, Any] = schemas[ref.removeprefix(prefix)]
        return resolved
    return schema


def _operation(
    operation: Operation, name: str, path: str, ref_of: RefOf, schemas: dict[str, Any]
) -> dict[str, Any]:
    parameters = [
        {
            "name": parameter,
            "in": "path",
            "required": True,
            "schema": operation.path.get(parameter, ID_SCHEMA if parameter == "id" else {}),
        }
        for parameter in _PATH_PARAMETER.findall(path)
    ]
    if operation.query is not None:
        query = _resolve(ref_of[(operation.query, "validation")], schemas)
        required = set(query.get("required", ()))
        for parameter, schema in query.get("properties", {}).items():
            entry: dict[str, Any] = {
                "name": parameter,
                "in": "query",
                "required": parameter in required,
                "schema": _not_null(schema),
            }
            if "description" in schema:
                entry["description"] = schema["description"]
            parameters.append(entry)
    result: dict[str, Any] = {
        "operationId": name,
        "summary": operation.summary,
        "tags": [operation.tag or _tag(path)],
        "security": SECURITY_BY_ACCESS[operation.access],
        "responses": _responses(operation, ref_of),
    }
    if operation.description:
        result["description"] = inspect.cleandoc(operation.description)
    if operation.access in ROLES_BY_ACCESS:
        result["x-roles"] = ROLES_BY_ACCESS[operation.access]
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": _content(operation.body, ref_of, "validation"),
        }
    return result


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema (a parameter is left out or has a value, never null); its
    description goes on the parameter."""
    return without_null({k: v for k, v in schema.items() if k not in ("description", "title")})


def _responses(operation: Operation, ref_of: RefOf) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in operation.responses.items():
        description = answer.description if isinstance(answer, Media) else ""
        entry: dict[str, Any] = {"description": description or _reason(status)}
        if answer is not None:
            entry["content"] = _content(answer, ref_of, "serialization")
        responses[str(status)] = entry
    declared = responses.get("400")
    if declared is None:
        responses["400"] = {"$ref": "#/components/responses/BadRequest"}
    else:  # a 400 of the operation's own (an HTML page): the HTTP layer's is plain text still
        declared.setdefault("content", {}).update(UNREADABLE_REQUEST)
    responses.setdefault("4XX", {"$ref": "#/components/responses/ClientError"})
    responses.setdefault("503", {"$ref": "#/components/responses/Unavailable"})
    return responses


# aiohttp answers a request it cannot read (a request line or a header over 8190 bytes, bytes
# that are not HTTP/1.x) itself, before the app and its error envelope: 400 in plain text
UNREADABLE_REQUEST = {"text/plain": {"schema": {"type": "string"}}}


def _shared_responses() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="Error")}}}
    return {
        "BadRequest": {
            "description": "The caller's mistake, in the error envelope; or, in plain text, a "
            "request the HTTP layer could not read (a request line or a header over 8190 "
            "bytes, or not HTTP at all), refused before the app saw it.",
            "content": {**error, **UNREADABLE_REQUEST},
        },
        "ClientError": {
            "description": "The caller's mistake, in the error envelope; the code says which.",
            "content": error,
        },
        "Unavailable": {
            "description": "PostgreSQL or Redis is briefly away and nothing was done; "
            "Retry-After says when to try again.",
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}},
            "content": error,
        },
    }


def _content(body: type[BaseModel] | Media, ref_of: RefOf, mode: JsonSchemaMode) -> dict[str, Any]:
    if isinstance(body, type):
        return {"application/json": {"schema": ref_of[(body, mode)]}}
    if isinstance(body.schema, type):
        schema: dict[str, Any] = ref_of[(body.schema, mode)]
    else:
        schema = body.schema or {}
    return {body.content_type: {"schema": schema}}


def _tag(path: str) -> str:
    parts = [p for p in path.split("/") if p and p != "v1" and not p.startswith("{")]
    if parts[:1] == ["admin"] and len(parts) > 1:
        return f"admin: {parts[1]}"
    return parts[0] if parts else "operations"


def _reason(status: int | str) -> str:
    try:
        return HTTPStatus(int(status)).phrase
    except ValueError:
        return str(status)


@dataclass
class _Cached:
    document: dict[str, Any] | None = None


DOCUMENT = web.AppKey("openapi_document", _Cached)


@documented(
    "This document",
    access="public",
    responses={200: Media("application/json", {"type": "object"}, "OpenAPI 3.1")},
    tag="operations",
)
async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of every route of this server."""
    cached = request.app[DOCUMENT]
    if cached.document is None:
        settings = request.app[CONNS].settings
        cached.document = build(request.app, server_url=settings.public_base_url)
    return web.json_response(cached.document)


def setup_routes(app: web.Application) -> None:
    app[DOCUMENT] = _Cached()
    app.router.add_get("/v1/openapi.json", get_openapi)
