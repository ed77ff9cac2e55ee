"""Signals: which facts the waybill engine re-keys for the aggregate detectors."""

from __future__ import annotations

from waybill_watch.domain.signals import Signal, SignalKind

from .helpers import WAYBILL, Driver, at, scan


def test_every_update_and_each_new_recipient_signature_with_a_site() -> None:
    d = Driver()
    signed = scan("delivered", at(2), site="三墩站", sign_type="recipient")
    d.update(scan("out_for_delivery", at(1), site="三墩站"), signed)
    d.update(signed, now=at(3))  # a re-push: counted as an update, not a second signature
    d.update(scan("delivered", at(4), sign_type="recipient"))  # no site: not attributable
    d.update(scan("delivered", at(5), site="三墩站", sign_type="proxy"))  # not the recipient

    assert [(s.kind, s.key) for s in d.signals] == [
        (SignalKind.UPDATE_RECEIVED, "YTO"),
        (SignalKind.RECIPIENT_SIGNED, "YTO:三墩站"),
        (SignalKind.UPDATE_RECEIVED, "YTO"),
        (SignalKind.UPDATE_RECEIVED, "YTO"),
        (SignalKind.UPDATE_RECEIVED, "YTO"),
    ]
    signature = d.signals[1]
    assert (signature.waybill, signature.at, signature.ref) == (WAYBILL, at(2), signed.event_id)
    assert signature.for_site and not d.signals[0].for_site


def test_signal_round_trips_through_plain_json() -> None:
    signal = Signal(
        SignalKind.STALL_OPENED, key="YTO:三墩站", courier="YTO", at=at(3), site="三墩站"
    )
    assert Signal.from_dict(signal.to_dict()) == signal
