"""The local broker's own set-up (deploy/local/kafka.py)."""

from __future__ import annotations

from tests.deployments import load_local_kafka


def test_a_new_cluster_id_never_looks_like_an_option():
    """The storage tool read an id starting with "-" as an option and refused to format: a test run
    failed at its first broker start once in 64."""
    new_cluster_id = load_local_kafka().new_cluster_id
    ids = {new_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000 and not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
