from service.catalog import load_catalog, plan_topics
from service.settings import Settings


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
    existing["p.recipes"] = (3, dict(c["recipes"].configs))
    existing["p.integrations"] = (1, {"cleanup.policy": "delete"})
    del existing["p.orders"]
    plan = plan_topics(c, existing)
    assert [t.name for t in plan.create] == ["p.orders"]
    assert {d.topic for d in plan.differences} == {"p.recipes", "p.integrations"}
    assert "p.deliveries" in plan.unchanged


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
    assert difference.topic == "orders" and "cluster has 12, catalog wants 6" in difference.what
    assert "strands" in difference.what and "new app id" in difference.what and plan.create == []
