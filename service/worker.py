"""Starting the Faust worker with every agent registered."""

from __future__ import annotations

import sys


def run_worker(loglevel: str) -> None:
    from service.app import app
    from service.operators import api, health, metrics_route, replay_routes  # noqa: F401  (the web routes)
    from service.streams import deliver, ingest, join, notify, retry, status  # noqa: F401  (registers the agents)

    # --quiet: no banner on stdout, so that every line the worker writes is a JSON log line.
    sys.argv = ["outbound", "--quiet", "worker", "--loglevel", loglevel]
    app.main()
