"""Starting the Faust worker with every agent registered."""

from __future__ import annotations

import sys


def run_worker(loglevel: str) -> None:
    from service.app import app
    from service.operators import api  # noqa: F401  (registers the web routes)
    from service.streams import deliver, ingest, join, notify, retry, status  # noqa: F401  (registers the agents)

    sys.argv = ["outbound", "worker", "--loglevel", loglevel]
    app.main()
