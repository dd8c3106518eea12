"""Reading integration configurations from the global table."""

from __future__ import annotations

from service.app import integrations_table
from service.contracts import Integration


def all_integrations() -> list[Integration]:
    return [Integration.model_validate(doc) for doc in integrations_table.values() if doc is not None]


def find_integration(integration_id: str) -> Integration | None:
    doc = integrations_table.get(integration_id)
    return Integration.model_validate(doc) if doc is not None else None
