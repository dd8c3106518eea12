"""The topic catalog: names, partition counts and configs of every topic, read by the app and the deploy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson


@dataclass(frozen=True)
class TopicSpec:
    """One topic as the catalog wants it; `name` already carries the environment's prefix."""

    key: str
    name: str
    partitions: int
    replication: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    topics: dict[str, TopicSpec]

    def __getitem__(self, key: str) -> TopicSpec:
        return self.topics[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.topics.values())


def changelog_name(app_id: str, table: str) -> str:
    """The name Faust gives a table's changelog topic."""
    return f"{app_id}-{table}-changelog"


def load_catalog(path: Path, prefix: str, replication: int, app_id: str | None = None) -> Catalog:
    """The catalog's topics; with `app_id`, also the changelogs of the app's tables.

    The changelogs are created here, with their source topic's partition count, rather than left to
    Faust: a worker that created one at start-up sometimes still saw it with no partitions and
    refused every write to that table (PartitionsMismatch), seen once in a test run.
    """
    doc = orjson.loads(path.read_bytes())
    topics = {
        key: TopicSpec(
            key=key,
            name=f"{prefix}{key}",
            partitions=int(spec["partitions"]),
            replication=replication,
            configs={k: str(v) for k, v in spec.get("configs", {}).items()},
        )
        for key, spec in doc["topics"].items()
    }
    if app_id is not None:
        for table, source in doc.get("tables", {}).items():
            topics[f"table:{table}"] = TopicSpec(
                key=f"table:{table}",
                name=changelog_name(app_id, table),
                partitions=topics[source].partitions,
                replication=replication,
                configs={"cleanup.policy": "compact"},
            )
    for group in doc.get("copartitioned", []):
        counts = {topics[key].partitions for key in group}
        if len(counts) != 1:
            raise ValueError(f"topic catalog: {group} must have the same partition count")
    return Catalog(topics)


@dataclass(frozen=True)
class TopicDifference:
    topic: str
    what: str


@dataclass(frozen=True)
class TopicPlan:
    """What `topics apply` will do: create the missing topics, report the ones that differ."""

    create: list[TopicSpec]
    differences: list[TopicDifference]
    unchanged: list[str]


def partition_change_refusal(current: int, wanted: int) -> str:
    """Why `topics apply` never changes a partition count: a key's partition is hash(key) % count, so a
    new count moves keys away from the table state and the co-partitioned topics that hold them."""
    return (
        f"partitions: cluster has {current}, catalog wants {wanted}; not changed: tables and co-partitioned "
        "topics place every key by the partition count, so changing it strands their state "
        "(re-partition by replaying into a new app id: README, Re-partitioning)"
    )


def plan_topics(catalog: Catalog, existing: dict[str, tuple[int, dict[str, str]]]) -> TopicPlan:
    """Compare the catalog with the cluster (`existing`: name -> (partitions, configs))."""
    create: list[TopicSpec] = []
    differences: list[TopicDifference] = []
    unchanged: list[str] = []
    for spec in catalog:
        if spec.name not in existing:
            create.append(spec)
            continue
        partitions, configs = existing[spec.name]
        found = []
        if partitions != spec.partitions:
            found.append(TopicDifference(spec.name, partition_change_refusal(partitions, spec.partitions)))
        for key, wanted in sorted(spec.configs.items()):
            actual = configs.get(key)
            if actual != wanted:
                found.append(TopicDifference(spec.name, f"{key}: cluster has {actual}, catalog wants {wanted}"))
        differences.extend(found)
        if not found:
            unchanged.append(spec.name)
    return TopicPlan(create, differences, unchanged)
