"""Thompson-sampling allocation under the lifecycle rules: properties and examples."""

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aelp2_assets.allocation import ALLOCATION_COLUMNS, LifecycleRules, allocate_budget
from aelp2_assets.posteriors import fit_posteriors

RULES = LifecycleRules()
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def arm(
    arm_id: str,
    *,
    clicks: float,
    conversions: float,
    clicks_per_dollar: float = 1.0,
    age: int = 30,
    live: bool = True,
    previous_stage: str | None = None,
    previous_sunset_day: int | None = None,
    previous_share: float | None = None,
    previous_budget: int | None = None,
) -> dict:
    """An arm row shaped like the "all" rows of fit_posteriors (alpha = beta = 1 prior)."""
    click_shape = 5.0 + clicks
    click_rate = 5.0 / clicks_per_dollar + clicks / clicks_per_dollar
    conv_shape = 1.0 + conversions
    conv_rate = 2.0 + clicks
    return {
        "arm_id": arm_id,
        "click_shape": click_shape,
        "click_rate": click_rate,
        "conv_shape": conv_shape,
        "conv_rate": conv_rate,
        "expected_cac": click_rate / (click_shape - 1) * conv_rate / max(conv_shape - 1, 1e-9),
        "age_days": age,
        "is_live": live,
        "previous_budget_minor": previous_budget,
        "previous_stage": previous_stage,
        "previous_sunset_day": previous_sunset_day,
        "previous_share": previous_share,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    arms = pd.DataFrame(rows)
    arms["previous_budget_minor"] = arms["previous_budget_minor"].astype("Int64")
    arms["previous_sunset_day"] = arms["previous_sunset_day"].astype("Int64")
    arms["previous_share"] = arms["previous_share"].astype(float)
    return arms


def allocate(
    arms: pd.DataFrame, budget: int, minimum: int, seed: int = 0, draws: int = 400, **options
):
    return allocate_budget(
        arms,
        budget_minor=budget,
        min_budget_minor=minimum,
        rng=np.random.default_rng(seed),
        draws=draws,
        **options,
    )


def rule_cap(age: float, n_live: int) -> float:
    """The lifecycle cap by age, written out from the rules (not read from the code)."""
    launch = min(0.05, 1.0 / n_live)
    if age < 1:
        return launch
    if age < 3:
        return launch + (0.15 - launch) * age / 3
    return 0.30


def start_share(row: pd.Series, budget: int, n_live: int) -> float:
    """The share a sunset starts from: recorded share, else current budget, else equal."""
    if not pd.isna(row["previous_share"]):
        return min(max(float(row["previous_share"]), 0.0), 1.0)
    if not pd.isna(row["previous_budget_minor"]):
        return min(float(row["previous_budget_minor"]) / budget, 1.0)
    return min(1.0 / n_live, 0.30)


@st.composite
def portfolios(draw: st.DrawFn) -> tuple[pd.DataFrame, int, int]:
    n = draw(st.integers(1, 15))
    rows = []
    for i in range(n):
        clicks = draw(st.integers(0, 200_000))
        previous_stage = draw(
            st.sampled_from([None, "launch", "ramp", "established", "top", "sunset", "inactive"])
        )
        rows.append(
            arm(
                f"a{i}",
                clicks=clicks,
                conversions=draw(st.integers(0, max(clicks // 20, 3))),
                clicks_per_dollar=draw(st.floats(0.2, 3.0)),
                age=draw(st.integers(0, 40)),
                live=draw(st.sampled_from([True, True, True, False])),
                previous_stage=previous_stage,
                previous_sunset_day=draw(st.none() | st.integers(1, 7))
                if previous_stage == "sunset"
                else None,
                previous_share=draw(st.none() | st.floats(0.0, 0.5)),
                previous_budget=draw(st.none() | st.integers(0, 5_000_000)),
            )
        )
    budget = draw(st.integers(1_000, 10_000_000))
    minimum = draw(st.sampled_from([0, 1, 100, 10_000]) | st.integers(0, budget // 2))
    return frame(rows), budget, minimum


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios(), st.integers(0, 2**32 - 1))
def test_allocation_properties(portfolio: tuple[pd.DataFrame, int, int], seed: int) -> None:
    arms, budget, minimum = portfolio
    result = allocate(arms, budget, minimum, seed=seed, draws=200)
    table = result.table.set_index(arms["arm_id"])
    live = arms.set_index("arm_id")["is_live"]
    n_live = int(live.sum())
    spent = int(table["budget_minor"].sum())

    assert list(result.table.columns) == list(ALLOCATION_COLUMNS)
    assert result.table["budget_minor"].dtype == np.int64
    assert (table["budget_minor"] >= 0).all()
    assert spent <= budget
    assert result.unallocated_minor == budget - spent

    # Not live: no money.
    assert (table.loc[~live, "budget_minor"] == 0).all()
    assert (table.loc[~live, "stage"] == "inactive").all()
    if n_live:
        assert table.loc[live, "p_alloc"].sum() == pytest.approx(1.0)

    for arm_id, row in arms.set_index("arm_id")[live].iterrows():
        out = table.loc[arm_id]
        amount = int(out["budget_minor"])
        # Funded means at least the account minimum.
        assert amount == 0 or amount >= minimum
        if out["stage"] == "sunset":
            cap = start_share(row, budget, n_live)
            assert 1 <= out["sunset_day"] <= RULES.sunset_days
        else:
            cap = rule_cap(row["age_days"], n_live)
            expected_stage = (
                "launch" if row["age_days"] < 1 else "ramp" if row["age_days"] < 3 else None
            )
            assert expected_stage is None or out["stage"] == expected_stage
            if expected_stage is None:
                assert out["stage"] in ("established", "top")
        # Caps hold up to one minor unit of rounding; the account minimum overrides them.
        assert amount <= max(cap * budget + 1, minimum)

        # Money left over only when this arm could take no more.
        if spent < budget:
            at_cap = amount + 1 >= min(out["cap_share"], cap) * budget
            unaffordable = amount == 0 and budget - spent < minimum
            assert at_cap or unaffordable


def test_sum_is_the_budget_when_caps_allow() -> None:
    rows = [arm(f"a{i}", clicks=5_000, conversions=50 + 10 * i) for i in range(6)]
    result = allocate(frame(rows), 3_000_000, 100)
    assert result.table["budget_minor"].sum() == 3_000_000
    assert result.unallocated_minor == 0


@settings(max_examples=60, deadline=None)
@given(
    budget=st.integers(1_000, 10_000_000),
    minimum_share=st.sampled_from([0.0, 0.001, 0.02, 0.1, 0.3]),
    n_good=st.integers(2, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_sunset_share_falls_day_by_day_to_zero(
    budget: int, minimum_share: float, n_good: int, seed: int
) -> None:
    # One arm converts at a fifth of the others' rate on plenty of data: an underperformer.
    minimum = int(budget * minimum_share)
    rows = [arm(f"good{i}", clicks=20_000, conversions=400 + 20 * i) for i in range(n_good)]
    rows.append(arm("bad", clicks=20_000, conversions=80, previous_share=0.25))
    arms = frame(rows)

    shares, days = [], []
    for step in range(RULES.sunset_days + 2):
        result = allocate(arms, budget, minimum, seed=seed + step, draws=300)
        table = result.table.set_index("arm_id")
        bad = table.loc["bad"]
        assert bad["stage"] == "sunset"
        shares.append(float(bad["share"]))
        days.append(int(bad["sunset_day"]))
        arms["previous_stage"] = table["stage"].to_numpy()
        arms["previous_sunset_day"] = table["sunset_day"].to_numpy()
        arms["previous_share"] = table["share"].to_numpy()

    assert days == [1, 2, 3, 4, 5, 6, 7, 7, 7]
    assert all(later <= earlier for earlier, later in zip(shares, shares[1:], strict=False))
    assert shares[6:] == [0.0, 0.0, 0.0]
    if minimum == 0 or minimum <= budget * 0.25 * 6 / 7 / (n_good + 1):
        # Nothing interfered on the first day: the linear schedule from 25%.
        assert shares[0] == pytest.approx(0.25 * 6 / 7, abs=1.0 / budget)


def test_linear_sunset_schedule_and_recovery() -> None:
    good = [arm(f"good{i}", clicks=20_000, conversions=400) for i in range(4)]
    bad = arm(
        "bad",
        clicks=20_000,
        conversions=80,
        previous_stage="sunset",
        previous_sunset_day=3,
        previous_share=0.10,
    )
    table = allocate(frame([*good, bad]), 1_000_000, 100).table.set_index("arm_id")
    # Day 4 of 7 from 10% at day 3: 10% x 3/4 (= s0 x 3/7 with s0 = 10% / (4/7)).
    assert table.loc["bad", "budget_minor"] == 75_000
    assert table.loc["bad", "reason"].startswith("sunset day 4 of 7")

    recovered = arm(
        "bad",
        clicks=20_000,
        conversions=400,
        previous_stage="sunset",
        previous_sunset_day=3,
        previous_share=0.10,
    )
    table = allocate(frame([*good, recovered]), 1_000_000, 100).table.set_index("arm_id")
    assert table.loc["bad", "stage"] in ("established", "top")
    assert pd.isna(table.loc["bad", "sunset_day"])


def test_a_clearly_best_arm_gets_the_top_cap() -> None:
    rows = [arm("best", clicks=50_000, conversions=2_000)]
    rows += [arm(f"a{i}", clicks=50_000, conversions=1_000 + 10 * i) for i in range(5)]
    result = allocate(frame(rows), 3_000_000, 100)
    best = result.table.set_index("arm_id").loc["best"]
    # On the response curve (exponent 0.7) each arm at half its rate weighs 0.5 ** (1 / 0.3)
    # = 0.099 of it: 1 / (1 + 5 x 0.099) = 0.67 of the weight.
    assert best["p_alloc"] > 0.6
    assert abs(int(best["budget_minor"]) - 900_000) <= 1
    assert best["stage"] == "top"
    assert "top_max_share 30%" in best["reason"]
    assert result.table["budget_minor"].sum() == 3_000_000


def test_three_arms_at_a_30_percent_cap_leave_10_percent_unallocated() -> None:
    rows = [arm(f"a{i}", clicks=10_000, conversions=100 + 30 * i) for i in range(3)]
    result = allocate(frame(rows), 1_000_000, 100)
    assert result.unallocated_minor == 100_000
    assert (result.table["budget_minor"] == 300_000).all()


def test_118_new_live_arms_are_all_funded() -> None:
    rows = [arm(f"a{i}", clicks=0, conversions=0, age=0) for i in range(118)]
    budget, minimum = 3_000_000, 100
    result = allocate(frame(rows), budget, minimum)
    table = result.table
    assert table["budget_minor"].sum() == budget
    assert (table["budget_minor"] >= minimum).all()
    assert (table["stage"] == "launch").all()
    # 5% each is impossible; the launch share becomes 1/118.
    assert table["budget_minor"].between(budget // 118, budget // 118 + 1).all()
    assert table["reason"].str.contains("1/118").all()


def test_minimums_beyond_the_budget_fund_the_likeliest_best() -> None:
    rows = [arm(f"a{i}", clicks=20_000, conversions=200 + 40 * i) for i in range(6)]
    table = allocate(frame(rows), 10_000, 3_000).table
    funded = table[table["budget_minor"] > 0]
    assert len(funded) == 3
    assert (funded["budget_minor"] >= 3_000).all()
    assert funded["p_alloc"].min() >= table.loc[table["budget_minor"] == 0, "p_alloc"].max()
    assert table.loc[table["budget_minor"] == 0, "reason"].str.startswith("not funded").all()
    assert table["budget_minor"].sum() <= 10_000


def test_new_arms_launch_and_ramp() -> None:
    rows = [arm(f"old{i}", clicks=20_000, conversions=200) for i in range(6)]
    rows += [
        arm("day0", clicks=0, conversions=0, age=0),
        arm("day1", clicks=300, conversions=30, age=1),
    ]
    table = allocate(frame(rows), 1_000_000, 100).table.set_index("arm_id")
    assert table.loc["day0", "stage"] == "launch"
    assert table.loc["day0", "budget_minor"] == 50_000
    assert table.loc["day0", "reason"] == "launch share 5%"
    # Day 1 of 3: the ramp cap is 5% + (15% - 5%) / 3 = 8.33%; a promising arm reaches it.
    assert table.loc["day1", "stage"] == "ramp"
    assert table.loc["day1", "budget_minor"] <= 83_334
    assert table.loc["day1", "budget_minor"] >= 83_333
    assert table.loc["day1", "reason"] == "ramp cap 8.3% (day 1 of 3)"


def test_raised_to_minimum_takes_from_the_others() -> None:
    # Six close contenders share P(best); the weak arm is never best but no underperformer.
    # Plain probability matching: with the response curve the weak arm would weigh 0.06.
    rows = [arm(f"a{i}", clicks=50_000, conversions=600 + 10 * i) for i in range(6)]
    rows.append(arm("weak", clicks=50_000, conversions=520))
    table = allocate(frame(rows), 100_000, 5_000, response_exponent=None).table
    table = table.set_index("arm_id")
    assert table.loc["weak", "p_alloc"] == 0
    assert table.loc["weak", "budget_minor"] == 5_000
    assert table.loc["weak", "reason"] == "raised to account minimum"
    assert table.loc["weak", "stage"] == "established"
    assert table["budget_minor"].sum() == 100_000


def test_not_live_arms_get_nothing_and_same_rng_same_answer() -> None:
    rows = [
        arm("on", clicks=1_000, conversions=10),
        arm("off", clicks=1_000, conversions=90, live=False),
        arm("on2", clicks=1_000, conversions=12),
    ]
    first = allocate(frame(rows), 500_000, 100, seed=9)
    second = allocate(frame(rows), 500_000, 100, seed=9)
    pd.testing.assert_frame_equal(first.table, second.table)
    off = first.table.set_index("arm_id").loc["off"]
    assert off["budget_minor"] == 0 and off["stage"] == "inactive" and off["reason"] == "not live"
    assert off["p_alloc"] == 0


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="top_max_share"):
        LifecycleRules(top_max_share=1.5)
    with pytest.raises(ValueError, match="sunset_days"):
        LifecycleRules(sunset_days=0)


def test_real_export_allocates_every_live_ad_set() -> None:
    path = SHARED_DATA / "kaggle_fb_ad_campaign" / "derived_ad_day_clean.csv"
    if not path.exists():
        pytest.skip(f"the real Facebook export is absent: expected it at {path}")
    raw = pd.read_csv(path)
    history = pd.DataFrame(
        {
            "date": pd.to_datetime(raw["date"]).dt.date,
            "adset_id": raw["fb_campaign_id"].astype(str),
            "channel": "other",
            "spend": raw["spent"].astype(float),
            "clicks": raw["clicks"].astype(int),
            "conversions": raw["approved_conversion"].astype(int),
            "impressions": raw["impressions"].astype(int),
        }
    )
    posteriors = fit_posteriors(
        history,
        dt.date(2017, 8, 30),
        alpha_init=1.0,
        beta_init=1.0,
        placement_tracking=False,
        rng=np.random.default_rng(0),
    )
    arms = posteriors.assign(
        previous_budget_minor=pd.NA, previous_stage=None, previous_sunset_day=pd.NA
    ).assign(previous_share=math.nan)
    result = allocate(arms, 3_000_000, 100, draws=1000)
    table = result.table
    live = arms["is_live"].to_numpy()
    assert live.sum() == 118  # ad sets delivering on 2017-08-28..30, as PROVENANCE.md counts
    assert table["budget_minor"].sum() == 3_000_000
    assert (table.loc[live, "budget_minor"] >= 100).all()
    assert (table.loc[~live, "budget_minor"] == 0).all()


def test_cac_ceiling_below_every_arm_holds_the_budget_back() -> None:
    # CAC about 100 (1 click per dollar, 1% conversion) and about 200: both above a 90 ceiling.
    rows = [
        arm("cheap", clicks=50_000, conversions=500),
        arm("dear", clicks=50_000, conversions=250),
    ]
    off = allocate(frame(rows), 1_000_000, 5_000)
    assert off.table["budget_minor"].sum() == 600_000  # two arms at the 30% cap
    assert off.held_back_minor == 0 and (off.table["held_back_minor"] == 0).all()

    held = allocate_budget(
        frame(rows),
        budget_minor=1_000_000,
        min_budget_minor=5_000,
        rng=np.random.default_rng(0),
        draws=400,
        cac_ceiling=90.0,
    )
    table = held.table.set_index("arm_id")
    # Each arm keeps the account minimum; the rest is reported, not moved to the cheaper arm.
    assert table["budget_minor"].tolist() == [5_000, 5_000]
    assert table["held_back_minor"].tolist() == [295_000, 295_000]
    assert held.held_back_minor == 590_000
    assert held.unallocated_minor == 1_000_000 - 10_000
    assert table["reason"].str.startswith("held back to the account minimum").all()
    assert "ceiling 90.00" in table.loc["dear", "reason"]
    assert table["stage"].tolist() == off.table["stage"].tolist()


def test_cac_ceiling_above_one_arm_changes_nothing() -> None:
    rows = [
        arm("cheap", clicks=50_000, conversions=500),
        arm("dear", clicks=50_000, conversions=250),
        arm("gone", clicks=50_000, conversions=10, live=False),  # not live: not judged
    ]
    kwargs = dict(budget_minor=1_000_000, min_budget_minor=5_000, draws=400)
    off = allocate_budget(frame(rows), rng=np.random.default_rng(3), **kwargs)
    on = allocate_budget(frame(rows), rng=np.random.default_rng(3), cac_ceiling=150.0, **kwargs)
    pd.testing.assert_frame_equal(off.table, on.table)
    assert on.held_back_minor == 0


def test_a_bad_cac_ceiling_is_refused() -> None:
    rows = [arm("a", clicks=1_000, conversions=10)]
    for bad in (0.0, -5.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="cac_ceiling"):
            allocate_budget(
                frame(rows),
                budget_minor=1_000,
                min_budget_minor=1,
                rng=np.random.default_rng(0),
                cac_ceiling=bad,
            )


def test_response_curve_split_gives_a_near_best_arm_more_than_the_minimum() -> None:
    # Two arms 10% apart on plenty of data: P(best) is nearly all the better arm's; the
    # response-curve split with returns s ** 0.85 gives the other about 0.9 ** 6.67 = 0.50
    # of the better arm's weight.
    rows = [
        arm("best", clicks=200_000, conversions=2_000),
        arm("near", clicks=200_000, conversions=1_800),
    ]
    common = dict(budget_minor=1_000_000, min_budget_minor=100, draws=2_000)
    thompson = allocate_budget(
        frame(rows), rng=np.random.default_rng(1), response_exponent=None, **common
    )
    curve = allocate_budget(
        frame(rows), rng=np.random.default_rng(1), response_exponent=0.85, **common
    )
    assert thompson.table["p_alloc"].iloc[1] < 0.01
    weights = curve.table["p_alloc"].to_numpy()
    assert weights.sum() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(0.9 ** (1 / 0.15), rel=0.1)
    with pytest.raises(ValueError, match="response_exponent"):
        allocate_budget(frame(rows), rng=np.random.default_rng(1), response_exponent=1.0, **common)
