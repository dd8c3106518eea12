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
