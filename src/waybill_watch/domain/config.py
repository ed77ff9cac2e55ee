"""Detection thresholds (contract §6 defaults). Pure data: the core reads, never the environment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DetectionSettings(BaseModel):
    """Every threshold of every detector; defaults are the contract's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # transit_stall
    transit_stall_hours: float = Field(48.0, gt=0, description="picked_up/in_transit, no new scan")
    last_mile_stall_hours: float = Field(24.0, gt=0, description="out_for_delivery, no new scan")
    # locker_uncollected
    locker_uncollected_hours: float = Field(48.0, gt=0)
    # no_first_scan
    no_first_scan_hours: float = Field(24.0, gt=0)
    # suspicious_signature
    odd_hours_start: int = Field(0, ge=0, le=23, description="local hour, inclusive")
    odd_hours_end: int = Field(6, ge=1, le=24, description="local hour, exclusive")
    local_timezone: str = "Asia/Shanghai"
    # bulk_signing
    bulk_signing_threshold: int = Field(20, ge=1)
    bulk_signing_window_minutes: int = Field(10, ge=1)
    bulk_signing_late_hours: float = Field(
        24.0, gt=0, description="how long after its end a window still counts late signatures"
    )
    # feed_silence
    feed_silence_min_updates: int = Field(60, ge=1)
    feed_silence_lookback_minutes: int = Field(60, ge=1)
    feed_silence_quiet_minutes: int = Field(30, ge=1)
    # site_stall_spike
    site_stall_open_threshold: int = Field(10, ge=1)
    site_stall_resolve_below: int = Field(5, ge=1)
    # signed_not_received escalation ladder, hours after open
    action_contact_recipient_hours: float = 2.0
    action_request_sign_proof_hours: float = 24.0
    action_escalate_platform_hours: float = 48.0
    action_escalate_regulator_hours: float = 168.0
    # Housekeeping, not in the contract: retire the state of a quiet waybill
    waybill_retention_days: float = Field(
        30.0,
        ge=0,
        description="days without a new fact (nothing open, no deadline pending) before a "
        "waybill's state is replaced by a small marker; 0 keeps every state forever",
    )
    retired_marker_days: float = Field(
        180.0,
        ge=0,
        description="days after retirement before the marker is deleted too; 0 keeps markers",
    )
