"""Logging configuration (one dictConfig per process) and the id-stamping log filter."""

from __future__ import annotations

import logging
import logging.config

_ID_FIELDS = ("execution_id", "task_run_id", "task_id", "flow", "namespace", "action")


class _IdFilter(logging.Filter):
    """Gives every record the run ids (empty when absent) so one format string fits all records."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = []
        for name in _ID_FIELDS:
            value = getattr(record, name, None)
            if value:
                ids.append(f"{name}={value}")
        record.ids = (" [" + " ".join(ids) + "]") if ids else ""
        return True


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once for this process (entry points call this, modules never do)."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"ids": {"()": _IdFilter}},
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s%(ids)s"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["ids"]}},
            "root": {"level": level.upper(), "handlers": ["stderr"]},
            # httpx logs whole request URLs at INFO, and a URL can be a secret (a Slack webhook's is).
            "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
        }
    )
