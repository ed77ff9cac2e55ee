"""A small built-in sample of Kdniao pushes for ``waybill-watch demo`` and ``make run``.

Times are relative to ``now`` and waybill numbers carry a per-run suffix, so every run shows
fresh anomalies against the wall clock (a re-run never re-opens yesterday's episodes).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson

_FMT = "%Y-%m-%d %H:%M:%S"


def _trace(at: datetime, text: str, action: str, city: str) -> dict[str, str]:
    return {
        "AcceptTime": at.strftime(_FMT),
        "AcceptStation": text,
        "Location": city,
        "Action": action,
        "Remark": "",
    }


def demo_waybills(now: datetime, run: str) -> list[dict[str, Any]]:
    """Kdniao ``Data[]`` items: a delivery exception, a refusal, a stall, a normal delivery."""
    d = timedelta
    return [
        {
            "LogisticCode": f"ZT{run}0001",
            "ShipperCode": "ZTO",
            "State": "4",
            "StateEx": "405",
            "Location": "杭州市",
            "Traces": [
                _trace(now - d(hours=30), "【上海青浦】快件已揽收", "1", "上海市"),
                _trace(now - d(hours=20), "【杭州转运中心】快件已到达", "2", "杭州市"),
                _trace(now - d(hours=3), "【杭州西湖】快件正在派送中", "202", "杭州市"),
                _trace(
                    now - d(hours=1),
                    "【杭州西湖】派件异常：电话无人接听，明日再派",
                    "405",
                    "杭州市",
                ),
            ],
        },
        {
            "LogisticCode": f"YT{run}0002",
            "ShipperCode": "YTO",
            "State": "4",
            "StateEx": "404",
            "Location": "南京市",
            "Traces": [
                _trace(now - d(hours=40), "【广州白云】快件已揽收", "1", "广州市"),
                _trace(now - d(hours=4), "【南京鼓楼】快件正在派送中", "202", "南京市"),
                _trace(now - d(hours=2), "【南京鼓楼】收件人拒收，快件将退回", "404", "南京市"),
            ],
        },
        {
            "LogisticCode": f"ST{run}0003",
            "ShipperCode": "STO",
            "State": "2",
            "StateEx": "2",
            "Location": "成都市",
            "Traces": [
                _trace(now - d(hours=80), "【北京朝阳】快件已揽收", "1", "北京市"),
                _trace(now - d(hours=60), "【成都转运中心】快件已到达", "2", "成都市"),
            ],
        },
        {
            "LogisticCode": f"SF{run}0004",
            "ShipperCode": "SF",
            "State": "3",
            "StateEx": "301",
            "Location": "深圳市",
            "Traces": [
                _trace(now - d(hours=20), "【深圳南山】快件已揽收", "1", "深圳市"),
                _trace(now - d(hours=2), "【深圳福田】快件正在派送中", "202", "深圳市"),
                _trace(now - d(hours=1), "【深圳福田】已签收，签收人：本人", "301", "深圳市"),
            ],
        },
    ]


def kdniao_form(waybills: list[dict[str, Any]], now: datetime, app_key: str | None) -> bytes:
    """A form-encoded RequestType 102 push, signed when ``app_key`` is given."""
    data = [{"EBusinessID": "demo", "Success": True, "Reason": "", **w} for w in waybills]
    request_data = orjson.dumps(
        {
            "EBusinessID": "demo",
            "PushTime": now.strftime(_FMT),
            "Count": str(len(data)),
            "Data": data,
        }
    ).decode()
    form = {"RequestData": request_data, "RequestType": "102"}
    if app_key is not None:
        digest = hashlib.md5((request_data + app_key).encode(), usedforsecurity=False)
        form["DataSign"] = base64.b64encode(digest.hexdigest().encode()).decode()
    return urlencode(form).encode()
