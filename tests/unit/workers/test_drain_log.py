"""A planned hand-back is not an error: Celery's own line about the re-queue loses its traceback."""

from __future__ import annotations

import logging
import sys

import pytest
from celery.exceptions import Reject

from workers import drain


def _logged(exc: BaseException, caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    logger = logging.getLogger("celery.app.trace")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        try:
            raise exc
        except BaseException:
            logger.warning("Task %s rejected", "run_task_run", exc_info=sys.exc_info())
    (record,) = caplog.records
    return record


def test_the_hand_back_reject_is_logged_at_info_without_traceback_and_others_are_untouched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet = drain._PlannedRejectLine()
    logging.getLogger("celery.app.trace").addFilter(quiet)
    try:
        handed_back = _logged(Reject(f"{drain.HAND_BACK_PREFIX}the worker is stopping", requeue=True), caplog)
        assert (handed_back.levelno, handed_back.exc_info) == (logging.INFO, None)
        other = _logged(Reject("poison message", requeue=False), caplog)
        assert other.levelno == logging.WARNING and other.exc_info is not None
    finally:
        logging.getLogger("celery.app.trace").removeFilter(quiet)
