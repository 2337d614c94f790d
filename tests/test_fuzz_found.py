"""What `python -m bench.fuzz_api` (schemathesis against /v1/openapi.json) found, kept as
tests. Each ran against the real app through the `client` fixture, which also holds every answer
to the document."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import call

Client = TestClient[Any, Any]
# RFC 3339's date-time: an offset is Z or whole hours and minutes
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
PARIS_OFFICE = {
    "name": "Paris office",
    "timezone": "Europe/Paris",
    "weekly": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
}


async def test_a_calendar_open_at_a_time_of_local_mean_time_answers_rfc_3339_times(
    client: Client, admin: dict[str, str]
) -> None:
    """Found by the supervisor's fuzzing: before 1891 Paris kept local mean time, UTC+00:09:21,
    and GET .../open answered local_time "...+00:09:21", which is not an RFC 3339 time (nor
    the document's date-time); an `at` sent with such an offset came back the same way. Both
    are now the same instant at an offset of whole minutes (or in UTC)."""
    status, created = await call(client, "POST", "/v1/admin/business-hours", admin, PARIS_OFFICE)
    assert status == 201, created
    asked = {
        "1850-01-01T10:00:00Z": datetime.fromisoformat("1850-01-01T10:00:00+00:00"),
        "1850-01-01T10:00:00+00:09:21": datetime.fromisoformat("1850-01-01T09:50:39+00:00"),
        "2026-11-24T10:00:00+01:00": datetime.fromisoformat("2026-11-24T09:00:00+00:00"),
        # rounded to -00:01 it would fall before year 1: answered in UTC
        "0001-01-01T00:00:00-00:00:40": datetime.fromisoformat("0001-01-01T00:00:40+00:00"),
    }
    for at, instant in asked.items():
        response = await client.get(
            f"/v1/admin/business-hours/{created['id']}/open",
            params={"at": at},
            headers=admin,
        )
        assert response.status == 200, await response.text()
        answer = await response.json()
        for field in ("at", "local_time"):
            assert RFC3339.match(answer[field]), (at, field, answer[field])
            assert datetime.fromisoformat(answer[field]) == instant, (at, field)


async def test_a_request_the_http_layer_cannot_read_gets_an_answer_the_document_names(
    client: Client,
) -> None:
    """Found by the admin's fuzzing (a query string of 8.8 KB on the visitor's WebSocket
    route): aiohttp refuses a request line over 8190 bytes itself, before the app and its error
    envelope, with a 400 in text/plain that no operation documented. Every operation now
    documents that 400 too."""
    response = await client.get("/v1/inbox", params={"view": "x" * 9000})
    assert response.status == 400
    assert response.content_type == "text/plain"

    document = await (await client.get("/v1/openapi.json")).json()
    shared = document["components"]["responses"]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            answer = operation["responses"]["400"]
            if "$ref" in answer:
                answer = shared[answer["$ref"].rsplit("/", 1)[1]]
            assert "text/plain" in answer["content"], (method, path)
