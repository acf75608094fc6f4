"""The allocator as a plain function (``allocate_from_history``, as in the README) refuses a
history it cannot read, naming the row, field and value, instead of moving money on it."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from aelp2_assets.allocation import AllocatorSettings, allocate_from_history

DECISION = dt.date(2025, 3, 15)
SETTINGS = AllocatorSettings(budget_minor=3_000_000, min_budget_minor=100)


def _history() -> pd.DataFrame:
    """Three ad sets over 14 days, "c" the dearest."""
    days = pd.date_range(DECISION - dt.timedelta(days=13), DECISION, freq="D")
    rows = [
        {
            "date": day,
            "adset_id": arm,
            "channel": "Feed",
            "spend": 1000.0,
            "clicks": 500,
            "conversions": conversions,
            "impressions": 40_000,
        }
        for day in days
        for arm, conversions in (("a", 20), ("b", 18), ("c", 6))
    ]
    return pd.DataFrame(rows)


def _allocate(history: pd.DataFrame, **options: object) -> pd.Series:
    allocation = allocate_from_history(
        history, DECISION, SETTINGS, np.random.default_rng(7), **options
    )
    return allocation.table.set_index("arm_id")["budget_minor"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("spend", np.nan, "row 40 spend nan is missing"),
        ("spend", -3000.0, "row 40 spend -3000.0 is negative"),
        ("spend", np.inf, "row 40 spend inf is not finite"),
        ("spend", "12,50", "row 40 spend '12,50' is not a number"),
        ("clicks", "n/a", "row 40 clicks 'n/a' is not a number"),
        ("conversions", -1, "row 40 conversions -1.0 is negative"),
        ("adset_id", None, "row 40 adset_id None is missing"),
        ("adset_id", " ", "row 40 adset_id ' ' is blank"),
        ("conversions", 2.5, "row 40 conversions 2.5 is not a whole number"),
        ("date", "15/03/2025", "row 40 date '15/03/2025' is not a day without a time zone"),
        ("conversions", 501, "row 40 conversions 501.0 exceeds the row's clicks, 10 or more"),
        ("spend", 0.0, "row 40 spend 0.0 is nothing for 10 or more clicks"),
        (
            "date",
            pd.Timestamp("2025-03-15", tz="Asia/Tokyo"),
            "row 40 date Timestamp('2025-03-15 00:00:00+0900', tz='Asia/Tokyo') is not a day",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_row_field_and_value(field, value, says) -> None:
    history = _history().astype({field: object})
    history.at[40, field] = value  # "b" on the decision date

    with pytest.raises(ValueError, match="^history: ") as refused:
        _allocate(history)

    assert says in str(refused.value)


def test_dates_as_iso_text_or_date_objects_allocate_as_timestamps_do() -> None:
    history = _history()
    as_timestamps = _allocate(history)

    as_text = _allocate(history.assign(date=history["date"].dt.strftime("%Y-%m-%d")))
    as_dates = _allocate(history.assign(date=history["date"].dt.date))

    assert as_timestamps.sum() > 0 and as_timestamps["c"] < as_timestamps["a"]
    pd.testing.assert_series_equal(as_text, as_timestamps)
    pd.testing.assert_series_equal(as_dates, as_timestamps)


def test_new_arms_as_one_id_of_text_is_refused_not_read_as_its_characters() -> None:
    with pytest.raises(TypeError, match="'120201'"):
        _allocate(_history(), new_arms="120201")


def test_an_empty_history_says_there_is_nothing_to_allocate_to() -> None:
    with pytest.raises(ValueError, match="no ad set to allocate to"):
        _allocate(_history().iloc[0:0])


def test_a_decision_date_past_the_live_window_is_refused_not_allocated_nothing() -> None:
    history = _history()
    assert _allocate(history).sum() > 0  # the decision date itself: funded

    with pytest.raises(ValueError, match="last delivery in the history: on 2025-03-15"):
        allocate_from_history(
            history, DECISION + dt.timedelta(days=3), SETTINGS, np.random.default_rng(7)
        )


def test_a_history_that_never_delivered_is_refused_saying_so() -> None:
    idle = _history().assign(spend=0.0, clicks=0, conversions=0, impressions=0)

    with pytest.raises(ValueError, match="none: no spend or impressions"):
        _allocate(idle)
