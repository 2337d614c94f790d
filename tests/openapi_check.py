"""Checking real traffic against GET /v1/openapi.json.

`OpenApiChecker.middleware` sits outermost in the app every test's `client` talks to. For each
request to a documented route it checks the real response: its status is documented, its
media type is, and a JSON body matches the schema (views refuse fields they do not name). A
request the server accepted (2xx) must itself fit the document: its query parameters are
documented ones and its JSON body matches the request schema. What does not fit is collected
and fails the test (conftest's `client` fixture).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from contactcenter.api import openapi

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Document:
    """An OpenAPI document and the schema validators made from it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            rooted = {**schema, "components": self.document["components"]}
            self._validators[key] = Draft202012Validator(
                rooted, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        return self._validators[key]


# every test's app has the same routes: the product's document is built once
_PRODUCT: list[Document] = []


def product_document(app: web.Application) -> Document:
    if not _PRODUCT:
        _PRODUCT.append(Document(openapi.build(app)))
    return _PRODUCT[0]


class OpenApiChecker:
    def __init__(self, document: Document | None = None) -> None:
        self.problems: list[str] = []
        self.checked = 0
        self._given = document

    def _document(self, app: web.Application) -> Document:
        return self._given or product_document(app)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        operation = self._operation(request)
        if operation is not None and request.headers.get("Upgrade", "").lower() == "websocket":
            # checked before the handler runs: a socket's handler may end by cancellation
            if "101" not in operation["responses"]:
                where = f"{request.method} {request.match_info.route.resource.canonical}"  # type: ignore[union-attr]
                self.problems.append(f"{where}: a WebSocket is not documented")
            self.checked += 1
            return await handler(request)
        response = await handler(request)
        if operation is not None:
            where = f"{request.method} {request.match_info.route.resource.canonical}"  # type: ignore[union-attr]
            for problem in await self._check(request, operation, response):
                self.problems.append(f"{where} -> {response.status}: {problem}")
            self.checked += 1
        return response

    def _operation(self, request: web.Request) -> dict[str, Any] | None:
        route = request.match_info.route
        if route.resource is None or request.method in ("HEAD", "OPTIONS"):
            return None
        paths = self._document(request.app).document["paths"]
        found: dict[str, Any] | None = paths.get(route.resource.canonical, {}).get(
            request.method.lower()
        )
        return found

    async def _check(
        self,
        request: web.Request,
        operation: dict[str, Any],
        response: web.StreamResponse,
    ) -> list[str]:
        if isinstance(response, web.WebSocketResponse) or response.status == 101:
            return [] if "101" in operation["responses"] else ["a WebSocket is not documented"]
        document = self._document(request.app)
        problems = self._check_response(document, operation, response)
        if 200 <= response.status < 300:
            sent = None
            if request.content_type == "application/json" and request.body_exists:
                sent = await request.read()  # what the handler read, cached by aiohttp
            problems += self._check_request(document, request, operation, sent)
        return problems

    def _check_response(
        self, document: Document, operation: dict[str, Any], response: web.StreamResponse
    ) -> list[str]:
        documented = self._response(document, operation, response.status)
        if documented is None:
            return ["this status is not documented"]
        content = documented.get("content")
        body = response.body if isinstance(response, web.Response) else None
        if not content:
            return ["a body where the document has none"] if body else []
        media = content.get(response.content_type)
        if media is None:
            return [f"{response.content_type} is not documented (only {sorted(content)})"]
        if response.content_type != "application/json" or not isinstance(body, bytes):
            return []
        return _errors(document, media.get("schema", {}), json.loads(body), "response")

    def _check_request(
        self,
        document: Document,
        request: web.Request,
        operation: dict[str, Any],
        sent: bytes | None,
    ) -> list[str]:
        problems: list[str] = []
        names = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
        for name in request.query:
            if name not in names and name != "token":  # ?token= is the socket's bearer
                problems.append(f"accepted an undocumented query parameter {name!r}")
        if sent is not None:
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                problems.append("accepted a JSON body the document does not take")
            else:
                problems += _errors(document, body.get("schema", {}), json.loads(sent), "request")
        return problems

    def _response(
        self, document: Document, operation: dict[str, Any], status: int
    ) -> dict[str, Any] | None:
        responses = operation["responses"]
        for key in (str(status), f"{status // 100}XX", "default"):
            if key in responses:
                found: dict[str, Any] = responses[key]
                ref = found.get("$ref", "")
                if ref.startswith("#/components/responses/"):
                    shared = document.document["components"]["responses"]
                    found = shared[ref.rsplit("/", 1)[1]]
                return found
        return None


def _errors(document: Document, schema: dict[str, Any], value: Any, what: str) -> list[str]:
    return [
        f"{what} {'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message[:300]}"
        for error in document.validator(schema).iter_errors(value)
    ]


def checking(app: web.Application) -> OpenApiChecker:
    """Check every request `app` serves against the product's document; assert afterwards
    that `checker.problems` is empty."""
    checker = OpenApiChecker()
    app.middlewares.insert(0, checker.middleware)
    return checker
