"""The Faust app, its topics (from the catalog) and its tables. No processing logic lives here."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from service.catalog import load_catalog
from service.logs import logging_config
from service.settings import Settings, get_settings

settings: Settings = get_settings()
catalog = load_catalog(
    settings.topic_catalog,
    settings.topic_prefix,
    settings.replication_factor,
    settings.app_id,
    partitions=settings.partitions,
)


def _credentials(s: Settings) -> Any:
    context = ssl.create_default_context(cafile=str(s.ssl_cafile) if s.ssl_cafile else None)
    if s.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    if s.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=s.sasl_username,
            password=s.sasl_password.get_secret_value(),
            mechanism=s.sasl_mechanism,
            ssl_context=context if s.security_protocol == "SASL_SSL" else None,
        )
    return None


PRODUCER_LINGER_SECONDS = 0.005
PRODUCER_MAX_BATCH_BYTES = 256 * 1024


class App(faust.App):
    """Faust's app with its Kafka consumer corrected (service/faust_fixes.py)."""

    # Where a jump in offsets is a hole in the log (compaction), not records dropped on the way.
    compacted_topics: frozenset[str] = frozenset(
        spec.name for spec in catalog if "compact" in spec.configs.get("cleanup.policy", "")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_tasks: list[Callable[[], Awaitable[None]]] = []
        self._before_stop: list[Callable[[], Awaitable[None]]] = []

    def start_task(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Like Faust's `@app.task`, but started with the app instead of after the table recovery: for
        work that needs no table (the live views), so that it is done while the partitions recover, not
        after (a second of every start)."""
        self._start_tasks.append(fn)
        return fn

    async def on_start(self) -> None:
        await super().on_start()
        for fn in self._start_tasks:
            self.add_future(fn())

    def before_stop(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Run `fn` when the worker begins to stop, before Faust stops the consumer and closes the tables."""
        self._before_stop.append(fn)
        return fn

    async def on_stop(self) -> None:
        for fn in self._before_stop:
            await fn()
        await super().on_stop()

    def _new_transport(self) -> Any:
        from service.faust_fixes import Transport

        return Transport(self.conf.broker_consumer, self)


app = App(
    settings.app_id,
    broker=settings.broker,
    broker_credentials=_credentials(settings),
    store="rocksdb://",
    datadir=str(settings.data_dir),
    web_host=settings.web_host,
    web_bind=settings.web_host,
    web_port=settings.web_port,
    canonical_url=settings.canonical_url or f"http://{settings.web_host}:{settings.web_port}",
    web_in_thread=False,
    topic_replication_factor=settings.replication_factor,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    autodiscover=False,
    # Deliveries can take minutes (a 200 MB upload): the consumer must not be evicted meanwhile.
    broker_max_poll_interval=1800.0,
    broker_session_timeout=settings.broker_session_timeout_seconds,
    consumer_group_instance_id=settings.instance_id or None,
    # Faust refuses a session timeout longer than its request timeout (90 s by default) at start.
    broker_request_timeout=max(90.0, settings.broker_session_timeout_seconds),
    stream_wait_empty=False,
    # invalid-events carries refused input base64-encoded, a third larger than the input limit.
    producer_max_request_size=4 * 1024 * 1024,
    # The stages do not wait for each send (streams/machinery/barrier.py): a few milliseconds of linger and
    # larger batches let one produce request carry a round's records instead of a handful.
    producer_linger=PRODUCER_LINGER_SECONDS,
    producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
    logging_config=logging_config(settings.log_level),
    # Faust's worker without the terminal spinner, which kept the root logger at DEBUG (service/worker.py).
    Worker="service.worker:Worker",
    # Faust's table recovery with the stream partitions sought before they resume (service/faust_fixes.py).
    TableManager="service.faust_fixes:TableManager",
    # Faust's assignor, which also takes back an assignment made for this worker at an older URL.
    PartitionAssignor="service.faust_fixes:StaticMemberAssignor",
)


def topic(key: str) -> Any:
    """A catalog topic carrying raw bytes: the service decodes and validates values itself."""
    spec = catalog[key]
    return app.topic(spec.name, partitions=spec.partitions, key_serializer="raw", value_serializer="raw")


recipes_topic = topic("recipes")
orders_topic = topic("orders")
integrations_topic = topic("integrations")
triggers_topic = topic("triggers")
recipe_events_topic = topic("recipe-events")
order_events_topic = topic("order-events")
order_links_topic = topic("order-links")
order_index_topic = topic("order-index")
deliveries_topic = topic("deliveries")
deliveries_retry_topic = topic("deliveries-retry")
deliveries_failed_topic = topic("deliveries-failed")
delivery_results_topic = topic("delivery-results")
notifications_topic = topic("notifications")
invalid_events_topic = topic("invalid-events")
integration_health_topic = topic("integration-health")


JSON_SCHEMA: faust.Schema = faust.Schema(key_serializer="json", value_serializer="json")


def table(name: str, **options: Any) -> Any:
    """A RocksDB table whose changelog the catalog declares (and `topics apply` creates); `options` are
    its RocksDB options (faust.stores.rocksdb.RocksDBOptions)."""
    return app.Table(name, partitions=catalog[f"table:{name}"].partitions, schema=JSON_SCHEMA, options=options or None)


# recipeId -> validated recipe event (fed by the join from recipes where placed, else recipe-events)
recipes_table = table("recipes")
# recipeId -> order links that arrived before their recipe
pending_links_table = table("pending-links")
# orderId -> the order without personal data, and its latest event (fed by the orders stage from
# orders where placed, else order-events)
orders_table = table("orders")
# "<integrationId>|<due>|<tier>|<deliveryId>|<attempt>" -> a retry waiting for its due time (fed by
# deliveries-retry, in its partitions; service/streams/state/waiting_room.py). Small write buffers and block
# cache: its entries are written once, read once when due, and must cost disk, not memory (Faust's
# defaults are 64 MiB of memtable and a 2 GiB block cache per partition).
waiting_retries_table = table(
    "waiting-retries", write_buffer_size=1024**2, max_write_buffer_number=2, block_cache_size=1024**2
)
# "<due>|<eventId>|<integrationId>" -> an order event's deadline at an integration with deliverWithinMinutes
# (fed by the orders stage, in the order's partition; service/planning/deadlines.py). Written once, read
# once when due, like the waiting retries: small buffers and cache.
deadlines_table = table(
    "delivery-deadlines", write_buffer_size=1024**2, max_write_buffer_number=2, block_cache_size=1024**2
)
# integrationId -> its run of deliveries failed for good, its last success, when the service turned it
# off (fed by integration-health; service/planning/health.py). One small row per integration.
integration_health_table = table("integration-health")
