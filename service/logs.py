"""Structured log lines: one JSON object per line, with the fields passed as `extra=`.

Callers pass only ids, counts and outcomes in `extra`; never settings, customer data or secrets.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


# Client libraries that speak at info about every request: the Azure SDK logs each request with its
# headers (a SAS signature among them), httpx each URL. Warnings and errors still come through.
QUIET_LOGGERS = (
    "azure",
    "azure.core.pipeline.policies.http_logging_policy",
    "httpx",
    "httpcore",
    "asyncssh",
    "botocore",
    "aiobotocore",
    "boto3",
    "urllib3",
    "aiosmtplib",
)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    quiet = "WARNING" if level.upper() in ("DEBUG", "INFO") else level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"level": quiet} for name in QUIET_LOGGERS},
    }
