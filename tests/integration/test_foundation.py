"""The foundation: the catalog applied to a real broker, a worker that consumes it, clear errors."""

from __future__ import annotations

import subprocess

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from service.catalog import load_catalog
from service.settings import Settings
from tests.deployments import OUTBOUND, configure, new_deployment
from tests.events import recipe_event, unique
from tests.integrations import local_integration

pytestmark = pytest.mark.integration


async def test_topics_apply_creates_the_catalog_with_its_partitions_and_configs(kafka):
    deployment = new_deployment(kafka)
    catalog = load_catalog(Settings().topic_catalog, deployment.prefix, 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([s.name for s in catalog])}
        assert described == {spec.name: spec.partitions for spec in catalog}
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, catalog["integrations"].name)]
        )
        configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
        assert configs["cleanup.policy"] == "compact"
    finally:
        await admin.close()


def test_topics_apply_twice_changes_nothing_the_second_time(kafka):
    deployment = new_deployment(kafka)
    second = deployment.cli("topics", "apply")
    lines = second.stdout.splitlines()
    assert lines and all(line.startswith("ok ") for line in lines), second.stdout


def test_unreachable_broker_is_a_clear_error_not_a_hang():
    env = {
        "OUTBOUND_BROKER": "kafka://127.0.0.1:1",
        "OUTBOUND_BROKER_WAIT_SECONDS": "1",
        "PATH": "/usr/bin:/bin",
    }
    for args in (["worker"], ["topics", "apply"]):
        result = subprocess.run([OUTBOUND, *args], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert "did not answer" in result.stderr and "Traceback" not in result.stderr


async def test_the_worker_consumes_recipes(deployment, worker):
    tenant = unique("ten")
    integration = local_integration(tenant, ["recipe.created"])
    await configure(deployment, [worker], integration)
    recipe = recipe_event(tenant)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce("recipes", [(b"bad-recipe", b"{not json")])
    [command] = await deployment.wait_json("deliveries", lambda d: d["tenant"] == tenant, 1)
    assert command["recipeId"] == recipe["recipeId"] and command["integrationId"] == integration["id"]
    await deployment.wait_json("invalid-events", lambda d: d["key"] == "YmFkLXJlY2lwZQ==", 1)
