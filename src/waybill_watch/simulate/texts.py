"""Courier trace texts (``AcceptStation``) per step, as data.

Each text names its site in the first 【…】 bracket (contract §5.1 reads the site from there) and
uses the keywords of exactly one status, so RequestType 101 pushes (no ``Action``) are read the
same way as 102. Sign texts carry the sign-type keywords (本人, 代收, 智能柜, 驿站). Phone numbers
are already masked (``138****5678``): a random full number could be a real person's.
"""

from __future__ import annotations

import random

#: step -> (Kdniao Action codes to pick from, text templates).
STEPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pickup": (("1",), (
        "【{site}】已揽收",
        "【{site}】快件已揽收，揽收员：{rider}",
    )),
    "depart": (("2", "206"), (
        "【{site}】已发出，下一站【{next}】",
        "快件在【{site}】已装车，已发出，下一站【{next}】",
    )),
    "arrive_hub": (("2", "204"), (
        "快件已到达【{site}】",
        "【{site}】快件已到达，正在分拣",
    )),
    "depart_hub": (("2",), (
        "【{site}】已发出，下一站【{next}】",
    )),
    "arrive_outlet": (("2", "205", "201"), (
        "快件已到达【{site}】",
        "【{site}】快件已到达",
    )),
    "out_for_delivery": (("202",), (
        "【{site}】快递员{rider}正在为您派件，电话：{phone}",
        "【{site}】派件员{rider}正在派件（电话{phone}），请保持电话畅通",
    )),
    "signed_recipient": (("301",), (
        "【{site}】已签收，签收人：本人。感谢使用{brand}",
        "【{site}】快件已签收，签收人：本人",
    )),
    "signed_proxy": (("304",), (
        "【{site}】已签收，签收人：门卫代收",
        "【{site}】已签收，由物业前台代收",
    )),
    "locker_in": (("211",), (
        "【{site}】快件已放入丰巢智能柜，取件码{code}，请及时取件",
    )),
    "station_in": (("211",), (
        "【{site}】快件已到菜鸟驿站（{street}店），取件码{code}，请及时取件",
    )),
    "locker_out": (("311",), (
        "【{site}】快件已从丰巢智能柜取出",
    )),
    "station_out": (("311",), (
        "【{site}】快件已在菜鸟驿站签收",
    )),
    "failed_attempt": (("405", "416"), (
        "【{site}】派件异常：电话无人接听，明日再次派送",
        "【{site}】派件异常：收件人不在，已约改日派送",
    )),
    "redeliver": (("419", "202"), (
        "【{site}】快递员{rider}正在为您重新派件，电话：{phone}",
    )),
    "signed_after_exception": (("302",), (
        "【{site}】快件已签收，签收人：本人（异常件处理后签收）",
    )),
    "exception": (("420", "421"), (
        "【{site}】问题件：收件地址不详细，正在联系收件人核实",
        "【{site}】问题件：收件人电话错误，待核实",
    )),
    "rejected": (("404",), (
        "【{site}】收件人拒收，快件将退回寄件人",
    )),
    "returning": (("407",), (
        "【{site}】退回件已发出，下一站【{next}】",
    )),
    "returned": (("406",), (
        "【{site}】退回件已由寄件人签收",
    )),
}  # fmt: skip

SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭"


def rider(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "师傅"


def masked_phone(rng: random.Random) -> str:
    return f"1{rng.choice('3589')}{rng.randrange(10)}****{rng.randrange(10000):04d}"


def render(rng: random.Random, step: str, **fields: str) -> tuple[str, str]:
    """(Action, text) for one step; unused placeholders are simply ignored."""
    actions, templates = STEPS[step]
    template = rng.choice(templates)
    if "{rider}" in template:
        fields.setdefault("rider", rider(rng))
    if "{phone}" in template:
        fields.setdefault("phone", masked_phone(rng))
    if "{code}" in template:
        fields.setdefault(
            "code", f"{rng.randrange(1, 100)}-{rng.randrange(1, 7)}-{rng.randrange(1000, 10000)}"
        )
    return rng.choice(actions), template.format_map(_Blank(fields))


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""
