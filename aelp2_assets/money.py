"""Money as integers in the account currency's minor units (no Dagster import).

Meta states budgets in minor units (cents for USD, whole yen for JPY) and insights spend in
major units. The offsets follow Meta's list of supported ad account currencies
(Marketing API, "Currencies"): offset 100 for most, offset 1 for the currencies below.
"""

from decimal import ROUND_HALF_UP, Decimal

_OFFSET_ONE = frozenset(
    {"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"}
)
_OFFSET_HUNDRED = frozenset(
    {
        "AED", "ARS", "AUD", "BDT", "BOB", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "DZD",
        "EGP", "EUR", "GBP", "GTQ", "HKD", "HNL", "ILS", "INR", "KES", "MOP", "MXN", "MYR",
        "NGN", "NIO", "NOK", "NZD", "PEN", "PHP", "PKR", "PLN", "QAR", "RON", "RUB", "SAR",
        "SEK", "SGD", "THB", "TRY", "UAH", "USD", "UYU", "VES", "ZAR",
    }
)  # fmt: skip
SUPPORTED_CURRENCIES = _OFFSET_ONE | _OFFSET_HUNDRED


def minor_unit_offset(currency: str) -> int:
    """How many minor units make one major unit of ``currency`` (100 for USD, 1 for JPY)."""
    code = currency.upper()
    if code in _OFFSET_ONE:
        return 1
    if code in _OFFSET_HUNDRED:
        return 100
    raise ValueError(f"currency {currency!r} is not one Meta supports for ad accounts")


def to_minor_units(amount: float | str | Decimal, currency: str) -> int:
    """``amount`` in major units as an integer count of minor units, rounded half up."""
    scaled = Decimal(str(amount)) * minor_unit_offset(currency)
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_major_units(minor: int, currency: str) -> float:
    """An integer amount of minor units in major units (for display and spend comparisons)."""
    return minor / minor_unit_offset(currency)


def format_minor(minor: int, currency: str) -> str:
    """An integer amount of minor units for people: ``1,234.50 USD``, ``1,234 JPY``."""
    offset = minor_unit_offset(currency)
    decimals = len(str(offset)) - 1
    whole, part = divmod(abs(int(minor)), offset)
    sign = "-" if minor < 0 else ""
    fraction = f".{part:0{decimals}d}" if decimals else ""
    return f"{sign}{whole:,}{fraction} {currency.upper()}"
