"""The reports operators read (no Dagster import): plain frames in, plain frames and charts out.

Each function takes rows of ``validated_meta_metrics`` (one row per day x ad x placement, see
``aelp2_assets.tables.VALIDATED_COLUMNS``) or plain numbers, so a notebook can call it too.

- ``creative_rankings``: per ad over a trailing window, spend, conversions, CAC, shares and the
  CAC trend of the last week against the week before.
- ``launch_trajectories``: cumulative ROAS (revenue from purchase values over spend) by day
  since launch per campaign (or ad set), the share reaching ROAS >= 1 within 14 days and the
  median breakeven day.
- ``variance_shares``: the share of the variance of conversions per dollar explained by
  creative, placement and timing, by a sequential (type I) sums-of-squares decomposition.
- ``cost_and_return``: the pipeline's monthly cost against the CAC saving a backtest measured.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

# A week's CAC must move by more than this share against the week before to count as a trend.
TREND_TOLERANCE = 0.10
BREAKEVEN_HORIZON_DAYS = 14
# The factors of ``variance_shares`` in the order they enter: creative first, as the allocator
# acts on it; timing last, so it only gets what creative and placement leave unexplained.
FACTORS = {"creative": "ad_id", "placement": "placement", "timing": "day"}
AUDIENCE_NOTE = (
    "audience: not measurable - the insights carry no audience breakdown (age, gender, region"
    " or targeting); each creative runs in its own ad set, so audience and creative cannot be"
    " told apart here"
)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _cac(spend: pd.Series, conversions: pd.Series) -> pd.Series:
    return spend / conversions.where(conversions > 0)


# Creative rankings.


def creative_rankings(metrics: pd.DataFrame, end: pd.Timestamp, days: int = 30) -> pd.DataFrame:
    """One row per ad with spend in the ``days`` ending ``end``, best CAC first (ads without
    a conversion last, by spend): spend, conversions, CAC, its share of spend and of
    conversions, the CAC of the last 7 days and of the 7 before, and the trend: ``improving``
    or ``worsening`` when the last week's CAC moved by more than ``TREND_TOLERANCE`` against the
    week before, ``steady`` otherwise, ``stopped`` without spend in the last week,
    ``new`` without spend in the week before, ``no conversions`` when either week has none."""
    columns = [
        "rank", "ad_id", "ad_name", "spend", "conversions", "cac", "spend_share",
        "conversion_share", "cac_last_7d", "cac_prior_7d", "cac_change", "trend",
    ]  # fmt: skip
    if metrics.empty:
        return pd.DataFrame(columns=columns)
    end = pd.Timestamp(end)
    dates = pd.to_datetime(metrics["date"])
    window = metrics[(dates > end - pd.Timedelta(days=days)) & (dates <= end)].copy()
    window["date"] = pd.to_datetime(window["date"])
    if window.empty or window["spend"].sum() <= 0:
        return pd.DataFrame(columns=columns)

    names = window.groupby("ad_id")["ad_name"].last()
    totals = window.groupby("ad_id")[["spend", "conversions"]].sum()
    totals = totals[totals["spend"] > 0]
    last = window[window["date"] > end - pd.Timedelta(days=7)]
    prior = window[
        (window["date"] > end - pd.Timedelta(days=14))
        & (window["date"] <= end - pd.Timedelta(days=7))
    ]
    last = last.groupby("ad_id")[["spend", "conversions"]].sum().reindex(totals.index)
    prior = prior.groupby("ad_id")[["spend", "conversions"]].sum().reindex(totals.index)

    ranked = pd.DataFrame(
        {
            "ad_id": totals.index,
            "ad_name": names.reindex(totals.index).to_numpy(),
            "spend": totals["spend"].to_numpy(),
            "conversions": totals["conversions"].to_numpy(),
            "cac": _cac(totals["spend"], totals["conversions"]).to_numpy(),
            "spend_share": (totals["spend"] / totals["spend"].sum()).to_numpy(),
            "conversion_share": (
                totals["conversions"] / totals["conversions"].sum()
                if totals["conversions"].sum() > 0
                else totals["conversions"] * 0.0
            ).to_numpy(),
            "cac_last_7d": _cac(last["spend"], last["conversions"]).to_numpy(),
            "cac_prior_7d": _cac(prior["spend"], prior["conversions"]).to_numpy(),
        }
    )
    ranked["cac_change"] = ranked["cac_last_7d"] / ranked["cac_prior_7d"] - 1
    ranked["trend"] = [
        _trend(change, spent_last, spent_prior)
        for change, spent_last, spent_prior in zip(
            ranked["cac_change"],
            last["spend"].fillna(0).to_numpy(),
            prior["spend"].fillna(0).to_numpy(),
            strict=True,
        )
    ]
    ranked = ranked.sort_values(
        ["cac", "spend"], ascending=[True, False], na_position="last", ignore_index=True
    )
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked[columns]


def _trend(change: float, last_spend: float, prior_spend: float) -> str:
    if last_spend <= 0:
        return "stopped"
    if prior_spend <= 0:
        return "new"
    if pd.isna(change):
        return "no conversions"
    if change < -TREND_TOLERANCE:
        return "improving"
    if change > TREND_TOLERANCE:
        return "worsening"
    return "steady"


_TREND_COLOURS = {
    "improving": "#2a9d8f",
    "steady": "#8d99ae",
    "worsening": "#e76f51",
    "new": "#457b9d",
    "stopped": "#6d597a",
    "no conversions": "#bbbbbb",
}


def rankings_chart(ranked: pd.DataFrame) -> bytes:
    """Horizontal bars of each creative's CAC (best at the top), coloured by trend, labelled
    with its share of spend."""
    figure = Figure(figsize=(7, 0.4 * max(len(ranked), 3) + 1.2))
    axes = figure.add_subplot()
    shown = ranked.iloc[::-1]
    labels = [str(name or ad) for name, ad in zip(shown["ad_name"], shown["ad_id"], strict=True)]
    values = shown["cac"].fillna(0).to_numpy(dtype=float)
    colours = [_TREND_COLOURS.get(trend, "#8d99ae") for trend in shown["trend"]]
    axes.barh(labels, values, color=colours)
    for y, (value, share) in enumerate(zip(values, shown["spend_share"], strict=True)):
        text = f"{share:.0%} of spend" if value > 0 else f"no conversions, {share:.0%} of spend"
        axes.annotate(text, (value, y), xytext=(3, 0), textcoords="offset points", va="center",
                      fontsize=8)  # fmt: skip
    axes.set_xlim(0, max(values.max(), 1.0) * 1.45)  # room for the labels and the legend
    axes.set_xlabel("CAC over the window (account currency)")
    axes.set_title("Creative rankings: CAC, colour = trend of the last 7 days")
    handles = [
        axes.bar(0, 0, color=colour, label=trend) for trend, colour in _TREND_COLOURS.items()
    ]
    # upper right: beside the cheapest creatives' short bars, clear of the dearest's labels
    axes.legend(handles=handles, fontsize=7, loc="upper right")
    return _png(figure)


# Launch trajectories.


@dataclass(frozen=True)
class LaunchSummary:
    """What the launch trajectories say over the launches they can judge."""

    launches: int  # launched inside the data, with at least one day of spend
    judged: int  # of those, observed for the whole horizon or breaking even within it
    positive_within_horizon: int
    share_positive_within_horizon: float | None  # None when no launch can be judged
    median_breakeven_day: float | None  # None when fewer than half ever break even
    censored: int  # delivering on the data's first day: launch date unknown, left out


def launch_trajectories(
    metrics: pd.DataFrame, unit: str = "campaign_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cumulative ROAS by day since launch for each ``unit`` (campaign by default), and one
    row per unit with its launch date, days observed, breakeven day and whether that came
    within ``BREAKEVEN_HORIZON_DAYS``.

    Revenue is ``conversion_value`` (purchase values of the configured action type). ROAS on
    day ``n`` is revenue over spend summed from launch (day 0) to day ``n``; the breakeven day
    is the first with ROAS >= 1. The launch is the unit's first day with spend; a unit spending
    on the data's first day launched earlier (its launch is not in the data) and is marked
    ``censored``."""
    frame = metrics[["date", unit, "spend", "conversion_value"]].copy()
    frame["date"] = pd.to_datetime(frame["date"])
    first_day = frame["date"].min()
    daily = frame.groupby([unit, "date"], as_index=False)[["spend", "conversion_value"]].sum()
    daily = daily[daily.groupby(unit)["spend"].transform("sum") > 0]

    paths, rows = [], []
    for key, group in daily.groupby(unit, sort=True):
        spent = group[group["spend"] > 0]
        launch = spent["date"].min()
        last = group["date"].max()
        days = pd.date_range(launch, last, freq="D")
        group = group.set_index("date").reindex(days, fill_value=0.0)
        spend = group["spend"].cumsum().to_numpy(dtype=float)
        revenue = group["conversion_value"].cumsum().to_numpy(dtype=float)
        roas = np.divide(revenue, spend, out=np.full_like(spend, np.nan), where=spend > 0)
        paths.append(
            pd.DataFrame(
                {
                    unit: key,
                    "day_since_launch": np.arange(len(days)),
                    "date": days,
                    "cumulative_spend": spend,
                    "cumulative_revenue": revenue,
                    "roas": roas,
                }
            )
        )
        even = np.flatnonzero(roas >= 1)
        breakeven = int(even[0]) if len(even) else None
        rows.append(
            {
                unit: key,
                "launch_date": launch,
                "days_observed": len(days),
                "censored": bool(launch == first_day),
                "spend": float(spend[-1]),
                "revenue": float(revenue[-1]),
                "roas_to_date": float(roas[-1]) if spend[-1] > 0 else math.nan,
                "breakeven_day": breakeven,
                "positive_within_14d": breakeven is not None and breakeven < BREAKEVEN_HORIZON_DAYS,
            }
        )
    path_columns = [unit, "day_since_launch", "date", "cumulative_spend", "cumulative_revenue",
                    "roas"]  # fmt: skip
    trajectory = (
        pd.concat(paths, ignore_index=True) if paths else pd.DataFrame(columns=path_columns)
    )
    summary = pd.DataFrame(rows)
    if not summary.empty:
        summary["breakeven_day"] = summary["breakeven_day"].astype("Int64")
    return trajectory, summary


def summarize_launches(summary: pd.DataFrame) -> LaunchSummary:
    """The share of judged launches with ROAS >= 1 within ``BREAKEVEN_HORIZON_DAYS`` (day 0 to
    day 13) and their median breakeven day.

    A launch is judged once it was observed for the whole horizon, or broke even sooner; one
    still younger is left out, as is a censored one. The median counts a launch that never
    broke even as later than any that did, so it is None when fewer than half broke even."""
    if summary.empty:
        return LaunchSummary(0, 0, 0, None, None, 0)
    censored = int(summary["censored"].sum())
    launches = summary[~summary["censored"]]
    judged = launches[
        (launches["days_observed"] >= BREAKEVEN_HORIZON_DAYS) | launches["positive_within_14d"]
    ]
    positive = int(judged["positive_within_14d"].sum())
    share = positive / len(judged) if len(judged) else None
    days = np.sort(launches["breakeven_day"].astype("Float64").fillna(np.inf).to_numpy(float))
    median = None
    if len(days):
        middle = float(np.median(days))
        median = None if math.isinf(middle) or math.isnan(middle) else middle
    return LaunchSummary(len(launches), len(judged), positive, share, median, censored)


def trajectories_chart(
    trajectory: pd.DataFrame, unit: str = "campaign_id", launched_before: int = 0
) -> bytes:
    """``trajectories_figure`` as PNG bytes."""
    return _png(trajectories_figure(trajectory, unit, launched_before))


def trajectories_figure(
    trajectory: pd.DataFrame, unit: str = "campaign_id", launched_before: int = 0
) -> Figure:
    """Cumulative ROAS by day since launch, one line per unit, the breakeven line and the
    14-day horizon marked; without a launch to draw, a note saying so and how many units
    (``launched_before``) were left out for delivering from the window's first day."""
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    name = unit.removesuffix("_id").replace("adset", "ad set")
    for key, path in trajectory.groupby(unit, sort=True):
        axes.plot(path["day_since_launch"], path["roas"], label=str(key), linewidth=1.4)
    if trajectory.empty:
        axes.text(
            0.5,
            0.5,
            f"No {name} launched inside the window\n"
            f"({launched_before} delivering from its first day, launched before it)",
            transform=axes.transAxes,
            ha="center",
            va="center",
        )
        axes.set_xlim(0, BREAKEVEN_HORIZON_DAYS)
        axes.set_ylim(0, 2)
    axes.axhline(1.0, color="black", linestyle="--", linewidth=0.8, label="breakeven (ROAS 1)")
    axes.axvline(BREAKEVEN_HORIZON_DAYS - 0.5, color="grey", linestyle=":", linewidth=0.8,
                 label=f"{BREAKEVEN_HORIZON_DAYS} days")  # fmt: skip
    axes.set_xlabel("days since launch")
    axes.set_ylabel("cumulative ROAS (purchase value / spend)")
    axes.set_title(f"Launch trajectories by {name} (launches in the window)")
    axes.legend(fontsize=7, ncol=2)
    return figure


# What drives performance.


def variance_shares(metrics: pd.DataFrame, factors: dict[str, str] | None = None) -> pd.DataFrame:
    """The share of the spend-weighted variance of conversions per dollar (one value per day x
    ad x placement row with spend) explained by each factor, by sequential (type I) sums of
    squares: each factor in ``FACTORS`` order (creative, placement, timing) gets the weighted
    sum of squares it adds to a least-squares fit of the factors before it, as dummy
    variables; ``residual`` is what none explains. Weighting by spend keeps rows of a few
    dollars, whose ratio is mostly noise, from dominating.

    The order matters when the factors are correlated (creatives launched on different days),
    so each factor's share when it enters first and when it enters last are given too.
    Timing is the calendar day (weekday and trend together)."""
    factors = FACTORS if factors is None else factors
    frame = metrics[metrics["spend"] > 0].copy()
    frame["placement"] = (
        frame["publisher_platform"].astype(str)
        + "/" + frame["platform_position"].astype(str)
        + "/" + frame["impression_device"].astype(str)
    )  # fmt: skip
    frame["day"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
    y = (frame["conversions"] / frame["spend"]).to_numpy(dtype=float)
    w = frame["spend"].to_numpy(dtype=float)
    names = list(factors)
    rows = []
    total = _weighted_ss(y, w, [])
    sequential = _sequential(frame, y, w, [factors[n] for n in names], total)
    for index, name in enumerate(names):
        column = factors[name]
        others = [factors[n] for n in names if n != name]
        first = _sequential(frame, y, w, [column, *others], total)[0]
        last = _sequential(frame, y, w, [*others, column], total)[-1]
        rows.append(
            {
                "factor": name,
                "levels": int(frame[column].nunique()),
                "share": sequential[index],
                "share_entered_first": first,
                "share_entered_last": last,
            }
        )
    explained = float(np.nansum(sequential)) if total > 0 else math.nan
    rows.append(
        {
            "factor": "residual",
            "levels": len(frame),
            "share": 1 - explained if total > 0 else math.nan,
            "share_entered_first": math.nan,
            "share_entered_last": math.nan,
        }
    )
    return pd.DataFrame(rows)


def _design(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    blocks = [np.ones((len(frame), 1))]
    for column in columns:
        blocks.append(pd.get_dummies(frame[column], drop_first=True).to_numpy(dtype=float))
    return np.hstack(blocks)


def _weighted_ss(y: np.ndarray, w: np.ndarray, columns: list, frame=None) -> float:
    """The weighted residual sum of squares of ``y`` on an intercept and the dummies of
    ``columns``."""
    if len(y) == 0:
        return 0.0
    design = np.ones((len(y), 1)) if not columns else _design(frame, columns)
    root = np.sqrt(w)
    coefficients, *_ = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)
    residual = (y - design @ coefficients) * root
    return float(residual @ residual)


def _sequential(
    frame: pd.DataFrame, y: np.ndarray, w: np.ndarray, columns: list[str], total: float
) -> list[float]:
    shares, before = [], total
    for index in range(len(columns)):
        after = _weighted_ss(y, w, columns[: index + 1], frame)
        shares.append((before - after) / total if total > 0 else math.nan)
        before = after
    return shares


def drivers_chart(shares: pd.DataFrame) -> bytes:
    """Bars of each factor's sequential share, with its first-to-last range as an error bar."""
    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    factors = shares[shares["factor"] != "residual"]
    axes.bar(factors["factor"], factors["share"], color="#457b9d", label="sequential share")
    low = (factors["share"] - factors["share_entered_last"]).clip(lower=0)
    high = (factors["share_entered_first"] - factors["share"]).clip(lower=0)
    axes.errorbar(factors["factor"], factors["share"], yerr=[low, high], fmt="none",
                  ecolor="black", capsize=4, label="entered last .. first")  # fmt: skip
    residual = shares.loc[shares["factor"] == "residual", "share"]
    if len(residual):
        axes.bar(["residual"], residual, color="#cccccc")
    axes.set_ylim(0, 1)
    axes.set_ylabel("share of variance, conversions per dollar")
    axes.set_title("What drives performance (type I sums of squares)")
    axes.legend(fontsize=7)
    return _png(figure)


# Cost and return.


@dataclass(frozen=True)
class CostAndReturn:
    """The pipeline's monthly cost against the money its CAC saving is worth a month."""

    monthly_cost: float
    monthly_spend: float
    cost_share_of_spend: float | None
    cac_saving_share: float | None  # None: no backtest has measured it yet
    monthly_saving: float | None
    return_on_cost: float | None  # saving / cost
    status: str


def cost_and_return(
    monthly_cost: float,
    monthly_spend: float,
    baseline_cac: float | None = None,
    model_cac: float | None = None,
) -> CostAndReturn:
    """``monthly_cost`` (the pipeline's own: compute, warehouse, API, upkeep) against the
    saving of a backtest that measured ``model_cac`` for the model's allocations and
    ``baseline_cac`` for the baseline's on the same days.

    The saving is what the month's conversions (``monthly_spend / model_cac``) would have cost
    more at the baseline's CAC. Without both CACs nothing is measured, and the status says
    "not measurable yet" instead of printing a number."""
    cost_share = monthly_cost / monthly_spend if monthly_spend > 0 else None
    measured = (
        baseline_cac is not None
        and model_cac is not None
        and math.isfinite(baseline_cac)
        and math.isfinite(model_cac)
        and model_cac > 0
        and baseline_cac > 0
    )
    if not measured:
        return CostAndReturn(
            monthly_cost, monthly_spend, cost_share, None, None, None,
            "not measurable yet: no model-accuracy backtest has measured the CAC saving",
        )  # fmt: skip
    saving_share = 1 - model_cac / baseline_cac
    saving = monthly_spend / model_cac * (baseline_cac - model_cac)
    ratio = saving / monthly_cost if monthly_cost > 0 else None
    if saving <= 0:
        status = "no saving: the backtest's CAC is not better than the baseline's"
    elif ratio is not None and ratio < 1:
        status = "the saving does not cover the pipeline's cost"
    else:
        status = "the saving covers the pipeline's cost"
    return CostAndReturn(
        monthly_cost, monthly_spend, cost_share, saving_share, saving, ratio, status
    )


def cost_chart(result: CostAndReturn) -> bytes:
    """Two bars: the pipeline's monthly cost and the monthly saving (when measured)."""
    figure = Figure(figsize=(5, 3.2))
    axes = figure.add_subplot()
    axes.bar(["pipeline cost"], [result.monthly_cost], color="#e76f51")
    if result.monthly_saving is not None:
        axes.bar(["CAC saving"], [result.monthly_saving], color="#2a9d8f")
    else:
        axes.bar(["CAC saving"], [0.0], color="#2a9d8f")
        axes.annotate("not measurable yet", (1, 0), xytext=(0, 10), textcoords="offset points",
                      ha="center")  # fmt: skip
    axes.set_ylabel("per month (account currency)")
    axes.set_title("Cost and return of the pipeline")
    return _png(figure)
