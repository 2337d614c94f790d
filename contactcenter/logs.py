"""JSON logs on stderr, each line carrying the request or job id it belongs to.

Log ids and codes, never message bodies, tokens or passwords.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = request_id.get()
        if current is not None and not hasattr(record, "request_id"):
            record.request_id = current
        return True


def setup_logging(level: str = "INFO", *, process: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"process": process},
            timestamp="time",  # RFC 3339, UTC
        )
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log is replaced by ours (it would print query strings, which may
    # carry a WebSocket token)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # at DEBUG aioimaplib logs whole mails and can miss scrubbing an odd password
    logging.getLogger("aioimaplib").setLevel(max(root.level, logging.INFO))
    # twilio logs requests with their phone numbers and bodies
    logging.getLogger("twilio").setLevel(max(root.level, logging.WARNING))
