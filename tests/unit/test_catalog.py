import orjson
import pytest
from pydantic import ValidationError

from service.catalog import family_partitions, load_catalog, partitions_for, plan_topics
from service.settings import Settings

# The catalog's own counts besides the family's: the 1-partition compacted views every worker reads
# whole, and the 3-partition topics. These never follow OUTBOUND_PARTITIONS.
FIXED = {
    "integrations": 1,
    "order-index": 1,
    "api-tokens": 1,
    "deliveries-failed": 3,
    "notifications": 3,
    "invalid-events": 3,
}


def catalog():
    return load_catalog(Settings().topic_catalog, "p.", 1)


def test_every_design_topic_is_in_the_catalog_under_the_prefix():
    names = {t.name for t in catalog()}
    for key in [
        "recipes",
        "orders",
        "integrations",
        "triggers",
        "order-links",
        "deliveries",
        "deliveries-retry",
        "deliveries-failed",
        "delivery-results",
        "notifications",
        "invalid-events",
    ]:
        assert f"p.{key}" in names


def test_join_topics_are_copartitioned_and_integrations_compacted():
    c = catalog()
    assert c["recipes"].partitions == c["order-links"].partitions
    assert c["integrations"].configs["cleanup.policy"] == "compact"


def test_plan_creates_missing_and_reports_differences_without_changing_them():
    c = catalog()
    existing = {t.name: (t.partitions, dict(t.configs)) for t in c}
    existing["p.recipes"] = (6, {"retention.ms": "1"})
    existing["p.integrations"] = (1, {"cleanup.policy": "delete"})
    del existing["p.orders"]
    plan = plan_topics(c, existing)
    assert [t.name for t in plan.create] == ["p.orders"] and not plan.withheld and not plan.partitions_differ
    assert {d.topic for d in plan.differences} == {"p.recipes", "p.integrations"}
    assert "p.deliveries" in plan.unchanged


def test_a_partition_count_that_differs_withholds_every_creation():
    c = catalog()
    existing = {t.name: (t.partitions, dict(t.configs)) for t in c}
    existing["p.recipes"] = (3, dict(c["recipes"].configs))
    del existing["p.orders"]
    plan = plan_topics(c, existing)
    assert plan.create == [] and [t.name for t in plan.withheld] == ["p.orders"] and plan.partitions_differ
    assert [d.topic for d in plan.differences] == ["p.recipes"]


def test_plan_of_an_applied_catalog_is_empty():
    c = catalog()
    plan = plan_topics(c, {t.name: (t.partitions, dict(t.configs)) for t in c})
    assert not plan.create and not plan.differences


def test_table_changelogs_are_declared_with_their_source_partitions():
    c = load_catalog(Settings().topic_catalog, "p.", 1, app_id="p.app")
    orders = c["table:orders"]
    assert orders.name == "p.app-orders-changelog" and orders.configs == {"cleanup.policy": "compact"}
    assert orders.partitions == c["order-events"].partitions
    assert c["table:pending-links"].partitions == c["order-links"].partitions


def test_a_different_partition_count_is_reported_with_why_it_is_not_changed():
    catalog = load_catalog(Settings().topic_catalog, "", 1, "app")
    existing = {t.name: (t.partitions, dict(t.configs)) for t in catalog}
    existing["orders"] = (12, existing["orders"][1])
    plan = plan_topics(catalog, existing)
    [difference] = plan.differences
    assert difference.topic == "orders" and "cluster has 12, OUTBOUND_PARTITIONS" in difference.what
    assert "wants 6" in difference.what and "set OUTBOUND_PARTITIONS=12" in difference.what
    assert "strands" in difference.what and "new topic prefix and app id" in difference.what and plan.create == []


def test_a_fixed_topic_that_differs_is_reported_against_the_catalog_not_the_setting():
    catalog = load_catalog(Settings().topic_catalog, "", 1, "app", partitions=12)
    existing = {t.name: (t.partitions, dict(t.configs)) for t in catalog}
    existing["invalid-events"] = (4, existing["invalid-events"][1])
    [difference] = plan_topics(catalog, existing).differences
    assert "cluster has 4, catalog wants 3" in difference.what and "OUTBOUND_PARTITIONS" not in difference.what


@pytest.mark.parametrize(
    ("catalog_count", "partitions", "expected"),
    [(6, 12, 12), (6, 1, 1), (6, 6, 6), (6, None, 6), (1, 12, 1), (3, 12, 3), (3, 3, 3)],
)
def test_the_rule_every_topic_of_the_family_count_follows_the_setting(catalog_count, partitions, expected):
    assert partitions_for(catalog_count, 6, partitions) == expected


def test_without_a_family_every_count_is_the_catalogs():
    assert partitions_for(6, None, 12) == 6
    assert family_partitions({"a": 6, "b": 1}, []) is None


def test_the_family_is_the_one_count_of_the_copartitioned_groups():
    assert family_partitions({"a": 6, "b": 6, "c": 6, "d": 1}, [["a", "b"], ["b", "c"]]) == 6
    with pytest.raises(ValueError, match="share one partition count"):
        family_partitions({"a": 6, "b": 6, "c": 8, "d": 8}, [["a", "b"], ["c", "d"]])


def test_a_deployment_of_12_partitions_gives_the_whole_family_and_its_changelogs_12():
    c = load_catalog(Settings().topic_catalog, "p.", 1, app_id="p.app", partitions=12)
    doc = orjson.loads(Settings().topic_catalog.read_bytes())
    for group in doc["copartitioned"]:
        assert {c[key].partitions for key in group} == {12}, group
    for table, source in doc["tables"].items():
        assert c[f"table:{table}"].partitions == c[source].partitions == 12, table
    assert c["recipes"].partitions == c["orders"].partitions == 12, "the upstream inputs scale with the rest"
    assert {key: c[key].partitions for key in FIXED} == FIXED
    followers = {t.key for t in c if t.follows_setting}
    assert followers == {t.key for t in c if t.partitions == 12}
    assert {t.key for t in c} - followers == set(FIXED)


def test_the_settings_default_is_the_catalogs_family_count():
    doc = orjson.loads(Settings().topic_catalog.read_bytes())
    counts = {key: spec["partitions"] for key, spec in doc["topics"].items()}
    assert Settings().partitions == family_partitions(counts, doc["copartitioned"]) == 6
    default = load_catalog(Settings().topic_catalog, "p.", 1, "app", partitions=Settings().partitions)
    assert default == load_catalog(Settings().topic_catalog, "p.", 1, "app")


def test_partitions_setting_is_bounded(monkeypatch):
    monkeypatch.setenv("OUTBOUND_PARTITIONS", "12")
    assert Settings().partitions == 12
    for bad in ("0", "1001"):
        monkeypatch.setenv("OUTBOUND_PARTITIONS", bad)
        with pytest.raises(ValidationError, match="partitions"):
            Settings()
