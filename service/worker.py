"""Starting the Faust worker with every agent registered."""

from __future__ import annotations

import logging
import sys

import faust

# Faust's --loglevel accepts CRIT, ERROR, WARN, INFO and DEBUG only: "warning" would stop the worker at start.
FAUST_LOGLEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}


def faust_loglevel(level: str) -> str:
    return FAUST_LOGLEVELS.get(level.lower(), level)


class Worker(faust.Worker):
    """Faust's worker without its terminal progress spinner.

    At WARN and above Faust drives a spinner from the root logger: it sets the root logger to DEBUG for
    the worker's whole life and adds a handler that spins for every record, so every debug record of
    every library was built and then dropped (a seventh of a recovering worker's time, and spinner
    characters among the JSON lines on stdout). Without it the root logger keeps the configured level."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def register_everything() -> None:
    """Import every web route and every agent, so that the app knows them (and their tables) before it
    starts. The worker and the tests that pin what a start loads both call this one list."""
    from service.operators import (  # noqa: F401  (the web routes)
        integration_routes,
        lookup_routes,
        metrics_route,
        page_routes,
        probes,
        reconcile_routes,
        replay_routes,
        trigger_routes,
    )
    from service.streams.stages import deadlines, deliver, health, ingest, join, notify, order_view, retry  # noqa: F401  (registers the agents)


def run_worker(loglevel: str) -> None:
    from service.app import app

    register_everything()
    # --quiet: no banner on stdout, so that every line the worker writes is a JSON log line.
    sys.argv = ["outbound", "--quiet", "worker", "--loglevel", faust_loglevel(loglevel)]
    app.main()
