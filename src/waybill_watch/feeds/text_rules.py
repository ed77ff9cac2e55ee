"""What a Chinese courier trace text says: status, who signed, city, site, signer (contract §5.1).

Kdniao 101 pushes carry no per-trace code, so the status comes from the text; every feed uses
the same text for ``sign_type``, ``location`` and ``signer``. The rules are data (ordered
tables of patterns), compiled once; ``read_text`` is cached because the same texts come back
in every re-pushed trace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from waybill_watch.domain.types import SignType, Status
from waybill_watch.masking import mask_name

# --- status from text --------------------------------------------------------------------------
#: Ordered rules: the first row whose pattern matches (and whose ``unless`` does not) decides.
#: The order resolves texts that name several things: a signed return is ``returned`` before it is
#: ``delivered``; a refusal is ``rejected`` before it is ``returning``; a parcel at a station is
#: ``available_for_pickup`` unless the text says it was signed or picked up.
STATUS_RULES: tuple[tuple[Status, str, str | None], ...] = (
    (Status.RETURNED, r"(?:退回|退件|退货|返回)\S{0,12}?(?:签收|妥投)|退回妥投", None),
    (Status.REJECTED, r"拒收|拒签|拒绝签收|拒绝接收", None),
    (Status.RETURNING, r"退回|退件|退货|返回寄件|返回发件|返寄|退还寄件", None),
    (
        Status.DELIVERED,
        r"(?<![未待拒])签收|(?<!未)妥投|已取件|已取出|取件成功|已被取走|已领取",
        None,
    ),
    (
        Status.FAILED_ATTEMPT,
        r"派件异常|派送异常|派送不成功|派送失败|派件失败|投递失败|投递不成功|未妥投|无法联系"
        r"|联系不上|无人接听|电话不通|收件人不在|客户不在|家中无人|改约",
        None,
    ),
    (
        Status.EXCEPTION,
        r"问题件|异常|破损|丢失|遗失|拦截|错分|超区|地址不详|地址错误|地址有误|电话错误|滞留"
        r"|留仓|取消|无法派送|疑难",
        None,
    ),
    (Status.CUSTOMS, r"清关|海关|报关|通关", None),
    (
        Status.AVAILABLE_FOR_PICKUP,
        r"快递柜|丰巢|智能柜|自提柜|驿站|代收点|自提点|服务站|快递超市|包裹站|取件码|待取"
        r"|请\S{0,4}取件|请\S{0,4}领取|自提",
        r"正在派|派送中|派件中",
    ),
    (Status.DELIVERED, r"代收|代签", None),
    (
        Status.OUT_FOR_DELIVERY,
        r"派(?:件|送)(?!网点|城市|站点|中心|部|营业|公司)|投递中|正在投递|安排投递|配送中"
        r"|正在配送|送货中",
        None,
    ),
    (Status.INFO_RECEIVED, r"待揽|已下单|下单成功|订单信息|等待揽|已接单|电子面单|已发货", None),
    (Status.PICKED_UP, r"揽收|揽件|已收件|收件员|已收取|收寄|收件(?!人)", None),
    (
        Status.IN_TRANSIT,
        r"到达|发往|发出|转运|运输|离开|中转|装车|航班|途中|在途|分拣|经转|已到|转寄|干线"
        r"|下一站|集散|发车",
        None,
    ),
)

# --- sign_type from text -----------------------------------------------------------------------
#: Checked in this order: a station word wins over 代收 (代收点 is a station), a proxy word over
#: 本人 (非本人签收 is a proxy).
SIGN_TYPE_WORDS: tuple[tuple[SignType, tuple[str, ...]], ...] = (
    (SignType.LOCKER, ("快递柜", "丰巢", "智能柜", "自提柜")),
    (SignType.STATION, ("驿站", "代收点", "自提点", "服务站", "快递超市", "包裹站")),
    (
        SignType.PROXY,
        (
            "非本人",
            "代签",
            "代收",
            "门卫",
            "保安",
            "前台",
            "物业",
            "收发室",
            "传达室",
            "家人",
            "同事",
            "邻居",
            "室友",
        ),
    ),
    (SignType.RECIPIENT, ("本人",)),
)


class SignRule(StrEnum):
    """How a delivered code decides ``sign_type`` (a column of each feed's mapping table)."""

    TEXT_ELSE_UNKNOWN = "text_else_unknown"
    TEXT_ELSE_RECIPIENT = "text_else_recipient"
    RECIPIENT = "recipient"
    PROXY = "proxy"
    STATION_ELSE_LOCKER = "station_else_locker"  # Kdniao 311: station if the text names one
    LOCKER_ELSE_STATION = "locker_else_station"  # collected at a pickup point


#: A mapping-table row: canonical status and how a delivered scan's ``sign_type`` is decided.
Row = tuple[Status, SignRule | None]


def coded_row(
    sub: str,
    subs: Mapping[str, Row | None],
    mains: Mapping[str, Row | None],
    kind: str,
    kinds: Mapping[str, Row | None],
) -> Row | None:
    """A provider's two-level status code to a row: the sub-code (``Main_Detail``), else its
    main-code prefix, else the coarse ``kind`` (AfterShip tag, 17TRACK stage). A ``None`` in a
    table means "this code says nothing"; the next level is tried."""
    row: Row | None = None
    if sub:
        row = subs[sub] if sub in subs else mains.get(sub.partition("_")[0])
    if row is None and kind:
        row = kinds.get(kind)
    return row


#: Readings of a text that a waybill-level state ("signed", "problem") may override: a text no
#: rule recognises (None) and the generic in-transit family a misread text falls into.
WEAK_STATUSES: frozenset[Status | None] = frozenset(
    {None, Status.INFO_RECEIVED, Status.PICKED_UP, Status.IN_TRANSIT}
)

#: A waybill-level state used to cross-check its latest trace: (status, readings it overrides).
StateCheck = tuple[Status, frozenset[Status | None]]


# --- location, site, signer ----------------------------------------------------------------
# A city starts after a verb, a delimiter or the start of the text; the verbs are tried first so
# that "发往广州市" names 广州, not "发往广州". Names ending in 超/城/门/菜/股 + 市 are not cities.
_CITY = re.compile(
    r"(?:到达|发往|离开|抵达|送往|位于|[【\[（(「\s,，:：]|^)"
    r"(?:[\u4e00-\u9fff]{2,7}?(?:省|自治区))?([\u4e00-\u9fff]{2,4}?)(?<![超城门菜股])市(?!场)"
)
_AREA_SPLIT = re.compile(r"[,，|/]")
_BRACKET = re.compile(r"【([^【】]{1,40})】")
_PERSON_BEFORE = re.compile(
    r"(?:签收人|收件人|代收人|取件人|派件员|派送员|快递员|收件员|业务员|揽件员|揽收员|联系人"
    r"|投递员|小哥|电话)\s*[是为]?\s*[:：]?\s*$"
)
_LONG_DIGITS = re.compile(r"\d{7,}")
_SIGNER = re.compile(
    r"(?:签收人|代收人)\s*(?:[是为:：]\s*【?|【)([^\s,，。;；:：()（）\[\]【】]{1,16})"
)
_RULES = tuple(
    (status, re.compile(pattern), re.compile(unless) if unless else None)
    for status, pattern, unless in STATUS_RULES
)
_LOOKBEHIND = 24


def normalise_city(name: str | None) -> str | None:
    """A city name as stored: trimmed, without a trailing 市 (杭州市 and 杭州 compare equal)."""
    if not name:
        return None
    city = name.strip()
    if len(city) > 1 and city.endswith("市"):
        city = city[:-1]
    return city or None


def city_from_area(area: str) -> str | None:
    """The city of an administrative area name such as ``浙江,杭州市`` or ``北京市``."""
    parts = [p.strip() for p in _AREA_SPLIT.split(area) if p.strip()]
    if len(parts) >= 2:
        return normalise_city(parts[1])
    if parts and parts[0].endswith("市"):
        return normalise_city(parts[0])
    return None


def infer_status(text: str) -> Status | None:
    """The status a trace text states, or None when no rule recognises it."""
    for status, pattern, unless in _RULES:
        if pattern.search(text) and not (unless and unless.search(text)):
            return status
    return None


def sign_type_from_text(text: str) -> SignType | None:
    """Who or what signed, as named in the text; None when the text names nobody."""
    for sign_type, words in SIGN_TYPE_WORDS:
        if any(word in text for word in words):
            return sign_type
    return None


def city_from_text(text: str) -> str | None:
    """The first city (…市) the text names, without the trailing 市."""
    found = _CITY.search(text)
    return normalise_city(found.group(1)) if found else None


def site_from_text(text: str) -> str | None:
    """The first 【…】 bracket naming a place: brackets holding a person (after 签收人, 派件员…)
    or a phone number are skipped so that personal data never becomes a site name."""
    for found in _BRACKET.finditer(text):
        before = text[max(0, found.start() - _LOOKBEHIND) : found.start()]
        content = found.group(1).strip()
        if not content or _PERSON_BEFORE.search(before) or _LONG_DIGITS.search(content):
            continue
        return content
    return None


def mask_signer(name: str | None) -> str | None:
    """A signer as stored: roles (本人, 门卫, 丰巢, 驿站…) as they are, personal names masked."""
    if name is None or sign_type_from_text(name) is not None:
        return name
    return mask_name(name)


def signer_from_text(text: str) -> str | None:
    """The signer named after 签收人/代收人, masked unless it is a role (本人, 门卫, 驿站…)."""
    found = _SIGNER.search(text)
    return mask_signer(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class TextFacts:
    """Everything the rules read from one trace text."""

    status: Status | None
    sign_type: SignType | None
    names_station: bool
    names_locker: bool
    city: str | None
    site: str | None
    signer: str | None


@lru_cache(maxsize=32768)
def read_text(text: str) -> TextFacts:
    """All facts of one trace text (cached: re-pushed traces repeat their texts)."""
    sign_type = sign_type_from_text(text)
    return TextFacts(
        status=infer_status(text),
        sign_type=sign_type,
        names_station=any(word in text for word in SIGN_TYPE_WORDS[1][1]),
        names_locker=any(word in text for word in SIGN_TYPE_WORDS[0][1]),
        city=city_from_text(text),
        site=site_from_text(text),
        signer=signer_from_text(text),
    )


def sign_type_for(rule: SignRule | None, facts: TextFacts) -> SignType:
    """Apply a mapping table's sign rule to a delivered scan's text."""
    if rule is _RULE_PROXY:
        return _SIGNED_PROXY
    if rule is _RULE_RECIPIENT:
        return _SIGNED_RECIPIENT
    if rule is _RULE_STATION_ELSE_LOCKER:
        return _SIGNED_STATION if facts.names_station else _SIGNED_LOCKER
    if rule is _RULE_LOCKER_ELSE_STATION:
        return _SIGNED_LOCKER if facts.names_locker else _SIGNED_STATION
    if facts.sign_type is not None:
        return facts.sign_type
    if rule is _RULE_TEXT_ELSE_RECIPIENT:
        return _SIGNED_RECIPIENT
    return _SIGNED_UNKNOWN


def status_from_text(
    facts: TextFacts, check: StateCheck | None, check_code: str | None, code: str | None
) -> tuple[Status, SignRule | None, str | None]:
    """(status, sign rule, courier_code) of a trace without a usable code.

    The text decides; for the waybill's latest trace the waybill state (``check``) overrides
    the readings it lists. Nothing recognised and no state: ``in_transit`` (the scan exists,
    so the parcel is somewhere in the network).
    """
    inferred = facts.status
    if check is not None and inferred in check[1]:
        return check[0], _RULE_TEXT_ELSE_UNKNOWN, check_code
    if inferred is None:
        return _IN_TRANSIT, None, code
    return inferred, _RULE_TEXT_ELSE_UNKNOWN, code


# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_IN_TRANSIT = Status.IN_TRANSIT
_SIGNED_PROXY, _SIGNED_RECIPIENT = SignType.PROXY, SignType.RECIPIENT
_SIGNED_STATION, _SIGNED_LOCKER, _SIGNED_UNKNOWN = (
    SignType.STATION,
    SignType.LOCKER,
    SignType.UNKNOWN,
)
_RULE_PROXY, _RULE_RECIPIENT = SignRule.PROXY, SignRule.RECIPIENT
_RULE_STATION_ELSE_LOCKER = SignRule.STATION_ELSE_LOCKER
_RULE_LOCKER_ELSE_STATION = SignRule.LOCKER_ELSE_STATION
_RULE_TEXT_ELSE_RECIPIENT = SignRule.TEXT_ELSE_RECIPIENT
_RULE_TEXT_ELSE_UNKNOWN = SignRule.TEXT_ELSE_UNKNOWN
