"""Benchmarks are run by `scripts/bench`, never by pytest: nothing here is collected."""

collect_ignore_glob = ["*"]
