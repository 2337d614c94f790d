"""Request ids, the access log, and one place that turns every failure into the envelope."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contactcenter import db, logs
from contactcenter.api.errors import ApiError, error_response, status_of
from contactcenter.api.keys import REQUEST_ID
from contactcenter.domain.errors import DomainError

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CALLER_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")
RETRY_AFTER_SECONDS = "5"

# what the framework itself refuses, in our words
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# the database or Redis is away or restarting: the caller should come back, it did nothing
# wrong (other errors stay 500s, which are bugs)
_UNAVAILABLE = (ConnectionError, TimeoutError, RedisConnectionError, RedisTimeoutError)


def _unavailable(error: Exception) -> bool:
    return isinstance(error, _UNAVAILABLE) or db.database_away(error)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    offered = request.headers.get("X-Request-ID", "")
    request_id = offered if _CALLER_REQUEST_ID.match(offered) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    token = logs.request_id.set(request_id)
    try:
        response = await handler(request)
    finally:
        logs.request_id.reset(token)
    if not response.prepared:
        response.headers["X-Request-ID"] = request_id
    return response


@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message, error.details, error.headers)
    except DomainError as error:
        return error_response(status_of(error), error.code, error.message, error.details)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = _HTTP_CODES.get(error.status, "http_error")
        return error_response(error.status, code, error.reason, headers=_allow_header(error))
    except Exception as error:
        if _unavailable(error):
            logger.warning("dependency unavailable", extra={"error": type(error).__name__})
            return error_response(
                503,
                "service_unavailable",
                "the service is briefly unavailable; try again shortly",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        logger.exception("unhandled error", extra={"path": request.path})
        return error_response(
            500,
            "internal_error",
            "something went wrong on our side",
            {"request_id": request.get(REQUEST_ID)},
        )


def _allow_header(error: web.HTTPException) -> dict[str, str]:
    allow = error.headers.get("Allow")
    return {"Allow": allow} if allow else {}


# paths whose last segment is a secret (a signed survey link): logged without it
SECRET_PATHS = ("/v1/care/survey/",)


def loggable_path(path: str) -> str:
    for prefix in SECRET_PATHS:
        if path.startswith(prefix):
            return prefix + "..."
    return path


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request: never the query string, which may carry a socket token, and
    never a survey link's token."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "request",
            extra={
                "method": request.method,
                "path": loggable_path(request.path),
                "status": response.status,
                "duration_ms": round(time * 1000, 2),
                "request_id": request.get(REQUEST_ID),
            },
        )
