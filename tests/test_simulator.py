"""The account simulator: determinism, Meta's row shape, and the behaviour it must model."""

import datetime as dt
import math
import time
from collections import defaultdict

import pandas as pd
import pytest

from aelp2_assets.placements import PLACEMENT_PROFILES
from aelp2_assets.simulator import (
    PURCHASE_ALIASES,
    SPEND_EXPONENT,
    Simulator,
    baseline_budgets,
    simulate_history,
)
from aelp2_assets.tables import INSIGHT_FIELDS

START = dt.date(2024, 1, 1)
NUMERIC_FIELDS = ("spend", "impressions", "clicks")
ID_FIELDS = ("account_id", "campaign_id", "adset_id", "ad_id")


def _day(offset: int) -> dt.date:
    return START + dt.timedelta(days=offset)


def _purchases(row: dict, key: str = "actions") -> float:
    """The row's purchases (or their value) under one alias, 0 when Meta left the key out."""
    entries = {entry["action_type"]: entry["value"] for entry in row.get(key, [])}
    return float(entries.get("offsite_conversion.fb_pixel_purchase", 0))


def _totals(rows: list[dict], by: str) -> pd.DataFrame:
    """Spend, impressions, clicks and conversions summed by one row field."""
    frame = pd.DataFrame(
        {
            by: [row[by] for row in rows],
            "spend": [float(row["spend"]) for row in rows],
            "impressions": [int(row["impressions"]) for row in rows],
            "clicks": [int(row["clicks"]) for row in rows],
            "conversions": [_purchases(row) for row in rows],
        }
    )
    return frame.groupby(by).sum()


@pytest.fixture(scope="module")
def two_years() -> object:
    """Two years of the baseline policy at the default $30,000 a day."""
    return simulate_history(seed=11, start=START, end=_day(730))


def test_same_seed_gives_the_same_rows_and_another_seed_does_not() -> None:
    first = simulate_history(seed=3, start=START, end=_day(59))
    again = simulate_history(seed=3, start=START, end=_day(59))
    other = simulate_history(seed=4, start=START, end=_day(59))

    assert first.rows == again.rows
    assert first.entities.equals(again.entities)
    assert first.rows != other.rows


def test_rows_have_meta_shape_with_every_value_a_string() -> None:
    history = simulate_history(seed=5, start=START, end=_day(29), currency="EUR")

    assert history.rows
    optional = {"actions", "action_values"}
    for row in history.rows:
        assert set(INSIGHT_FIELDS) - optional <= set(row) <= set(INSIGHT_FIELDS)
        assert row["date_start"] == row["date_stop"]
        dt.date.fromisoformat(row["date_start"])
        assert row["account_currency"] == "EUR"
        for key in ID_FIELDS:
            assert row[key].isdigit(), (key, row[key])
        for key, value in row.items():
            if key in optional:
                for entry in value:
                    assert isinstance(entry["value"], str)
                    float(entry["value"])
            else:
                assert isinstance(value, str), (key, value)
        for key in NUMERIC_FIELDS:
            assert float(row[key]) >= 0
        assert int(row["impressions"]) > 0  # cells without impressions are not emitted
        assert int(row["clicks"]) == float(row["clicks"])


def test_jpy_spend_and_budgets_are_whole_yen() -> None:
    history = simulate_history(
        seed=5, start=START, end=_day(9), daily_budget=4_500_000, currency="JPY",
        currency_per_usd=150.0,
    )  # fmt: skip

    assert all("." not in row["spend"] for row in history.rows)
    adsets = history.entities[history.entities["level"] == "adset"]
    active = adsets[adsets["status"] == "ACTIVE"]
    assert active["daily_budget"].sum() == 4_500_000


def test_purchase_aliases_carry_equal_values_and_link_clicks_equal_clicks() -> None:
    history = simulate_history(seed=6, start=START, end=_day(29))

    with_purchases = 0
    for row in history.rows:
        for key in ("actions", "action_values"):
            entries = {entry["action_type"]: entry["value"] for entry in row.get(key, [])}
            aliases = {entries.get(alias) for alias in PURCHASE_ALIASES}
            assert len(aliases) == 1, (key, entries)
        actions = {entry["action_type"]: entry["value"] for entry in row.get("actions", [])}
        if int(row["clicks"]):
            assert actions["link_click"] == row["clicks"]
        with_purchases += "purchase" in actions
    assert with_purchases > 100


def test_rows_without_actions_leave_out_the_keys() -> None:
    # A tiny budget leaves many placement cells without a click or a purchase.
    history = simulate_history(seed=7, start=START, end=_day(29), daily_budget=40.0)

    empty = [row for row in history.rows if row["clicks"] == "0" and not _purchases(row)]
    assert len(empty) > 10
    for row in empty:
        assert "actions" not in row
        assert "action_values" not in row
    for row in history.rows:
        if "actions" not in row:
            assert row["clicks"] == "0"
        if "action_values" in row:
            assert _purchases(row) > 0


def test_eight_to_twelve_arms_live_on_every_day_of_two_years(two_years: object) -> None:
    simulator = two_years.simulator
    counts = [len(simulator.live_arms(day)) for day in two_years.budgets]
    delivering = defaultdict(set)
    for row in two_years.rows:
        delivering[row["date_start"]].add(row["adset_id"])

    assert len(counts) == 731
    assert min(counts) >= 8
    assert max(counts) <= 12
    assert all(8 <= len(arms) <= 12 for arms in delivering.values())
    # Creatives turn over: far more ad sets were used than are live at once.
    assert (two_years.entities["status"] == "PAUSED").sum() > 50


def test_ctr_falls_as_a_creative_accumulates_spend(two_years: object) -> None:
    simulator = two_years.simulator
    retired = [
        arm
        for arm in simulator.live_arms(_day(400))
        if simulator.truth(arm).launch_date > START and simulator.truth(arm).retire_date
    ]
    arm = retired[0]
    truth = simulator.truth(arm)
    first, last = truth.launch_date, truth.retire_date - dt.timedelta(days=1)

    early, late = simulator.true_ctr(arm, first), simulator.true_ctr(arm, last)
    assert all(late[name] < 0.6 * early[name] for name in early)

    rows = [row for row in two_years.rows if row["adset_id"] == arm]
    early_rows = [row for row in rows if row["date_start"] < (first + dt.timedelta(5)).isoformat()]
    late_rows = [row for row in rows if row["date_start"] > (last - dt.timedelta(5)).isoformat()]
    early_ctr = _totals(early_rows, "adset_id").eval("clicks / impressions").iloc[0]
    late_ctr = _totals(late_rows, "adset_id").eval("clicks / impressions").iloc[0]
    assert late_ctr < 0.75 * early_ctr


def test_doubling_a_budget_less_than_doubles_expected_conversions() -> None:
    simulator = Simulator(seed=8, start=START)
    arm = simulator.live_arms(START)[0]

    single = simulator.expected_conversions(arm, START, 3_000.0)
    double = simulator.expected_conversions(arm, START, 6_000.0)

    assert single < double < 2 * single
    assert double / single == pytest.approx(2**SPEND_EXPONENT)
    per_dollar = simulator.true_conversions_per_dollar(arm, START, 6_000.0)
    assert per_dollar < simulator.true_conversions_per_dollar(arm, START, 3_000.0)


def test_the_truly_cheapest_creative_converts_more_per_dollar_than_the_dearest() -> None:
    best_conversions = best_spend = worst_conversions = worst_spend = 0.0
    for seed in range(5):
        history = simulate_history(seed=seed, start=START, end=_day(29))
        simulator = history.simulator
        initial = simulator.live_arms(START)
        equal_share = 30_000.0 / len(initial)
        ranked = sorted(
            initial, key=lambda arm: simulator.true_conversions_per_dollar(arm, START, equal_share)
        )
        totals = _totals(history.rows, "adset_id")
        worst_conversions += totals.loc[ranked[0], "conversions"]
        worst_spend += totals.loc[ranked[0], "spend"]
        best_conversions += totals.loc[ranked[-1], "conversions"]
        best_spend += totals.loc[ranked[-1], "spend"]

    assert best_conversions / best_spend > 1.5 * worst_conversions / worst_spend


def test_placement_figures_match_the_measured_profiles(two_years: object) -> None:
    # Creative multipliers have mean 1 and ~200 creatives pass through in two years, fatigue is
    # normalised to its average over a creative's life, and the CPM curve equals the measured
    # CPM at the equal-split spend. What remains is the sample of creatives (CTR and CVR
    # multipliers with sigma 0.30-0.35: a few % on the mean), their Dirichlet mixes and live
    # counts moving between 8 and 12 (a few % on CPM). Measured: within 6% over seeds 1-3; a
    # 15% band catches a broken calibration without flaking on the draw.
    rows = [
        {**row, "placement": f"{row['platform_position']}/{row['impression_device']}"}
        for row in two_years.rows
    ]
    totals = _totals(rows, "placement")

    for profile in PLACEMENT_PROFILES:
        cell = totals.loc[f"{profile.platform_position}/{profile.impression_device}"]
        assert cell["spend"] / cell["impressions"] * 1000 == pytest.approx(profile.cpm, rel=0.15)
        assert cell["clicks"] / cell["impressions"] == pytest.approx(profile.ctr, rel=0.15)
        assert cell["conversions"] / cell["clicks"] == pytest.approx(profile.cvr, rel=0.15)


def test_a_cost_shock_raises_cost_per_conversion_by_its_multiplier() -> None:
    plain = simulate_history(seed=9, start=START, end=_day(39))
    simulator = plain.simulator
    # The initial arm with the longest life left stays live through the whole window.
    arm = max(simulator.live_arms(START), key=lambda a: simulator.fatigue(a, START))
    assert simulator.truth(arm).retire_date is None
    shocked = simulate_history(seed=9, start=START, end=_day(39), shocks=[(arm, _day(10), 2.0)])

    assert shocked.simulator.expected_conversions(arm, _day(10), 3_000.0) == pytest.approx(
        simulator.expected_conversions(arm, _day(10), 3_000.0) / 2
    )
    assert shocked.simulator.expected_conversions(arm, _day(9), 3_000.0) == pytest.approx(
        simulator.expected_conversions(arm, _day(9), 3_000.0)
    )

    def cost_per_conversion(history: object) -> float:
        after = [
            row
            for row in history.rows
            if row["adset_id"] == arm and row["date_start"] >= _day(10).isoformat()
        ]
        totals = _totals(after, "adset_id").iloc[0]
        return totals["spend"] / totals["conversions"]

    assert cost_per_conversion(shocked) / cost_per_conversion(plain) == pytest.approx(2.0, rel=0.2)


def test_entities_hold_one_campaign_and_integer_budgets_summing_to_the_daily_budget(
    two_years: object,
) -> None:
    entities = two_years.entities
    adsets = entities[entities["level"] == "adset"]
    ads = entities[entities["level"] == "ad"]
    active = adsets[adsets["status"] == "ACTIVE"]

    assert (entities["level"] == "campaign").sum() == 1
    assert entities["campaign_id"].nunique() == 1
    assert str(entities["daily_budget"].dtype) == "Int64"
    assert str(entities["lifetime_budget"].dtype) == "Int64"
    assert entities["lifetime_budget"].isna().all()
    assert adsets["daily_budget"].notna().all()
    assert entities.loc[entities["level"] != "adset", "daily_budget"].isna().all()
    assert active["daily_budget"].sum() == 3_000_000  # $30,000 in cents
    assert sorted(active["adset_id"]) == sorted(two_years.simulator.live_arms(_day(730)))
    assert set(entities["status"]) == {"ACTIVE", "PAUSED"}
    assert ads["creative_id"].str.isdigit().all()
    assert entities.loc[entities["level"] != "ad", "creative_id"].isna().all()
    assert all(isinstance(day, dt.date) for day in adsets["first_delivery_date"])


def test_the_baseline_gives_a_new_arm_five_percent(two_years: object) -> None:
    simulator = two_years.simulator
    for day, budgets in two_years.budgets.items():
        new = [arm for arm in budgets if simulator.is_new(arm, day)]
        if new:
            assert budgets[new[0]] == pytest.approx(1_500.0)
            assert math.isclose(sum(budgets.values()), 30_000.0)
            return
    pytest.fail("no arm launched in two years")


def test_days_must_be_stepped_in_order() -> None:
    simulator = Simulator(seed=1, start=START)
    budgets = baseline_budgets(simulator, START, 30_000.0)

    with pytest.raises(ValueError, match="in order"):
        simulator.step(_day(1), budgets)
    simulator.step(START, budgets)
    with pytest.raises(ValueError, match="in order"):
        simulator.step(START, budgets)
    with pytest.raises(ValueError, match="unknown arm"):
        simulator.step(_day(1), {"999": 10.0})


def test_a_thousand_days_of_twelve_creatives_run_in_seconds() -> None:
    began = time.perf_counter()
    history = simulate_history(seed=2, start=START, end=_day(999), n_creatives=12)
    elapsed = time.perf_counter() - began

    assert len({row["date_start"] for row in history.rows}) == 1000
    assert elapsed < 10.0
