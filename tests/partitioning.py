"""Where producers put a key: murmur2 (Java clients, and the service) or CRC32 (most other clients' default)."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from aiokafka.partitioner import murmur2

from tests.events import unique


def keys_in_one_partition(count: int, partitions: int = 6, prefix: str = "o") -> list[str]:
    """Keys that the service's producer (murmur2, as every Kafka Java client) puts in one partition."""
    target = None
    keys: list[str] = []
    while len(keys) < count:
        key = unique(prefix)
        partition = murmur2_partition(key.encode(), partitions)
        target = partition if target is None else target
        if partition == target:
            keys.append(key)
    return keys


def keys_spread_evenly(count: int, partitions: int = 6, prefix: str = "o") -> list[str]:
    """Keys that the service's producer spreads over the partitions in turn (as many in each, give or take one)."""
    keys: list[str] = []
    while len(keys) < count:
        key = unique(prefix)
        if murmur2_partition(key.encode(), partitions) == len(keys) % partitions:
            keys.append(key)
    return keys


def crc32_partition(partitions: int = 6) -> Callable[[bytes], int]:
    """librdkafka's default (`consistent_random`): CRC32 of the key, as confluent-kafka, Go and Node
    producers place messages unless told otherwise."""
    return lambda key: zlib.crc32(key) % partitions


def murmur2_partition(key: bytes, partitions: int = 6) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
