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
    # True for the co-partitioned family, whose count is the deployment's (OUTBOUND_PARTITIONS).
    follows_setting: bool = False


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


def family_partitions(catalog_counts: dict[str, int], copartitioned: list[list[str]]) -> int | None:
    """The catalog's count of the co-partitioned family: the one count every `copartitioned` group has.

    None when the catalog names no group. The groups must agree: the family is one number, which is
    what lets a deployment give it another (`partitions_for`) and keep every group equal."""
    counts = {catalog_counts[key] for group in copartitioned for key in group}
    if len(counts) > 1:
        raise ValueError(
            f"topic catalog: the co-partitioned groups {copartitioned} must share one partition count, "
            f"found {sorted(counts)}"
        )
    return counts.pop() if counts else None


def partitions_for(catalog_count: int, family: int | None, partitions: int | None) -> int:
    """A topic's partition count in a deployment whose family count is `partitions` (OUTBOUND_PARTITIONS).

    The rule: every topic the catalog gives the family's count (6) follows the setting; that is every
    topic of a `copartitioned` group, every table's source (and so its changelog), and the upstream
    inputs `recipes` and `orders`: their work is spread over the workers by partition, so they are
    what a larger deployment needs more of. The others keep the catalog's count: the 1-partition
    compacted views every worker reads whole, and the 3-partition topics of failures, notifications
    and invalid events. `partitions` None: the catalog's own counts."""
    if partitions is None or family is None or catalog_count != family:
        return catalog_count
    return partitions


def load_catalog(
    path: Path, prefix: str, replication: int, app_id: str | None = None, *, partitions: int | None = None
) -> Catalog:
    """The catalog's topics; with `app_id`, also the changelogs of the app's tables.

    `partitions` (OUTBOUND_PARTITIONS) is the count of the co-partitioned family (`partitions_for`);
    None keeps the catalog's counts. The app, the CLI and the chart's tests all read the catalog here,
    so the worker declares the counts `topics apply` creates (Faust compares them).

    The changelogs are created here, with their source topic's partition count, rather than left to
    Faust: a worker that created one at start-up sometimes still saw it with no partitions and
    refused every write to that table (PartitionsMismatch), seen once in a test run.
    """
    if partitions is not None and partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    doc = orjson.loads(path.read_bytes())
    groups: list[list[str]] = doc.get("copartitioned", [])
    counts = {key: int(spec["partitions"]) for key, spec in doc["topics"].items()}
    family = family_partitions(counts, groups)
    topics = {
        key: TopicSpec(
            key=key,
            name=f"{prefix}{key}",
            partitions=partitions_for(counts[key], family, partitions),
            replication=replication,
            configs={k: str(v) for k, v in spec.get("configs", {}).items()},
            follows_setting=family is not None and counts[key] == family,
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
                follows_setting=topics[source].follows_setting,
            )
    for group in groups:
        if len({topics[key].partitions for key in group}) != 1:
            raise ValueError(f"topic catalog: {group} must have the same partition count")
    return Catalog(topics)


@dataclass(frozen=True)
class TopicDifference:
    topic: str
    what: str


@dataclass(frozen=True)
class TopicPlan:
    """What `topics apply` will do: create the missing topics, report the ones that differ.

    `withheld`: missing topics not created because an existing topic's partition count differs. A
    topic created now would keep its count for good, and with the counts in dispute it could only
    be created wrong for one side (a co-partitioned topic unequal to its group)."""

    create: list[TopicSpec]
    differences: list[TopicDifference]
    unchanged: list[str]
    withheld: list[TopicSpec] = field(default_factory=list)
    partitions_differ: bool = False


def partition_change_refusal(current: int, wanted: int, follows_setting: bool = False) -> str:
    """Why `topics apply` never changes a partition count: a key's partition is hash(key) % count, so a
    new count moves keys away from the table state and the co-partitioned topics that hold them.

    For the co-partitioned family (`follows_setting`) the count comes from OUTBOUND_PARTITIONS (the
    chart's kafka.partitions): the message names it, and the value that matches the cluster."""
    why = (
        "not changed: tables and co-partitioned topics place every key by the partition count, so changing "
        "it strands their state"
    )
    if follows_setting:
        return (
            f"partitions: cluster has {current}, OUTBOUND_PARTITIONS (chart value kafka.partitions) wants "
            f"{wanted}; {why}; an existing deployment keeps its count: set OUTBOUND_PARTITIONS={current}, "
            "or re-partition into a new topic prefix and app id (README, Re-partitioning)"
        )
    return (
        f"partitions: cluster has {current}, catalog wants {wanted}; {why} "
        "(re-partition by replaying into a new app id: README, Re-partitioning)"
    )


def plan_topics(catalog: Catalog, existing: dict[str, tuple[int, dict[str, str]]]) -> TopicPlan:
    """Compare the catalog with the cluster (`existing`: name -> (partitions, configs)).

    A partition count that differs withholds every creation (`TopicPlan.withheld`); a config that
    differs is only reported."""
    create: list[TopicSpec] = []
    differences: list[TopicDifference] = []
    unchanged: list[str] = []
    partitions_differ = False
    for spec in catalog:
        if spec.name not in existing:
            create.append(spec)
            continue
        partitions, configs = existing[spec.name]
        found = []
        if partitions != spec.partitions:
            partitions_differ = True
            refusal = partition_change_refusal(partitions, spec.partitions, spec.follows_setting)
            found.append(TopicDifference(spec.name, refusal))
        for key, wanted in sorted(spec.configs.items()):
            actual = configs.get(key)
            if actual != wanted:
                found.append(TopicDifference(spec.name, f"{key}: cluster has {actual}, catalog wants {wanted}"))
        differences.extend(found)
        if not found:
            unchanged.append(spec.name)
    if partitions_differ:
        return TopicPlan([], differences, unchanged, withheld=create, partitions_differ=True)
    return TopicPlan(create, differences, unchanged)
