"""Typed contracts: the input events (as `schemas/` defines them) and the service's own messages.

Input models allow unknown fields (kept, ignored). Personal data (customer, shippingAddress) is
excluded from repr so that it cannot reach a log line by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

RecipeEventType = Literal["recipe.created"]
OrderEventType = Literal["order.created", "order.updated", "order.cancelled"]
EventType = Literal["recipe.created", "order.created", "order.updated", "order.cancelled"]
IntegrationType = Literal["email", "sftp", "s3", "azure", "zapier", "local"]
FileKind = Literal["recipe", "ticket", "production", "preview", "attachment"]
PreflightMode = Literal["strict", "basic", "off"]
ORDER_EVENT_TYPES: tuple[str, ...] = ("order.created", "order.updated", "order.cancelled")


class InputModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class RecipeFile(InputModel):
    kind: FileKind
    name: str
    type: str
    mimeType: str
    url: str


class RecipeEvent(InputModel):
    type: RecipeEventType
    eventId: str
    occurredAt: datetime
    tenant: str
    recipeId: str
    temporary: bool = False
    files: list[RecipeFile]


class LineItem(InputModel):
    itemId: str
    recipeId: str
    itemQuantity: int
    sku: str | None = None


class OrderEvent(InputModel):
    type: OrderEventType
    eventId: str
    occurredAt: datetime
    tenant: str
    orderId: str
    orderNumber: str
    lineItems: list[LineItem]
    customer: dict[str, Any] | None = Field(default=None, repr=False)
    shippingAddress: dict[str, Any] | None = Field(default=None, repr=False)


class Disabled(InputModel):
    """When and why an integration was turned off; `service` when the service did it on its own."""

    at: datetime
    reason: str
    by: Literal["service", "operator"] = "operator"
    # The first failure of the run that turned it off: where the re-drive of what it kept starts.
    failingSince: datetime | None = None


class Integration(InputModel):
    id: str
    tenant: str
    type: IntegrationType
    description: str = ""
    enabled: bool
    events: list[EventType]
    successNotificationList: str = ""
    failureNotificationList: str = ""
    settings: dict[str, Any] = Field(repr=False)
    # Which pre-flight checks a delivery's files pass before anything is handed over
    # (service/planning/preflight.py): every check, empty files and error pages only, or none.
    preflight: PreflightMode = "strict"
    # Minutes from an order event's occurredAt by which its files must be here; None: no late alert.
    deliverWithinMinutes: float | None = None
    # Set while it is off (service/planning/health.py): the service turns off a receiver gone for good.
    disabled: Disabled | None = None
    # The most attempts per second, and at once, the receiver gets from the whole deployment
    # (service/planning/pacing.py): None is no limit of the integration's own.
    maxPerSecond: float | None = None
    maxConcurrent: int | None = None


# failed-only: the (recipe, integration) pairs whose latest delivery failed for good; all: every
# matching integration, even where it succeeded before.
TriggerMode = Literal["failed-only", "all"]
TRIGGER_MODES: tuple[TriggerMode, ...] = get_args(TriggerMode)
# What an operator gets without naming a mode, in the API and the CLI alike: only what failed, so that
# nothing delivered is sent again by accident. The topic's own default is `Trigger.mode`'s.
OPERATOR_TRIGGER_MODE: TriggerMode = "failed-only"


class Trigger(InputModel):
    triggerId: str
    requestedAt: datetime
    tenant: str
    recipeId: str | None = None
    orderId: str | None = None
    orderNumber: str | None = None
    integrationId: str | None = None
    requestedBy: str = ""
    # The topic's default: absent on triggers older than the mode, and those ran everything again.
    mode: TriggerMode = "all"
    dryRun: bool = False


class ServiceMessage(BaseModel):
    """The service's own messages between its agents.

    Fields a newer worker added are ignored, not refused: during a rolling upgrade old and new workers
    read each other's messages, and a refused internal message would be parked instead of delivered."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class OrderLink(ServiceMessage):
    """A request to deliver one recipe, keyed by recipeId so that it meets its recipe in the join's
    partition: an order line item, or a manual trigger (manual, eventId = the triggerId, and no
    order for a raw-feed trigger)."""

    eventId: str
    eventType: EventType
    occurredAt: datetime
    tenant: str
    orderId: str | None = None
    orderNumber: str | None = None
    itemId: str | None = None
    recipeId: str
    manual: bool = False
    integrationId: str | None = None
    replay: str | None = None  # the replay that re-published the event (outbound replay)


class DeliveryFile(ServiceMessage):
    kind: FileKind
    name: str
    mimeType: str
    url: str
    # The recipe's declared type (pre-flight checks go by it); absent on older commands: the name's extension.
    type: str | None = None


class AttemptError(ServiceMessage):
    attempt: int
    at: datetime
    error: str


class DeliveryCommand(ServiceMessage):
    """Deliver one recipe's files to one integration, for one event. Carries no secrets.

    On deliveries-retry it also carries the next attempt's number, when it is due, and the errors
    of the attempts so far.
    """

    deliveryId: str
    integrationId: str
    integrationType: IntegrationType
    tenant: str
    eventType: EventType
    eventId: str
    recipeId: str
    orderId: str | None = None
    orderNumber: str | None = None
    files: list[DeliveryFile]
    manual: bool = False
    occurredAt: datetime | None = None
    attempt: int = 1
    dueAt: datetime | None = None
    errors: list[AttemptError] = []
    createdAt: datetime
    # Set on the commands of a replayed event, and on re-driven failures (outbound redrive).
    replay: str | None = None
    redrive: str | None = None
    # The attempt a series began with: a re-drive goes on numbering attempts (the history stays
    # readable) and gets the full number of attempts again.
    seriesStart: int = 1
    # Set on a delivery sent again because its destination no longer held its files (outbound reconcile).
    reconcile: str | None = None
    # Set on a command parked on the retry path to wait for its integration's rate, not after a
    # failure: its attempt number stays, and it waits in the waiting room whatever its due time.
    paced: bool = False


Outcome = Literal["delivered", "failed", "superseded", "skipped"]


class DeliveredFile(ServiceMessage):
    """One file a delivered attempt handed over (the manifest too), as it arrived and was checked."""

    name: str
    bytes: int
    sha256: str


class DeliveryResult(ServiceMessage):
    """What happened to one attempt of one delivery (topic delivery-results)."""

    deliveryId: str
    integrationId: str
    integrationType: IntegrationType
    tenant: str
    eventType: EventType
    recipeId: str
    orderId: str | None = None
    orderNumber: str | None = None
    attempt: int
    startedAt: datetime
    finishedAt: datetime
    bytes: int = 0
    outcome: Outcome
    error: str | None = None
    final: bool = True
    replay: str | None = None
    redrive: str | None = None
    reconcile: str | None = None
    # Set when delivered: each file with its size and SHA-256, so a destination can be checked against it.
    files: list[DeliveredFile] = []
