"""OUTBOUND_PARTITIONS: a new deployment's co-partitioned topics get its count, and keep it."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from service.catalog import load_catalog
from service.kafka_admin import topic_partitions
from service.settings import Settings
from tests.deployments import Deployment, Worker, configure, new_deployment
from tests.events import of_tenant, order_event, recipe_with_assets, unique
from tests.integrations import local_integration

pytestmark = pytest.mark.integration


async def broker_partitions(deployment: Deployment, names: list[str]) -> dict[str, int]:
    """Each topic's partition count as the broker's metadata has it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=deployment.bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        return {name: len(await topic_partitions(consumer, name)) for name in names}
    finally:
        await consumer.stop()


async def test_a_new_deployment_of_12_partitions_is_created_kept_and_runs(kafka, destinations):
    deployment = new_deployment(kafka, OUTBOUND_PARTITIONS="12", **destinations.worker_env())
    catalog = load_catalog(Settings().topic_catalog, deployment.prefix, 1, f"{deployment.prefix}app", partitions=12)
    family = [spec.name for spec in catalog if spec.follows_setting]
    assert deployment.topic("order-links") in family and f"{deployment.prefix}app-recipes-changelog" in family
    on_broker = await broker_partitions(deployment, [spec.name for spec in catalog])
    assert on_broker == {spec.name: spec.partitions for spec in catalog}
    assert {on_broker[name] for name in family} == {12}
    assert on_broker[deployment.topic("integrations")] == 1 and on_broker[deployment.topic("invalid-events")] == 3

    again = deployment.cli("topics", "apply", check=False, OUTBOUND_PARTITIONS="6")
    assert again.returncode == 3, again.stdout + again.stderr
    refused = [line for line in again.stdout.splitlines() if line.startswith("differs ")]
    assert len(refused) == len(family), again.stdout
    assert all("cluster has 12, OUTBOUND_PARTITIONS" in line and "wants 6" in line for line in refused)
    assert "set OUTBOUND_PARTITIONS=12" in refused[0] and "OUTBOUND_PARTITIONS=6" in again.stderr
    assert await broker_partitions(deployment, family) == dict.fromkeys(family, 12), "nothing changed"

    worker = await Worker(deployment, "w12").start().ready()
    try:
        tenant = unique("p")
        await configure(deployment, [worker], local_integration(tenant, ["order.created"]))
        recipe, contents = recipe_with_assets(destinations, tenant)
        order = order_event(tenant, [recipe["recipeId"]])
        await deployment.produce_json("recipes", [recipe], "recipeId")
        await deployment.produce_json("orders", [order], "orderId")
        [result] = await deployment.wait_json("delivery-results", of_tenant(tenant), 1, timeout=90)
        assert result["outcome"] == "delivered", result
        prefix = f"{order['orderNumber']}_ID_{order['orderId']}_R_{recipe['recipeId']}_"
        delivered = {p.name for p in (deployment.workdir / "deliveries" / tenant).iterdir()}
        assert delivered == {f"{prefix}{name}.{ext}" for name, ext in contents} | {f"{prefix}manifest.json"}
    finally:
        worker.stop()
    assert "PartitionsMismatch" not in worker.log.read_text()
