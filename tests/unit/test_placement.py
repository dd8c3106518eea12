"""Where the service's producer puts a key, when a record can skip its re-publish hop, and where the
worker reads partition counts from (service/planning/placement.py, service/streams/machinery/partitions.py)."""

from __future__ import annotations

import inspect

from aiokafka.consumer import group_coordinator
from aiokafka.consumer.consumer import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from faust.transport.drivers import aiokafka as faust_aiokafka

from service.planning.placement import already_placed, service_partition
from tests.partitioning import crc32_partition, murmur2_partition


def test_the_service_partition_is_aiokafka_s_default_choice():
    for n in range(200):
        key = f"order-{n}".encode()
        assert service_partition(key, 6) == DefaultPartitioner()(key, list(range(6)), list(range(6)))
        assert service_partition(key, 6) == murmur2_partition(key, 6)


def test_a_record_skips_the_hop_only_where_the_service_would_have_put_it_and_the_counts_agree():
    key = b"o-1"
    here = service_partition(key, 6)
    assert already_placed(key, here, 6, 6)
    assert not already_placed(key, (here + 1) % 6, 6, 6), "another partition: re-published"
    assert not already_placed(key, here, 6, 12), "different counts: the hash decides nothing"
    assert not already_placed(key, here, None, 6) and not already_placed(None, here, 6, 6)
    crc32 = crc32_partition()
    apart = next(k for k in (f"o{n}".encode() for n in range(100)) if crc32(k) != service_partition(k, 6))
    assert not already_placed(apart, crc32(apart), 6, 6), "a CRC32 producer's choice is re-published"


def test_faust_s_partition_count_is_the_group_leader_s_snapshot_so_the_worker_asks_aiokafka_s_consumer():
    """Faust's `Consumer.topic_partitions` reads aiokafka's group metadata snapshot, which aiokafka
    fills only on the group's leader (the one that assigns): a second worker would know no count and
    fold nothing where it is. The worker asks aiokafka's consumer (its cluster metadata) instead,
    through Faust's consumer thread."""
    faust_source = inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread.topic_partitions)
    assert "_metadata_snapshot" in faust_source
    leader_only = inspect.getsource(group_coordinator.GroupCoordinator._on_join_prepare)
    assert "self._group_subscription = None" in leader_only
    assert "self._group_subscription = all_subscribed_topics" in inspect.getsource(
        group_coordinator.GroupCoordinator._perform_assignment
    )
    assert hasattr(faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer")
    assert "cluster.partitions_for_topic" in inspect.getsource(AIOKafkaConsumer.partitions_for_topic)
