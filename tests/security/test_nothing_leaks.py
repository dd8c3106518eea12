"""S3: after deliveries with known secret values (a hook-url counts as one) and known customer personal
data, every log line, every topic's bytes, every API answer and every notification holds none of them.
S4: every API route answers 401 without a token, and bad input a 4xx with a JSON error."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from service import operators
from service.kafka_admin import read_topic
from tests.deployments import Deployment
from tests.events import order_event, recipe_with_assets, unique
from tests.integrations import ORDER_FEED, azure_settings, integration, s3_settings, sftp_settings
from tests.security.worker_inputs import publish_integrations
from tests.stores import make_bucket
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def every_topic(deployment: Deployment) -> dict[str, bytes]:
    """Every topic of the deployment (its prefix; the tables' changelogs too), keys and values."""
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(deployment.prefix)]
    finally:
        await admin.close()
    found = {}
    for name in names:
        records = await read_topic({"bootstrap_servers": deployment.bootstrap}, name)
        found[name] = b"\n".join((r.key or b"") + b"\t" + (r.value or b"") for r in records)
    return found


def hits(where: str, text: str, needles: dict[str, str]) -> list[str]:
    return [f"{what} in {where}" for what, needle in needles.items() if needle in text]


async def test_no_secret_and_no_personal_data_anywhere(deployment, worker, destinations):
    tenant = unique("s3scan")
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    await make_bucket(destinations, bucket)
    hook_path = f"/hook/{tenant}-{uuid.uuid4().hex}"
    secrets = {
        "hook-url": f"{destinations.http.base}{hook_path}",
        "hook path": hook_path,
        "signing-secret": "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "s3 access key": f"AKIA{uuid.uuid4().hex[:16].upper()}",
        "s3 secret key": f"s3-secret-{uuid.uuid4().hex}",
        "sftp password": destinations.sftp.password,
    }
    azure = await azure_settings(destinations, f"c-{uuid.uuid4().hex[:12]}")
    sas = re.search(r"sig=([^&;]+)", azure["connection-string-secure"])
    assert sas
    secrets["azure sas signature"] = sas.group(1)
    person = {
        "customer name": f"Ada Lovelace-{uuid.uuid4().hex[:8]}",
        "customer e-mail": f"ada.{uuid.uuid4().hex[:8]}@customer.example",
        "street": f"{uuid.uuid4().hex[:8]} Analytical Engine Street 12",
        "city": f"Marylebone-{uuid.uuid4().hex[:6]}",
    }
    notified = [f"ok-{tenant}@ops.example", f"alerts-{tenant}@ops.example"]
    lists = {
        "successNotificationList": notified[0],
        "failureNotificationList": notified[1],
    }
    configs = [
        integration(
            tenant,
            "zapier",
            {"hook-url": secrets["hook-url"], "signing-secret": secrets["signing-secret"]},
            ORDER_FEED,
            **lists,
        ),
        integration(
            tenant,
            "s3",
            s3_settings(destinations, bucket)
            | {"access-key-secret": secrets["s3 access key"], "secret-key-secret": secrets["s3 secret key"]},
            ORDER_FEED,
            **lists,
        ),
        integration(tenant, "sftp", sftp_settings(destinations, tenant), ORDER_FEED, **lists),
        integration(tenant, "azure", azure, ORDER_FEED, **lists),
        # A container that does not exist: Azurite's answer explains it in a body that must stay out.
        integration(tenant, "azure", azure | {"container": f"missing-{uuid.uuid4().hex[:8]}"}, ORDER_FEED, **lists),
    ]
    destinations.http.hook_statuses[hook_path.rsplit("/", 1)[1]] = [422]  # fails for good: a notification
    await publish_integrations(deployment, [worker], configs)
    recipe, _ = recipe_with_assets(destinations, tenant)
    order = order_event(
        tenant,
        [recipe["recipeId"]],
        customer={"name": person["customer name"], "email": person["customer e-mail"]},
        shippingAddress={"street": person["street"], "city": person["city"], "country": "GB"},
    )
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order], "orderId")
    results = await deployment.wait_json(
        "delivery-results", lambda d: d["tenant"] == tenant and d["final"], len(configs), timeout=150
    )
    outcomes = sorted((r["integrationType"], r["outcome"]) for r in results)
    assert outcomes == [
        ("azure", "delivered"),
        ("azure", "failed"),
        ("s3", "delivered"),
        ("sftp", "delivered"),
        ("zapier", "failed"),
    ], results
    inbox = destinations.smtp.inbox
    await wait_for(lambda: len(inbox.to(notified[0])) == 3 and len(inbox.to(notified[1])) == 2, 60, "notifications")

    found: list[str] = []
    remote = {"Azurite's explanation": "specified container does not exist"}
    for topic, data in (await every_topic(deployment)).items():
        text = data.decode("utf-8", "replace")
        found += hits(topic, text, secrets | remote)
        if topic != deployment.topic("orders"):  # the upstream input itself, where the test put them
            found += hits(topic, text, person)
    found += hits("the worker's log", worker.log.read_text(errors="replace"), secrets | person | remote)
    for message in inbox.to(notified[0]) + inbox.to(notified[1]):
        found += hits(f"notification {message['Subject']}", message.as_string(), secrets | person | remote)
    async with worker.api() as client:
        for path in (
            f"/v1/orders/{order['orderId']}",
            f"/v1/tenants/{tenant}/order-numbers/{order['orderNumber']}",
            f"/v1/recipes/{recipe['recipeId']}",
            f"/v1/tenants/{tenant}/orders",
            f"/v1/tenants/{tenant}/failures",
            f"/v1/status/orders/{order['orderId']}",
            f"/v1/integrations?tenant={tenant}",
        ):
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            found += hits(path, answer.text, secrets | person | remote)
        listed = (await client.get(f"/v1/integrations?tenant={tenant}")).json()["integrations"]
    assert found == []
    # The hook-url is shown as its scheme and host only.
    [hook] = [i for i in listed if i["type"] == "zapier"]
    assert hook["settings"]["hook-url"] == f"{destinations.http.base}/********"


def api_routes() -> list[str]:
    """Every route the API's route modules register (read from their source, so a new route is covered
    too)."""
    sources = sorted(Path(operators.__file__).parent.glob("*_routes.py"))
    return [route for source in sources for route in re.findall(r'@app\.page\("([^"]+)"\)', source.read_text())]


PUBLIC_ROUTES = ("/health/", "/ops")


def sample(route: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: {"kind": "orders"}.get(m.group(1), "x1"), route)


async def test_every_api_route_needs_a_token(worker):
    routes = [r for r in api_routes() if not r.startswith(PUBLIC_ROUTES)]
    assert "/v1/triggers" in routes and len(routes) >= 10
    async with worker.api() as client:
        client.headers.pop("Authorization")
        for route in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}):
                answer = await client.get(sample(route), headers=headers)
                if answer.status_code == 405:
                    answer = await client.post(sample(route), json={}, headers=headers)
                assert answer.status_code == 401, (route, headers, answer.status_code, answer.text)
                assert "error" in answer.json()


async def test_bad_input_is_a_4xx_with_a_json_error(worker):
    bad: list[tuple[str, str, Any]] = [
        ("GET", "/v1/tenants/acme/orders?page=abc", None),
        ("GET", "/v1/tenants/acme/orders?pageSize=100000", None),
        ("GET", "/v1/tenants/acme/failures?days=-3", None),
        ("GET", "/v1/orders/" + "x" * 5000, None),
        ("GET", "/v1/orders/%00%0d%0a", None),
        ("GET", "/v1/status/nothing/x", None),
        ("POST", "/v1/triggers", b"not json"),
        ("POST", "/v1/triggers", b"[]"),
        ("POST", "/v1/triggers", b"{}"),
        ("POST", "/v1/triggers", b'{"tenant": "acme", "orderId": "o1", "mode": "everything"}'),
        ("POST", "/v1/triggers", b'{"tenant": "acme", "orderId": "o1", "orderNumber": "1"}'),
        ("POST", "/v1/triggers", b"{" * 100_000),
    ]
    async with worker.api() as client:
        for method, path, body in bad:
            answer = await client.request(method, path, content=body)
            assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text[:200])
            assert isinstance(answer.json().get("error"), str), (method, path, answer.text[:200])
