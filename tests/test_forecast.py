"""Monte Carlo CAC forecast: band order, calibration, coverage, draw doubling, chart."""

import numpy as np
import pandas as pd
import pytest

from aelp2_assets.forecast import (
    FORECAST_COLUMNS,
    OVERDISPERSION_SHAPE,
    SPEND_ELASTICITY,
    RecentCalibration,
    conversion_draws,
    fan_chart_png,
    forecast_cac,
    recent_calibration,
)
from aelp2_assets.placements import CHANNELS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def posterior_row(
    arm: str,
    placement: str,
    clicks_per_dollar: float,
    cvr: float,
    strength: float,
    share: float = 1.0,
) -> dict:
    """A posterior row whose Gamma means are the given rates, ``strength`` its shape (the
    larger, the more certain)."""
    return {
        "arm_id": arm,
        "placement": placement,
        "click_shape": strength,
        "click_rate": strength / clicks_per_dollar,
        "conv_shape": strength,
        "conv_rate": strength / cvr,
        "channel_spend_share": share,
        "is_live": True,
    }


def known_portfolio(certain: float = 1e9) -> pd.DataFrame:
    """Two arms with near-certain rates (unless ``certain`` is small); arm A split 70/30 over
    Feed and Reels."""
    return pd.DataFrame(
        [
            posterior_row("A", "all", 2.0, 0.010, certain),
            posterior_row("A", "Feed", 2.0, 0.012, certain, 0.7),
            posterior_row("A", "Reels", 2.0, 0.005, certain, 0.3),
            posterior_row("B", "all", 1.0, 0.020, certain),
            posterior_row("B", "Stories", 1.0, 0.020, certain, 1.0),
        ]
    )


def uncertain_portfolio() -> pd.DataFrame:
    """Two arms with a real posterior spread (about 15% on each factor)."""
    return pd.DataFrame(
        [
            posterior_row("A", "all", 1.5, 0.010, 45.0),
            posterior_row("B", "all", 0.8, 0.030, 60.0),
        ]
    )


def rows(table: pd.DataFrame, metric: str, channel: str) -> pd.DataFrame:
    selected = table[(table["metric"] == metric) & (table["channel"] == channel)]
    return selected.set_index("day")


@pytest.mark.parametrize("placements", [True, False])
def test_bands_are_ordered_and_complete(placements: bool) -> None:
    posteriors = known_portfolio(certain=30.0)
    if not placements:
        posteriors = posteriors[posteriors["placement"] == "all"]
    result = forecast_cac(
        posteriors, {"A": 500.0, "B": 300.0}, horizon_days=20, rng=np.random.default_rng(0)
    )
    table = result.table

    assert list(table.columns) == list(FORECAST_COLUMNS)
    assert ((table["p10"] <= table["p50"]) & (table["p50"] <= table["p90"])).all()
    assert set(table["day"]) == set(range(1, 21))
    assert (table["draws"] == result.draws_used).all()
    conversions = table[table["metric"] == "daily_conversions"]
    expected_channels = {*CHANNELS, "all"} if placements else {"all"}
    assert set(conversions["channel"]) == expected_channels
    assert set(table.loc[table["metric"] == "cumulative_cac", "channel"]) == {"all"}


def test_median_daily_conversions_match_known_rates_and_spend() -> None:
    spend = {"A": 10_000.0, "B": 5_000.0}
    result = forecast_cac(known_portfolio(), spend, rng=np.random.default_rng(1))
    table = result.table

    feed = 2.0 * 0.012 * 10_000 * 0.7  # 168 a day
    reels = 2.0 * 0.005 * 10_000 * 0.3  # 30 a day
    stories = 1.0 * 0.020 * 5_000  # 100 a day
    # The day multiplier has mean 1 and median a little under 1 (a Gamma's skew).
    assert rows(table, "daily_conversions", "Feed")["p50"].median() == pytest.approx(feed, rel=0.04)
    assert rows(table, "daily_conversions", "Reels")["p50"].median() == pytest.approx(
        reels, rel=0.07
    )
    assert rows(table, "daily_conversions", "Stories")["p50"].median() == pytest.approx(
        stories, rel=0.05
    )
    assert (rows(table, "daily_conversions", "Marketplace")["p90"] == 0).all()
    total = feed + reels + stories
    assert rows(table, "daily_conversions", "all")["p50"].median() == pytest.approx(total, rel=0.04)
    cac_day30 = rows(table, "cumulative_cac", "all").loc[30]
    assert cac_day30["p50"] == pytest.approx(15_000 / total, rel=0.02)


def test_without_placement_rows_the_all_rate_is_used() -> None:
    posteriors = known_portfolio()
    posteriors = posteriors[posteriors["placement"] == "all"]
    table = forecast_cac(posteriors, {"A": 10_000.0}, rng=np.random.default_rng(2)).table
    assert rows(table, "daily_conversions", "all")["p50"].median() == pytest.approx(
        2.0 * 0.010 * 10_000, rel=0.04
    )


def simulate_outcomes(
    posteriors: pd.DataFrame, spend: dict[str, float], horizon: int, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Futures drawn from the model, written out here independently of the forecast code:
    daily total conversions (n, horizon) and cumulative CAC (n, horizon)."""
    rng = np.random.default_rng(seed)
    daily = np.zeros((n, horizon))
    for _, arm in posteriors.iterrows():
        rate = rng.gamma(arm["click_shape"], 1 / arm["click_rate"], n) * rng.gamma(
            arm["conv_shape"], 1 / arm["conv_rate"], n
        )
        factor = rng.gamma(OVERDISPERSION_SHAPE, 1 / OVERDISPERSION_SHAPE, (n, horizon))
        daily += rng.poisson(rate[:, None] * spend[arm["arm_id"]] * factor)
    days = np.arange(1, horizon + 1)
    with np.errstate(divide="ignore"):
        cac = sum(spend.values()) * days / np.cumsum(daily, axis=1)
    return daily, cac


def test_bands_cover_about_80_percent_of_outcomes_from_the_model() -> None:
    posteriors = uncertain_portfolio()
    spend = {"A": 4_000.0, "B": 2_500.0}
    table = forecast_cac(posteriors, spend, horizon_days=30, rng=np.random.default_rng(3)).table
    daily, cac = simulate_outcomes(posteriors, spend, 30, 4000, seed=99)

    for metric, outcomes in (("daily_conversions", daily), ("cumulative_cac", cac)):
        band = rows(table, metric, "all")
        for day in (1, 10, 30):
            inside = (outcomes[:, day - 1] >= band.loc[day, "p10"]) & (
                outcomes[:, day - 1] <= band.loc[day, "p90"]
            )
            assert inside.mean() == pytest.approx(0.80, abs=0.035), (metric, day)


def test_a_tighter_threshold_doubles_more_often() -> None:
    posteriors = uncertain_portfolio()
    spend = {"A": 4_000.0, "B": 2_500.0}

    def run(threshold: float, max_draws: int = 64_000) -> tuple[int, bool]:
        result = forecast_cac(
            posteriors,
            spend,
            min_draws=500,
            convergence_threshold=threshold,
            max_draws=max_draws,
            rng=np.random.default_rng(4),
        )
        return result.draws_used, result.converged

    loose_draws, loose_converged = run(0.2)
    tight_draws, _ = run(0.004)
    assert loose_converged and loose_draws == 1000  # the first comparison already settles
    assert tight_draws > loose_draws
    assert tight_draws in {500 * 2**k for k in range(8)}
    draws, converged = run(1e-9, max_draws=3000)
    assert (draws, converged) == (3000, False)


def test_zero_conversions_give_infinite_cac_and_no_spend_gives_nan() -> None:
    # Expected 0.05 conversions a day: most days, and most first days, have none.
    posteriors = pd.DataFrame([posterior_row("A", "all", 1.0, 0.001, 1e6)])
    table = forecast_cac(posteriors, {"A": 50.0}, rng=np.random.default_rng(5)).table
    assert np.isinf(rows(table, "cumulative_cac", "all").loc[1, "p90"])

    table = forecast_cac(posteriors, {}, horizon_days=5, rng=np.random.default_rng(5)).table
    assert rows(table, "cumulative_cac", "all")["p50"].isna().all()
    assert (rows(table, "daily_conversions", "all")["p90"] == 0).all()


def test_unknown_arm_and_negative_spend_are_refused() -> None:
    with pytest.raises(ValueError, match="without a posterior"):
        forecast_cac(uncertain_portfolio(), {"Z": 1.0}, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="finite"):
        forecast_cac(uncertain_portfolio(), {"A": -1.0}, rng=np.random.default_rng(0))


def test_same_seed_same_forecast() -> None:
    spend = {"A": 1_000.0, "B": 1_000.0}
    first = forecast_cac(uncertain_portfolio(), spend, rng=np.random.default_rng(6))
    second = forecast_cac(uncertain_portfolio(), spend, rng=np.random.default_rng(6))
    pd.testing.assert_frame_equal(first.table, second.table)


def test_fan_chart_is_a_png() -> None:
    table = forecast_cac(
        known_portfolio(), {"A": 1_000.0, "B": 1_000.0}, rng=np.random.default_rng(7)
    ).table
    image = fan_chart_png(table, "30-day CAC")
    assert image.startswith(PNG_SIGNATURE) and len(image) > 5_000


def _calibration_inputs(
    days: int, level: float, shape: float, seed: int = 3, click_level: float = 1.0
) -> tuple:
    """Two arms whose posterior means are 1 click per dollar and 0.01 and 0.02 conversions
    per click; the account buys ``click_level`` times those clicks and converts them at
    ``level`` times that rate, with a Gamma(shape, shape) day factor."""
    rng = np.random.default_rng(seed)
    posteriors = pd.DataFrame(
        {
            "arm_id": ["a", "b"],
            "placement": ["all", "all"],
            "click_shape": [100.0, 100.0],
            "click_rate": [100.0, 100.0],
            "conv_shape": [10.0, 20.0],
            "conv_rate": [1000.0, 1000.0],
        }
    )
    dates = pd.date_range("2025-01-01", periods=days)
    rows = []
    for date in dates:
        factor = rng.gamma(shape, 1 / shape)
        for arm, rate in (("a", 0.01), ("b", 0.02)):
            clicks = rng.poisson(click_level * 5000.0)
            rows.append(
                {
                    "date": date,
                    "adset_id": arm,
                    "spend": 5000.0,
                    "clicks": clicks,
                    "conversions": rng.poisson(level * factor * rate * clicks),
                }
            )
    return posteriors, pd.DataFrame(rows), dates[-1] + pd.Timedelta(days=1)


def test_recent_calibration_recovers_cost_level_and_overdispersion_apart() -> None:
    # Clicks per dollar 1.25 times the posterior's, conversions per click 0.6 times.
    posteriors, history, as_of = _calibration_inputs(
        days=28, level=0.6, shape=10.0, click_level=1.25
    )

    fit = recent_calibration(posteriors, history, as_of)

    assert fit is not None and fit.days == 28
    assert abs(np.exp(fit.log_level) - 0.6) < 0.1
    assert abs(fit.slope) < 0.02
    assert 3.0 < fit.overdispersion_shape < 40.0
    at_5000 = {
        arm: curve * 5000.0 ** (SPEND_ELASTICITY - 1) for arm, curve in fit.arm_click_curve.items()
    }
    assert at_5000 == pytest.approx({"a": 1.25, "b": 1.25}, rel=0.02)


def test_a_wearing_arm_is_forecast_at_todays_clicks_per_dollar() -> None:
    # Clicks per dollar fall 3% a day and reach 0.8 of the posterior's mean today; the last
    # week averaged 0.91 of it. Counts large enough to leave no noise.
    posteriors, history, as_of = _calibration_inputs(days=28, level=1.0, shape=1000.0)
    age = (as_of - pd.to_datetime(history["date"])).dt.days.to_numpy(float)
    history["clicks"] = np.round(0.8 * np.exp(0.03 * age) * history["spend"])

    fit = recent_calibration(posteriors, history, as_of)

    assert fit is not None
    assert fit.arm_click_curve["a"] * 5000.0 ** (SPEND_ELASTICITY - 1) == pytest.approx(
        0.8, rel=0.01
    )


def test_recent_calibration_needs_days_and_widens_the_band() -> None:
    posteriors, history, as_of = _calibration_inputs(days=4, level=1.0, shape=10.0)
    assert recent_calibration(posteriors, history, as_of) is None

    posteriors, history, as_of = _calibration_inputs(days=28, level=1.0, shape=5.0)
    fit = recent_calibration(posteriors, history, as_of)
    spend = {"a": 5000.0, "b": 5000.0}
    plain = conversion_draws(
        posteriors, spend, horizon_days=1, draws=4000, rng=np.random.default_rng(1)
    )
    calibrated = conversion_draws(
        posteriors,
        spend,
        horizon_days=1,
        draws=4000,
        rng=np.random.default_rng(1),
        calibration=fit,
    )
    assert calibrated.std() > 1.2 * plain.std()


def _exact_rates(rates: dict[str, float]) -> pd.DataFrame:
    """Posteriors so narrow that each arm's conversions per dollar is its rate, exactly."""
    return pd.DataFrame(
        {
            "arm_id": list(rates),
            "placement": "all",
            "click_shape": 1e9,
            "click_rate": 1e9,
            "conv_shape": [rate * 1e9 for rate in rates.values()],
            "conv_rate": 1e9,
        }
    )


def _exact_calibration(arm_click_curve: dict[str, float]) -> RecentCalibration:
    """Level 1 and no drift, known exactly, no day-to-day factor."""
    return RecentCalibration(
        log_level=0.0,
        slope=0.0,
        covariance=np.zeros((2, 2)),
        overdispersion_shape=1e9,
        days=28,
        arm_click_curve=arm_click_curve,
    )


def test_the_level_wanders_over_the_month() -> None:
    # Rates, level and drift known exactly, no day-to-day factor, counts large enough for Poisson
    # noise to vanish: what is left in the 30-day total is the random walk of the level. For
    # a walk of variance q a day, the log of the month's mean level has variance about
    # q * (1^2 + ... + 30^2) / 30^2 = 10.5 q: for q = 0.007, a standard deviation near 0.27.
    posteriors = _exact_rates({"a": 0.01, "b": 0.02})
    exact = _exact_calibration({})
    month = conversion_draws(
        posteriors,
        {"a": 500_000.0, "b": 500_000.0},
        horizon_days=30,
        draws=4000,
        rng=np.random.default_rng(5),
        calibration=exact,
    ).sum(axis=1)
    spread = np.log(month).std()
    assert 0.22 < spread < 0.32


def test_the_calibrated_forecast_puts_planned_spend_on_the_response_curve() -> None:
    # 0.01 and 0.02 conversions per dollar known exactly, clicks per dollar measured at the
    # posterior's at $500,000 a day each; the plan doubles a's spend and keeps b's. On
    # conversions ~ spend ** 0.8, a's doubled spend buys 2 ** 0.8 = 1.741 times its
    # conversions: 5,000 x 1.741 + 10,000 = 18,706 a day (linear in spend: 20,000). c
    # launches (no recent clicks): linear, 0.03 x 1,000.
    posteriors = _exact_rates({"a": 0.01, "b": 0.02, "c": 0.03})
    at_posterior = 500_000.0 ** (1 - SPEND_ELASTICITY)
    measured_at = _exact_calibration({"a": at_posterior, "b": at_posterior})
    next_day = conversion_draws(
        posteriors,
        {"a": 1_000_000.0, "b": 500_000.0, "c": 1_000.0},
        horizon_days=1,
        draws=4000,
        rng=np.random.default_rng(8),
        calibration=measured_at,
    )[:, 0]
    assert next_day.mean() == pytest.approx(18_706 + 30, rel=0.01)


def _draws_are_finite(posteriors: pd.DataFrame, fit: RecentCalibration, seed: int) -> bool:
    """Whether 30 days of calibrated draws for two ad sets at 5,000 a day are all finite."""
    draws = conversion_draws(
        posteriors,
        {"a": 5000.0, "b": 5000.0},
        horizon_days=30,
        draws=500,
        rng=np.random.default_rng(seed),
        calibration=fit,
    )
    return bool(np.isfinite(draws).all())


def test_a_day_without_clicks_is_left_out_of_the_calibration() -> None:
    # View-through conversions on a day whose clicks are 0 everywhere (or missing from an
    # export): that day says nothing of conversions per click and must not break the fit.
    posteriors, history, as_of = _calibration_inputs(days=28, level=0.6, shape=1000.0)
    history.loc[history["date"] == as_of - pd.Timedelta(days=10), "clicks"] = 0

    fit = recent_calibration(posteriors, history, as_of)

    assert fit is not None and fit.days == 27
    assert abs(np.exp(fit.log_level) - 0.6) < 0.1
    assert _draws_are_finite(posteriors, fit, seed=2)


def test_one_odd_day_does_not_widen_the_level() -> None:
    # One day with a single click per ad set (a reporting glitch) against 27 normal days.
    posteriors, history, as_of = _calibration_inputs(days=28, level=1.0, shape=1000.0)
    clean = recent_calibration(posteriors, history, as_of)
    history.loc[history["date"] == as_of - pd.Timedelta(days=10), "clicks"] = 1
    odd = recent_calibration(posteriors, history, as_of)

    assert clean is not None and odd is not None
    assert odd.covariance[0, 0] < 2 * clean.covariance[0, 0]


def _click_curve_at(fit: RecentCalibration, arm: str, spend: float) -> float:
    return fit.arm_click_curve[arm] * spend ** (SPEND_ELASTICITY - 1)


def test_a_three_day_jump_is_not_extrapolated_past_the_data() -> None:
    # Arm a's clicks per dollar were 1, 1 and then 10 on its last three days (an unshrunk
    # straight line through them reads 21 today): the estimate stays within what it saw.
    posteriors, history, as_of = _calibration_inputs(days=28, level=1.0, shape=1000.0)
    history = history[
        (history["adset_id"] == "b") | (history["date"] >= as_of - pd.Timedelta(days=3))
    ]
    history = history.copy()
    jump = (history["adset_id"] == "a") & (history["date"] == as_of - pd.Timedelta(days=1))
    history.loc[jump, "clicks"] = 50_000

    fit = recent_calibration(posteriors, history, as_of)

    assert fit is not None
    assert 3.0 < _click_curve_at(fit, "a", 5000.0) < 11.0


def test_days_with_spend_and_no_clicks_count_in_the_click_trend() -> None:
    # Arm a spent 5,000 a day all week and had clicks (5,000) on one day only: about 0.14
    # clicks per dollar over the week, not the one day's 1. Arm b had none all week: near 0.
    posteriors, history, as_of = _calibration_inputs(days=28, level=1.0, shape=1000.0)
    week = history["date"] >= as_of - pd.Timedelta(days=7)
    history.loc[week & (history["adset_id"] == "a"), "clicks"] = 0
    history.loc[week & (history["adset_id"] == "b"), "clicks"] = 0
    history.loc[
        (history["adset_id"] == "a") & (history["date"] == as_of - pd.Timedelta(days=4)), "clicks"
    ] = 5000

    fit = recent_calibration(posteriors, history, as_of)

    assert fit is not None
    assert _click_curve_at(fit, "a", 5000.0) == pytest.approx(1 / 7, rel=0.15)
    assert _click_curve_at(fit, "b", 5000.0) < 0.001


def test_a_glitch_of_clicks_or_conversions_neither_crashes_nor_collapses_the_bands() -> None:
    # One day with 100,000 times the clicks (passes validation with impressions scaled), and
    # one with ten times the conversions: the forecast still draws, and the day-to-day
    # overdispersion stays that of the other days.
    posteriors, history, as_of = _calibration_inputs(days=28, level=1.0, shape=50.0)
    clean = recent_calibration(posteriors, history, as_of)
    glitch = history["date"] == as_of - pd.Timedelta(days=20)
    history.loc[glitch, "clicks"] *= 100_000
    burst = history["date"] == as_of - pd.Timedelta(days=5)
    history.loc[burst, "conversions"] *= 10

    fit = recent_calibration(posteriors, history, as_of)

    assert clean is not None and fit is not None
    assert fit.overdispersion_shape > clean.overdispersion_shape / 3
    assert _draws_are_finite(posteriors, fit, seed=4)
