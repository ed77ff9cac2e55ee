"""The stored form of ``WaybillState`` (``state.py``): layout v2, and the loader of v1.

v2 (what ``to_bytes`` writes) is a 7-byte header, two binary blocks, then one orjson list::

    header   struct "<BHHH": version 2, n scans, o order facts, m evicted refs
    ids      16 bytes per scan, then per order fact: the scan's event id, the fact's ``ref``
             (32 lower-case hex digits each) as binary
    evicted  8 bytes per evicted ref (16 hex digits)
    body     [waybill, courier, strings, base, next_due, last_scan_received, scans, orders,
              merchant_hint, retired, alerts, episodes, odd_ids, odd_evicted]
             scans: [] or [gaps, S, P, C, K, X]
             Trailing empty fields are left off (the loader supplies them).

* ``strings``: the site and city names, order cities, merchants and order ids, alert codes and
  messages, each once; fields refer to them by number (0 is ``None``, ``i`` is
  ``strings[i - 1]``). Sites and cities repeat along a route, order strings across facts.
* Instants are relative to ``base``, the first scan's event time (else the first order fact's,
  else the retirement horizon): ``next_due``, ``last_scan_received``, order and alert times,
  ``retired``. Scan times are ``gaps`` to the previous scan (scans are sorted: small numbers);
  the first scan is at ``base``.
* Scans column by column: ``gaps``; ``S`` status indexes (``STATUS_CODES``); ``P``, ``C`` site
  and city numbers; ``K`` the courier codes as text (short: numbering them would not pay;
  ``[]`` when a feed has none); ``X``, for the few scans with a sign type, signer or text
  (deliveries, problem scans), a flat list of ``row, sign type (index + 1, 0 for none), signer,
  text``. A text opening with ``【<its scan's site>】``, as couriers' texts usually do, is stored
  without that heading, as ``[rest]``.
* An order fact is ``[t, kind index, city, merchant, order id, promise?]``, its ``ref`` in the
  ids block; an alert ``[kind index, reported, received, code, message]``; an episode
  ``Episode.dump()`` by anomaly type; ``retired`` ``[horizon, retired_at]``.
* Nothing is lost whatever a state holds: an event id or ref that is not 32 lower-case hex
  digits is stored as text in ``odd_ids`` (``index, id, ...``; scans first, then order facts)
  with zero bytes in the block; evicted refs not all 16 hex digits go as text in
  ``odd_evicted`` (and m is 0).

v1 (``STATE_VERSION`` 1, the previous release; loaded, written back as v2): one orjson list
``[1, waybill, courier, merchant_hint, scans, evicted, orders, alerts, episodes, next_due,
last_scan_received, retired?]`` of the records' v1 list forms (``ScanRecord.load_v1`` etc.).
"""

from __future__ import annotations

import struct
from itertools import accumulate, repeat
from operator import sub
from typing import TYPE_CHECKING, Any

import orjson

from waybill_watch.domain.records import (
    ALERT_CODES,
    ORDER_KINDS,
    SIGN_CODES,
    STATUS_CODES,
    AlertFact,
    Episode,
    OrderFact,
    ScanRecord,
)
from waybill_watch.domain.types import CourierAlertKind, SignType

if TYPE_CHECKING:
    from waybill_watch.domain.state import WaybillState

VERSION = 2
V1 = 1

_HEAD = struct.Struct("<BHHH")
_ID, _REF = 16, 8  # bytes of a binary event id or order ref, of an evicted ref
_BODY, _SCANS = 14, 6  # fields of the body, of its scans part
_EMPTY: tuple[Any, ...] = ()
_NOTHING: tuple[Any, ...] = ([], (), {})  # empty fields (``in`` compares with ==: 0 is not)

_STATUS_INDEX = {s: i for i, s in enumerate(STATUS_CODES)}
_SIGN_NUMBER: dict[SignType | None, int] = {None: 0, **{s: i + 1 for i, s in enumerate(SIGN_CODES)}}
_SIGN_OF: tuple[SignType | None, ...] = (None, *SIGN_CODES)
_ORDER_KIND_INDEX = {k: i for i, k in enumerate(ORDER_KINDS)}
_ALERT_INDEX = {k: i for i, k in enumerate(ALERT_CODES)}


def _alert_kind(alert: AlertFact) -> CourierAlertKind:
    return alert.kind


# -- writing -------------------------------------------------------------------------------


def encode(state: WaybillState) -> bytes:
    """``state`` in layout v2 (see the module docstring)."""
    scans, orders, retired = state.scans, state.orders, state.retired
    table: dict[str | None, int] = {None: 0}  # string -> its number, in order of appearance
    intern = table.setdefault
    if scans:
        base = scans[0].t
        part = _scan_columns(scans, table)
        ids = [r.event_id for r in scans]
    else:
        base = orders[0].t if orders else retired[0] if retired is not None else 0
        part, ids = [], []
    order_rows: list[list[Any]] = []
    for f in orders:
        row = [
            f.t - base,
            _ORDER_KIND_INDEX[f.kind],
            intern(f.city, len(table)),
            intern(f.merchant, len(table)),
            intern(f.order_id, len(table)),
        ]
        if f.promise is not None:
            row.append(f.promise - base)
        order_rows.append(row)
        ids.append(f.ref)
    packed_ids, odd_ids = _pack_ids(ids)
    evicted = state.evicted
    packed_refs = _packed(evicted, _REF) if evicted else b""
    odd_evicted = _EMPTY if packed_refs is not None else evicted

    due, received = state.next_due, state.last_scan_received
    body: list[Any] = [
        state.waybill,
        state.courier,
        None,  # the strings, once all are numbered
        base,
        due - base if due is not None else None,
        received - base if received is not None else None,
        part,
        order_rows,
    ]
    alerts, episodes, hint = state.alerts, state.episodes, state.merchant_hint
    if hint is not None or retired is not None or alerts or episodes or odd_ids or odd_evicted:
        body += (
            hint,
            [retired[0] - base, retired[1] - base] if retired is not None else None,
            [
                [
                    _ALERT_INDEX[a.kind],
                    a.reported - base,
                    a.received - base,
                    intern(a.code, len(table)),
                    intern(a.message, len(table)),
                ]
                for a in sorted(alerts.values(), key=_alert_kind)
            ],
            {t: e.dump() for t, e in sorted(episodes.items())},
            odd_ids,
            odd_evicted,
        )
    del table[None]
    body[2] = list(table)
    while body[-1] is None or body[-1] in _NOTHING:
        body.pop()
    head = _HEAD.pack(VERSION, len(scans), len(orders), len(evicted) if packed_refs else 0)
    return b"".join((head, packed_ids, packed_refs or b"", orjson.dumps(body)))


def _scan_columns(scans: list[ScanRecord], table: dict[str | None, int]) -> list[Any]:
    """The scans part of the body (the event ids go to the ids block)."""
    intern = table.setdefault
    times = [r.t for r in scans]
    statuses = [_STATUS_INDEX[r.status] for r in scans]
    sites = [intern(r.site, len(table)) for r in scans]
    cities = [intern(r.city, len(table)) for r in scans]
    codes = [r.code for r in scans]
    if codes.count(None) == len(codes):
        codes = []
    extras: list[Any] = []
    rows = [
        i
        for i, r in enumerate(scans)
        if r.text is not None or r.sign_type is not None or r.signer is not None
    ]
    for row in rows:
        r = scans[row]
        text, site = r.text, r.site
        stored: str | list[str] | None = text
        if text and site and text.startswith(f"【{site}】"):
            stored = [text[len(site) + 2 :]]
        extras += (row, _SIGN_NUMBER[r.sign_type], r.signer, stored)
    part = [list(map(sub, times[1:], times)), statuses, sites, cities, codes, extras]
    if not extras:
        del part[-1]
    return part


def _pack_ids(ids: list[str]) -> tuple[bytes, list[Any]]:
    """``ids`` as 16 bytes each, and ``[index, id, ...]`` for those that are not 32 lower-case
    hex digits (stored as text, their 16 bytes zero)."""
    packed = _packed(ids, _ID)
    if packed is not None:
        return packed, []  # the usual case
    parts: list[bytes] = []
    odd: list[Any] = []
    for index, text in enumerate(ids):
        raw = _packed([text], _ID)
        if raw is None:
            raw = bytes(_ID)
            odd += (index, text)
        parts.append(raw)
    return b"".join(parts), odd


def _packed(texts: list[str], size: int) -> bytes | None:
    """``texts`` as ``size`` bytes each when each is exactly the lower-case hex digits of its
    bytes (what the loader's ``hex(" ", size).split(" ")`` gives back), else ``None``."""
    spaced = " ".join(texts)
    try:
        packed = bytes.fromhex(spaced)  # skips the spaces
    except ValueError:
        return None
    if len(packed) == size * len(texts) and packed.hex(" ", size) == spaced:
        return packed
    return None


# -- loading -------------------------------------------------------------------------------


def decode(cls: type[WaybillState], data: bytes | bytearray | memoryview | str) -> WaybillState:
    """A state stored in layout v2 or v1; ``ValueError`` for anything else."""
    if isinstance(data, str):
        return _decode_v1(cls, data)
    if not isinstance(data, bytes):
        data = bytes(data)
    first = data[0] if data else None
    if first == VERSION:
        return _decode_v2(cls, data)
    if first == 0x5B:  # "[": a v1 list
        return _decode_v1(cls, data)
    raise ValueError(f"unsupported waybill state version {first!r}")


def _decode_v2(cls: type[WaybillState], data: bytes) -> WaybillState:
    _, n, o, m = _HEAD.unpack_from(data)
    at = _HEAD.size + (n + o) * _ID
    ids = data[_HEAD.size : at].hex(" ", _ID).split(" ") if n + o else []
    refs = data[at : at + m * _REF]
    body = orjson.loads(data[at + m * _REF :])
    if len(body) < _BODY:
        body += [None] * (_BODY - len(body))
    waybill, courier, table, base, due, received, part, orders, hint = body[:9]
    retired, alerts, episodes, odd_ids, odd_evicted = body[9:]
    strings: list[str | None] = [None, *table]
    if odd_ids:
        for i in range(0, len(odd_ids), 2):
            ids[odd_ids[i]] = odd_ids[i + 1]
    return cls(  # the fields in declaration order
        waybill,
        courier,
        hint,
        _scans(part, n, base, ids, strings) if n else [],
        refs.hex(" ", _REF).split(" ") if m else list(odd_evicted or _EMPTY),
        _orders(orders, base, ids[n:], strings) if o else [],
        _alerts(alerts, base, strings) if alerts else {},
        {t: Episode.load(e) for t, e in episodes.items()} if episodes else {},
        base + due if due is not None else None,
        base + received if received is not None else None,
        (base + retired[0], base + retired[1]) if retired else None,
    )


def _scans(
    part: list[Any], n: int, base: int, ids: list[str], strings: list[str | None]
) -> list[ScanRecord]:
    if len(part) < _SCANS:
        part += [None] * (_SCANS - len(part))
    gaps, statuses, sites, cities, codes, extras = part
    signs: list[SignType | None] = [None] * n
    signers: list[str | None] = [None] * n
    texts: list[str | None] = [None] * n
    if extras:
        for i in range(0, len(extras), 4):
            row = extras[i]
            signs[row] = _SIGN_OF[extras[i + 1]]
            signers[row] = extras[i + 2]
            text = extras[i + 3]
            texts[row] = f"【{strings[sites[row]]}】{text[0]}" if text.__class__ is list else text
    string = strings.__getitem__
    return list(
        map(
            ScanRecord,
            accumulate(gaps, initial=base),
            map(STATUS_CODES.__getitem__, statuses),
            ids,  # the scans' ids come first: map stops after the last scan
            map(string, sites),
            map(string, cities),
            signs,
            codes or repeat(None),
            signers,
            texts,
        )
    )


def _orders(
    rows: list[list[Any]], base: int, refs: list[str], strings: list[str | None]
) -> list[OrderFact]:
    return [
        OrderFact(
            base + row[0],
            ORDER_KINDS[row[1]],
            ref,
            base + row[5] if len(row) > 5 else None,
            strings[row[2]],
            strings[row[3]],
            strings[row[4]],
        )
        for row, ref in zip(rows, refs, strict=True)
    ]


def _alerts(
    rows: list[list[Any]], base: int, strings: list[str | None]
) -> dict[CourierAlertKind, AlertFact]:
    facts = [
        AlertFact(
            ALERT_CODES[kind],
            base + reported,
            base + received,
            strings[code] or "",
            strings[message] or "",
        )
        for kind, reported, received, code, message in rows
    ]
    return {fact.kind: fact for fact in facts}


# -- v1: loading only ----------------------------------------------------------------------


def _decode_v1(cls: type[WaybillState], data: bytes | str) -> WaybillState:
    raw = orjson.loads(data)
    if not isinstance(raw, list) or not raw or raw[0] != V1:
        version = raw[0] if isinstance(raw, list) and raw else None
        raise ValueError(f"unsupported waybill state version {version!r}")
    (_, waybill, courier, hint, scans, evicted, orders, alerts, episodes, due, recv) = raw[:11]
    retired = (int(raw[11][0]), int(raw[11][1])) if len(raw) > 11 else None
    loaded_alerts = [AlertFact.load_v1(a) for a in alerts]
    return cls(
        waybill=waybill,
        courier=courier,
        merchant_hint=hint,
        scans=[ScanRecord.load_v1(r) for r in scans],
        evicted=list(evicted),
        orders=[OrderFact.load_v1(f) for f in orders],
        alerts={a.kind: a for a in loaded_alerts},
        episodes={t: Episode.load(e) for t, e in episodes.items()},
        next_due=due,
        last_scan_received=recv,
        retired=retired,
    )
