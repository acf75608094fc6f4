"""Bayesian posteriors of conversions per dollar, per arm and per placement (no Dagster import).

An arm is a budget holder: one Meta ad set (``adset_id``). What a budget buys is conversions,
so the quantity modelled is conversions per dollar, cost included:

    lambda = c * r

- ``c``, clicks per dollar: ``Gamma(shape=c0 + clicks, rate=s0 + spend)``, the conjugate
  posterior of a Poisson click count with spend as its exposure. The prior is weak and centred
  on the account's pooled clicks per dollar: ``c0 = CLICK_PRIOR_CLICKS`` pseudo-clicks (5) over
  ``s0 = c0 / pooled`` pseudo-dollars. Five clicks is a day's worth of a few dollars of
  delivery, so the data overrules it within the first day, yet an arm with no spend yet (or no
  clicks) gets a finite, account-typical cost instead of an improper prior.
- ``r``, conversions per click: ``Gamma(shape=alpha + conversions, rate=alpha + beta + clicks)``.
  ``alpha`` and ``beta`` are ``THOMPSON_ALPHA_INIT`` and ``THOMPSON_BETA_INIT``: the
  ``Beta(alpha, beta)`` prior on conversion rate, replaced by the Gamma with the same mean
  ``alpha / (alpha + beta)`` and the same pseudo-count (``alpha + beta`` clicks). The Gamma is
  the Poisson approximation of the binomial; unlike a Beta it also accepts view-through
  conversions that exceed clicks, which real exports contain.

Old days count less: each day's spend, clicks and conversions are weighted by
``0.5 ** (age / half_life_days)`` before they enter the posterior of ``r``, and by
``0.5 ** (age / cost_half_life_days)`` before they enter the posterior of ``c``. Creatives
fatigue and auctions drift, so a fortnight-old day says half as much about tomorrow as
yesterday does; the weighting also keeps a long-running arm's posterior from becoming so
narrow that Thompson sampling stops noticing its decline. The reported ``spend``, ``clicks``
and ``conversions`` are the unweighted totals of the history given.

Cost is forgotten faster than conversion rate (3 days against 14 by default): an ad set buys
thousands of clicks a day, so three days pin its clicks per dollar down, while conversions are
tens a day and need a fortnight. A price change (an auction turning, a creative wearing out)
then reaches the posterior within days instead of weeks.

Known shortcoming: by default the conversion rate is not pooled between arms, so with the
default ``Beta(1, 1)`` prior (mean 50%) a new arm looks very promising until it has a few
hundred clicks. The lifecycle rules of the allocator (launch share, ramp caps) bound what that
costs. ``pooling=True`` learns the prior's mean and strength from the arms (``_cvr_prior``): the
forecast fits with it; the allocator does not (in the decision-quality benchmark it lowered
CAC less). Conversions without clicks (view-through) still lean on the prior: with arms whose
rates spread widely its strength is a few pseudo-clicks, so an arm with one such conversion and
no click is put far above the account's rate.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from aelp2_assets.placements import CHANNELS, PLACEMENT_PROFILES
from aelp2_assets.validation import check_history

# Pseudo-clicks of the prior on clicks per dollar (see the module docstring).
CLICK_PRIOR_CLICKS = 5.0

# Half-life in days of the data on clicks per dollar (see the module docstring).
COST_HALF_LIFE_DAYS = 3.0

# Clicks per dollar assumed when the account has no spend or no clicks at all yet: the mean of
# the measured placement profiles (CTR x 1,000 / CPM), about 0.9 clicks per dollar.
DEFAULT_CLICKS_PER_DOLLAR = float(np.mean([p.ctr * 1000.0 / p.cpm for p in PLACEMENT_PROFILES]))

ALL = "all"

POSTERIOR_COLUMNS = (
    "arm_id",
    "placement",
    "click_shape",
    "click_rate",
    "conv_shape",
    "conv_rate",
    "spend",
    "clicks",
    "conversions",
    "expected_cac",
    "cac_p10",
    "cac_p50",
    "cac_p90",
    "p_best",
    "first_delivery_date",
    "last_delivery_date",
    "age_days",
    "is_live",
    "channel_spend_share",
)

_NEEDED = ("date", "adset_id", "channel", "spend", "clicks", "conversions")


def fit_posteriors(
    history: pd.DataFrame,
    decision_date: dt.date,
    *,
    alpha_init: float,
    beta_init: float,
    placement_tracking: bool,
    half_life_days: float = 14.0,
    cost_half_life_days: float = COST_HALF_LIFE_DAYS,
    live_window_days: int = 3,
    rng: np.random.Generator,
    draws: int = 4000,
    pooling: bool = False,
) -> pd.DataFrame:
    """Posterior of conversions per dollar for every arm (and arm x channel) in ``history``.

    ``history`` holds rows of ``validated_meta_metrics`` (see ``tables.VALIDATED_COLUMNS``);
    rows dated after ``decision_date`` are ignored. Returns one row per arm with
    ``placement == "all"`` and, when ``placement_tracking``, one row per arm and channel the
    arm has history in (``placement`` = the channel). Columns are ``POSTERIOR_COLUMNS``:

    - ``expected_cac``: the posterior mean of ``1 / lambda`` in closed form; ``inf`` when it
      does not exist (a Gamma shape of 1 or less, e.g. no conversions with ``alpha_init`` 1).
    - ``cac_p10``/``cac_p50``/``cac_p90``: quantiles of ``1 / lambda`` from ``draws`` samples.
    - ``p_best``: for "all" rows, the probability the arm has the highest ``lambda`` among live
      arms (0 for arms that are not live); for placement rows, the probability the channel is
      the arm's best channel (computed whether or not the arm is live: it describes the arm).
    - ``first_delivery_date``, ``last_delivery_date``: first and last day the arm delivered
      in the history given; ``age_days`` is decision_date minus the first (NA if it never
      delivered); ``is_live``: it delivered on one of the ``live_window_days`` days ending on
      ``decision_date``. Delivering means spend > 0 or, when ``history`` has the column,
      impressions > 0: Meta serves impressions it bills at less than one cent as zero spend,
      and an ad set serving them is running (25 of the 118 ad sets live in the real 2017
      export show only such days at its end). On placement rows all four describe delivery
      in that channel.
    - ``channel_spend_share``: 1.0 on "all" rows; on placement rows the arm's share of spend in
      the channel over the live window, or over the decay-weighted history when the arm spent
      nothing in the window (equal shares when it never spent).

    With ``pooling`` each conversion-rate prior is learnt from the arms' (on placement rows:
    the channel's arms') own rates (``_cvr_prior``) instead of ``Beta(alpha_init, beta_init)``
    alone: what the forecast fits (a thin arm predicted at the account's rate), while the
    allocator keeps the settings' prior (it lowered CAC more in the benchmark).
    """
    _check_arguments(alpha_init, beta_init, half_life_days, live_window_days, draws)
    _check_half_life("cost_half_life_days", cost_half_life_days)
    frame = _checked_frame(history, decision_date, half_life_days, cost_half_life_days)
    if frame.empty:
        return _empty_table()

    decision = pd.Timestamp(decision_date)
    pooled = _clicks_per_dollar(frame["w_spend"].sum(), frame["w_clicks"].sum())
    arms = _arm_rows(frame, decision, pooled, alpha_init, beta_init, live_window_days, pooling)

    samples = sample_conversions_per_dollar(arms, rng, draws)
    _attach_cac_quantiles(arms, samples)
    arms["p_best"] = _p_best(samples, arms["is_live"].to_numpy(bool))

    if not placement_tracking:
        return arms.loc[:, list(POSTERIOR_COLUMNS)].reset_index(drop=True)

    placements = _placement_rows(
        frame, decision, pooled, alpha_init, beta_init, live_window_days, pooling
    )
    samples = sample_conversions_per_dollar(placements, rng, draws)
    _attach_cac_quantiles(placements, samples)
    placements["p_best"] = _p_best_within_arms(samples, placements["arm_id"].to_numpy())

    # Each arm's "all" row first, then its channels in the reporting order.
    table = pd.concat([arms, placements], ignore_index=True)
    rank = {name: position for position, name in enumerate((ALL, *CHANNELS))}
    table["rank"] = table["placement"].map(rank).fillna(len(rank))
    table = table.sort_values(["arm_id", "rank", "placement"], kind="stable")
    return table.loc[:, list(POSTERIOR_COLUMNS)].reset_index(drop=True)


def arm_parameters(
    history: pd.DataFrame,
    decision_date: dt.date,
    *,
    alpha_init: float,
    beta_init: float,
    half_life_days: float = 14.0,
    cost_half_life_days: float = COST_HALF_LIFE_DAYS,
    live_window_days: int = 3,
    new_arms: Sequence[str] = (),
    pooling: bool = False,
    fatigue: bool = False,
) -> pd.DataFrame:
    """The "all" rows of ``fit_posteriors`` without the sampled columns (no generator needed).

    Everything the allocator reads: arm_id, placement ('all'), the Gamma parameters,
    expected_cac, volumes, delivery dates, age_days and is_live. ``fit_posteriors`` adds the
    CAC quantiles, P(best) and the placement rows to exactly these parameters. ``new_arms``
    are ad sets launched but without delivery in ``history``: each gets a row of the prior
    alone, live, aged 0 (it launches on the decision date).
    """
    _check_arguments(alpha_init, beta_init, half_life_days, live_window_days, 1)
    _check_half_life("cost_half_life_days", cost_half_life_days)
    frame = _checked_frame(history, decision_date, half_life_days, cost_half_life_days, fatigue)
    columns = [c for c in POSTERIOR_COLUMNS if c not in ("cac_p10", "cac_p50", "cac_p90", "p_best")]
    known = set(frame["arm_id"])
    fresh = [arm for arm in dict.fromkeys(new_arms) if arm not in known]
    if fresh:
        # A zero row per new arm makes it a group of the aggregation, with no data.
        zeros = pd.DataFrame(
            {
                "arm_id": fresh,
                "channel": "other",
                "date": pd.Timestamp(decision_date),
                "age": 0,
                **{c: 0.0 for c in ("spend", "clicks", "conversions", "impressions")},
                **{f"w_{c}": 0.0 for c in ("spend", "clicks", "conversions")},
                **{f"cost_{c}": 0.0 for c in ("spend", "clicks")},
            }
        )
        frame = pd.concat([frame, zeros], ignore_index=True) if len(frame) else zeros
    if frame.empty:
        return _empty_table().loc[:, columns]
    pooled = _clicks_per_dollar(frame["w_spend"].sum(), frame["w_clicks"].sum())
    arms = _arm_rows(
        frame, pd.Timestamp(decision_date), pooled, alpha_init, beta_init, live_window_days, pooling
    )
    is_new = arms["arm_id"].isin(fresh).to_numpy()
    arms.loc[is_new, "is_live"] = True
    arms.loc[is_new, "age_days"] = 0
    arms["age_days"] = arms["age_days"].astype("Int64")
    return arms.loc[:, columns].reset_index(drop=True)


def _checked_frame(
    history: pd.DataFrame,
    decision_date: dt.date,
    half_life_days: float,
    cost_half_life_days: float,
    fatigue: bool = False,
) -> pd.DataFrame:
    """The prepared rows of ``history``, after checking it has the columns the model reads,
    with values it can read (``validation.check_history``)."""
    missing = [column for column in _NEEDED if column not in history.columns]
    if missing:
        raise ValueError(f"history lacks the columns {missing}")
    check_history(history)
    return _prepared(history, decision_date, half_life_days, cost_half_life_days, fatigue)


def _arm_rows(
    frame: pd.DataFrame,
    decision: pd.Timestamp,
    pooled: float,
    alpha_init: float,
    beta_init: float,
    live_window_days: int,
    pooling: bool = False,
) -> pd.DataFrame:
    """One "all" row per arm: totals, liveness and the posterior parameters."""
    arms = _aggregate(frame, ["arm_id"], decision, live_window_days)
    arms.insert(1, "placement", ALL)
    _attach_parameters(arms, np.full(len(arms), pooled), alpha_init, beta_init, pooling=pooling)
    arms["channel_spend_share"] = 1.0
    return arms


def sample_conversions_per_dollar(
    posteriors: pd.DataFrame, rng: np.random.Generator, n: int
) -> np.ndarray:
    """``n`` joint draws of conversions per dollar, shape ``(n, len(posteriors))``.

    Each column is one row of ``posteriors``: clicks per dollar times conversions per click,
    drawn independently from their Gamma posteriors.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    size = (n, len(posteriors))
    clicks = rng.gamma(
        posteriors["click_shape"].to_numpy(float),
        1.0 / posteriors["click_rate"].to_numpy(float),
        size=size,
    )
    clicks *= rng.gamma(  # in place: three arrays of draws x rows at once were the fit's peak
        posteriors["conv_shape"].to_numpy(float),
        1.0 / posteriors["conv_rate"].to_numpy(float),
        size=size,
    )
    return clicks


def expected_conversions_per_dollar(posteriors: pd.DataFrame) -> np.ndarray:
    """Posterior mean of conversions per dollar per row (the product of the Gamma means)."""
    return (
        posteriors["click_shape"].to_numpy(float)
        / posteriors["click_rate"].to_numpy(float)
        * posteriors["conv_shape"].to_numpy(float)
        / posteriors["conv_rate"].to_numpy(float)
    )


def _check_arguments(
    alpha_init: float, beta_init: float, half_life_days: float, live_window_days: int, draws: int
) -> None:
    if not (alpha_init > 0 and beta_init > 0):
        raise ValueError(f"alpha_init and beta_init must be > 0, got {alpha_init}, {beta_init}")
    _check_half_life("half_life_days", half_life_days)
    # A window of 0 days would make every arm 'not live' and starve the allocator.
    if live_window_days < 1:
        raise ValueError(f"live_window_days must be at least 1, got {live_window_days}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")


def _check_half_life(name: str, days: float) -> None:
    if not days > 0:
        raise ValueError(f"{name} must be > 0 (math.inf: no decay), got {days}")


def _decay(age: np.ndarray, half_life: float) -> np.ndarray:
    return np.ones(len(age)) if math.isinf(half_life) else 0.5 ** (age / half_life)


def _prepared(
    history: pd.DataFrame,
    decision_date: dt.date,
    half_life: float,
    cost_half_life: float,
    fatigue: bool = False,
) -> pd.DataFrame:
    """The columns the model reads, summed per arm, channel and day (the rows of ads and
    placements within them say nothing more, and 1.8 million of them as Python objects held
    about 1 GB), typed, with each day's age and its decay-weighted volumes (``w_``: for
    conversions per click; ``cost_``: for clicks per dollar), and (with ``fatigue``) its spend
    restated at the arm's current wear (``_wear_exposure``)."""
    dates = pd.to_datetime(history["date"]).dt.normalize()
    keep = (dates <= pd.Timestamp(decision_date)).to_numpy()
    rows = pd.DataFrame(
        {
            # categories: grouping text keys turns each of the 1.8 million into a Python string
            "arm_id": history["adset_id"].astype("category"),
            "channel": history["channel"].astype("category"),
            "date": dates,
            "spend": pd.to_numeric(history["spend"]).to_numpy(float),
            "clicks": pd.to_numeric(history["clicks"]).to_numpy(float),
            "conversions": pd.to_numeric(history["conversions"]).to_numpy(float),
            "impressions": (
                pd.to_numeric(history["impressions"]).fillna(0).to_numpy(float)
                if "impressions" in history.columns
                else np.zeros(len(history))
            ),
        }
    )[keep]
    daily = rows.groupby(["arm_id", "channel", "date"], sort=True, observed=True).sum()
    frame = daily.reset_index()
    frame["arm_id"] = frame["arm_id"].to_numpy(object)
    frame["channel"] = frame["channel"].to_numpy(object)
    age = (pd.Timestamp(decision_date) - frame["date"]).dt.days.to_numpy()
    frame.insert(3, "age", age)
    weight = _decay(age, half_life)
    cost_weight = _decay(age, cost_half_life)
    for column in ("spend", "clicks", "conversions"):
        frame[f"w_{column}"] = frame[column].to_numpy() * weight
    for column in ("spend", "clicks"):
        frame[f"cost_{column}"] = frame[column].to_numpy() * cost_weight
    if fatigue and len(frame):
        wear = _wear_exposure(frame)
        frame["w_spend"] *= wear
        frame["cost_spend"] *= wear
    return frame


def _wear_exposure(frame: pd.DataFrame) -> np.ndarray:
    """Per row, how much more a dollar bought then than it buys now, from creative wear.

    Creatives fatigue with the spend they accumulate: their click-through rate decays as
    ``exp(-g W)`` in the arm's cumulative spend ``W``. ``g`` is estimated from the history
    itself, by a click-weighted regression of each arm-day's log click-through rate on the
    arm's cumulative spend, within arms (each arm its own intercept). A day ``W_now - W``
    dollars of wear ago then counts as an exposure of ``spend x exp(g (W_now - W))`` dollars
    at today's rate. With no measurable decay (``g <= 0``, or too little data), 1.
    """
    days = (
        frame.groupby(["arm_id", "date"], sort=True)[["spend", "clicks", "impressions"]]
        .sum()
        .reset_index()
    )
    days["wear"] = days.groupby("arm_id")["spend"].cumsum() - days["spend"] / 2
    usable = days[(days["clicks"] > 0) & (days["impressions"] > 0)].copy()
    if usable["arm_id"].duplicated().sum() < 3:
        return np.ones(len(frame))
    usable["log_ctr"] = np.log(usable["clicks"] / usable["impressions"])
    weight = usable["clicks"].to_numpy(float)
    centred = {}
    codes = pd.factorize(usable["arm_id"])[0]
    total_weight = np.bincount(codes, weights=weight)
    for column in ("wear", "log_ctr"):
        values = usable[column].to_numpy(float)
        mean = np.bincount(codes, weights=weight * values) / total_weight
        centred[column] = values - mean[codes]
    denominator = float((weight * centred["wear"] ** 2).sum())
    if denominator <= 0:
        return np.ones(len(frame))
    g = max(-float((weight * centred["wear"] * centred["log_ctr"]).sum()) / denominator, 0.0)
    if g == 0.0:
        return np.ones(len(frame))

    total = days.groupby("arm_id")["spend"].sum()
    lookup = days.set_index(["arm_id", "date"])["wear"]
    wear = lookup.reindex(pd.MultiIndex.from_arrays([frame["arm_id"], frame["date"]]))
    behind = frame["arm_id"].map(total).to_numpy(float) - wear.to_numpy(float)
    return np.exp(np.minimum(g * np.nan_to_num(behind), 5.0))


def _aggregate(
    frame: pd.DataFrame, keys: list[str], decision: pd.Timestamp, live_window_days: int
) -> pd.DataFrame:
    """Weighted and unweighted totals, delivery dates and liveness per group of ``keys``."""
    delivered = (frame["spend"] > 0) | (frame["impressions"] > 0)
    frame = frame.assign(
        delivery_date=frame["date"].where(delivered),
        recent_spend=frame["spend"].where(frame["age"] < live_window_days, 0.0),
    )
    totals = (
        frame.groupby(keys, sort=True)
        .agg(
            spend=("spend", "sum"),
            clicks=("clicks", "sum"),
            conversions=("conversions", "sum"),
            w_spend=("w_spend", "sum"),
            w_clicks=("w_clicks", "sum"),
            w_conversions=("w_conversions", "sum"),
            cost_spend=("cost_spend", "sum"),
            cost_clicks=("cost_clicks", "sum"),
            recent_spend=("recent_spend", "sum"),
            first=("delivery_date", "min"),
            last=("delivery_date", "max"),
        )
        .reset_index()
    )

    first_age = (decision - totals["first"]).dt.days
    last_age = (decision - totals["last"]).dt.days
    totals["age_days"] = first_age.astype("Int64")
    totals["is_live"] = (last_age < live_window_days).fillna(False).to_numpy(bool)
    totals["first_delivery_date"] = [None if pd.isna(d) else d.date() for d in totals["first"]]
    totals["last_delivery_date"] = [None if pd.isna(d) else d.date() for d in totals["last"]]
    # Counts are whole numbers; the float sums only carried them through the groupby.
    totals["clicks"] = totals["clicks"].round().astype("int64")
    totals["conversions"] = totals["conversions"].round().astype("int64")
    return totals.drop(columns=["first", "last"])


def _clicks_per_dollar(spend: float, clicks: float) -> float:
    """Pooled clicks per dollar, or the placement profiles' figure when there is nothing yet."""
    if spend > 0 and clicks > 0:
        return float(clicks / spend)
    return DEFAULT_CLICKS_PER_DOLLAR


def _attach_parameters(
    table: pd.DataFrame,
    pooled: np.ndarray,
    alpha_init: float,
    beta_init: float,
    groups: np.ndarray | None = None,
    pooling: bool = False,
) -> None:
    """Gamma parameters of clicks per dollar and conversions per click, and E[1 / lambda].

    With ``pooling`` the conversion-rate prior of each row is ``_cvr_prior`` of the rows in
    its group (``groups``: one label per row; None: all rows one group); without it, the
    ``Beta(alpha_init, beta_init)`` moment match alone.
    """
    table["click_shape"] = CLICK_PRIOR_CLICKS + table["cost_clicks"].to_numpy()
    table["click_rate"] = CLICK_PRIOR_CLICKS / pooled + table["cost_spend"].to_numpy()
    mean = np.full(len(table), alpha_init / (alpha_init + beta_init))
    strength = np.full(len(table), alpha_init + beta_init)
    if pooling and len(table):
        labels = np.zeros(len(table), dtype=int) if groups is None else pd.factorize(groups)[0]
        conversions = table["w_conversions"].to_numpy(float)
        clicks = table["w_clicks"].to_numpy(float)
        for label in np.unique(labels):
            rows = labels == label
            mean[rows], strength[rows] = _cvr_prior(
                conversions[rows], clicks[rows], alpha_init, beta_init
            )
    table["conv_shape"] = mean * strength + table["w_conversions"].to_numpy()
    table["conv_rate"] = strength + table["w_clicks"].to_numpy()

    # E[1/X] for X ~ Gamma(shape k, rate b) is b / (k - 1) when k > 1 and infinite otherwise;
    # c and r are independent, so E[1 / (c r)] is the product.
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_c = np.where(
            table["click_shape"] > 1, table["click_rate"] / (table["click_shape"] - 1), np.inf
        )
        inverse_r = np.where(
            table["conv_shape"] > 1, table["conv_rate"] / (table["conv_shape"] - 1), np.inf
        )
    table["expected_cac"] = inverse_c * inverse_r


def _cvr_prior(
    conversions: np.ndarray, clicks: np.ndarray, alpha_init: float, beta_init: float
) -> tuple[float, float]:
    """Empirical-Bayes prior on conversions per click shared by a group of arms: its mean and
    its strength in pseudo-clicks.

    ``Beta(alpha_init, beta_init)`` (THOMPSON_ALPHA_INIT/BETA_INIT) is the prior on the
    account's conversion rate: its posterior mean ``(alpha + conversions) / (alpha + beta +
    clicks)`` over the group is the mean. The strength ``n0`` is the method-of-moments match
    of the spread between arms: ``n0 = mean / tau^2`` with ``tau^2`` the click-weighted
    variance of the arms' rates less what Poisson noise alone explains; never below
    ``alpha + beta``, the settings' pseudo-count. So a thin arm starts at the account's rate
    (not the Beta(1, 1) prior's 50%), and arms that truly differ still pull apart.
    """
    base = alpha_init + beta_init
    mean = (alpha_init + conversions.sum()) / (base + clicks.sum())
    seen = clicks > 0
    if seen.sum() < 3 or mean <= 0:
        return mean, base
    rates = conversions[seen] / clicks[seen]
    weights = clicks[seen]
    observed = float(np.average((rates - mean) ** 2, weights=weights))
    noise = mean * seen.sum() / weights.sum()
    # The spread between arms: at least 5% of the mean, so the prior never becomes a wall;
    # doubled, because a handful of arms estimate it roughly and too narrow a prior would
    # make the intervals overconfident (with it they cover 80% in the tests).
    tau2 = 2.0 * max(observed - noise, (0.05 * mean) ** 2)
    return mean, max(mean / tau2, base)


def _attach_cac_quantiles(table: pd.DataFrame, samples: np.ndarray) -> None:
    """The 10th, 50th and 90th percentiles of CAC = 1 / lambda."""
    # 1/x is decreasing, so CAC's p10 is one over lambda's p90.
    high, mid, low = np.quantile(samples, [0.9, 0.5, 0.1], axis=0)
    with np.errstate(divide="ignore"):
        table["cac_p10"] = 1.0 / high
        table["cac_p50"] = 1.0 / mid
        table["cac_p90"] = 1.0 / low


def _p_best(samples: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Share of draws in which each live column has the largest value; 0 for the others."""
    result = np.zeros(samples.shape[1])
    if not live.any():
        return result
    live_columns = np.flatnonzero(live)
    winners = live_columns[np.argmax(samples[:, live_columns], axis=1)]
    result += np.bincount(winners, minlength=samples.shape[1]) / samples.shape[0]
    return result


def _p_best_within_arms(samples: np.ndarray, arm_ids: np.ndarray) -> np.ndarray:
    """For each column, the share of draws in which it is the best column of its own arm."""
    result = np.zeros(samples.shape[1])
    codes, _ = pd.factorize(arm_ids)
    for code in range(codes.max() + 1):
        columns = np.flatnonzero(codes == code)
        winners = columns[np.argmax(samples[:, columns], axis=1)]
        result += np.bincount(winners, minlength=samples.shape[1]) / samples.shape[0]
    return result


def _placement_rows(
    frame: pd.DataFrame,
    decision: pd.Timestamp,
    pooled: float,
    alpha_init: float,
    beta_init: float,
    live_window_days: int,
    pooling: bool,
) -> pd.DataFrame:
    """One row per arm x channel: the same model on the channel's rows alone.

    The clicks-per-dollar prior is centred on the account's pooled figure for that channel,
    because channels differ in cost far more than arms do (Reels CPMs are a third of Feed's).
    """
    rows = _aggregate(frame, ["arm_id", "channel"], decision, live_window_days)
    rows = rows.rename(columns={"channel": "placement"})

    by_channel = frame.groupby("channel")[["w_spend", "w_clicks"]].sum()
    channel_pooled = {
        channel: float(clicks / spend) if spend > 0 and clicks > 0 else pooled
        for channel, (spend, clicks) in by_channel.iterrows()
    }
    _attach_parameters(
        rows,
        rows["placement"].map(channel_pooled).to_numpy(float),
        alpha_init,
        beta_init,
        groups=rows["placement"].to_numpy(),
        pooling=pooling,
    )

    # Spend mix: the live window when the arm spent in it, else the decay-weighted history,
    # else equal shares, so that every arm's shares sum to 1.
    per_arm = rows.groupby("arm_id")
    recent_total = per_arm["recent_spend"].transform("sum")
    weighted_total = per_arm["w_spend"].transform("sum")
    count = per_arm["placement"].transform("size")
    rows["channel_spend_share"] = np.where(
        recent_total > 0,
        rows["recent_spend"] / recent_total.where(recent_total > 0, 1.0),
        np.where(
            weighted_total > 0,
            rows["w_spend"] / weighted_total.where(weighted_total > 0, 1.0),
            1.0 / count,
        ),
    )
    return rows


def _empty_table() -> pd.DataFrame:
    """The output's columns with no rows (an empty history)."""
    table = pd.DataFrame({column: [] for column in POSTERIOR_COLUMNS})
    table["age_days"] = table["age_days"].astype("Int64")
    table["is_live"] = table["is_live"].astype(bool)
    return table
