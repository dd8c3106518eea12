"""What a delivery, a trigger and a row of the operators' view are about, and the key they share.

An order's deliveries are keyed by its orderId, a raw-feed recipe's by its recipeId, on every topic
from the delivery commands to the results and in the `order-view` table: one key puts them all in
one partition, so the worker that owns it sees an order's whole story.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["order", "recipe"]


def view_key(order_id: str | None, recipe_id: str | None) -> str:
    """The orderId, else (a raw-feed delivery or trigger) the recipeId."""
    return order_id or str(recipe_id)


def kind_of(order_id: str | None) -> Kind:
    return "order" if order_id else "recipe"
