"""`outbound`: run the worker, manage topics, integrations and the operator API's tenant tokens."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from pydantic import ValidationError

from service.catalog import Catalog, load_catalog
from service.contracts import OPERATOR_TRIGGER_MODE, TriggerMode
from service.kafka_admin import apply_topics, broker_answers
from service.secrets import SecretBox, SecretKeyError, redact_settings
from service.settings import Settings, get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
topics_cli = typer.Typer(no_args_is_help=True, help="The topic catalog.")
integrations_cli = typer.Typer(
    no_args_is_help=True, help="Integration configurations (the compacted integrations topic)."
)
cli.add_typer(topics_cli, name="topics")
tokens_cli = typer.Typer(
    no_args_is_help=True, help="Tenant tokens of the operator API (their hashes, on the api-tokens topic)."
)
cli.add_typer(integrations_cli, name="integrations")
cli.add_typer(tokens_cli, name="tokens")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def require_broker(settings: Settings) -> None:
    if not asyncio.run(broker_answers(settings, settings.broker_wait_seconds)):
        raise fail(
            f"the Kafka broker at {settings.bootstrap_servers()} did not answer within "
            f"{settings.broker_wait_seconds:.0f}s (check OUTBOUND_BROKER and that Kafka is running)",
            code=2,
        )


def catalog_of(settings: Settings) -> Catalog:
    return load_catalog(
        settings.topic_catalog,
        settings.topic_prefix,
        settings.replication_factor,
        settings.app_id,
        partitions=settings.partitions,
    )


@cli.command()
def worker() -> None:
    """Run the stream-processing worker (Faust) until stopped. Log level: OUTBOUND_LOG_LEVEL."""
    settings = get_settings()
    if settings.secret_keys.get_secret_value().strip():
        # A key that does not parse must stop the start, not silently become "no key" on a ready worker.
        try:
            SecretBox(settings.secret_keys.get_secret_value())
        except SecretKeyError as exc:
            raise fail(f"{exc}; the worker does not start without every configured key", code=2) from exc
    require_broker(settings)
    from service.worker import run_worker

    run_worker(settings.log_level)


@topics_cli.command("apply")
def topics_apply() -> None:
    """Create the catalog's missing topics and report the ones that differ (changes nothing else).

    Co-partitioned topics get OUTBOUND_PARTITIONS partitions; another count on the cluster: exit 3, nothing created."""
    settings = get_settings()
    require_broker(settings)
    plan = asyncio.run(apply_topics(settings, catalog_of(settings)))
    for spec in plan.create:
        typer.echo(f"created  {spec.name} partitions={spec.partitions} replication={spec.replication}")
    for name in plan.unchanged:
        typer.echo(f"ok       {name}")
    for spec in plan.withheld:
        typer.echo(f"withheld {spec.name}: not created while a partition count differs (partitions={spec.partitions})")
    for diff in plan.differences:
        typer.echo(f"differs  {diff.topic}: {diff.what}")
    if plan.partitions_differ:
        typer.echo(
            f"error: existing topics have other partition counts than OUTBOUND_PARTITIONS={settings.partitions} "
            "and the catalog give them (differs lines above): nothing created, nothing changed",
            err=True,
        )
    if plan.differences:
        raise typer.Exit(3)


def _box(settings: Settings) -> SecretBox:
    try:
        return SecretBox(settings.secret_keys.get_secret_value())
    except SecretKeyError as exc:
        raise fail(str(exc)) from exc


@integrations_cli.command("put")
def integrations_put(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Validate an integration configuration, encrypt its secrets and publish it."""
    from service.operators.integration_store import (
        IntegrationRefused,
        check_new_integration,
        publish_integration,
        sealed,
    )

    settings = get_settings()
    try:
        config = check_new_integration(file.read_bytes(), settings)
    except IntegrationRefused as exc:
        typer.echo(f"error: {file} is not a valid integration configuration:", err=True)
        for reason in exc.reasons:
            typer.echo(f"  - {reason}", err=True)
        raise typer.Exit(1) from exc
    except orjson.JSONDecodeError as exc:
        raise fail(f"{file} is not JSON: {exc.msg}") from exc
    value = sealed(config, _box(settings))
    require_broker(settings)
    asyncio.run(publish_integration(settings, catalog_of(settings), config.id, value))
    typer.echo(
        f"published {config.id} ({config.type}, tenant {config.tenant}, {'enabled' if config.enabled else 'disabled'})"
    )


def _current(settings: Settings) -> dict[str, dict[str, Any]]:
    from service.operators.integration_store import read_integrations

    require_broker(settings)
    return asyncio.run(read_integrations(settings, catalog_of(settings)))


def _redacted(doc: dict[str, Any]) -> dict[str, Any]:
    try:  # with the keys, a sealed hook-url shows its scheme and host; without, nothing of it
        box: SecretBox | None = SecretBox(get_settings().secret_keys.get_secret_value())
    except SecretKeyError:
        box = None
    # A configuration put before `preflight` existed gets the default: show what the worker applies
    # (and its rate limits, null for none, as the API shows them).
    return {
        **doc,
        "preflight": doc.get("preflight") or "strict",
        # null: no late-delivery alert (the setting is optional).
        "deliverWithinMinutes": doc.get("deliverWithinMinutes"),
        "maxPerSecond": doc.get("maxPerSecond"),
        "maxConcurrent": doc.get("maxConcurrent"),
        "settings": redact_settings(doc.get("settings") or {}, box),
    }


@integrations_cli.command("list")
def integrations_list(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None) -> None:
    """One line per integration: id, tenant, type, enabled, events."""
    for key, doc in sorted(_current(get_settings()).items()):
        if tenant and doc.get("tenant") != tenant:
            continue
        state = "enabled" if doc.get("enabled") else "disabled"
        typer.echo(f"{key}\t{doc.get('tenant')}\t{doc.get('type')}\t{state}\t{','.join(doc.get('events') or [])}")


@integrations_cli.command("show")
def integrations_show(integration_id: str) -> None:
    """One integration as JSON, secrets redacted."""
    doc = _current(get_settings()).get(integration_id)
    if doc is None:
        raise fail(f"no integration {integration_id!r}")
    typer.echo(orjson.dumps(_redacted(doc), option=orjson.OPT_INDENT_2).decode())


def _publish_config(settings: Settings, integration_id: str, doc: dict[str, Any]) -> None:
    from service.operators.integration_store import publish_integration

    asyncio.run(publish_integration(settings, catalog_of(settings), integration_id, orjson.dumps(doc)))


def _configured(settings: Settings, integration_id: str) -> dict[str, Any]:
    doc = _current(settings).get(integration_id)
    if doc is None:
        raise fail(f"no integration {integration_id!r}")
    return doc


@integrations_cli.command("enable")
def integrations_enable(
    integration_id: str,
    redrive_failed: Annotated[
        bool,
        typer.Option("--redrive", help="also deliver what failed for good while the service had it turned off"),
    ] = False,
) -> None:
    """Turn an integration on (again); after the service turned it off, offer to re-drive what it kept."""
    from service.planning.health import enabled_config

    settings = get_settings()
    doc = _configured(settings, integration_id)
    _publish_config(settings, integration_id, enabled_config(doc))
    typer.echo(f"{integration_id} enabled")
    off = doc.get("disabled") if not doc.get("enabled") else None
    if not isinstance(off, dict) or off.get("by") != "service":
        return
    typer.echo(f"the service had turned it off at {off.get('at')}: {off.get('reason')}")
    since = off.get("failingSince") or off.get("at")
    if redrive_failed:
        redrive(tenant=doc.get("tenant"), integration=integration_id, since=since)
        return
    typer.echo(
        "deliver what failed since it began failing: outbound redrive"
        f" --tenant {doc.get('tenant')} --integration {integration_id} --since {since}"
    )


@integrations_cli.command("disable")
def integrations_disable(integration_id: str) -> None:
    """Turn an integration off: its events are not routed to it until it is enabled again."""
    from service.planning.health import operator_disabled_config

    settings = get_settings()
    _publish_config(settings, integration_id, operator_disabled_config(_configured(settings, integration_id)))
    typer.echo(f"{integration_id} disabled")


@integrations_cli.command("delete")
def integrations_delete(integration_id: str) -> None:
    """Publish a tombstone: the integration is removed from every worker."""
    from service.operators.integration_store import publish_integration

    settings = get_settings()
    if integration_id not in _current(settings):
        raise fail(f"no integration {integration_id!r}")
    asyncio.run(publish_integration(settings, catalog_of(settings), integration_id, None))
    typer.echo(f"deleted {integration_id}")


TokenScope = Literal["read", "operate"]


def _tenant_name(tenant: str) -> str:
    from service.operators.request_checks import TENANT

    if not TENANT.match(tenant):
        raise fail(f"{tenant!r} is not a tenant name (lower-case letters, digits and dashes)")
    return tenant


@tokens_cli.command("issue")
def tokens_issue(
    tenant: Annotated[str, typer.Option(help="the one tenant the token sees")],
    scope: Annotated[TokenScope, typer.Option(help="read: look-ups only; operate: also trigger, replay, re-drive")] = (
        "read"
    ),
    note: Annotated[str, typer.Option(help="who or what the token is for, shown by `tokens list`")] = "",
) -> None:
    """Issue a tenant token: printed once, here; only its SHA-256 is published."""
    from service.operators.token_store import issue

    settings = get_settings()
    _tenant_name(tenant)
    require_broker(settings)
    token, record = asyncio.run(issue(settings, catalog_of(settings), tenant, scope, note))
    typer.echo(f"issued {record.id} (tenant {tenant}, {scope}); the token, shown only now:", err=True)
    typer.echo(token)


@tokens_cli.command("list")
def tokens_list(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None) -> None:
    """One line per token not revoked: id, tenant, scope, issued at, note (never the token)."""
    from service.operators.token_store import issued

    settings = get_settings()
    if tenant is not None:
        _tenant_name(tenant)
    require_broker(settings)
    for record in asyncio.run(issued(settings, catalog_of(settings))):
        if tenant is None or record.tenant == tenant:
            typer.echo(f"{record.id}\t{record.tenant}\t{record.scope}\t{record.issuedAt}\t{record.note}")


@tokens_cli.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token: every worker refuses it once it reads the tombstone (within seconds)."""
    from service.operators.token_store import revoke

    settings = get_settings()
    require_broker(settings)
    if not asyncio.run(revoke(settings, catalog_of(settings), token_id)):
        raise fail(f"no token {token_id!r} is issued (see `outbound tokens list`)")
    typer.echo(f"revoked {token_id}")


@cli.command()
def trigger(
    tenant: Annotated[str, typer.Option(help="the tenant whose integrations run")],
    recipe_id: Annotated[str | None, typer.Option(help="a recipe: its raw-feed integrations")] = None,
    order_id: Annotated[str | None, typer.Option(help="an order, by its id")] = None,
    order_number: Annotated[str | None, typer.Option(help="an order, by its number")] = None,
    integration: Annotated[str | None, typer.Option(help="only this integration")] = None,
    by: Annotated[str, typer.Option(help="who asks, for the record")] = "",
    mode: Annotated[
        TriggerMode, typer.Option(help="failed-only: what failed for good; all: everything, even what succeeded")
    ] = OPERATOR_TRIGGER_MODE,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would be sent where (asks a worker's API)")
    ] = False,
) -> None:
    """Run the tenant's integrations again for one recipe or order."""
    from service.operators.triggers import TriggerRefused, publish_trigger, trigger_document

    settings = get_settings()
    if dry_run:
        body: dict[str, Any] = {
            "tenant": tenant,
            "recipeId": recipe_id,
            "orderId": order_id,
            "orderNumber": order_number,
        }
        body.update(integrationId=integration, mode=mode, dryRun=True, requestedBy=by or None)
        plan = _api(settings, "POST", "/v1/triggers", {k: v for k, v in body.items() if v is not None})
        typer.echo(f"dry run ({mode}): {len(plan['deliveries'])} deliveries would be sent")
        _table(
            ["recipe", "integration", "type", "event", "files"],
            [
                [d["recipeId"], d["integrationId"], d["integrationType"], d["eventType"], str(len(d["files"]))]
                for d in plan["deliveries"]
            ],
        )
        return
    try:
        doc = trigger_document(tenant, recipe_id, order_id, order_number, integration, by, datetime.now(UTC))
        trigger_id = asyncio.run(publish_trigger(settings, catalog_of(settings), doc, mode))
    except TriggerRefused as exc:
        typer.echo("error: the trigger is not valid:", err=True)
        for reason in exc.reasons:
            typer.echo(f"  - {reason}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"trigger {trigger_id} published ({mode})")


def _api(settings: Settings, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A worker's operator API (OUTBOUND_API_URL, default this host's worker), with the configured token."""
    import httpx

    base = settings.api_url or f"http://127.0.0.1:{settings.web_port}"
    token = (settings.api_token.get_secret_value() or settings.api_read_token.get_secret_value()).strip()
    if not token:
        raise fail("set OUTBOUND_API_TOKEN or OUTBOUND_API_READ_TOKEN to ask the worker's API")
    try:
        response = httpx.request(
            method, base + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    except httpx.HTTPError as exc:
        raise fail(f"the worker API at {base} did not answer ({type(exc).__name__}); set OUTBOUND_API_URL", 2) from exc
    if response.status_code >= 400:
        try:
            error = response.json().get("error", response.text)
        except ValueError:
            error = response.text
        raise fail(f"{response.status_code}: {error}")
    return response.json()


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


@cli.command()
def status(
    order_id: Annotated[str | None, typer.Option(help="an order, by its id")] = None,
    order_number: Annotated[str | None, typer.Option(help="an order, by its number (with --tenant)")] = None,
    tenant: Annotated[str | None, typer.Option(help="the order number's tenant")] = None,
    recipe_id: Annotated[str | None, typer.Option(help="a recipe: its raw-feed deliveries and orders")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer as it is")] = False,
) -> None:
    """An order's (or recipe's) deliveries, as the operator API shows them."""
    from urllib.parse import quote

    settings = get_settings()
    if sum(x is not None for x in (order_id, order_number, recipe_id)) != 1:
        raise fail("name exactly one of --order-id, --order-number (with --tenant) or --recipe-id")
    if order_number is not None and not tenant:
        raise fail("--order-number needs --tenant")
    path = (
        f"/v1/orders/{quote(order_id, safe='')}"
        if order_id
        else f"/v1/tenants/{quote(str(tenant), safe='')}/order-numbers/{quote(order_number, safe='')}"
        if order_number
        else f"/v1/recipes/{quote(str(recipe_id), safe='')}"
    )
    view = _api(settings, "GET", path)
    if as_json:
        typer.echo(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
        return
    print_view(view)


def print_view(view: dict[str, Any]) -> None:
    if view["kind"] == "order":
        typer.echo(
            f"order {view['orderNumber']} (id {view['orderId']}, tenant {view['tenant']}): {view['summary']}"
            f" — last event {view['lastEventType']}{', cancelled' if view.get('cancelledAt') else ''}"
        )
        for line in view["lines"]:
            waiting = f"  [{line['state']}]" if line.get("state") else ""
            typer.echo(f"  line {line['itemId']}: recipe {line['recipeId']} x{line['itemQuantity']}{waiting}")
    else:
        orders = ", ".join(o["orderNumber"] for o in view.get("orders") or []) or "none"
        typer.echo(f"recipe {view['recipeId']} (tenant {view['tenant']}): {view['summary']}; in orders: {orders}")
    rows = []
    for integration in view["integrations"]:
        for d in integration["deliveries"]:
            last = d["attempts"][-1] if d["attempts"] else {}
            rows.append(
                [
                    integration["integrationId"],
                    d["recipeId"],
                    d["eventType"] + (" (manual)" if d["manual"] else ""),
                    d["state"],
                    str(len(d["attempts"])),
                    str(last.get("finishedAt") or "")[:19],
                    str(last.get("error") or ""),
                ]
            )
    _table(["integration", "recipe", "event", "state", "attempts", "last attempt", "last error"], rows)


ReplayTopic = Literal["recipes", "orders"]


def _when(option: str, text: str | None) -> datetime | None:
    from service.planning.replay import BadRequest, parse_when

    if text is None:
        return None
    try:
        return parse_when(text, datetime.now(UTC))
    except BadRequest as exc:
        raise fail(f"{option}: {exc}") from exc


def _run_with_progress(label: str, run: Callable[[Callable[[int, int], None] | None], Coroutine[Any, Any, Any]]) -> Any:
    """Runs `run`, with a progress bar when a person watches (a terminal), plain output otherwise."""
    if not sys.stdout.isatty():
        return asyncio.run(run(None))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None)
        return asyncio.run(run(lambda done, total: bar.update(task, completed=done, total=total)))


def _print_tally(what: str, tally: Any) -> None:
    published = "nothing (dry run)" if tally.dry_run else str(tally.published)
    typer.echo(f"{what} {tally.id}: read {tally.read}, matched {tally.matched}, published {published}")
    if tally.skipped_delivered:
        typer.echo(f"  {tally.skipped_delivered} failed deliveries were left out: delivered since they failed")


@cli.command()
def replay(
    topic: Annotated[ReplayTopic, typer.Argument(help="the input topic to replay: recipes or orders")],
    since: Annotated[str | None, typer.Option(help="from this message time (ISO 8601, or a span ago: 6h, 3d)")] = None,
    until: Annotated[str | None, typer.Option(help="up to this message time, not included")] = None,
    from_offset: Annotated[int | None, typer.Option(help="from this offset (every partition, or --partition)")] = None,
    to_offset: Annotated[int | None, typer.Option(help="up to this offset, not included")] = None,
    partition: Annotated[int | None, typer.Option(help="only this partition")] = None,
    tenant: Annotated[str | None, typer.Option(help="only this tenant's events")] = None,
    recipe_id: Annotated[str | None, typer.Option(help="only this recipe's events (orders: with a line of it)")] = None,
    order_id: Annotated[str | None, typer.Option(help="only this order's events")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="only this event type")] = None,
    to_integration: Annotated[
        str | None, typer.Option(help="deliver only to this integration (one catching up on history)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be replayed; publish nothing")] = False,
) -> None:
    """Re-publish input events of a window into their topic, marked as a replay; the same window replayed
    twice delivers the same names and webhook ids (an overwrite, not a copy)."""
    from service.operators.replay import replay as run_replay
    from service.planning.replay import BadRequest, ReplayFilter, Window

    settings = get_settings()
    window = Window(_when("--since", since), _when("--until", until), from_offset, to_offset, partition)
    chosen = ReplayFilter(topic, tenant, recipe_id, order_id, event_type)
    try:
        window.check()
        chosen.check()
    except BadRequest as exc:
        raise fail(str(exc)) from exc
    if to_integration is not None and to_integration not in _current(settings):
        raise fail(f"no integration {to_integration!r}")
    require_broker(settings)
    tally = _run_with_progress(
        f"replaying {topic}",
        lambda progress: run_replay(
            settings,
            catalog_of(settings),
            window,
            chosen,
            to_integration=to_integration,
            dry_run=dry_run,
            progress=progress,
        ),
    )
    _print_tally("replay", tally)


@cli.command()
def redrive(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's failed deliveries")] = None,
    integration: Annotated[str | None, typer.Option(help="only this integration's")] = None,
    since: Annotated[str | None, typer.Option(help="failed from this time (ISO 8601, or a span ago: 6h, 3d)")] = None,
    until: Annotated[str | None, typer.Option(help="failed before this time")] = None,
    error: Annotated[str | None, typer.Option(help="only failures whose error text contains this")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be re-driven; publish nothing")] = False,
) -> None:
    """Deliver again what failed for good (deliveries-failed), once the destination is fixed: each a new
    series of attempts, with the same names and webhook id. Deliveries done since are left out."""
    from service.operators.replay import redrive as run_redrive
    from service.planning.replay import RedriveFilter

    settings = get_settings()
    chosen = RedriveFilter(tenant, integration, _when("--since", since), _when("--until", until), error)
    if chosen.since is not None and chosen.until is not None and chosen.until <= chosen.since:
        raise fail("--until must be later than --since")
    require_broker(settings)
    tally = _run_with_progress(
        "reading deliveries-failed",
        lambda progress: run_redrive(settings, catalog_of(settings), chosen, dry_run=dry_run, progress=progress),
    )
    _print_tally("redrive", tally)


@cli.command()
def reconcile(
    tenant: Annotated[str, typer.Option(help="the tenant whose deliveries are checked")],
    integration: Annotated[str | None, typer.Option(help="only this integration's deliveries")] = None,
    since: Annotated[str, typer.Option(help="deliveries from this time (ISO 8601, or a span ago: 6h, 3d)")] = "7d",
    order_id: Annotated[str | None, typer.Option(help="only this order's deliveries")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check and report; send nothing again")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the figures and problems as JSON")] = False,
    leftovers_after: Annotated[
        str | None,
        typer.Option(
            "--leftovers-after",
            help="remove the service's temporary files and incomplete uploads older than this span (90m, 2h);"
            " default: twice the longest an attempt may write",
        ),
    ] = None,
) -> None:
    """Check that each destination still holds the files its deliveries of the window handed over (by
    name, size and SHA-256 where the store keeps one), and deliver again, under the same delivery id
    and names, each delivery of which a file is missing or different. Exit 1 when a destination could
    not be checked."""
    from service.operators.reconcile import reconcile as run_reconcile
    from service.operators.reconcile_report import report_lines
    from service.planning.reconcile import ReconcileFilter

    settings = get_settings()
    start = _when("--since", since)
    assert start is not None
    before = _when("--leftovers-after", leftovers_after)
    if integration is not None and integration not in _current(settings):
        raise fail(f"no integration {integration!r}")
    require_broker(settings)
    tally = _run_with_progress(
        "reading delivery-results",
        lambda progress: run_reconcile(
            settings,
            catalog_of(settings),
            ReconcileFilter(tenant, integration, order_id),
            start,
            dry_run=dry_run,
            progress=progress,
            leftovers_before=before,
        ),
    )
    if as_json:
        typer.echo(orjson.dumps(tally.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        for line in report_lines(tally.as_dict()):
            typer.echo(line)
    if tally.errors:
        raise typer.Exit(1)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
    except ValidationError as exc:
        # A setting out of its bounds: say which variable and why, not a traceback through pydantic.
        if exc.title != Settings.__name__:
            raise
        for problem in exc.errors():
            name = "OUTBOUND_" + "_".join(str(part) for part in problem["loc"]).upper()
            typer.echo(f"error: {name}: {problem['msg']}", err=True)
        sys.exit(2)
