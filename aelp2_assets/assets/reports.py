"""Reports operators read: creative rankings, launch trajectories, what drives performance, and
the pipeline's cost against its return. They hang off the graph (``reports_job``): they read
validated insights from the warehouse and never feed a push."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from aelp2_assets import reports
from aelp2_assets.assets.metadata import markdown_preview, png_markdown
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import InsightsSource
from aelp2_assets.resources.warehouse import Warehouse, WarehouseResource

VALIDATED = "validated_meta_metrics"
# The backtest table the cost-and-return report reads, when the model-accuracy asset has
# written it: its latest row's CAC of the model's allocations and of the baseline's.
ACCURACY_TABLE = "model_accuracy"
ACCURACY_COLUMNS = ("baseline_cac", "model_cac")
_COMMON = {
    "deps": [VALIDATED],
    "group_name": "reports",
    "kinds": {"python", "duckdb"},
    "owners": ["team:ads-ops"],
}


class ReportWindow(dg.Config):
    days: int = Field(
        30, ge=1, description="Days of validated history, ending on the decision date."
    )


class LaunchWindow(dg.Config):
    days: int = Field(
        90, ge=15, description="Days of validated history read to find launches and follow them."
    )
    unit: str = Field(
        "campaign_id",
        description="What a launch is: 'campaign_id' or 'adset_id' (one creative per ad set).",
    )


def _history(
    settings: Aelp2Settings, source: InsightsSource, warehouse: Warehouse, days: int
) -> tuple[dt.date, pd.DataFrame]:
    end = source.decision_date(settings.account_today())
    return end, warehouse.read(VALIDATED, "date", end - dt.timedelta(days=days - 1), end)


def _save_chart(settings: Aelp2Settings, name: str, png: bytes) -> str:
    """Write the chart to ``AELP2_REPORTS_DIR`` too, for whoever reads files, not the UI."""
    folder = Path(settings.reports_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    path.write_bytes(png)
    return str(path)


def _number(value: float | None) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


@dg.asset(**_COMMON)
def creative_rankings(
    context: dg.AssetExecutionContext,
    config: ReportWindow,
    settings: Aelp2Settings,
    insights_source: InsightsSource,
    warehouse: WarehouseResource,
) -> pd.DataFrame:
    """One row per ad with spend over the last ``days`` (30) of validated insights ending on
    the decision date, best CAC first: spend, conversions, CAC, share of spend and of
    conversions, and the trend of the last 7 days' CAC against the 7 before."""
    end, history = _history(settings, insights_source, warehouse, config.days)
    ranked = reports.creative_rankings(history, pd.Timestamp(end), config.days)
    context.log.info(f"{len(ranked)} creatives ranked from {len(history)} rows ending {end}")
    metadata = {
        "dagster/row_count": len(ranked),
        "window": f"{end - dt.timedelta(days=config.days - 1)}..{end}",
        "preview": markdown_preview(ranked, 15),
    }
    if not ranked.empty:
        png = reports.rankings_chart(ranked)
        metadata["best_cac"] = _number(ranked["cac"].iloc[0])
        metadata["worsening"] = int((ranked["trend"] == "worsening").sum())
        metadata["chart"] = png_markdown(png, "creative rankings")
        metadata["chart_path"] = _save_chart(settings, "creative_rankings", png)
    context.add_output_metadata(metadata)
    return ranked


@dg.asset(**_COMMON)
def launch_trajectories(
    context: dg.AssetExecutionContext,
    config: LaunchWindow,
    settings: Aelp2Settings,
    insights_source: InsightsSource,
    warehouse: WarehouseResource,
) -> pd.DataFrame:
    """One row per launch (campaign by default) found in the last ``days`` (90): its launch
    date, days observed, spend, revenue (purchase values, ``conversion_value``), ROAS to date,
    the breakeven day (first day since launch with cumulative ROAS >= 1) and whether it came
    within 14 days. The ROAS-by-day paths are in the chart and the ``paths`` preview."""
    if config.unit not in ("campaign_id", "adset_id"):
        raise ValueError(f"unit={config.unit!r}: must be 'campaign_id' or 'adset_id'")
    end, history = _history(settings, insights_source, warehouse, config.days)
    if history.empty:
        context.log.info(f"no validated rows up to {end}")
        context.add_output_metadata({"dagster/row_count": 0, "preview": "no rows"})
        return pd.DataFrame()
    paths, summary = reports.launch_trajectories(history, config.unit)
    launches = reports.summarize_launches(summary)
    context.log.info(
        f"{launches.launches} launches ({launches.censored} launched before the window),"
        f" {launches.judged} old enough to judge"
    )
    # a launch before the window would start mid-flight at "day 0": charted are real launches
    launched = summary.loc[~summary["censored"], config.unit]
    png = reports.trajectories_chart(
        paths[paths[config.unit].isin(launched)], config.unit, launches.censored
    )
    context.add_output_metadata(
        {
            "dagster/row_count": len(summary),
            "launches": launches.launches,
            "launched_before_window": launches.censored,
            "judged": launches.judged,
            "share_positive_roas_within_14d": _number(launches.share_positive_within_horizon),
            "median_breakeven_day": _number(launches.median_breakeven_day),
            "median_breakeven": (
                "not reached by half the launches"
                if launches.median_breakeven_day is None
                else f"day {launches.median_breakeven_day:g}"
            ),
            "preview": markdown_preview(summary, 15),
            "paths": markdown_preview(paths, 20),
            "chart": png_markdown(png, "launch trajectories"),
            "chart_path": _save_chart(settings, "launch_trajectories", png),
        }
    )
    return summary


@dg.asset(**_COMMON)
def performance_drivers(
    context: dg.AssetExecutionContext,
    config: ReportWindow,
    settings: Aelp2Settings,
    insights_source: InsightsSource,
    warehouse: WarehouseResource,
) -> pd.DataFrame:
    """One row per factor (creative, placement, timing, residual): the share of the
    spend-weighted variance of conversions per dollar by day x ad x placement over the last
    ``days`` (30) it explains, by sequential (type I) sums of squares in that order, with its
    share when entered first and last. Audience is not in the data and is not estimated."""
    _, history = _history(settings, insights_source, warehouse, config.days)
    shares = reports.variance_shares(history) if len(history) else pd.DataFrame()
    method = (
        "Sequential (type I) sums of squares: weighted least squares (weights = spend) of"
        " conversions per dollar, one value per day x ad x placement, on dummies of creative,"
        " then placement, then timing (the calendar day); each factor's share is the weighted"
        " sum of squares it adds over total. 'Entered first' and 'entered last' bound how much"
        " the order matters."
    )
    context.log.info(f"variance shares from {len(history)} rows")
    metadata = {
        "dagster/row_count": len(shares),
        "method": dg.MetadataValue.md(method),
        "audience": reports.AUDIENCE_NOTE,
        "preview": markdown_preview(shares),
    }
    if not shares.empty:
        png = reports.drivers_chart(shares)
        by_factor = shares.set_index("factor")["share"]
        for factor in ("creative", "placement", "timing", "residual"):
            metadata[f"share_{factor}"] = _number(by_factor.get(factor))
        metadata["chart"] = png_markdown(png, "what drives performance")
        metadata["chart_path"] = _save_chart(settings, "performance_drivers", png)
    context.add_output_metadata(metadata)
    return shares


def backtest_cacs(warehouse: Warehouse) -> tuple[float | None, float | None, str]:
    """The model's and the baseline's CAC from the latest row of the model-accuracy backtest,
    or Nones and why not."""
    if ACCURACY_TABLE not in warehouse.table_names():
        return None, None, f"no {ACCURACY_TABLE} table: the backtest has not run"
    accuracy = warehouse.read(ACCURACY_TABLE)
    missing = [column for column in ACCURACY_COLUMNS if column not in accuracy.columns]
    if accuracy.empty or missing:
        return None, None, f"{ACCURACY_TABLE} holds no {', '.join(missing) or 'rows'}"
    latest = accuracy.iloc[-1]
    return float(latest["baseline_cac"]), float(latest["model_cac"]), "latest backtest row"


@dg.asset(**_COMMON)
def cost_and_return(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    insights_source: InsightsSource,
    warehouse: WarehouseResource,
) -> pd.DataFrame:
    """One row: the pipeline's monthly cost (``AELP2_PIPELINE_MONTHLY_COST``) and its share of
    the last 30 days' spend, against the monthly saving of the CAC the model-accuracy backtest
    measured (``model_accuracy``'s latest ``baseline_cac`` and ``model_cac``); "not measurable
    yet" until that backtest has run."""
    _, history = _history(settings, insights_source, warehouse, 30)
    monthly_spend = float(history["spend"].sum()) if len(history) else 0.0
    baseline, model, why = backtest_cacs(warehouse)
    result = reports.cost_and_return(settings.pipeline_monthly_cost, monthly_spend, baseline, model)
    context.log.info(f"{result.status} ({why})")
    frame = pd.DataFrame([result.__dict__])
    png = reports.cost_chart(result)
    context.add_output_metadata(
        {
            "dagster/row_count": 1,
            "status": result.status,
            "backtest": why,
            "monthly_cost": result.monthly_cost,
            "monthly_spend": monthly_spend,
            "monthly_saving": _number(result.monthly_saving),
            "return_on_cost": _number(result.return_on_cost),
            "preview": markdown_preview(frame),
            "chart": png_markdown(png, "cost and return"),
            "chart_path": _save_chart(settings, "cost_and_return", png),
        }
    )
    return frame


REPORT_ASSETS = [creative_rankings, launch_trajectories, performance_drivers, cost_and_return]
