"""Personal data is masked in free text."""

import pytest

from waybill_watch.masking import mask_name, mask_phone_numbers, mask_text


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("电话13812345678", "电话138****5678"),
        ("+86 138-1234-5678", "138****5678"),
        ("座机0571-88889999", "座机0571-****9999"),
        ("单号YT1234567890123不是电话", "单号YT1234567890123不是电话"),
        ("单号773012345678901", "单号773012345678901"),
    ],
)
def test_phone_numbers(raw: str, masked: str) -> None:
    assert mask_phone_numbers(raw) == masked


def test_names_after_labels() -> None:
    assert mask_text("已签收，签收人：张三丰，谢谢") == "已签收，签收人：张**，谢谢"
    assert mask_text("收件人: Alice Wong") == "收件人: A*********"


def test_mask_name() -> None:
    assert mask_name("李四") == "李*"
    assert mask_name(None) is None
    assert mask_name("13812345678") == "138****5678"
