"""`outbound`: run the worker, manage topics and integrations."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from service.catalog import Catalog, load_catalog
from service.kafka_admin import apply_topics, broker_answers
from service.secrets import SecretBox, SecretKeyError, redact_settings
from service.settings import Settings, get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
topics_cli = typer.Typer(no_args_is_help=True, help="The topic catalog.")
integrations_cli = typer.Typer(
    no_args_is_help=True, help="Integration configurations (the compacted integrations topic)."
)
cli.add_typer(topics_cli, name="topics")
cli.add_typer(integrations_cli, name="integrations")


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
    return load_catalog(settings.topic_catalog, settings.topic_prefix, settings.replication_factor, settings.app_id)


@cli.command()
def worker() -> None:
    """Run the stream-processing worker (Faust) until stopped. Log level: OUTBOUND_LOG_LEVEL."""
    settings = get_settings()
    require_broker(settings)
    from service.worker import run_worker

    run_worker(settings.log_level)


@topics_cli.command("apply")
def topics_apply() -> None:
    """Create the catalog's missing topics and report the ones that differ (changes nothing else)."""
    settings = get_settings()
    require_broker(settings)
    plan = asyncio.run(apply_topics(settings, catalog_of(settings)))
    for spec in plan.create:
        typer.echo(f"created  {spec.name} partitions={spec.partitions} replication={spec.replication}")
    for name in plan.unchanged:
        typer.echo(f"ok       {name}")
    for diff in plan.differences:
        typer.echo(f"differs  {diff.topic}: {diff.what}")
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
    return {**doc, "settings": redact_settings(doc.get("settings") or {})}


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


def _set_enabled(integration_id: str, enabled: bool) -> None:
    from service.operators.integration_store import publish_integration

    settings = get_settings()
    doc = _current(settings).get(integration_id)
    if doc is None:
        raise fail(f"no integration {integration_id!r}")
    doc["enabled"] = enabled
    asyncio.run(publish_integration(settings, catalog_of(settings), integration_id, orjson.dumps(doc)))
    typer.echo(f"{integration_id} {'enabled' if enabled else 'disabled'}")


@integrations_cli.command("enable")
def integrations_enable(integration_id: str) -> None:
    _set_enabled(integration_id, True)


@integrations_cli.command("disable")
def integrations_disable(integration_id: str) -> None:
    _set_enabled(integration_id, False)


@integrations_cli.command("delete")
def integrations_delete(integration_id: str) -> None:
    """Publish a tombstone: the integration is removed from every worker."""
    from service.operators.integration_store import publish_integration

    settings = get_settings()
    if integration_id not in _current(settings):
        raise fail(f"no integration {integration_id!r}")
    asyncio.run(publish_integration(settings, catalog_of(settings), integration_id, None))
    typer.echo(f"deleted {integration_id}")


@cli.command()
def trigger(
    tenant: Annotated[str, typer.Option(help="the tenant whose integrations run")],
    recipe_id: Annotated[str | None, typer.Option(help="a recipe: its raw-feed integrations")] = None,
    order_id: Annotated[str | None, typer.Option(help="an order, by its id")] = None,
    order_number: Annotated[str | None, typer.Option(help="an order, by its number")] = None,
    integration: Annotated[str | None, typer.Option(help="only this integration")] = None,
    by: Annotated[str, typer.Option(help="who asks, for the record")] = "",
) -> None:
    """Run the tenant's integrations again for one recipe or order, even where they succeeded before."""
    from service.operators.triggers import TriggerRefused, publish_trigger

    settings = get_settings()
    try:
        trigger_id = asyncio.run(
            publish_trigger(settings, catalog_of(settings), tenant, recipe_id, order_id, order_number, integration, by)
        )
    except TriggerRefused as exc:
        typer.echo("error: the trigger is not valid:", err=True)
        for reason in exc.reasons:
            typer.echo(f"  - {reason}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"trigger {trigger_id} published")


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
