"""Money: minor-unit offsets, conversions and the way amounts are shown."""

import pytest

from aelp2_assets.money import format_minor, minor_unit_offset, to_major_units, to_minor_units


@pytest.mark.parametrize(
    ("currency", "offset"), [("USD", 100), ("eur", 100), ("JPY", 1), ("KRW", 1), ("CLP", 1)]
)
def test_offsets_follow_metas_currency_list(currency, offset):
    assert minor_unit_offset(currency) == offset


def test_unknown_currency_is_refused():
    with pytest.raises(ValueError, match="'XYZ'"):
        minor_unit_offset("XYZ")


def test_conversions_round_half_up_and_back():
    assert to_minor_units("1.005", "USD") == 101
    assert to_minor_units(1.429999948, "USD") == 143
    assert to_minor_units("1234.5", "JPY") == 1235
    assert to_major_units(12345, "USD") == 123.45
    assert to_major_units(12345, "JPY") == 12345


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (3_000_000, "USD", "30,000.00 USD"),
        (5, "USD", "0.05 USD"),
        (-150, "EUR", "-1.50 EUR"),
        (30_000, "JPY", "30,000 JPY"),
        (10**17, "USD", "1,000,000,000,000,000.00 USD"),
    ],
)
def test_amounts_are_shown_exactly(minor, currency, text):
    assert format_minor(minor, currency) == text
