"""Simulated geography and courier networks: cities, transfer centres and outlets.

Site names follow the couriers' own style (``杭州转运中心``, ``杭州西湖区文三路营业部``) and are
unique per courier, so ``courier:site`` subjects are stable. Outlet names never contain a city
name other than their own (text-derived cities must be right for ``city_mismatch``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: (province, city, districts). Cities compare equal after dropping a trailing 市 (contract §5.1).
CITIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("浙江省", "杭州市", ("西湖区", "余杭区", "拱墅区")),
    ("浙江省", "宁波市", ("鄞州区", "海曙区")),
    ("浙江省", "温州市", ("鹿城区", "瓯海区")),
    ("上海市", "上海市", ("浦东新区", "闵行区", "青浦区")),
    ("江苏省", "南京市", ("鼓楼区", "江宁区")),
    ("江苏省", "苏州市", ("姑苏区", "吴中区", "工业园区")),
    ("江苏省", "无锡市", ("梁溪区", "滨湖区")),
    ("北京市", "北京市", ("朝阳区", "海淀区", "丰台区")),
    ("天津市", "天津市", ("南开区", "河西区")),
    ("广东省", "广州市", ("天河区", "白云区", "番禺区")),
    ("广东省", "深圳市", ("南山区", "福田区", "宝安区")),
    ("广东省", "东莞市", ("南城街道", "长安镇")),
    ("广东省", "佛山市", ("禅城区", "南海区")),
    ("四川省", "成都市", ("武侯区", "锦江区", "双流区")),
    ("重庆市", "重庆市", ("渝中区", "江北区")),
    ("湖北省", "武汉市", ("江汉区", "洪山区")),
    ("湖南省", "长沙市", ("岳麓区", "雨花区")),
    ("陕西省", "西安市", ("雁塔区", "未央区")),
    ("河南省", "郑州市", ("金水区", "二七区")),
    ("山东省", "济南市", ("历下区", "槐荫区")),
    ("山东省", "青岛市", ("黄岛区", "崂山区")),
    ("福建省", "厦门市", ("思明区", "湖里区")),
    ("福建省", "福州市", ("仓山区", "晋安区")),
    ("安徽省", "合肥市", ("蜀山区", "包河区")),
    ("江西省", "南昌市", ("东湖区", "红谷滩区")),
    ("辽宁省", "沈阳市", ("和平区", "浑南区")),
    ("河北省", "石家庄市", ("长安区", "裕华区")),
    ("云南省", "昆明市", ("五华区", "盘龙区")),
    ("广西壮族自治区", "南宁市", ("青秀区", "西乡塘区")),
    ("贵州省", "贵阳市", ("云岩区", "观山湖区")),
)

STREETS: tuple[str, ...] = (
    "人民路", "解放路", "中山路", "建设路", "文化路", "和平路", "新华路", "长江路",
    "学府路", "科技路", "花园路", "东风路", "胜利路", "文三路", "滨江路", "工农路",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Courier:
    """A Kdniao ShipperCode with its naming style and waybill number format."""

    code: str
    name: str
    weight: float
    hub_suffix: str
    outlet_suffix: str
    prefix: str
    digits: int


COURIERS: dict[str, Courier] = {
    c.code: c
    for c in (
        Courier("ZTO", "中通快递", 0.20, "转运中心", "营业部", "7", 14),
        Courier("YTO", "圆通速递", 0.17, "转运中心", "网点", "YT", 13),
        Courier("YD", "韵达速递", 0.15, "分拨中心", "服务部", "43", 13),
        Courier("STO", "申通快递", 0.12, "转运中心", "营业部", "77", 13),
        Courier("JTSD", "极兔速递", 0.12, "转运中心", "网点", "JT", 13),
        Courier("SF", "顺丰速运", 0.10, "中转场", "营业点", "SF", 13),
        Courier("JD", "京东快递", 0.08, "分拣中心", "营业部", "JDVA", 11),
        Courier("EMS", "EMS", 0.06, "邮件处理中心", "揽投部", "98", 11),
    )
}


@dataclass(frozen=True, slots=True)
class City:
    province: str
    name: str  # with 市
    short: str  # without 市
    districts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Site:
    """A scan location: its bracket name and city."""

    name: str
    city: City
    district: str | None = None


def short_city(name: str) -> str:
    return name[:-1] if name.endswith("市") else name


ALL_CITIES: tuple[City, ...] = tuple(
    City(province, name, short_city(name), districts) for province, name, districts in CITIES
)


class Network:
    """Each courier's transfer centre per city and a few outlets per district."""

    def __init__(self, rng: random.Random, couriers: tuple[str, ...]) -> None:
        self.cities = ALL_CITIES
        self._hubs: dict[tuple[str, str], Site] = {}
        self._outlets: dict[tuple[str, str], list[Site]] = {}
        for code in couriers:
            courier = COURIERS[code]
            for city in self.cities:
                self._hubs[code, city.name] = Site(f"{city.short}{courier.hub_suffix}", city)
                outlets = []
                for district in city.districts:
                    for street in rng.sample(STREETS, 2):
                        name = f"{city.short}{district}{street}{courier.outlet_suffix}"
                        outlets.append(Site(name, city, district))
                self._outlets[code, city.name] = outlets

    def hub(self, courier: str, city: City) -> Site:
        return self._hubs[courier, city.name]

    def outlets(self, courier: str, city: City) -> list[Site]:
        return self._outlets[courier, city.name]

    def outlet(self, rng: random.Random, courier: str, city: City) -> Site:
        return rng.choice(self._outlets[courier, city.name])

    def two_cities(self, rng: random.Random) -> tuple[City, City]:
        origin, dest = rng.sample(self.cities, 2)
        return origin, dest

    def other_city(self, rng: random.Random, *avoid: City) -> City:
        while True:
            city = rng.choice(self.cities)
            if city not in avoid:
                return city


CITY_BY_NAME: dict[str, City] = {city.name: city for city in ALL_CITIES}
