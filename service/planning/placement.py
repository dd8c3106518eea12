"""Which partition the service's own producer gives a key, and when a record already sits there."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

_PARTITIONER = DefaultPartitioner()


def service_partition(key: bytes, partitions: int) -> int:
    """The partition the service's producer (aiokafka's default: murmur2 of the key's bytes, as Java
    clients) chooses for `key` among `partitions`."""
    every = list(range(partitions))
    return int(_PARTITIONER(key, every, every))


def already_placed(
    key: bytes | None, partition: int, source_partitions: int | None, target_partitions: int | None
) -> bool:
    """True when a record at `partition` of a topic with `source_partitions` sits where re-publishing
    it keyed by `key` onto a topic with `target_partitions` would put it: then the hop can be skipped
    (the tables read while handling it are in the same partition either way). Unknown counts: False."""
    if key is None or not source_partitions or source_partitions != target_partitions:
        return False
    return service_partition(key, source_partitions) == partition
