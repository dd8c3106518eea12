"""Bounded inputs: e-mail deliveries have a size limit (and a 1 GiB file does not grow the worker), an
order number with line breaks still delivers by e-mail with a one-line subject, a hook's long answer
is not read whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.destinations.zapier import MAX_ANSWER_BYTES
from service.planning.payloads import header_text
from tests.events import order_event, recipe_with_assets, unique
from tests.integrations import RAW_FEED, integration
from tests.security.worker_inputs import command, first_results, publish_integrations, send_commands
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

MiB = 1024**2


def status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def reset_peak(pid: int) -> int:
    """Clear the process's peak RSS (VmHWM) and answer its RSS now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status(pid)["VmRSS"]


def production_file(url: str, name: str) -> dict[str, str]:
    return {"kind": "production", "name": name, "mimeType": "application/octet-stream", "url": url}


async def test_email_over_the_limit_fails_for_good_and_a_1_gib_file_does_not_grow_the_worker(
    deployment, worker, destinations
):
    tenant = unique("big")
    mail = integration(tenant, "email", {"to": f"{tenant}@factory.example"}, RAW_FEED)
    await publish_integrations(deployment, [worker], [mail])
    base = destinations.http.base
    # Declared too large (Content-Length), and 1 GiB streamed with no length: both stop at the limit.
    declared = command(mail, [production_file(f"{base}/big/{21 * MiB}?as=dst", f"{tenant}-Declared.dst")])
    streamed = command(mail, [production_file(f"{base}/stream/{1024 * MiB}?as=dst", f"{tenant}-Front.dst")])
    assert worker.proc is not None
    before = reset_peak(worker.proc.pid)
    await send_commands(deployment, [declared, streamed])
    results = await first_results(deployment, [declared, streamed], timeout=180)
    grown = status(worker.proc.pid)["VmHWM"] - before
    print(f"\nworker peak RSS growth, 1 GiB file to an e-mail integration: {grown / MiB:.1f} MiB")
    for sent in (declared, streamed):
        result = results[sent["deliveryId"]]
        assert result["outcome"] == "failed" and result["final"], result
        assert "over the 20 MiB limit for e-mail" in result["error"] and "SFTP or S3" in result["error"]
    assert grown < 64 * MiB
    assert destinations.smtp.inbox.to(f"{tenant}@factory.example") == []


async def test_an_email_near_the_limit_is_streamed_not_held_in_memory(deployment, worker, destinations):
    tenant = unique("near")
    mail = integration(tenant, "email", {"to": f"{tenant}@factory.example"}, RAW_FEED)
    await publish_integrations(deployment, [worker], [mail])
    sent = command(mail, [production_file(f"{destinations.http.base}/big/{19 * MiB}?as=dst", f"{tenant}-Front.dst")])
    assert worker.proc is not None
    before = reset_peak(worker.proc.pid)
    await send_commands(deployment, [sent])
    [result] = (await first_results(deployment, [sent], timeout=180)).values()
    grown = status(worker.proc.pid)["VmHWM"] - before
    print(f"\nworker peak RSS growth, a 19 MiB e-mail delivery: {grown / MiB:.1f} MiB")
    assert result["outcome"] == "delivered", result
    [message] = destinations.smtp.inbox.to(f"{tenant}@factory.example")
    [attachment] = [p for p in message.walk() if p.get_filename() == f"{tenant}-Front.dst"]
    assert len(attachment.get_payload(decode=True)) == 19 * MiB
    # Written to the spool a block at a time, then streamed to the relay: never whole in memory.
    assert grown < 32 * MiB


async def test_an_order_number_with_line_breaks_still_delivers_by_email(deployment, worker, destinations):
    tenant = unique("crlf")
    mail = integration(
        tenant,
        "email",
        {"to": f"{tenant}@factory.example", "subject-prefix": "[ACME]\u2028Bcc: x@evil.example"},
        RAW_FEED,
    )
    mail["events"] = ["order.created"]
    await publish_integrations(deployment, [worker], [mail])
    recipe, _ = recipe_with_assets(destinations, tenant)
    number = "10\u202822\u0085Bcc: victim@evil.example\u2029X\x85"
    order = order_event(tenant, [recipe["recipeId"]], orderNumber=number)
    await deployment.produce_json("recipes", [recipe], "recipeId")
    await deployment.produce_json("orders", [order], "orderId")
    [result] = await deployment.wait_json("delivery-results", lambda d: d["tenant"] == tenant, 1, timeout=120)
    assert result["outcome"] == "delivered", result
    [message] = destinations.smtp.inbox.to(f"{tenant}@factory.example")
    assert "victim@evil.example" not in message["X-Envelope-To"] and message["Bcc"] is None
    assert " ".join(str(message["Subject"]).split()) == header_text(
        f"[ACME]\u2028Bcc: x@evil.example Order {number} (ID {order['orderId']}), recipe {recipe['recipeId']}"
    )
    assert all(part.get_filename() is None or "\u2028" not in part.get_filename() for part in message.walk())


async def test_a_hook_answer_is_read_up_to_its_cap(deployment, worker, destinations):
    """A hook answering a never-ending body: the delivery still completes, on the status alone."""
    tenant = unique("cap")
    name = f"{tenant}-endless"
    destinations.http.hook_bodies[name] = 50 * MiB
    hook = integration(tenant, "zapier", {"hook-url": f"{destinations.http.base}/hook/{name}"}, RAW_FEED)
    await publish_integrations(deployment, [worker], [hook])
    sent = command(hook)
    await send_commands(deployment, [sent])
    [result] = (await first_results(deployment, [sent])).values()
    assert result["outcome"] == "delivered", result
    await wait_for(lambda: destinations.http.hook_body_sent[name] > 0, 30, "the hook to answer")
    assert destinations.http.hook_body_sent[name] < 50 * MiB  # the worker stopped reading
    assert MAX_ANSWER_BYTES == 64 * 1024
