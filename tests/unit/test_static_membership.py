"""Static membership: what the library does with an instance id, and the assignment taken at a new URL."""

from __future__ import annotations

import inspect

from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

from service.faust_fixes import at_url


def test_aiokafka_sends_no_leave_group_for_a_static_member():
    """Why a stopped static member's partitions wait for it (README, Restarts: static membership)."""
    source = inspect.getsource(GroupCoordinator._maybe_leave_group)
    assert "self._group_instance_id is None" in source and "LeaveGroupRequest" in source


def test_the_assignment_made_for_an_old_url_names_the_new_one_and_keeps_the_others():
    old, new, other = "http://w-0:6066", "http://w-0:7077", "http://w-1:6066"
    metadata = ClientMetadata(
        assignment=ClientAssignment(actives={"orders": [0, 1]}, standbys={}),
        url=old,
        changelog_distribution={old: {"app-orders-changelog": [0, 1]}, other: {"app-orders-changelog": [2]}},
        external_topic_distribution={old: {"orders": [0, 1]}, other: {"orders": [2]}},
        topic_groups={"orders": 0},
    )
    moved = at_url(metadata, old, new)
    assert moved.url == new
    assert moved.changelog_distribution == {new: {"app-orders-changelog": [0, 1]}, other: {"app-orders-changelog": [2]}}
    assert moved.external_topic_distribution == {new: {"orders": [0, 1]}, other: {"orders": [2]}}
    assert moved.assignment.actives == {"orders": [0, 1]} and moved.topic_groups == {"orders": 0}
    assert ClientMetadata.loads(moved.dumps()).url == new
