"""``waybill-watch simulate``: synthetic courier traffic with injected, labelled anomalies.

``generator.Generator`` plans waybills (normal lives and one-anomaly scenarios) and streams
capture envelopes in ``received_at`` order; its ``labels`` list every anomaly the detectors
must open. Kept import-free: the main CLI imports ``simulate.cli`` on every start.
"""
