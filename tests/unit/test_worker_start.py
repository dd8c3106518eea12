"""The worker's start: every log level the settings accept is one Faust's command line accepts."""

from __future__ import annotations

from typing import get_args

from faust.cli.base import LOGLEVELS

from service.settings import Settings
from service.worker import faust_loglevel


def test_every_documented_log_level_is_one_faust_accepts():
    levels = get_args(Settings.model_fields["log_level"].annotation)
    assert set(levels) == {"debug", "info", "warning", "error"}
    for level in levels:
        assert faust_loglevel(level).upper() in LOGLEVELS, level


def test_the_worker_leaves_the_root_logger_at_the_configured_level():
    import logging

    from service.app import app
    from service.worker import Worker

    assert app.conf.Worker is Worker
    worker = Worker.__new__(Worker)  # only the logging hook is exercised
    worker.spinner = object()
    logger = logging.getLogger("outbound-test-root")
    logger.setLevel(logging.WARNING)
    worker.on_setup_root_logger(logger, logging.WARNING)
    assert worker.spinner is None
    assert logger.level == logging.WARNING and not logger.handlers
