"""Starting the Faust worker with every agent registered."""

from __future__ import annotations

import sys

# Faust's --loglevel accepts CRIT, ERROR, WARN, INFO and DEBUG only: "warning" would stop the worker at start.
FAUST_LOGLEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}


def faust_loglevel(level: str) -> str:
    return FAUST_LOGLEVELS.get(level.lower(), level)


def run_worker(loglevel: str) -> None:
    from service.app import app
    from service.operators import api, health, metrics_route, replay_routes  # noqa: F401  (the web routes)
    from service.streams import deliver, ingest, join, notify, retry, status  # noqa: F401  (registers the agents)

    # --quiet: no banner on stdout, so that every line the worker writes is a JSON log line.
    sys.argv = ["outbound", "--quiet", "worker", "--loglevel", faust_loglevel(loglevel)]
    app.main()
