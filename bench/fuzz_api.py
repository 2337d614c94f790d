"""Fuzzing the API against its own OpenAPI document, with every role's token and with none.

schemathesis reads GET /v1/openapi.json from the real web process (`python -m contactcenter
serve`, on a free port of 127.0.0.1, against a freshly migrated database of its own) and, for
every operation of the document and every identity below, Hypothesis generates `--examples`
requests that fit the document (positive) and as many that do not (negative: wrong types,
missing fields, values out of range). Every answer is held to the document by these
schemathesis checks:

- not_a_server_error: no 5xx, ever (not even 503: nothing is down during the run);
- status_code_conformance: the status is one the operation documents;
- content_type_conformance: so is the media type;
- response_schema_conformance: a JSON body matches the documented schema (the views refuse
  fields they do not name, so an undocumented field fails too);
- response_headers_conformance: the documented headers are there (Retry-After on a 503).

The identities:

- agent, supervisor, admin: an agent of that role, made as `contactcenter create-agent` makes
  one, sending its token as Bearer;
- visitor: the visitor token of a web chat it started, as Bearer;
- provider: Twilio and the MTA: both Twilio webhooks signed (X-Twilio-Signature over the exact
  URL and form sent, with the seeded number's AccountSid and To put in the form, so the
  signature is the one thing right and the rest is fuzzed) and the raw-mail webhook with
  EMAIL_WEBHOOK_SECRET; no Bearer token;
- none: no credentials at all.

Data: before fuzzing, one object of each kind the admin API makes (team, mailbox, SMS number,
calendar, SLA policy, routing rule, template, canned response), a quarantined mail, a spare
agent and two web chats (contacts and conversations, the first assigned to the agent) exist;
ids in 2xx answers are collected as the run goes, and in 3 examples of 4 a path's {id} is one
of the known ids of its kind (a generated integer almost never names a row). The identities'
own agents are kept out of the known ids, so the admin's fuzzing cannot deactivate them;
`credentials_valid_at_end` says whether each identity's credentials still worked at the end.
The admin goes last, and each identity's DELETE operations after its others. Negative examples
include schemathesis's own: a request with the Authorization header left out or garbled.

The document is read as served, with one rewrite: schemathesis 4.32 cannot check an answer
whose schema has a tuple (2020-12 prefixItems), so tuples become fixed-length arrays (see
without_tuples). Per identity the report also gives the statuses seen, how many operations
answered 2xx at least once ("reached") and which never did ("unreached": what the fuzzer could
not get past the validation to, e.g. a new calendar needs a real IANA time zone).

No worker runs: the jobs the API enqueues wait in Redis, which is emptied at the start and at
the end, so BENCH_REDIS_URL must name a Redis database of the run's own. The web process makes
no outbound connection (sends are the worker's), so nothing leaves 127.0.0.1.

    python -m bench.fuzz_api [--examples 10] [--seed 0] [--identities agent,admin]

BENCH_DATABASE_URL (an admin URL: the run creates and drops a database of its own) and
BENCH_REDIS_URL name servers to use; without them embedded ones are started and stopped. One
JSON object goes to stdout (per identity: operations, examples, and each distinct failure with
its check, method, path, status, how often, and the shortest curl that showed it); logs go to
stderr. The exit status is 0 whether or not failures were found.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from redis.asyncio import Redis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from twilio.request_validator import RequestValidator

from bench.ingest import machine, server_arguments, servers, stop, wait_ready
from contactcenter import db
from contactcenter.domain.enums import Role
from contactcenter.embedded import die_with_parent, free_port
from contactcenter.scratch import scratch_database
from contactcenter.services.agents import create_agent

logger = logging.getLogger("bench.fuzz_api")

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Any]

ROOT = Path(__file__).resolve().parents[1]
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
)
ROLES = ("agent", "supervisor", "admin")
# the admin last: what it changes (teams, rules, tiers) cannot hide anything from the others
IDENTITIES = ("none", "visitor", "provider", "agent", "supervisor", "admin")
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
REQUEST_TIMEOUT_SECONDS = 30.0
CURL_CHARS = 600
KNOWN_PER_KIND = 20
# the seeded SMS number (TWILIO_* of the web process): fake, but well formed
TWILIO_ACCOUNT = "AC" + "f0" * 16
TWILIO_NUMBER = "+15005550006"
TWILIO_PATHS = ("/v1/webhooks/twilio/sms", "/v1/webhooks/twilio/status")
EMAIL_WEBHOOK_PATH = "/v1/webhooks/email/raw"
# the path segment before {id} -> the kind of id it takes; answers of a path ending in the
# segment give ids of that kind; "inbox" lists conversations
KIND_OF_SEGMENT = {"inbox": "conversations"}
KIND_OF_FIELD = {
    "conversation_id": "conversations",
    "contact_id": "contacts",
    "team_id": "teams",
    "agent_id": "agents",
    "assignee_id": "agents",
}

# the raw-mail webhook takes message/rfc822 and the contact import text/csv: both are text
schemathesis.serializer.alias(["message/rfc822", "text/csv"], "text/plain")


# --- the report ----------------------------------------------------------------------------


@dataclass
class FoundFailure:
    check: str
    method: str
    path: str
    status: int
    title: str
    message: str
    reproduction: str
    count: int = 1
    server_error: str | None = None
    request_id: str | None = None

    def summary(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "check": self.check,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "title": self.title,
            "message": self.message,
            "count": self.count,
            "reproduction": self.reproduction,
        }
        if self.server_error:
            found["server_error"] = self.server_error
        return found


@dataclass
class IdentityReport:
    operations: int = 0
    examples: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    # operations that answered 1xx or 2xx at least once
    reached: set[str] = field(default_factory=set)
    unreached: list[str] = field(default_factory=list)
    failures: dict[tuple[str, str, str, int, str], FoundFailure] = field(default_factory=dict)
    # operations for which a mode could generate nothing (no negative form of GET /healthz)
    unsatisfiable: list[str] = field(default_factory=list)

    def add(self, failure: FoundFailure) -> None:
        key = (failure.check, failure.method, failure.path, failure.status, failure.title)
        found = self.failures.get(key)
        if found is None:
            self.failures[key] = failure
            return
        found.count += 1
        if len(failure.reproduction) < len(found.reproduction):
            found.reproduction = failure.reproduction
            found.request_id = failure.request_id

    def summary(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "examples": self.examples,
            "statuses": dict(sorted(self.statuses.items())),
            "reached": len(self.reached),
            "unreached": self.unreached,
            "failures": [f.summary() for f in self.failures.values()],
            "unsatisfiable": self.unsatisfiable,
        }


# --- who calls -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """What exists before fuzzing: the identities' credentials and ids of every kind."""

    tokens: Mapping[str, str]  # identity -> Bearer token
    agent_ids: frozenset[int]  # the identities' own agents, never handed to the fuzzer
    visitor_conversation: int
    known: Mapping[str, list[int]]


class TwilioSigner(requests.auth.AuthBase):
    """Signs a Twilio webhook request as Twilio would, over the exact URL and form sent."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or ""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        # as aiohttp reads it (request.post()): later duplicates win
        form = dict(parse_qsl(text.rstrip(), keep_blank_values=True))
        request.headers["X-Twilio-Signature"] = self.validator.compute_signature(
            str(request.url), form
        )
        return request


@dataclass
class Known:
    """Ids seen so far, by kind; thread-safe enough for one fuzzing thread."""

    by_kind: dict[str, list[int]]
    protected_agents: frozenset[int]

    def add(self, kind: str, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            return
        if kind == "agents" and value in self.protected_agents:
            return
        ids = self.by_kind.setdefault(kind, [])
        if value not in ids:
            ids.append(value)
            del ids[:-KNOWN_PER_KIND]

    def harvest(self, path: str, body: Any) -> None:
        """The ids in a 2xx JSON answer of `path` (a template): its own and the named ones."""
        segments = [s for s in path.split("/") if s]
        kind = None
        if segments and not segments[-1].startswith("{"):
            kind = KIND_OF_SEGMENT.get(segments[-1], segments[-1])
        records = [body] if isinstance(body, dict) else []
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            records += [item for item in body["items"] if isinstance(item, dict)]
        for record in records:
            if kind is not None and "id" in record and not path.endswith("/merge"):
                self.add(kind, record["id"])
            for name, value in record.items():
                if name in KIND_OF_FIELD:
                    self.add(KIND_OF_FIELD[name], value)
                elif name == "contact" and isinstance(value, dict):
                    self.add("contacts", value.get("id"))


def kind_of_id(path: str) -> str | None:
    """The kind of id `{id}` names in `path` (a template)."""
    segments = [s for s in path.split("/") if s]
    if "{id}" not in segments:
        return None
    index = segments.index("{id}")
    return segments[index - 1] if index > 0 else None


# --- fuzzing -------------------------------------------------------------------------------


def operation_seed(seed: int, identity: str, label: str, mode: GenerationMode) -> int:
    return zlib.crc32(f"{seed}|{identity}|{label}|{mode.value}".encode())


def ordered(operations: Iterable[Operation]) -> list[Operation]:
    """DELETE operations last, otherwise in the document's order."""
    return sorted(operations, key=lambda op: op.method.upper() == "DELETE")


class Fuzzer:
    def __init__(
        self,
        schema: schemathesis.BaseSchema,
        base_url: str,
        seeded: Seeded,
        *,
        examples: int,
        seed: int,
        webhook_secret: str,
        twilio_token: str,
    ) -> None:
        self.schema = schema
        self.base_url = base_url
        self.seeded = seeded
        self.examples = examples
        self.seed = seed
        self.webhook_secret = webhook_secret
        self.signer = TwilioSigner(twilio_token)
        self.known = Known(
            {k: list(v) for k, v in seeded.known.items()}, protected_agents=seeded.agent_ids
        )
        self.stopped = threading.Event()

    def operations(self) -> list[Operation]:
        found = []
        for result in self.schema.get_all_operations():
            if isinstance(result, Err):  # an operation schemathesis cannot read: say which
                raise result.err()
            found.append(result.ok())
        return ordered(found)

    def run(self, identity: str) -> IdentityReport:
        report = IdentityReport()
        with requests.Session() as session:
            for operation in self.operations():
                if self.stopped.is_set():
                    break
                report.operations += 1
                for mode in MODES:
                    self._explore(session, identity, operation, mode, report)
                if operation.label not in report.reached:
                    report.unreached.append(operation.label)
        return report

    def _explore(
        self,
        session: requests.Session,
        identity: str,
        operation: Operation,
        mode: GenerationMode,
        report: IdentityReport,
    ) -> None:
        strategy = operation.as_strategy(generation_mode=mode)

        # only generation: no shrinking or replay (the known ids change as the run goes, so
        # an example cannot be replayed; each failure keeps the shortest case that showed it)
        @hypothesis.settings(
            max_examples=self.examples,
            phases=[Phase.explicit, Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @hypothesis.seed(operation_seed(self.seed, identity, operation.label, mode))
        @hypothesis.given(case=strategy, data=st.data())
        def explore(case: Case, data: st.DataObject) -> None:
            if self.stopped.is_set():
                return
            self._one(session, identity, case, data, report)

        try:
            explore()
        except Unsatisfiable:
            report.unsatisfiable.append(f"{operation.label} ({mode.value})")

    def _one(
        self,
        session: requests.Session,
        identity: str,
        case: Case,
        data: st.DataObject,
        report: IdentityReport,
    ) -> None:
        path = case.operation.path
        kind = kind_of_id(path)
        if kind is not None and data.draw(st.integers(0, 3), label="known id") > 0:
            choices = self._known_ids(identity, path, kind)
            if choices:
                case.path_parameters = {
                    **(case.path_parameters or {}),
                    "id": data.draw(st.sampled_from(choices), label="id"),
                }
        headers, auth = self._credentials(identity, path, case)
        headers["X-Request-ID"] = uuid.uuid4().hex
        report.examples += 1
        try:
            response = case.call(
                base_url=self.base_url,
                session=session,
                headers=headers,
                auth=auth,
                timeout=REQUEST_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as error:  # no answer at all: the worst failure
            report.add(self._no_answer(case, error, headers))
            return
        status = str(response.status_code)
        report.statuses[status] = report.statuses.get(status, 0) + 1
        if response.status_code < 300:
            report.reached.add(case.operation.label)
        if 200 <= response.status_code < 300:
            with contextlib.suppress(ValueError):
                self.known.harvest(path, response.json())
        for check in CHECKS:
            try:
                case.validate_response(response, checks=[check], headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    report.add(self._found(check.__name__, case, response, failure, headers))
            except Failure as failure:
                report.add(self._found(check.__name__, case, response, failure, headers))
            except Exception as error:  # the check itself broke: as loud as a failure
                broken = Failure(
                    operation=case.operation.label,
                    title=f"the check could not run: {type(error).__name__}",
                    message=str(error),
                )
                report.add(self._found(check.__name__, case, response, broken, headers))

    def _known_ids(self, identity: str, path: str, kind: str) -> list[int]:
        if identity == "visitor" and path.startswith("/v1/web/"):
            return [self.seeded.visitor_conversation]
        return list(self.known.by_kind.get(kind, ()))

    def _credentials(
        self, identity: str, path: str, case: Case
    ) -> tuple[dict[str, str], requests.auth.AuthBase | None]:
        headers: dict[str, str] = {}
        token = self.seeded.tokens.get(identity)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if identity != "provider":
            return headers, None
        if path == EMAIL_WEBHOOK_PATH:
            headers["X-Webhook-Secret"] = self.webhook_secret
        if path in TWILIO_PATHS:
            if isinstance(case.body, dict):
                # the account and number the signature is made for; the rest stays fuzzed
                case.body = {**case.body, "AccountSid": TWILIO_ACCOUNT}
                if path.endswith("/sms"):
                    case.body["To"] = TWILIO_NUMBER
            return headers, self.signer
        return headers, None

    def _found(
        self,
        check: str,
        case: Case,
        response: schemathesis.Response,
        failure: Failure,
        headers: dict[str, str],
    ) -> FoundFailure:
        curl = _short(case.as_curl_command(headers=headers, base_url=self.base_url))
        message = " ".join(failure.message.split())
        return FoundFailure(
            check=check,
            method=case.operation.method.upper(),
            path=case.operation.path,
            status=response.status_code,
            title=failure.title,
            message=message[:400],
            reproduction=curl,
            request_id=headers.get("X-Request-ID"),
        )

    def _no_answer(self, case: Case, error: Exception, headers: dict[str, str]) -> FoundFailure:
        return FoundFailure(
            check="an answer",
            method=case.operation.method.upper(),
            path=case.operation.path,
            status=0,
            title=type(error).__name__,
            message=str(error)[:400],
            reproduction=_short(case.as_curl_command(headers=headers, base_url=self.base_url)),
            request_id=headers.get("X-Request-ID"),
        )

    def credentials_work(self, identity: str) -> bool:
        """Whether the identity's credentials are (still) taken: an agent's token lists its
        inbox, the visitor's reads its chat, the provider's signature and secret get a well
        formed SMS and mail stored. No credentials: nothing to check (True)."""
        if identity == "provider":
            return self._provider_credentials_work()
        token = self.seeded.tokens.get(identity)
        if token is None:
            return True
        path = (
            f"/v1/web/conversations/{self.seeded.visitor_conversation}/messages"
            if identity == "visitor"
            else "/v1/inbox"
        )
        answer = requests.get(
            self.base_url + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        return answer.status_code == 200

    def _provider_credentials_work(self) -> bool:
        form = {
            "AccountSid": TWILIO_ACCOUNT,
            "MessageSid": "SM" + uuid.uuid4().hex,
            "From": "+14155550123",
            "To": TWILIO_NUMBER,
            "Body": "Is my parcel on its way?",
        }
        sms = requests.post(
            self.base_url + TWILIO_PATHS[0],
            data=form,
            auth=self.signer,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        mail = requests.post(
            self.base_url + EMAIL_WEBHOOK_PATH,
            data=(
                "From: customer@customers.example\r\nTo: fuzz@support.example\r\n"
                f"Message-ID: <{uuid.uuid4().hex}@customers.example>\r\n"
                "Subject: parcel\r\n\r\nWhere is it?\r\n"
            ).encode(),
            headers={"Content-Type": "message/rfc822", "X-Webhook-Secret": self.webhook_secret},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        return sms.status_code == 200 and mail.status_code == 202


def _short(curl: str) -> str:
    if len(curl) <= CURL_CHARS:
        return curl
    return curl[:CURL_CHARS] + f"... ({len(curl)} characters)"


def without_tuples(node: Any) -> Any:
    """The document with each tuple (2020-12 `prefixItems`) written as an array of fixed
    length. schemathesis 4.32 rewrites any tuple of a response schema into the draft-4 form
    (`items: [...]`) and then refuses its own rewrite as an invalid 3.1 schema, so no answer
    holding one could be checked (the kin of its issues #3842 and #4099). A tuple whose members
    share one schema (business hours' [start, end]) becomes the same constraint exactly; one of
    different members (an escalation's [from, to] team, null-able first) becomes an array of
    either, a little looser (tests/openapi_check.py checks the tuple itself)."""
    if isinstance(node, list):
        return [without_tuples(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: without_tuples(value) for key, value in node.items()}
    members = found.get("prefixItems")
    if isinstance(members, list) and members and "items" not in found:
        del found["prefixItems"]
        distinct = [m for i, m in enumerate(members) if m not in members[:i]]
        found["items"] = distinct[0] if len(distinct) == 1 else {"anyOf": distinct}
        found.setdefault("minItems", len(members))
        found.setdefault("maxItems", len(members))
    return found


def load_document(base_url: str, seed: int) -> schemathesis.BaseSchema:
    """GET /v1/openapi.json of the server, for schemathesis (its own configuration only: no
    schemathesis.toml of the working directory is read)."""
    answer = requests.get(base_url + "/v1/openapi.json", timeout=REQUEST_TIMEOUT_SECONDS)
    answer.raise_for_status()
    document = without_tuples(answer.json())
    return schemathesis.openapi.from_dict(document, config=schemathesis.Config(seed=seed))


# --- the servers and the data --------------------------------------------------------------


@contextlib.asynccontextmanager
async def web_process(
    database_url: str, redis_url: str, log_path: Path, extra_env: Mapping[str, str]
) -> AsyncIterator[str]:
    """`python -m contactcenter serve` on a free port; yields its base URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_BASE_URL": base_url,
        "LOG_LEVEL": "INFO",
        **extra_env,
    }
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "contactcenter", "serve"),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_fd,
            preexec_fn=die_with_parent,  # a run that is itself killed leaves no server behind
        )
    finally:
        os.close(log_fd)
    try:
        await wait_ready(process, base_url, log_path)
        yield base_url
    finally:
        await stop(process)


def call_json(
    base_url: str, method: str, path: str, token: str | None, body: Any = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.request(
        method, base_url + path, json=body, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
    )
    if answer.status_code >= 300:
        raise RuntimeError(f"seeding: {method} {path} -> {answer.status_code}: {answer.text}")
    found: dict[str, Any] = answer.json()
    return found


# one of each kind of object the admin API makes, with a valid body (as tests/test_role_matrix.py
# makes them); the mailbox's servers are never contacted (no mail listener runs)
SEED_OBJECTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("/v1/admin/teams", {"name": "Fuzz team"}),
    (
        "/v1/admin/channels",
        {
            "name": "fuzz",
            "address": "fuzz@support.example",
            "imap_host": "127.0.0.1",
            "imap_port": 9,
            "imap_user": "fuzz",
            "imap_password": "imap-password-123",
            "smtp_host": "127.0.0.1",
            "smtp_port": 9,
        },
    ),
    (
        "/v1/admin/channels/sms",
        {
            "name": "fuzz sms",
            "account_sid": "AC" + "0" * 32,
            "auth_token": "twilio-token-0123456789",
            "from_number": "+14155550100",
        },
    ),
    (
        "/v1/admin/business-hours",
        {
            "name": "Office",
            "timezone": "Europe/Paris",
            "weekly": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
        },
    ),
    ("/v1/admin/sla-policies", {"name": "Fuzz policy", "first_response_minutes": 15}),
    (
        "/v1/admin/routing-rules",
        {
            "name": "Fuzz rule",
            "conditions": {"match": "all", "conditions": []},
            "actions": [{"type": "priority", "value": 1}],
        },
    ),
    (
        "/v1/admin/templates",
        {"purpose": "help", "channel": "sms", "locale": "en", "body_text": "Hi {{ name }}."},
    ),
    (
        "/v1/admin/canned-responses",
        {"shortcut": "thanks", "title": "Thanks", "body_text": "{{ salutation }}, thanks."},
    ),
)
QUARANTINE = "INSERT INTO email_quarantine (raw, error) VALUES ($1, 'unreadable') RETURNING id"


def start_chat(base_url: str, name: str, email: str) -> dict[str, Any]:
    body = {
        "text": "Hello, where is my parcel?",
        "client_message_id": uuid.uuid4().hex,
        "name": name,
        "email": email,
    }
    return call_json(base_url, "POST", "/v1/web/conversations", None, body)


async def seed(database_url: str, base_url: str) -> Seeded:
    """The identities' agents (by the service `contactcenter create-agent` calls) and a
    quarantined mail, then through the API: one object of each kind the admin makes, two web
    chats (their contacts and conversations; the first assigned to the agent, its visitor
    token the visitor's)."""
    tokens: dict[str, str] = {}
    agent_ids: dict[str, int] = {}
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        for role in ROLES:
            created = await create_agent(
                pool, name=f"Fuzz {role}", email=f"fuzz-{role}@agents.example", role=Role(role)
            )
            tokens[role], agent_ids[role] = created.token, created.id
        # an agent the admin may change as it likes
        spare = await create_agent(
            pool, name="Fuzz spare", email="fuzz-spare@agents.example", role=Role.AGENT
        )
        quarantined = await pool.fetchval(QUARANTINE, b"Subject: broken\r\n\r\nbody")
    finally:
        await pool.close()
    known = Known({}, protected_agents=frozenset(agent_ids.values()))
    known.add("quarantine", quarantined)
    known.add("agents", spare.id)

    def through_api() -> Seeded:
        admin = tokens["admin"]
        for path, body in SEED_OBJECTS:
            known.harvest(path, call_json(base_url, "POST", path, admin, body))
        chat = start_chat(base_url, "Fuzz Visitor", "visitor@customers.example")
        other = start_chat(base_url, "Other Visitor", "other@customers.example")
        conversation_id = chat["conversation_id"]
        call_json(
            base_url,
            "POST",
            f"/v1/conversations/{conversation_id}/assign",
            admin,
            {"agent_id": agent_ids["agent"]},
        )
        for started in (chat, other):
            path = f"/v1/conversations/{started['conversation_id']}"
            known.harvest("/v1/conversations", call_json(base_url, "GET", path, admin))
        for path in ("/v1/admin/channels/sms", "/v1/admin/agents"):
            known.harvest(path, call_json(base_url, "GET", path, admin))
        return Seeded(
            tokens={**tokens, "visitor": chat["visitor_token"]},
            agent_ids=frozenset(agent_ids.values()),
            visitor_conversation=conversation_id,
            known=known.by_kind,
        )

    return await asyncio.to_thread(through_api)


def server_errors(log_path: Path, request_ids: set[str]) -> dict[str, str]:
    """request id -> the last line of the error the web process logged for it."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError), log_path.open(errors="replace") as log:
        for line in log:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                request_id = record.get("request_id") if isinstance(record, dict) else None
                if request_id in request_ids and record.get("exc_info"):
                    found[request_id] = str(record["exc_info"]).strip().splitlines()[-1][:300]
    return found


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    examples: int = 10
    seed: int = 0
    identities: tuple[str, ...] = IDENTITIES


async def fuzz(admin_url: str, redis_url: str, workdir: Path, options: Options) -> dict[str, Any]:
    """Start a web process against a new database, seed it, fuzz it as each identity, and
    return the report (the database is dropped and the Redis database emptied at the end)."""
    webhook_secret = secrets.token_urlsafe(24)
    twilio_token = secrets.token_hex(16)
    extra_env = {
        "EMAIL_WEBHOOK_SECRET": webhook_secret,
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT,
        "TWILIO_AUTH_TOKEN": twilio_token,
        "TWILIO_FROM_NUMBER": TWILIO_NUMBER,
        # never reached (no worker runs), but never the real Twilio either
        "TWILIO_API_BASE": "http://127.0.0.1:9",
    }
    redis = Redis.from_url(redis_url)
    log_path = workdir / "web.log"
    try:
        await redis.flushdb()
        async with (
            scratch_database(admin_url, prefix="fuzz") as database_url,
            web_process(database_url, redis_url, log_path, extra_env) as base_url,
        ):
            seeded = await seed(database_url, base_url)
            schema = await asyncio.to_thread(load_document, base_url, options.seed)
            fuzzer = Fuzzer(
                schema,
                base_url,
                seeded,
                examples=options.examples,
                seed=options.seed,
                webhook_secret=webhook_secret,
                twilio_token=twilio_token,
            )
            reports: dict[str, IdentityReport] = {}
            started = time.perf_counter()
            try:
                for identity in options.identities:
                    logger.info("fuzzing as %s", identity)
                    reports[identity] = await asyncio.to_thread(fuzzer.run, identity)
                    logger.info(
                        "%s: %d examples, %d distinct failures",
                        identity,
                        reports[identity].examples,
                        len(reports[identity].failures),
                    )
            finally:
                fuzzer.stopped.set()  # a cancelled run's thread ends at its next example
            elapsed = time.perf_counter() - started
            valid = {
                identity: await asyncio.to_thread(fuzzer.credentials_work, identity)
                for identity in options.identities
                if identity != "none"
            }
    finally:
        await redis.flushdb()
        await redis.aclose()
    wanted = {
        f.request_id: f
        for r in reports.values()
        for f in r.failures.values()
        if f.status >= 500 and f.request_id
    }
    for request_id, error in server_errors(log_path, set(wanted)).items():
        wanted[request_id].server_error = error
    return {
        "identities": {name: report.summary() for name, report in reports.items()},
        "failures": sum(len(r.failures) for r in reports.values()),
        "examples": sum(r.examples for r in reports.values()),
        "seconds": round(elapsed, 1),
        "credentials_valid_at_end": valid,
        "checks": [check.__name__ for check in CHECKS],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz_api", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=10,
        help="examples per operation, identity and mode (positive, negative); default 10",
    )
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    parser.add_argument(
        "--identities",
        default=",".join(IDENTITIES),
        help=f"comma-separated, in this order (default {','.join(IDENTITIES)})",
    )
    server_arguments(parser)
    args = parser.parse_args(argv)
    chosen = tuple(name.strip() for name in args.identities.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(IDENTITIES))
    if unknown or not chosen:
        parser.error(f"unknown identities {unknown}; choose from {', '.join(IDENTITIES)}")
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    args.identities = chosen
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    options = Options(examples=args.examples, seed=args.seed, identities=args.identities)
    given = [bool(args.database_url), bool(args.redis_url)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-fuzz-api-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        results = asyncio.run(fuzz(admin_url, redis_url, Path(tmp), options))
    report = {
        "machine": machine(),
        "date": datetime.now(UTC).date().isoformat(),
        **results,
        "settings": {
            "examples": args.examples,
            "seed": args.seed,
            "schemathesis": schemathesis.__version__,
            "servers": "given" if all(given) else "embedded" if not any(given) else "mixed",
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
