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
    assert note == "not estimable: needs more than 10 eligible arms; at most 6"
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
    for figure, k in (("precision@5", 5), ("precision@10", 10), ("recall@5", 5), ("F1@5", 5)):
        assert notes[figure] == f"not estimable: needs more than {k} eligible arms; at most 3"
        assert np.isnan(figures.set_index("figure").loc[figure, "model"])
    assert row["baseline_cac"] == pytest.approx(300 / 7)
    assert row["baseline_spend_efficiency"] == pytest.approx(1 / 3)
    assert row["model_cac"] < row["baseline_cac"]


def test_a_k_that_ranks_every_eligible_arm_is_not_estimable():
    settings = ReplaySettings(decision_days=3, horizon_days=7, n_winners=3)
    history = _history({arm: 11 - i for i, arm in enumerate("abcdefghij")})  # 10 arms
    row, figures, days = model_accuracy(history, settings, np.random.default_rng(4))
    assert (days["eligible_arms"] == 10).all()
    # the top 10 of 10 arms hold the 3 winners whatever the ranking: 30% = random = ceiling
    assert np.isnan(row["precision_at_10"]) and np.isnan(row["random_precision_at_10"])
    figure = figures.set_index("figure").loc["precision@10"]
    assert np.isnan(figure["model"]) and np.isnan(figure["baseline"])
    assert figure["note"] == "not estimable: needs more than 10 eligible arms; at most 10"
    assert row["precision_at_5"] == pytest.approx(3 / 5)  # 10 arms are more than 5


def test_winners_tied_at_zero_conversions_are_not_ranked():
    settings = ReplaySettings(decision_days=3, horizon_days=7, n_winners=3)
    history = _history({"a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0})
    row, figures, _ = model_accuracy(history, settings, np.random.default_rng(5))
    notes = figures.set_index("figure")["note"]
    for figure, column in (("precision@5", "precision_at_5"), ("recall@5", "recall_at_5"),
                           ("F1@5", "f1_at_5")):  # fmt: skip
        assert np.isnan(row[column]) and np.isnan(figures.set_index("figure").loc[figure, "model"])
        assert notes[figure] == (
            "not estimable: the winners tie at 0 conversions (needs 3 arms with conversions;"
            " at most 0)"
        )
    # two arms convert: the third winner would be a tie among four arms at 0 conversions
    row, figures, _ = model_accuracy(
        _history({"a": 5, "b": 3, "c": 0, "d": 0, "e": 0, "f": 0}), settings,
        np.random.default_rng(5),
    )  # fmt: skip
    assert np.isnan(row["precision_at_5"])
    assert figures.set_index("figure").loc["precision@5", "note"] == (
        "not estimable: the winners tie at 0 conversions (needs 3 arms with conversions; at most 2)"
    )


def test_only_days_with_determined_winners_are_ranked():
    settings = ReplaySettings(decision_days=10, horizon_days=7, n_winners=3)
    history = _history({"a": 5, "b": 4, "c": 3, "d": 0, "e": 0, "f": 0}, days=30)
    late = history["date"] >= pd.Timestamp(START + dt.timedelta(days=25))
    history.loc[(history["adset_id"] == "c") & ~late, ["conversions", "conversion_value"]] = 0
    row, figures, days = model_accuracy(history, settings, np.random.default_rng(6))
    # decision days March 14 .. 23; c converts from March 26, inside the windows of March 19 ..
    assert len(days) == 10
    assert days["precision_at_5"].notna().tolist() == [False] * 5 + [True] * 5
    assert figures.set_index("figure").loc["precision@5", "note"] == (
        "mean over 5 days; baseline = random ranking"
    )
    assert row["random_precision_at_5"] == pytest.approx(3 / 6)


def test_spend_efficiency_needs_more_arms_than_winners():
    settings = ReplaySettings(decision_days=3, horizon_days=7, n_winners=3)
    row, figures, _ = model_accuracy(
        _history({"a": 4, "b": 2, "c": 1}), settings, np.random.default_rng(7)
    )
    efficiency = figures.set_index("figure").loc["spend efficiency"]
    for column in ("model", "baseline", "ceiling", "logged"):
        assert np.isnan(efficiency[column]), column
    assert efficiency["note"] == (
        "not estimable: needs more eligible arms than the 3 winners; at most 3"
    )
    assert np.isnan(row["model_spend_efficiency"]) and np.isnan(row["baseline_spend_efficiency"])
    assert row["baseline_cac"] == pytest.approx(300 / 7)  # CAC is still estimable


def test_spend_efficiency_counts_only_days_with_more_arms_than_winners():
    settings = ReplaySettings(decision_days=10, horizon_days=7, n_winners=3)
    history = _history({"a": 10, "b": 8, "c": 6, "d": 1}, days=30)
    history = history[
        (history["adset_id"] != "d")
        | (history["date"] >= pd.Timestamp(START + dt.timedelta(days=16)))
    ]
    row, _, days = model_accuracy(history, settings, np.random.default_rng(8))
    # d first delivers on March 17: 3 eligible arms on March 14 .. 16, then 4
    assert days["eligible_arms"].tolist() == [3] * 3 + [4] * 7
    # winners a, b, c: equal shares put 3 of 4 on them on the days that count
    assert row["baseline_spend_efficiency"] == pytest.approx(3 / 4)


def test_the_replay_carries_its_sunset_from_day_to_day():
    # z converts a tenth as well as the others: sunset on every decision day. Carried from
    # day to day its share falls to 0 on its 7th sunset day; started afresh each day it keeps
    # about an equal share (1/5 x 6/7) for ever.
    settings = ReplaySettings(decision_days=10, horizon_days=7, n_winners=3)
    history = _history({"a": 10, "b": 10, "c": 10, "d": 10, "z": 1}, days=30)
    _, _, days = model_accuracy(history, settings, np.random.default_rng(9))
    assert len(days) == 10
    # every arm but z buys 0.1 conversions per dollar: without z the model buys exactly that
    rate = days["model_conversions"] / days["model_spend"]
    assert rate.iloc[6:].tolist() == pytest.approx([0.1] * 4)
    assert (rate.iloc[:6] < 0.1 - 1e-6).all()
    assert rate.iloc[:6].is_monotonic_increasing  # z's share falls day by day


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
