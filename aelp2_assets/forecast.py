"""Monte Carlo forecast of CAC and conversions by channel (no Dagster import).

Each draw is one possible future of the portfolio at fixed daily spend:

1. parameter uncertainty: every arm's (and, with placement rows, every arm x channel's)
   conversions per dollar is drawn once from its posterior and held for the whole horizon;
2. day-to-day variation: each arm's expected conversions on each day are multiplied by a
   ``Gamma(shape=OVERDISPERSION_SHAPE, rate=OVERDISPERSION_SHAPE)`` factor (mean 1). A shape of
   25 is a 20% coefficient of variation, the order of the weekday and auction swings a
   Meta ad set shows at constant budget. The factor is shared by the arm's channels: a good
   or bad delivery day moves all its placements together;
3. counting noise: conversions ~ Poisson(expected x factor), per day and channel.

With a calibration on the account's recent days (``recent_calibration``, what the assets run),
cost and conversion rate are brought up to date apart, because they move apart: each arm's
clicks per dollar today comes from the trend of its last week (a creative's click-through rate
falls day by day as it wears; the posterior's cost, a 3-day average, lags it), put on the
response curve (clicks ~ spend ** ``SPEND_ELASTICITY``) at the planned
spend; the account's conversions per click are levelled against the posterior over six weeks
(they do not wear). Step 2 becomes the account's own: a drift ahead shrunk towards none, a
random walk of the level over the horizon (the month's unforeseeable: wear, replacements, the
allocator's later moves) and the fitted day-to-day overdispersion. The assets fit the
forecast's posteriors with pooled conversion-rate priors (``fit_posteriors(pooling=True)``): a
forecast should predict, while the allocator's optimistic prior is there to explore. On
benchmarks/decision_quality.py (seeds 1-24) the next-day CRPS went from 10.67 to 9.55 (true
parameters 8.17, trailing Poisson 13.9): the click trend took the mean absolute error of the
next day's expectation from 10.0% to 8.6%, pooling to 7.2%.

Draws start at ``min_draws`` (``MONTE_CARLO_DRAWS``) and double while any reported p10, p50 or
p90 moved by more than ``convergence_threshold`` (``CONVERGENCE_THRESHOLD``) of its previous
value, up to ``max_draws``. Conversions are whole numbers, so a quantile of a small count can
never settle finer than one conversion: a move of at most one conversion does not count as
movement. Cumulative CAC is judged through the cumulative conversions it is computed from.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import sparse

from aelp2_assets.placements import CHANNELS
from aelp2_assets.posteriors import (
    ALL,
    sample_conversions_per_dollar,
)

# Shape (= rate) of the day-to-day Gamma multiplier: coefficient of variation 1/sqrt(25) = 20%.
OVERDISPERSION_SHAPE = 25.0

QUANTILES = (0.1, 0.5, 0.9)
FORECAST_COLUMNS = ("metric", "channel", "day", "p10", "p50", "p90", "draws")

# Simulated cells (draws x days x arms) held in memory at once; bounds a batch's size.
_BATCH_CELLS = 2_000_000


@dataclass(frozen=True)
class ForecastResult:
    """The forecast bands, how many draws produced them and whether they settled."""

    table: pd.DataFrame
    draws_used: int
    converged: bool


@dataclass(frozen=True)
class RecentCalibration:
    """How the account's recent days departed from what the posterior means predict.

    Fitted by ``recent_calibration``. Cost and conversion rate are calibrated apart, because
    they move apart: a creative's clicks per dollar falls day by day as it wears, while its
    conversions per click hold.

    - ``arm_click_curve``: per arm, its clicks per dollar today as a multiple of its posterior
      mean, at a daily spend of one unit of currency; at a daily spend ``s`` the multiple is
      ``arm_click_curve[arm] * s ** (SPEND_ELASTICITY - 1)`` (the response curve).
      Fitted on the arm's last ``CLICK_TREND_DAYS`` days: a log-linear trend in its clicks per
      dollar (shrunk, bounded), read on ``as_of``.
    - ``log_level``: log of realised conversions over clicks x the posterior mean conversions
      per click, over the whole window (conversion rate does not wear, so no trend).
    - ``slope``: the change of the conversions-per-dollar level per day ahead (creatives wear
      as they spend; fitted on the window and shrunk towards 0 by a ``N(0, SLOPE_PRIOR_SD^2)``
      prior).
    - ``covariance``: their 2x2 uncertainty (two fits: diagonal; each inflated by its residual
      dispersion); ``overdispersion_shape``: the shape of the day-to-day Gamma factor
      estimated from the last ``level_days``' excess variance around their trend.
    """

    log_level: float
    slope: float
    covariance: np.ndarray
    overdispersion_shape: float
    days: int
    arm_click_curve: Mapping[str, float]


# Bounds of the fitted day-to-day shape (coefficient of variation 3% to 100%) and of the drift
# per day (+-5%): a few weeks of days cannot support anything wilder.
_SHAPE_BOUNDS = (1.0, 1000.0)
_MAX_SLOPE = 0.05
# How an ad set's clicks grow with its daily spend (clicks ~ spend ** 0.8): the forecast's best
# estimate (the simulator's truth is 0.85; with 0.8 the next-day bias against the true
# expectation was 0.4%). The allocator assumes returns fall faster (allocation.RESPONSE_EXPONENT,
# 0.7): for a split, erring that way costs less.
SPEND_ELASTICITY = 0.8
# No draw scales the posterior's expectation by more than e^5 (148 times) either way: beyond
# that the history is broken (a glitch of clicks), not informative, and Poisson draws overflow.
_MAX_LOG_MULTIPLIER = 5.0

# Prior standard deviation of the drift per day. A trend fitted on a few weeks of noisy days
# and extrapolated over a month mostly adds error (creatives that wear out are replaced, the
# allocator moves money), so the fit is shrunk towards no drift: by half where the data
# measure it to +-0.5% a day. Chosen with benchmarks/decision_quality.py.
SLOPE_PRIOR_SD = 0.005

# Variance per day of a random walk in the account's log level over the forecast horizon:
# what no fixed-budget forecast sees coming (creatives wearing out and being replaced, the
# allocator's later moves, cost shocks). A standard deviation of 7% a day, so about 39% after
# 30 days; the account's own history is too short to estimate it (a variogram of 4-8 weeks
# of days gave bands that covered less), so it is set with benchmarks/decision_quality.py,
# where it brings the 30-day CAC band's coverage from 43% to about 80%. It was 0.007 until
# the allocator spread more (exponent 0.7), which steadied the account: 30-day coverage 86.0%
# on 100 seeds; 0.005 gave 81.1% on seeds 1-12 and 78.0% on 13-24.
LEVEL_DRIFT_VARIANCE = 0.005

# Days of an arm's clicks per dollar that its trend to today is fitted on, and the prior
# standard deviation of that trend per day: wear moves clicks per dollar a few percent a day.
CLICK_TREND_DAYS = 7
CLICK_SLOPE_PRIOR_SD = 0.02


def recent_calibration(
    posteriors: pd.DataFrame,
    history: pd.DataFrame,
    as_of: object,
    *,
    window_days: int = 42,
    level_days: int = 14,
    min_days: int = 7,
) -> RecentCalibration | None:
    """``RecentCalibration`` of the last ``window_days`` days before ``as_of`` against the
    posterior means; None when fewer than ``min_days`` days with spend or fewer than 10
    conversions leave nothing to estimate it from. The overdispersion comes from the last
    ``level_days`` (when they hold ``min_days`` days).

    ``history`` has date, adset_id, spend, clicks, conversions (the allocator's daily table);
    rows of arms without a posterior are left out.
    """
    arms = posteriors[posteriors["placement"] == ALL].set_index("arm_id")
    clicks_per_dollar = arms["click_shape"] / arms["click_rate"]
    conversions_per_click = arms["conv_shape"] / arms["conv_rate"]
    as_of = pd.Timestamp(as_of)
    dates = pd.to_datetime(history["date"])
    in_window = (dates < as_of) & (dates >= as_of - pd.Timedelta(days=window_days))
    recent = history.loc[in_window, ["date", "adset_id", "spend", "clicks", "conversions"]]
    recent = recent[recent["adset_id"].isin(arms.index)]
    if recent.empty:
        return None
    arm = recent["adset_id"]
    daily = (
        recent.assign(
            day=pd.to_datetime(recent["date"]),
            expected=recent["spend"].to_numpy(float)
            * (clicks_per_dollar * conversions_per_click).reindex(arm).to_numpy(),
            expected_given_clicks=recent["clicks"].to_numpy(float)
            * conversions_per_click.reindex(arm).to_numpy(),
        )
        .groupby("day")[["conversions", "expected", "expected_given_clicks"]]
        .sum()
    )
    # A day without spend or without a click in the whole account says nothing of conversions
    # per click (clicks missing from an export; view-through conversions alone).
    daily = daily[(daily["expected"] > 0) & (daily["expected_given_clicks"] > 0)]
    daily = daily[_ordinary_days(daily["conversions"], daily["expected_given_clicks"])]
    y, mu = daily["conversions"].to_numpy(float), daily["expected"].to_numpy(float)
    if len(daily) < min_days or y.sum() < 10:
        return None
    x = ((daily.index - as_of).days).to_numpy(float)

    # Conversions per click: one level over the window.
    given_clicks = daily["expected_given_clicks"].to_numpy(float)
    level = float(np.log(y.sum() / given_clicks.sum()))
    fitted = given_clicks * np.exp(level)
    # Pearson dispersion from the median squared residual (0.455: the median of chi-square with
    # one degree of freedom), so one odd day (a click count gone missing) does not widen it all.
    level_dispersion = max(1.0, float(np.median((y - fitted) ** 2 / fitted)) / 0.455)
    level_variance = level_dispersion / y.sum()
    # The drift ahead, shrunk, and the day-to-day variation around the recent days' trend.
    drift, drift_covariance, _ = _trend_fit(y, mu, x, SLOPE_PRIOR_SD)
    near = x >= -level_days if (x >= -level_days).sum() >= min_days else np.ones(len(x), bool)
    _, _, trend = _trend_fit(y[near], mu[near], x[near], None)

    # Var(y) = m + m^2 / shape for a Gamma(shape, shape) day factor under Poisson counts.
    excess = float(((y[near] - trend) ** 2 - y[near]).sum() / (trend**2).sum())
    shape = float(np.clip(1.0 / excess, *_SHAPE_BOUNDS)) if excess > 0 else _SHAPE_BOUNDS[1]
    return RecentCalibration(
        log_level=level,
        slope=float(np.clip(drift[1], -_MAX_SLOPE, _MAX_SLOPE)),
        covariance=np.diag([level_variance, drift_covariance[1, 1]]),
        overdispersion_shape=shape,
        days=len(daily),
        arm_click_curve=_arm_click_curve(recent, clicks_per_dollar, as_of),
    )


def _ordinary_days(conversions: pd.Series, given_clicks: pd.Series) -> np.ndarray:
    """Days whose conversions are within 8 robust standard deviations of their clicks x the
    account's typical conversions per click (the median day's), in Pearson residuals: a day
    of clicks or conversions gone wrong (a reporting glitch) is left out of the calibration."""
    y, g = conversions.to_numpy(float), given_clicks.to_numpy(float)
    converted = y > 0
    if converted.sum() < 3:
        return np.ones(len(y), bool)
    typical = np.exp(np.median(np.log(y[converted] / g[converted])))
    residual = (y - typical * g) / np.sqrt(typical * g)
    deviation = np.abs(residual - np.median(residual))
    scale = max(1.4826 * float(np.median(deviation)), 1.0)
    return deviation <= 8.0 * scale


def _arm_click_curve(
    recent: pd.DataFrame, clicks_per_dollar: pd.Series, as_of: pd.Timestamp
) -> dict[str, float]:
    """``RecentCalibration.arm_click_curve`` from the last ``CLICK_TREND_DAYS`` days with spend:
    per arm, clicks ~ Poisson(k x spend ** SPEND_ELASTICITY x exp(slope x day)), the slope
    shrunk by a ``N(0, CLICK_SLOPE_PRIOR_SD^2)`` prior and held within +-``_MAX_SLOPE`` a day,
    k read on ``as_of``, over the posterior mean. Days with spend and no click count (an arm
    without a click all week is forecast at half a click over its week's spend)."""
    last = recent[pd.to_datetime(recent["date"]) >= as_of - pd.Timedelta(days=CLICK_TREND_DAYS)]
    days = last.groupby(["adset_id", "date"])[["spend", "clicks"]].sum().reset_index()
    days = days[days["spend"] > 0]
    days["exposure"] = days["spend"] ** SPEND_ELASTICITY
    days["x"] = (pd.to_datetime(days["date"]) - as_of).dt.days.astype(float)
    curve = {}
    for arm, rows in days.groupby("adset_id"):
        clicks, exposure = rows["clicks"].to_numpy(float), rows["exposure"].to_numpy(float)
        x = rows["x"].to_numpy(float)
        slope = 0.0
        if clicks.sum() > 0 and len(rows) > 1:
            theta, _, _ = _trend_fit(clicks, exposure, x, CLICK_SLOPE_PRIOR_SD)
            slope = float(np.clip(theta[1], -_MAX_SLOPE, _MAX_SLOPE))
        k = max(clicks.sum(), 0.5) / (exposure * np.exp(slope * x)).sum()
        curve[arm] = float(k / clicks_per_dollar[arm])
    return curve


def _trend_fit(
    y: np.ndarray, mu: np.ndarray, x: np.ndarray, slope_sd: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson regression of daily conversions ``y`` on ``log(mu) + level + slope * x``, with a
    ``N(0, slope_sd^2)`` prior on the slope (None: none): the estimate, its covariance (the
    likelihood's inflated by the residual dispersion) and the fitted values."""
    design = np.column_stack([np.ones_like(x), x])
    prior = np.diag([0.0, 0.0 if slope_sd is None else 1.0 / slope_sd**2])
    theta = np.array([np.log(y.sum() / mu.sum()), 0.0])
    for _ in range(25):  # Newton steps of the penalised log-likelihood
        fitted = mu * np.exp(design @ theta)
        information = design.T @ (design * fitted[:, None]) + prior
        step = np.linalg.solve(information, design.T @ (y - fitted) - prior @ theta)
        theta = theta + step
        if np.abs(step).max() < 1e-8:
            break
    fitted = mu * np.exp(design @ theta)
    information = design.T @ (design * fitted[:, None])
    dispersion = max(1.0, float(((y - fitted) ** 2 / fitted).sum() / max(len(y) - 2, 1)))
    return theta, np.linalg.inv(information / dispersion + prior), fitted


@dataclass(frozen=True)
class _Portfolio:
    """What the simulation needs, as arrays: one component per arm (x channel) that spends."""

    components: pd.DataFrame  # posterior rows: click/conv shape and rate
    component_spend: np.ndarray  # (k,) daily spend of each component
    component_arm: np.ndarray  # (k,) the arm_id of each component
    arm_channel: sparse.csr_array  # (k, arms * channels) one-hot: component -> (arm, channel)
    n_arms: int
    channels: tuple[str, ...]  # the channels simulated ("all" alone without placement rows)
    daily_spend: float  # the portfolio's total spend per day


def forecast_cac(
    posteriors: pd.DataFrame,
    daily_spend: Mapping[str, float],
    *,
    horizon_days: int = 30,
    min_draws: int = 1000,
    convergence_threshold: float = 0.01,
    rng: np.random.Generator,
    max_draws: int = 64000,
    calibration: RecentCalibration | None = None,
) -> ForecastResult:
    """p10/p50/p90 of the cumulative CAC path and of daily conversions by channel.

    ``posteriors`` is the output of ``posteriors.fit_posteriors`` (the arms to forecast);
    ``daily_spend`` maps arm_id to its spend per day in major units (arms left out spend
    nothing). With placement rows, an arm's spend is split over its channels by
    ``channel_spend_share`` and each channel converts at its own posterior; daily conversions
    are then reported for every channel in ``placements.CHANNELS`` and for "all". Without
    placement rows only "all" is reported.

    The table has ``FORECAST_COLUMNS``: ``metric`` is 'cumulative_cac' (channel "all") or
    'daily_conversions', ``day`` runs 1..horizon_days, ``draws`` is the number of draws used.
    Cumulative CAC is cumulative spend over cumulative conversions: its quantiles are spend
    over the opposite quantiles of cumulative conversions (1/x reverses the order), so a
    quantile at zero conversions is ``inf``; with no spend at all CAC is ``nan``.

    With a ``calibration`` (``recent_calibration``) every draw also carries the account's
    recent level and drift, drawn from their uncertainty, a random walk of the level
    (``LEVEL_DRIFT_VARIANCE`` a day: what fixed budgets cannot foresee over a month), and one
    day factor for the whole portfolio with the fitted overdispersion, in place of the fixed
    per-arm factor.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    if min_draws < 1 or max_draws < min_draws:
        raise ValueError(f"need 1 <= min_draws <= max_draws, got {min_draws}, {max_draws}")
    if not convergence_threshold > 0:
        raise ValueError(f"convergence_threshold must be > 0, got {convergence_threshold}")

    portfolio = _portfolio(posteriors, daily_spend)
    batches = [_simulate(portfolio, rng, min_draws, horizon_days, calibration)]
    draws = min_draws
    previous = _quantiles(batches)
    converged = False

    while draws < max_draws:
        extra = min(draws, max_draws - draws)
        batches.append(_simulate(portfolio, rng, extra, horizon_days, calibration))
        draws += extra
        current = _quantiles(batches)
        settled = not any(
            _moved(old, new, convergence_threshold).any()
            for old, new in zip(previous, current, strict=True)
        )
        previous = current
        if settled:
            converged = True
            break

    table = _table(previous, portfolio, horizon_days, draws)
    return ForecastResult(table=table, draws_used=draws, converged=converged)


def conversion_draws(
    posteriors: pd.DataFrame,
    daily_spend: Mapping[str, float],
    *,
    horizon_days: int,
    draws: int,
    rng: np.random.Generator,
    calibration: RecentCalibration | None = None,
) -> np.ndarray:
    """``draws`` simulated futures of the portfolio's total daily conversions, shape
    ``(draws, horizon_days)``: the same simulation ``forecast_cac`` summarises, for scoring a
    forecast against what happened (CRPS needs the draws, not only the bands)."""
    portfolio = _portfolio(posteriors, daily_spend)
    return _simulate(portfolio, rng, draws, horizon_days, calibration).sum(axis=2)


def _portfolio(posteriors: pd.DataFrame, daily_spend: Mapping[str, float]) -> _Portfolio:
    """Components, their spend and their (arm, channel) from the posterior table."""
    all_rows = posteriors[posteriors["placement"] == ALL]
    unknown = sorted(set(daily_spend) - set(all_rows["arm_id"]))
    if unknown:
        raise ValueError(f"daily_spend names arms without a posterior: {unknown[:5]}")
    spend = {arm: float(value) for arm, value in daily_spend.items()}
    bad = {arm: value for arm, value in spend.items() if not (np.isfinite(value) and value >= 0)}
    if bad:
        raise ValueError(f"daily spend must be finite and >= 0: {bad}")

    arms = [arm for arm in all_rows["arm_id"].drop_duplicates() if spend.get(arm, 0.0) > 0]
    arm_index = {arm: position for position, arm in enumerate(arms)}
    by_channel = bool((posteriors["placement"] != ALL).any())
    channels = CHANNELS if by_channel else (ALL,)

    if by_channel:
        parts = []
        for arm in arms:
            rows = posteriors[(posteriors["arm_id"] == arm) & (posteriors["placement"] != ALL)]
            if rows.empty:
                # No channel history for this arm: its "all" posterior spends as "other".
                rows = all_rows[all_rows["arm_id"] == arm].assign(
                    placement="other", channel_spend_share=1.0
                )
            shares = rows["channel_spend_share"].to_numpy(float)
            shares = (
                shares / shares.sum() if shares.sum() > 0 else np.full(len(rows), 1 / len(rows))
            )
            parts.append(rows.assign(component_spend=spend[arm] * shares))
        components = pd.concat(parts, ignore_index=True) if parts else all_rows.iloc[:0]
        channel_of = components["placement"].where(components["placement"].isin(CHANNELS), "other")
    else:
        components = all_rows[all_rows["arm_id"].isin(arms)].reset_index(drop=True)
        components = components.assign(component_spend=components["arm_id"].map(spend))
        channel_of = pd.Series(ALL, index=components.index)

    channel_index = {channel: position for position, channel in enumerate(channels)}
    column = components["arm_id"].map(arm_index).to_numpy(int) * len(channels) + channel_of.map(
        channel_index
    ).to_numpy(int)
    rows = np.arange(len(components))
    shape = (len(components), len(arms) * len(channels))
    one_hot = sparse.csr_array((np.ones(len(components)), (rows, column)), shape=shape)

    return _Portfolio(
        components=components,
        component_spend=components.get("component_spend", pd.Series(dtype=float)).to_numpy(float),
        component_arm=components["arm_id"].to_numpy(),
        arm_channel=one_hot,
        n_arms=len(arms),
        channels=channels,
        daily_spend=float(sum(spend.get(arm, 0.0) for arm in arms)),
    )


def _simulate(
    portfolio: _Portfolio,
    rng: np.random.Generator,
    draws: int,
    horizon: int,
    calibration: RecentCalibration | None = None,
) -> np.ndarray:
    """Daily conversions per channel, shape (draws, horizon, channels)."""
    n_channels = len(portfolio.channels)
    if portfolio.n_arms == 0:
        return np.zeros((draws, horizon, n_channels), dtype=np.int64)

    per_batch = max(1, _BATCH_CELLS // (horizon * max(portfolio.n_arms, n_channels)))
    spend = portfolio.component_spend
    if calibration is not None:
        spend = spend * _response_factor(portfolio, calibration)
    out = np.empty((draws, horizon, n_channels), dtype=np.int64)
    for start in range(0, draws, per_batch):
        n = min(per_batch, draws - start)
        rate = sample_conversions_per_dollar(portfolio.components, rng, n)
        expected = ((rate * spend) @ portfolio.arm_channel).reshape(n, portfolio.n_arms, n_channels)
        if calibration is not None:
            out[start : start + n] = _calibrated_days(expected, calibration, rng, horizon)
            continue
        factor = rng.gamma(
            OVERDISPERSION_SHAPE, 1.0 / OVERDISPERSION_SHAPE, size=(n, horizon, portfolio.n_arms)
        )
        # (n, horizon, arms) @ (n, arms, channels): each day's expected conversions by channel.
        out[start : start + n] = rng.poisson(factor @ expected)
    return out


def _response_factor(portfolio: _Portfolio, calibration: RecentCalibration) -> np.ndarray:
    """Per component, its arm's clicks per dollar today at the planned spend over the
    posterior mean: ``arm_click_curve x planned ** (SPEND_ELASTICITY - 1)``; 1 for an arm
    without recent clicks (nothing to measure it on)."""
    arms = pd.Series(portfolio.component_arm)
    curve = arms.map(calibration.arm_click_curve).to_numpy(float)
    planned = pd.Series(portfolio.component_spend).groupby(arms).transform("sum").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = curve * planned ** (SPEND_ELASTICITY - 1.0)
    return np.where(np.isfinite(factor) & (planned > 0), factor, 1.0)


def _calibrated_days(
    expected: np.ndarray,
    calibration: RecentCalibration,
    rng: np.random.Generator,
    horizon: int,
) -> np.ndarray:
    """Daily conversions (n, horizon, channels) from expected conversions (n, arms, channels)
    scaled by each draw's level, drift and random walk and one day factor per draw and day."""
    n = expected.shape[0]
    level, slope = rng.multivariate_normal(
        [calibration.log_level, calibration.slope], calibration.covariance, size=n
    ).T
    slope = np.clip(slope, -_MAX_SLOPE, _MAX_SLOPE)
    days = np.arange(horizon, dtype=float)
    wander = np.cumsum(rng.normal(0.0, np.sqrt(LEVEL_DRIFT_VARIANCE), size=(n, horizon)), axis=1)
    shape = calibration.overdispersion_shape
    log_multiplier = level[:, None] + slope[:, None] * days + wander
    multiplier = np.exp(
        np.clip(log_multiplier, -_MAX_LOG_MULTIPLIER, _MAX_LOG_MULTIPLIER)
    ) * rng.gamma(shape, 1.0 / shape, size=(n, horizon))
    return rng.poisson(multiplier[:, :, None] * expected.sum(axis=1)[:, None, :])


def _quantiles(batches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles (3, horizon, channels [+ all]) of daily conversions and (3, horizon) of
    cumulative conversions over all draws so far."""
    daily = np.concatenate(batches, axis=0)
    total = daily.sum(axis=2)
    if daily.shape[2] > 1:
        daily = np.concatenate([daily, total[:, :, None]], axis=2)
    cumulative = np.cumsum(total, axis=1)
    return (
        np.quantile(daily, QUANTILES, axis=0),
        np.quantile(cumulative, QUANTILES, axis=0),
    )


def _moved(old: np.ndarray, new: np.ndarray, threshold: float) -> np.ndarray:
    """Which quantiles moved by more than ``threshold`` of their old value and more than one
    conversion (the resolution of a count)."""
    change = np.abs(new - old)
    return change > np.maximum(threshold * np.abs(old), 1.0)


def _table(
    quantiles: tuple[np.ndarray, np.ndarray], portfolio: _Portfolio, horizon: int, draws: int
) -> pd.DataFrame:
    """The long table of bands: cumulative CAC, then daily conversions by channel."""
    daily, cumulative = quantiles
    days = np.arange(1, horizon + 1)
    spend_to_date = portfolio.daily_spend * days
    with np.errstate(divide="ignore", invalid="ignore"):
        # CAC's p10 comes from the p90 of conversions, and so on.
        cac = spend_to_date / cumulative[::-1]

    frames = [_band("cumulative_cac", ALL, days, cac, draws)]
    labels = (*portfolio.channels, ALL) if len(portfolio.channels) > 1 else portfolio.channels
    for position, channel in enumerate(labels):
        frames.append(_band("daily_conversions", channel, days, daily[:, :, position], draws))
    return pd.concat(frames, ignore_index=True)


def _band(metric: str, channel: str, days: np.ndarray, q: np.ndarray, draws: int) -> pd.DataFrame:
    """Rows of one metric and channel: q holds p10, p50 and p90 by day."""
    return pd.DataFrame(
        {
            "metric": metric,
            "channel": channel,
            "day": days.astype(np.int64),
            "p10": q[0].astype(float),
            "p50": q[1].astype(float),
            "p90": q[2].astype(float),
            "draws": np.int64(draws),
        }
    )


def fan_chart_png(table: pd.DataFrame, title: str) -> bytes:
    """PNG of the forecast: cumulative CAC p10-p90 band with its p50 line, and daily
    conversions by channel (p50 lines over p10-p90 bands) in a second panel."""
    # A bare Figure renders with the Agg canvas and touches no global pyplot state, so it is
    # safe in a Dagster run worker with no display.
    figure = Figure(figsize=(9, 7), layout="constrained")
    cac_axes, conversion_axes = figure.subplots(2, 1, sharex=True)
    figure.suptitle(title)

    cac = table[table["metric"] == "cumulative_cac"].sort_values("day")
    band = cac[["p10", "p50", "p90"]].replace([np.inf, -np.inf], np.nan)
    cac_axes.fill_between(cac["day"], band["p10"], band["p90"], alpha=0.25, label="p10-p90")
    cac_axes.plot(cac["day"], band["p50"], label="p50")
    cac_axes.set_ylabel("cumulative CAC")
    cac_axes.legend(loc="upper right")

    conversions = table[table["metric"] == "daily_conversions"]
    for channel, rows in conversions.groupby("channel", sort=False):
        if channel == ALL and conversions["channel"].nunique() > 1:
            continue  # the channels already show it; "all" would dwarf them
        if not (rows["p90"] > 0).any():
            continue
        rows = rows.sort_values("day")
        (line,) = conversion_axes.plot(rows["day"], rows["p50"], label=channel)
        conversion_axes.fill_between(
            rows["day"], rows["p10"], rows["p90"], alpha=0.15, color=line.get_color()
        )
    conversion_axes.set_ylabel("daily conversions")
    conversion_axes.set_xlabel("day")
    if conversion_axes.get_legend_handles_labels()[0]:
        conversion_axes.legend(loc="upper right")

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
