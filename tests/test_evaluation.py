"""Decision-quality metrics and the plain allocator driven from the simulator."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from aelp2_assets.allocation import AllocatorSettings, allocate_from_history
from aelp2_assets.evaluation import crps_from_samples, f1, precision_recall_at_k
from aelp2_assets.simulator import Simulator, baseline_budgets, history_frame


def test_precision_and_recall_come_with_their_baseline_and_ceiling():
    ranked = [f"a{i}" for i in range(10)]
    score = precision_recall_at_k(ranked, ["a0", "a5", "a9"], 10)
    assert score.precision == pytest.approx(0.3)  # the ceiling with 3 winners of 10
    assert score.ceiling_precision == pytest.approx(0.3)
    assert score.recall == 1.0
    top3 = precision_recall_at_k(ranked, ["a0", "a5", "a9"], 3)
    assert top3.precision == pytest.approx(1 / 3)
    assert top3.random_precision == pytest.approx(0.3)
    assert top3.random_recall == pytest.approx(0.3)
    assert f1(top3.precision, top3.recall) == pytest.approx(1 / 3)


def test_crps_of_draws_matches_the_closed_form_of_a_point_and_a_uniform():
    assert crps_from_samples(np.full(10, 5.0), 7.0) == pytest.approx(2.0)
    # Uniform(0, 1) at 0.5: E|X - y| = 1/4, E|X - X'| / 2 = 1/6.
    draws = np.linspace(0, 1, 20001)
    assert crps_from_samples(draws, 0.5) == pytest.approx(1 / 4 - 1 / 6, abs=1e-4)


def test_the_allocator_runs_on_simulated_history_and_launches_a_new_arm():
    start = dt.date(2025, 1, 1)
    sim = Simulator(3, start, 10, reference_daily_spend=3000.0)
    frames = []
    for index in range(10):
        day = start + dt.timedelta(days=index)
        frames.append(history_frame(sim.step(day, baseline_budgets(sim, day, 30_000.0))))
    history = pd.concat(frames, ignore_index=True)
    day = start + dt.timedelta(days=10)
    settings = AllocatorSettings(budget_minor=3_000_000)
    first = allocate_from_history(
        history, day, settings, np.random.default_rng(1), new_arms=["brand_new"]
    )
    again = allocate_from_history(
        history, day, settings, np.random.default_rng(1), new_arms=["brand_new"]
    )
    table = first.table.set_index("arm_id")
    assert first.table.equals(again.table)
    assert int(table["budget_minor"].sum()) == 3_000_000
    assert table.loc["brand_new", "stage"] == "launch"
    assert table.loc["brand_new", "budget_minor"] == 150_000
    assert (table["share"] <= 0.30 + 1e-6).all()
