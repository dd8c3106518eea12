"""The worker's start: every log level the settings accept is one Faust's command line accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import get_args

from faust.cli.base import LOGLEVELS

from service.settings import Settings
from service.worker import faust_loglevel
from tests.deployments import OUTBOUND


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


def test_a_session_timeout_longer_than_faust_s_request_timeout_still_starts():
    """Faust refuses a consumer whose session timeout exceeds its request timeout (90 s by default),
    though the setting allows up to 300 s: the app raises the request timeout with it."""
    script = (
        "import asyncio\n"
        "from service.app import app\n"
        "async def main():\n"
        "    app.consumer._thread._create_worker_consumer(app.transport)\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "OUTBOUND_BROKER_SESSION_TIMEOUT_SECONDS": "120"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_instance_id_is_the_consumer_s_group_instance_id_and_none_without_it():
    script = (
        "import asyncio\n"
        "from service.app import app\n"
        "async def main():\n"
        "    consumer = app.consumer._thread._create_worker_consumer(app.transport)\n"
        "    print(repr(app.conf.consumer_group_instance_id), repr(consumer._group_instance_id))\n"
        "asyncio.run(main())\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOUND_")}

    def ids(**env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script], env={**clean, **env}, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    assert ids(OUTBOUND_INSTANCE_ID="outbound-2") == "'outbound-2' 'outbound-2'"
    assert ids() == "None None"


def test_a_setting_out_of_bounds_is_a_message_naming_it_and_exit_2():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOUND_")}
    done = subprocess.run(
        [OUTBOUND, "worker"], env={**env, "OUTBOUND_INSTANCE_ID": "pod 0"}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: OUTBOUND_INSTANCE_ID: ") and "Traceback" not in done.stderr
