"""Model: posteriors per creative (and placement) and the Monte Carlo CAC forecast."""

import datetime as dt
import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd

from aelp2_assets.assets.metadata import markdown_preview, png_markdown
from aelp2_assets.assets.validate import REJECTS_TABLE
from aelp2_assets.forecast import fan_chart_png, forecast_cac, recent_calibration
from aelp2_assets.money import to_major_units
from aelp2_assets.posteriors import fit_posteriors
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import InsightsSource
from aelp2_assets.resources.warehouse import Warehouse, WarehouseResource
from aelp2_assets.validation import reject_summary, rejected_row_count

# Settings that say where data lives, not how the model decides: they do not change the seed.
_WHERE_NOT_HOW = {"env", "source", "warehouse", "duckdb_path", "source_file", "dataset"}


def decision_seed(decision_date: dt.date, settings: Aelp2Settings, stage: str) -> int:
    """A seed from the decision date and the run's configuration: same inputs, same draws."""
    model_settings = settings.model_dump(mode="json", exclude=_WHERE_NOT_HOW)
    configuration = json.dumps([stage, decision_date.isoformat(), model_settings], sort_keys=True)
    return int.from_bytes(hashlib.sha256(configuration.encode()).digest()[:8], "big")


def decision_date_of(frame: pd.DataFrame) -> dt.date:
    """The one decision date a model table was computed for."""
    return pd.Timestamp(frame["decision_date"].iloc[0]).date()


def refuse_rejected_history(
    warehouse: Warehouse, settings: Aelp2Settings, decision: dt.date
) -> None:
    """Fail, writing nothing, when the history window holds more rejected rows than tolerated.

    The blocking checks stop a scheduled run; this also stops a run launched by hand later, so
    a model is never fitted on days whose bad rows were left out.
    """
    rejects = warehouse.read(
        REJECTS_TABLE, "date", decision - dt.timedelta(days=settings.history_days), decision
    )
    rejected = rejected_row_count(rejects)
    if rejected > settings.max_rejected_rows:
        raise dg.Failure(
            description=(
                f"{rejected} rejected rows in the history window (tolerance"
                f" {settings.max_rejected_rows}): fix the source and re-materialize"
                f" validated_meta_metrics for {sorted(set(rejects['date'].astype(str)))}"
            ),
            metadata={"rejects": dg.MetadataValue.md(reject_summary(rejects))},
        )


@dg.asset(
    deps=["validated_meta_metrics"],
    check_specs=[
        dg.AssetCheckSpec(
            "history_is_fresh",
            asset="creative_posteriors",
            blocking=True,
            description="Validated data reaches the day before the decision date or later.",
        ),
        dg.AssetCheckSpec(
            "conversions_observed",
            asset="creative_posteriors",
            blocking=True,
            description="The history holds conversions of the configured action type.",
        ),
    ],
    group_name="model",
    kinds={"python", "numpy"},
    owners=["team:data-eng"],
)
def creative_posteriors(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    insights_source: InsightsSource,
    warehouse: WarehouseResource,
):
    """One row per arm (ad set; ``placement`` 'all') and, when META_PLACEMENT_TRACKING is on,
    per arm and channel: the posterior over conversions per dollar, expected CAC with its 80%
    credible interval, P(best), data volume and age, for the decision date."""
    decision = insights_source.decision_date(settings.account_today())
    history = warehouse.read(
        "validated_meta_metrics",
        "date",
        decision - dt.timedelta(days=settings.history_days),
        decision,
        compact_text=True,  # Arrow-backed text: 1.8 million rows as objects held ~1 GB more
    )
    refuse_rejected_history(warehouse, settings, decision)
    seed = decision_seed(decision, settings, "posteriors")
    context.log.info(f"decision date {decision}; {len(history)} validated rows; seed {seed}")
    posteriors = _posteriors(history, decision, settings, np.random.default_rng(seed)).assign(
        decision_date=pd.Timestamp(decision)
    )

    arms = posteriors[posteriors["placement"] == "all"]
    yield dg.Output(
        posteriors,
        metadata={
            "dagster/row_count": len(posteriors),
            "decision_date": str(decision),
            "seed": str(seed),
            "live_arms": int(arms["is_live"].sum()),
            "best_expected_cac": float(arms.loc[arms["is_live"], "expected_cac"].min()),
            "max_p_best": float(arms["p_best"].max()),
            "preview": markdown_preview(arms.sort_values("p_best", ascending=False), 12),
        },
    )
    latest = pd.Timestamp(history["date"].max()).date() if len(history) else None
    yield dg.AssetCheckResult(
        check_name="history_is_fresh",
        passed=latest is not None and latest >= decision - dt.timedelta(days=1),
        description=f"latest validated day {latest}, decision date {decision}",
        metadata={"latest_day": str(latest), "decision_date": str(decision)},
    )
    conversions, spend = int(history["conversions"].sum()), float(history["spend"].sum())
    yield dg.AssetCheckResult(
        check_name="conversions_observed",
        passed=conversions > 0 or spend == 0,
        description=(
            f"{conversions} conversions of AELP2_CONVERSION_ACTION_TYPE="
            f"{settings.conversion_action_type!r} on {spend:,.2f} spend in the history"
            + ("" if conversions > 0 or spend == 0 else ": is the action type right?")
        ),
        metadata={"conversions": conversions, "spend": spend},
    )


def _posteriors(
    history: pd.DataFrame,
    decision: dt.date,
    settings: Aelp2Settings,
    rng: np.random.Generator,
    *,
    pooling: bool = False,
) -> pd.DataFrame:
    """``fit_posteriors`` with the project's settings."""
    return fit_posteriors(
        history,
        decision,
        alpha_init=settings.thompson_alpha_init,
        beta_init=settings.thompson_beta_init,
        placement_tracking=settings.placement_tracking,
        live_window_days=settings.live_window_days,
        rng=rng,
        pooling=pooling,
    )


# Days whose spend stands for an ad set's spend now when it has no daily budget.
RECENT_SPEND_DAYS = 7


def planned_daily_spend(
    arms: pd.DataFrame,
    entities: pd.DataFrame,
    history: pd.DataFrame,
    decision: dt.date,
    settings: Aelp2Settings,
) -> dict[str, float]:
    """Each live arm's daily spend now: its current daily budget; without one (a file export
    carries none; campaign-budget and lifetime-budget ad sets have none), its spend per day
    over the ``RECENT_SPEND_DAYS`` whole days before the decision date (the Meta source's is
    today so far), or over the days since its first spend when it is younger (days without
    spend count: an export's ad sets spend on some days only); 0 when it spent nothing in
    them."""
    live = arms.loc[arms["is_live"], "arm_id"].tolist()
    budgets = entities[entities["level"] == "adset"].set_index("object_id")["daily_budget"].dropna()
    spent = history.loc[history["spend"] > 0, ["date", "adset_id", "spend"]]
    dates = pd.to_datetime(spent["date"])
    window_start = pd.Timestamp(decision - dt.timedelta(days=RECENT_SPEND_DAYS))
    recent = spent[(dates >= window_start) & (dates < pd.Timestamp(decision))]
    first = dates[dates < pd.Timestamp(decision)].groupby(spent["adset_id"]).min()
    days = (pd.Timestamp(decision) - first.clip(lower=window_start)).dt.days
    recent_spend = (recent.groupby("adset_id")["spend"].sum() / days).fillna(0.0)
    return {
        arm: to_major_units(int(budgets[arm]), settings.account_currency)
        if arm in budgets.index
        else float(recent_spend.get(arm, 0.0))
        for arm in live
    }


@dg.asset(group_name="model", kinds={"python", "numpy"}, owners=["team:data-eng"])
def cac_forecasts(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    warehouse: WarehouseResource,
    creative_posteriors: pd.DataFrame,
    meta_ad_entities: pd.DataFrame,
) -> pd.DataFrame:
    """Monte Carlo forecast at the current budgets (``planned_daily_spend``): the 30-day
    cumulative CAC path and daily conversions by channel (Feed, Stories, Reels, Marketplace,
    other), each p10/p50/p90, with at least MONTE_CARLO_DRAWS draws, doubled until the bands
    move less than CONVERGENCE_THRESHOLD. Its posteriors are refitted with conversion-rate
    priors learnt from the account's arms (the allocator's keep the settings' prior, which
    explores). The recent days calibrate it: each ad set's clicks per dollar today (it falls
    as a creative wears), the conversion-rate level, the drift ahead and the day-to-day
    overdispersion."""
    decision = decision_date_of(creative_posteriors)
    arms = creative_posteriors[creative_posteriors["placement"] == "all"]
    seed = decision_seed(decision, settings, "forecast")
    rng = np.random.default_rng(seed)
    history = warehouse.read(
        "validated_meta_metrics",
        "date",
        decision - dt.timedelta(days=settings.history_days),
        decision,
        compact_text=True,  # Arrow-backed text: 1.8 million rows as objects held ~1 GB more
    )
    spend = planned_daily_spend(arms, meta_ad_entities, history, decision, settings)
    # The forecast predicts, so each conversion-rate prior is learnt from the account's arms
    # (a thin arm is forecast at the account's rate); the allocator's stays the settings'.
    posteriors = _posteriors(history, decision, settings, rng, pooling=True)
    # Whole days only: the days before the decision date (the Meta source's decision date is
    # today so far, whose low spend the click trend would read as a move along the curve).
    calibration = recent_calibration(posteriors, history, decision)
    if calibration is None:
        context.log.warning(
            "forecast not calibrated: under 7 whole days with spend and clicks, or under 10"
            " conversions, in the last 42; its bands rest on the posteriors alone"
        )
    result = forecast_cac(
        posteriors[posteriors["arm_id"].isin(list(spend))],
        spend,
        min_draws=settings.monte_carlo_draws,
        convergence_threshold=settings.convergence_threshold,
        rng=rng,
        calibration=calibration,
    )
    table = result.table.assign(decision_date=pd.Timestamp(decision))
    context.log.info(
        f"forecast for {decision}: {result.draws_used} draws, converged {result.converged},"
        f" calibrated on recent days: {calibration is not None}, seed {seed}"
    )

    cac = table[(table["metric"] == "cumulative_cac") & (table["channel"] == "all")]
    day30 = cac[cac["day"] == cac["day"].max()].iloc[0]
    context.add_output_metadata(
        {
            "dagster/row_count": len(table),
            "draws": result.draws_used,
            "converged": result.converged,
            "calibrated": calibration is not None,
            "seed": str(seed),
            "cac_day30_p10": float(day30["p10"]),
            "cac_day30_p50": float(day30["p50"]),
            "cac_day30_p90": float(day30["p90"]),
            "fan_chart": png_markdown(
                fan_chart_png(table, f"30-day CAC from {decision}"), "forecast fan chart"
            ),
            "preview": markdown_preview(cac, 30),
        }
    )
    return table
