"""The model-accuracy replay on tiny histories whose figures can be computed by hand."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from aelp2_assets.backtest import (
    ReplaySettings,
    decision_days,
    model_accuracy,
    weighted_outcomes,
)

START = dt.date(2026, 3, 1)


def _history(conversions_per_day: dict[str, int], days: int = 20) -> pd.DataFrame:
    """Every arm spends 100 a day on 100 clicks; its conversions a day are fixed, each worth 5."""
    return pd.DataFrame(
        [
            {
                "date": pd.Timestamp(START + dt.timedelta(days=day)),
                "adset_id": arm,
                "channel": "Feed",
                "spend": 100.0,
                "clicks": 100,
                "impressions": 5_000,
                "conversions": conversions,
                "conversion_value": 5.0 * conversions,
            }
            for day in range(days)
            for arm, conversions in conversions_per_day.items()
        ]
    )


def test_weighted_outcomes_reweight_the_realised_rates_by_hand():
    outcomes = pd.DataFrame(
        {"spend": [100.0, 200.0, 100.0], "conversions": [10, 10, 2],
         "conversion_value": [50.0, 50.0, 10.0], "clicks": [100, 400, 100]},
        index=["a", "b", "c"],
    )  # fmt: skip
    bought = weighted_outcomes(outcomes, pd.Series({"a": 0.5, "b": 0.25, "c": 0.25}))
    # 400 split 200/100/100 at 0.10, 0.05, 0.02 conversions per dollar
    assert bought["spend"] == 400
    assert bought["conversions"] == pytest.approx(20 + 5 + 2)
    assert bought["value"] == pytest.approx(100 + 25 + 10)
    assert bought["clicks"] == pytest.approx(200 + 200 + 100)


def test_decision_days_leave_a_full_outcome_window():
    history = _history({"a": 1}, days=20)  # March 1 .. 20
    days = decision_days(history, ReplaySettings(decision_days=14, horizon_days=7))
    assert days[0] == dt.date(2026, 3, 1) and days[-1] == dt.date(2026, 3, 13)
    assert len(days) == 13  # only 13 days have history up to them


def test_six_arms_ranked_by_hand():
    settings = ReplaySettings(decision_days=5, horizon_days=7, n_winners=3)
    history = _history({"a": 10, "b": 8, "c": 6, "d": 4, "e": 2, "f": 1})
    row, figures, days = model_accuracy(history, settings, np.random.default_rng(1))
    assert row["decision_days"] == 5 and (days["eligible_arms"] == 6).all()
    # winners a, b, c; the model ranks a..f; its top 5 hold all 3 winners
    assert row["precision_at_5"] == pytest.approx(3 / 5)
    assert row["random_precision_at_5"] == pytest.approx(3 / 6)
    assert row["ceiling_precision_at_5"] == pytest.approx(3 / 5)
    assert row["recall_at_5"] == 1.0 and row["random_recall_at_5"] == pytest.approx(5 / 6)
    assert row["f1_at_5"] == pytest.approx(0.75)
    assert row["random_f1_at_5"] == pytest.approx(2 * 0.5 * (5 / 6) / (0.5 + 5 / 6))
    assert np.isnan(row["precision_at_10"])
    note = figures.set_index("figure").loc["precision@10", "note"]
    assert note == "not estimable: only 6 arms"
    # equal allocation over 6 arms spending 100 each: 600 buys 31 conversions a day
    assert row["baseline_cac"] == pytest.approx(600 / 31)
    assert row["logged_cac"] == pytest.approx(600 / 31)  # the logged spend was equal too
    assert row["baseline_roas"] == pytest.approx(5 * 31 / 600)
    assert row["baseline_cvr"] == pytest.approx(31 / 600)
    assert row["baseline_spend_efficiency"] == pytest.approx(0.5)
    # the model favours the cheap arms: lower CAC, more spend on winners
    assert row["model_cac"] < row["baseline_cac"]
    assert row["model_spend_efficiency"] > 0.5
    assert row["cac_saving_share"] == pytest.approx(1 - row["model_cac"] / row["baseline_cac"])
    assert "no counterfactual delivery" in row["method"]


def test_three_arms_say_what_cannot_be_estimated():
    settings = ReplaySettings(decision_days=3, horizon_days=7, n_winners=1)
    history = _history({"a": 4, "b": 2, "c": 1})
    row, figures, _ = model_accuracy(history, settings, np.random.default_rng(2))
    notes = figures.set_index("figure")["note"]
    for figure in ("precision@5", "precision@10", "recall@5", "F1@5"):
        assert notes[figure] == "not estimable: only 3 arms"
        assert np.isnan(figures.set_index("figure").loc[figure, "model"])
    assert row["baseline_cac"] == pytest.approx(300 / 7)
    assert row["baseline_spend_efficiency"] == pytest.approx(1 / 3)
    assert row["model_cac"] < row["baseline_cac"]


def test_one_arm_or_no_conversions_print_no_cac():
    settings = ReplaySettings(decision_days=3, horizon_days=7)
    row, figures, _ = model_accuracy(_history({"a": 4}), settings, np.random.default_rng(3))
    assert np.isnan(row["model_cac"]) and np.isnan(row["baseline_cac"])
    assert figures.set_index("figure").loc["CAC", "note"].startswith("not estimable: only 1 arm (")
    row, figures, _ = model_accuracy(_history({"a": 0, "b": 0}), settings, np.random.default_rng(3))
    assert np.isnan(row["model_cac"])
    assert figures.set_index("figure").loc["CAC", "note"] == (
        "not estimable: no conversions in the replayed windows"
    )


def test_an_empty_history_replays_nothing():
    empty = _history({"a": 1}).iloc[:0]
    row, figures, days = model_accuracy(empty, ReplaySettings(), np.random.default_rng(0))
    assert row["decision_days"] == 0 and days.empty
    assert figures["note"].str.startswith("not estimable").all()
