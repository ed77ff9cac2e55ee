"""Merchant order events (contract §4), topic ``orders.events`` keyed by waybill."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from waybill_watch.models.base import Timestamp, WireModel

OrderEventType = Literal["shipped", "receipt_confirmed", "not_received_reported"]


class Destination(WireModel):
    """Where the parcel should go (used by the ``city_mismatch`` check)."""

    province: str | None = None
    city: str | None = None
    district: str | None = None


class OrderEvent(WireModel):
    """A merchant-side fact about an order's parcel."""

    type: OrderEventType
    waybill: str = Field(min_length=1, max_length=64)
    courier: str | None = Field(default=None, max_length=32)
    merchant: str | None = None
    order_id: str | None = None
    occurred_at: Timestamp
    promised_delivery_at: Timestamp | None = None
    destination: Destination | None = None
