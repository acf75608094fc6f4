"""The spend the forecast holds fixed: budgets where Meta has them, recent spend where not."""

import datetime as dt

import pandas as pd

from aelp2_assets.assets.model import planned_daily_spend

DECISION = dt.date(2026, 3, 10)


def _history(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    """(adset_id, days before the decision date, spend) -> validated rows (two placements)."""
    records = []
    for arm, days_ago, spend in rows:
        for channel in ("Feed", "Reels"):
            date = pd.Timestamp(DECISION - dt.timedelta(days=days_ago))
            records.append({"date": date, "adset_id": arm, "channel": channel, "spend": spend / 2})
    return pd.DataFrame(records)


def test_budget_first_then_recent_spend_then_nothing(local_settings) -> None:
    arms = pd.DataFrame(
        {
            "arm_id": ["budgeted", "exported", "young", "launched", "sporadic", "idle", "paused"],
            "is_live": [True] * 6 + [False],
        }
    )
    entities = pd.DataFrame(
        {
            "level": ["adset"] * 4,
            "object_id": ["budgeted", "exported", "young", "idle"],
            "daily_budget": pd.array([250_000, None, None, None], dtype="Int64"),
        }
    )
    history = _history(
        [
            ("budgeted", 1, 900.0),
            # 100 a day for the 7 whole days; 1,000 eight days ago (outside them) and 20 so far
            # today (the decision date: partial for the Meta source)
            *[("exported", days, 100.0) for days in range(1, 8)],
            ("exported", 8, 1000.0),
            ("exported", 0, 20.0),
            # first spent two days ago: over its two days, not a seventh of the total
            ("young", 2, 300.0),
            ("young", 1, 500.0),
            # first spends today: nothing whole to go on
            ("launched", 0, 200.0),
            # an old ad set spending on some days only: 700 over the seven days
            ("sporadic", 30, 50.0),
            ("sporadic", 5, 300.0),
            ("sporadic", 2, 400.0),
            # spent only before the window
            ("idle", 9, 400.0),
            ("paused", 1, 800.0),
        ]
    )

    spend = planned_daily_spend(arms, entities, history, DECISION, local_settings)

    assert spend == {
        "budgeted": 2500.0,
        "exported": 100.0,
        "young": 400.0,
        "launched": 0.0,
        "sporadic": 100.0,
        "idle": 0.0,
    }
