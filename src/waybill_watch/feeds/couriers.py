"""Carrier codes of the aggregators mapped to Kdniao-style shipper codes (contract §5).

Only mappings known from the providers' published lists are here; any other code is kept,
upper-cased (``ups`` → ``UPS``), so a courier is always named consistently per feed.
"""

from __future__ import annotations

#: Kuaidi100 ``com`` (lower-case words).
KUAIDI100: dict[str, str] = {
    "shunfeng": "SF",
    "zhongtong": "ZTO",
    "yuantong": "YTO",
    "shentong": "STO",
    "yunda": "YD",
    "jd": "JD",
    "jingdong": "JD",
    "ems": "EMS",
    "youzhengguonei": "YZPY",
    "jtexpress": "JTSD",
    "debangwuliu": "DBL",
    "debangkuaidi": "DBL",
    "huitongkuaidi": "HTKY",
    "zhaijisong": "ZJS",
}

#: AfterShip ``slug``.
AFTERSHIP: dict[str, str] = {
    "sf-express": "SF",
    "zto-express": "ZTO",
    "yto": "YTO",
    "sto": "STO",
    "yunda": "YD",
    "jd": "JD",
    "china-ems": "EMS",
    "china-post": "YZPY",
    "jtexpress": "JTSD",
    "deppon": "DBL",
    "bestex": "HTKY",
}

#: 17TRACK numeric carrier keys.
TRACK17_KEYS: dict[str, str] = {
    "3011": "YZPY",  # China Post
    "3013": "EMS",  # China EMS
}

#: 17TRACK provider names (lower-case), used when the numeric key is not in the table above.
TRACK17_NAMES: dict[str, str] = {
    "sf express": "SF",
    "zto express": "ZTO",
    "yto express": "YTO",
    "sto express": "STO",
    "yunda express": "YD",
    "jd logistics": "JD",
    "j&t express": "JTSD",
    "deppon": "DBL",
    "china post": "YZPY",
    "china ems": "EMS",
}


def kdniao_style(table: dict[str, str], code: str) -> str:
    """The Kdniao-style code for a provider's carrier code (else the code upper-cased)."""
    key = code.strip()
    return table.get(key.lower()) or key.upper()
