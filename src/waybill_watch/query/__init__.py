"""Waybill queries on the worker's port (contract §9): the live per-waybill state, answered
by the worker that owns the waybill's partition, forwarded to it from any other worker."""
