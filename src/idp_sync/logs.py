"""Structured JSON logs with the correlation id of the request or task (issue 7 point 7).

Every record carries ``correlation_id`` (from the HTTP request's ``X-Request-Id``, carried
in task headers into the worker) and the ``extra`` fields given at the call site. Values
that look like credentials are never logged by our code; ``redact`` is a last guard for
field names that must not leave the process.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from idp_sync.context import correlation_id

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "correlation_id"}
_factory_installed = False


def install_record_factory() -> None:
    """Stamp every log record with the correlation id current where it was made (so a
    record handled later, or on another thread, still carries the right one)."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.correlation_id = correlation_id.get()
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


SECRET_FIELDS = {"authorization", "bearer_token", "token", "secret", "password", "saml_response"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None) or correlation_id.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = "[redacted]" if key.lower() in SECRET_FIELDS else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Send every logger's records to stderr as JSON lines (or plain text for humans)."""
    install_record_factory()
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "amqp", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
