"""Issue 8, item 5: GET /v1/openapi.json, an OpenAPI 3.1 document of every endpoint.

The document is valid OpenAPI 3.1, names every route of the real app and no other, and says
for each who may call it exactly as the role matrix proves by calling it. That the server's
real responses fit it is checked on every request of every test that uses the `client`
fixture (tests/openapi_check.py): the role matrix alone calls each agent route with each role.
The last tests here show that the check finds a response or a request that does not fit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator

from contactcenter.api import openapi
from contactcenter.api.middleware import error_envelope
from contactcenter.api.openapi import View, documented
from contactcenter.api.parsing import Body, read_json
from tests.openapi_check import Document, OpenApiChecker
from tests.test_role_matrix import ADMIN, ANY, MATRIX, PUBLIC, READERS

Client = TestClient[Any, Any]

ROLES_OF = {
    ANY: ["agent", "supervisor", "admin"],
    READERS: ["supervisor", "admin"],
    ADMIN: ["admin"],
}


async def the_document(client: Client) -> dict[str, Any]:
    response = await client.get("/v1/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    document: dict[str, Any] = await response.json()
    return document


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


async def test_the_document_is_valid_openapi_3_1_and_needs_no_token(client: Client) -> None:
    document = await the_document(client)
    assert document["openapi"].startswith("3.1")
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


async def test_every_route_of_the_app_is_in_the_document_and_nothing_else(
    client: Client,
) -> None:
    document = await the_document(client)
    routes = {(method, path) for method, path, _ in openapi.documented_routes(client.app)}
    assert set(operations(document)) == routes
    ids = [operation["operationId"] for operation in operations(document).values()]
    assert len(ids) == len(set(ids))
    for (method, path), operation in operations(document).items():
        assert operation["summary"], (method, path)
        assert {"4XX", "503"} <= set(operation["responses"]), (method, path)


async def test_who_may_call_each_operation_is_what_the_role_matrix_proves(
    client: Client,
) -> None:
    by_route = operations(await the_document(client))
    assert {(row.method, row.path) for row in MATRIX} == set(by_route)
    for row in MATRIX:
        operation = by_route[(row.method, row.path)]
        if row.who == PUBLIC:
            assert "x-roles" not in operation, row
            assert {"agentToken": []} not in operation["security"], row
        else:
            assert operation["x-roles"] == ROLES_OF[row.who], row
            assert operation["security"] == [{"agentToken": []}], row


async def test_paths_name_their_parameters_and_ids_are_positive_integers(
    client: Client,
) -> None:
    document = await the_document(client)
    for (method, path), operation in operations(document).items():
        in_path = {p["name"]: p for p in operation.get("parameters", ()) if p["in"] == "path"}
        assert set(in_path) == {part[1:-1] for part in path.split("/") if part.startswith("{")}, (
            method,
            path,
        )
        if "id" in in_path:
            assert in_path["id"]["schema"]["type"] == "integer", (method, path)
            assert in_path["id"]["schema"]["minimum"] == 1


async def test_public_base_url_is_the_documents_server(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Any
) -> None:
    from contactcenter.api.app import create_app

    app = create_app(settings.replace(public_base_url="https://help.example.com"))
    document = await the_document(await aiohttp_client(app))
    assert document["servers"] == [{"url": "https://help.example.com"}]


# --- the check itself can fail ---------------------------------------------------------


class Thing(View):
    id: int
    name: str


class ThingBody(Body):
    name: str


class Paging(Body):
    """Documentation only: the query of the sample route."""

    limit: int | None = None


def sample_app(answer: dict[str, Any], status: int = 200) -> web.Application:
    @documented("A thing", access="public", body=ThingBody, query=Paging, responses={200: Thing})
    async def make_thing(request: web.Request) -> web.Response:
        await read_json(request, ThingBody)
        return web.json_response(answer, status=status)

    app = web.Application(middlewares=[error_envelope])
    app.router.add_post("/things", make_thing)
    return app


async def checked(
    aiohttp_client: Callable[..., Awaitable[Client]],
    answer: dict[str, Any],
    *,
    status: int = 200,
    body: Any = None,
    path: str = "/things",
) -> list[str]:
    app = sample_app(answer, status)
    checker = OpenApiChecker(Document(openapi.build(app)))
    app.middlewares.insert(0, checker.middleware)
    client = await aiohttp_client(app)
    await client.post(path, json={"name": "x"} if body is None else body)
    assert checker.checked == 1
    return checker.problems


async def test_the_check_passes_a_response_that_fits(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    assert await checked(aiohttp_client, {"id": 1, "name": "x"}, path="/things?limit=5") == []


async def test_the_check_finds_a_field_the_document_does_not_name(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    problems = await checked(aiohttp_client, {"id": 1, "name": "x", "secret": "s"})
    assert len(problems) == 1
    assert "secret" in problems[0]


async def test_the_check_finds_a_wrong_type_and_a_missing_field(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    problems = await checked(aiohttp_client, {"id": "1"})
    assert any("id" in p and "integer" in p for p in problems), problems
    assert any("'name' is a required property" in p for p in problems), problems


async def test_the_check_finds_an_undocumented_status(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    problems = await checked(aiohttp_client, {"id": 1, "name": "x"}, status=201)
    assert problems == ["POST /things -> 201: this status is not documented"]


async def test_the_check_finds_an_accepted_query_parameter_it_does_not_name(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    problems = await checked(aiohttp_client, {"id": 1, "name": "x"}, path="/things?page=2")
    assert problems == ["POST /things -> 200: accepted an undocumented query parameter 'page'"]


async def test_an_error_must_be_the_envelope(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    # the handler refuses {"nom": ...} with the envelope: that fits 4XX
    assert await checked(aiohttp_client, {}, body={"nom": "x"}) == []
    problems = await checked(aiohttp_client, {"oops": True}, status=400)
    assert any("'error' is a required property" in p for p in problems), problems
