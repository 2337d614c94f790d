"""The short form of bench/fuzz_api.py: schemathesis against GET /v1/openapi.json as every
identity (agent, supervisor, admin, visitor, Twilio and the MTA, nobody), with a fixed seed and
one example per operation, identity and mode (valid, invalid): no 5xx, and every answer's
status, media type, headers and body fit the document."""

from __future__ import annotations

import json
from pathlib import Path

from bench.fuzz_api import IDENTITIES, Options, fuzz
from contactcenter.api import openapi
from contactcenter.api.app import create_app
from contactcenter.settings import Settings

EXAMPLES = 1
SEED = 20261124
REACHED_ONLY_WITH_CREDENTIALS = [
    ("agent", "GET /v1/inbox"),
    ("supervisor", "GET /v1/reports/volume"),
    ("admin", "GET /v1/admin/audit"),
    ("visitor", "GET /v1/web/conversations/{id}/messages"),
]


async def test_the_api_answers_every_identity_as_its_document_says(
    server_urls: tuple[str, str], settings: Settings, tmp_path: Path
) -> None:
    admin_url, redis_url = server_urls
    document = openapi.build(create_app(settings))
    operations = sum(len(methods) for methods in document["paths"].values())
    report = await fuzz(admin_url, redis_url, tmp_path, Options(examples=EXAMPLES, seed=SEED))

    identities = report["identities"]
    assert list(identities) == list(IDENTITIES)
    failures = {name: found["failures"] for name, found in identities.items() if found["failures"]}
    assert not failures, json.dumps(failures, indent=2)
    for name, found in identities.items():
        assert found["operations"] == operations, name
        # a valid and an invalid example of every operation were sent (only probes like
        # GET /healthz have no invalid form)
        assert found["examples"] >= operations * EXAMPLES * 2 - 5, name
    # the credentials were real: each identity got through where only it can, and still does
    for name, operation in REACHED_ONLY_WITH_CREDENTIALS:
        assert operation not in identities[name]["unreached"], (name, operation)
        assert operation in identities["none"]["unreached"], operation
    valid = report["credentials_valid_at_end"]
    assert valid == {name: True for name in IDENTITIES if name != "none"}, valid
