"""POST /v1/admin/contacts/import: customers from a CSV body (admins only), streamed.

The body is `Content-Type: text/csv` in UTF-8, read as it arrives (the app's client_max_size
does not apply to a streamed read: this has its own cap, 413 past it). `?region=CN` is where
phone numbers without a country code are (default DEFAULT_PHONE_REGION; without either they
need +<country>). The answer counts the rows and lists their errors by line; see
services.contact_import for what is written when.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import Field, TypeAdapter, ValidationError

from contactcenter.api.auth import require_agent
from contactcenter.api.contacts import Name
from contactcenter.api.errors import ApiError
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Media, View, documented
from contactcenter.api.parsing import Body
from contactcenter.domain.contact_import import parse_region
from contactcenter.domain.enums import Role
from contactcenter.domain.errors import Invalid
from contactcenter.services import contact_import
from contactcenter.services.contact_import import (
    BATCH_ROWS,
    DEFAULT_MAX_BYTES,
    MAX_ROW_BYTES,
    ImportOptions,
    ImportReport,
)
from contactcenter.settings import Settings

# an import writes: admins only (supervisors and agents get 403)
WRITERS = (Role.ADMIN,)
CHUNK_BYTES = 64 * 1024
UTF8 = ("utf-8", "utf8")


@dataclass(frozen=True)
class ImportLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_row_bytes: int = MAX_ROW_BYTES
    batch_rows: int = BATCH_ROWS


# set by setup_routes; a test (or a deployment wrapping create_app) may set its own before the
# app starts
IMPORT_LIMITS = web.AppKey("contact_import_limits", ImportLimits)

_NAME: TypeAdapter[str] = TypeAdapter(Name)


class ImportQuery(Body):
    """Documentation only: _options reads ?region= by hand."""

    region: str | None = Field(
        None,
        pattern=r"^\s*[A-Za-z]{2}\s*$",
        description="the country (ISO 3166 code, any case: CN, US, GB ...) of phone numbers "
        "written without +<country code>; default DEFAULT_PHONE_REGION",
    )


class ImportRowError(View):
    # the CSV line the error is on (the header is line 1)
    row: int
    code: str
    message: str


class ImportReportView(View):
    """What the import did (the same counts are in a 413's details)."""

    # rows read, blank ones aside: created + updated + unchanged + error_count
    rows: int
    created: int
    updated: int
    unchanged: int
    # the first MAX_ERRORS (1000), by line
    errors: list[ImportRowError]
    error_count: int
    # the line a record that could not be read, or the size cap, stopped the import at:
    # nothing from it on was written
    stopped_at_line: int | None


CSV_BODY = Media(
    "text/csv",
    {"type": "string"},
    "UTF-8, the first line a header naming (in any case and order) email and/or phone, and "
    "any of name, value, tags (;-separated), tier (1-4, none unpins), account_manager (an "
    "agent's e-mail), birthday, timezone, locale, preferred_channel, consent_email, "
    "consent_sms and field:<key>. An empty cell keeps what the contact has.",
)


def check_name(raw: str) -> str:
    """A name by the rule of PATCH /v1/contacts."""
    try:
        return _NAME.validate_python(raw)
    except ValidationError as exc:
        raise Invalid(f"name: {exc.errors()[0]['msg']}", code="invalid_name") from None


def _options(request: web.Request, limits: ImportLimits) -> ImportOptions:
    if request.content_type != "text/csv" or (request.charset or "utf-8").lower() not in UTF8:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the CSV with Content-Type: text/csv (UTF-8)",
        )
    raw_region = request.query.get("region")
    region = (
        parse_region(raw_region)
        if raw_region is not None
        else request.app[CONNS].settings.default_phone_region
    )
    return ImportOptions(
        check_name=check_name,
        region=region,
        max_bytes=limits.max_bytes,
        max_row_bytes=limits.max_row_bytes,
        batch_rows=limits.batch_rows,
    )


def _summary(report: ImportReport) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "errors": [{"row": e.line, "code": e.code, "message": e.message} for e in report.errors],
        "error_count": report.error_count,
        "stopped_at_line": report.stopped_at_line,
    }


def _too_large(limits: ImportLimits, details: dict[str, Any]) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the body is over {limits.max_bytes} bytes: split the file (rows that ended within "
        "the limit were imported, see details)",
        {"max_bytes": limits.max_bytes, **details},
    )


@documented(
    "Import customers from CSV",
    access="admin",
    body=CSV_BODY,
    query=ImportQuery,
    responses={200: ImportReportView},
)
async def import_contacts(request: web.Request) -> web.Response:
    """Create or update a customer per CSV row, found by its e-mail or phone; a bad row is an
    error in the report, never a stop. A body over the size cap answers 413 with the report of
    the rows imported before it in its details."""
    admin = await require_agent(request, roles=WRITERS)
    limits = request.app[IMPORT_LIMITS]
    options = _options(request, limits)
    if request.content_length is not None and request.content_length > limits.max_bytes:
        # known before reading: refused whole, nothing written
        raise _too_large(limits, {"rows": 0})
    report = await contact_import.import_csv(
        request.app[CONNS], admin.id, request.content.iter_chunked(CHUNK_BYTES), options
    )
    if report.too_large:
        raise _too_large(limits, _summary(report))
    return web.json_response(_summary(report))


def setup_routes(app: web.Application, settings: Settings) -> None:
    app[IMPORT_LIMITS] = ImportLimits(max_bytes=settings.contact_import_max_bytes)
    app.router.add_post("/v1/admin/contacts/import", import_contacts)
