"""Monitoring: today's hourly insights (what the intraday alerts read) and the hourly figures
Grafana charts. Outside ``main_job``: ``monitoring_job`` runs them every hour."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
import pandas as pd

from aelp2_assets.assets.metadata import markdown_preview
from aelp2_assets.resources.meta_api import AD_STATES, MetaApiSource
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import InsightsSource
from aelp2_assets.resources.warehouse import WarehouseResource

HOURLY_TABLE = "meta_hourly_insights"
FIGURES_TABLE = "monitoring_figures"
HOURLY_BREAKDOWN = "hourly_stats_aggregated_by_advertiser_time_zone"
HOURLY_FIELDS = (
    "campaign_id",
    "adset_id",
    "ad_id",
    "spend",
    "impressions",
    "clicks",
    "actions",
    "action_values",
    "date_start",
)
HOURLY_COLUMNS = (
    "date",
    "hour",
    "campaign_id",
    "adset_id",
    "ad_id",
    "spend",
    "impressions",
    "clicks",
    "conversions",
    "conversion_value",
)
# The share of a day's delivery in each account-local hour, for sources without hourly rows
# (demo and file): low at night, peaking in the evening. Only the shape matters; it sums to 1.
_PROFILE = np.array(
    [2, 1.5, 1, 1, 1, 1.5, 2.5, 3.5, 4, 4.5, 5, 5, 5, 5, 5, 5, 5.5, 6, 6.5, 7, 7, 6, 4.5, 3]
)
DIURNAL_PROFILE = _PROFILE / _PROFILE.sum()


def _action(cell: object, action_type: str) -> float:
    entries = json.loads(cell) if isinstance(cell, str) else cell
    if not isinstance(entries, list):
        return 0.0
    return sum(
        float(entry.get("value", 0) or 0)
        for entry in entries
        if isinstance(entry, dict) and entry.get("action_type") == action_type
    )


def hourly_frame(rows: list[dict], day: dt.date, action_type: str) -> pd.DataFrame:
    """Meta's hourly rows (``hourly_stats_aggregated_by_advertiser_time_zone`` such as
    '13:00:00 - 13:59:59') as typed rows of ``HOURLY_COLUMNS``; one action type counted."""
    frame = pd.DataFrame(
        {
            "date": pd.Timestamp(day),
            "hour": [int(str(row[HOURLY_BREAKDOWN])[:2]) for row in rows],
            "campaign_id": [row.get("campaign_id") for row in rows],
            "adset_id": [row.get("adset_id") for row in rows],
            "ad_id": [row.get("ad_id") for row in rows],
            "spend": [float(row.get("spend") or 0) for row in rows],
            "impressions": [int(row.get("impressions") or 0) for row in rows],
            "clicks": [int(row.get("clicks") or 0) for row in rows],
            "conversions": [_action(row.get("actions"), action_type) for row in rows],
            "conversion_value": [_action(row.get("action_values"), action_type) for row in rows],
        },
        columns=list(HOURLY_COLUMNS),
    )
    return frame.astype({"hour": "int64", "impressions": "int64", "clicks": "int64"})


def spread_over_hours(
    rows: list[dict], day: dt.date, last_hour: int, action_type: str
) -> pd.DataFrame:
    """Daily rows cut into hours ``0..last_hour`` by ``DIURNAL_PROFILE``: the hourly stand-in
    of sources without hourly data. Each hour is rounded, so the hours of a whole day add up
    to the day's totals only approximately."""
    frames = []
    for hour in range(last_hour + 1):
        share = DIURNAL_PROFILE[hour]
        hourly = [
            {
                **row,
                HOURLY_BREAKDOWN: f"{hour:02d}:00:00 - {hour:02d}:59:59",
                "spend": float(row.get("spend") or 0) * share,
                "impressions": round(float(row.get("impressions") or 0) * share),
                "clicks": round(float(row.get("clicks") or 0) * share),
                "actions": [
                    {**entry, "value": float(entry.get("value", 0) or 0) * share}
                    for entry in (row.get("actions") or [])
                ],
                "action_values": [
                    {**entry, "value": float(entry.get("value", 0) or 0) * share}
                    for entry in (row.get("action_values") or [])
                ],
            }
            for row in rows
        ]
        frames.append(hourly_frame(hourly, day, action_type))
    frame = pd.concat(frames, ignore_index=True) if frames else hourly_frame([], day, action_type)
    keys = ["date", "hour", "campaign_id", "adset_id", "ad_id"]
    return frame.groupby(keys, as_index=False, dropna=False)[list(HOURLY_COLUMNS[5:])].sum()


def meta_hourly_request(ad_account_id: str, day: dt.date) -> tuple[tuple[str, str], dict]:
    """The Graph request of one day's ad-level insights by advertiser-time-zone hour."""
    params = {
        "level": "ad",
        "time_range": {"since": day.isoformat(), "until": day.isoformat()},
        "breakdowns": [HOURLY_BREAKDOWN],
        "action_breakdowns": ["action_type"],
        "filtering": [{"field": "ad.effective_status", "operator": "IN", "value": list(AD_STATES)}],
        "fields": ",".join(HOURLY_FIELDS),
    }
    return (ad_account_id, "insights"), params


def fetch_hourly(
    source: InsightsSource, today: dt.date, now_hour: int, action_type: str
) -> tuple[dt.date, pd.DataFrame]:
    """The day's hourly rows: Meta's own hourly breakdown for today through the Meta source
    (its retries and pacing); the demo and file sources' daily rows spread over the hours so
    far (a file: its last day, whole)."""
    if isinstance(source, MetaApiSource):
        client = source.client()
        path, params = meta_hourly_request(client.config.ad_account_id, today)
        rows = client.pages(f"hourly insights {today}", path, {**params, "limit": 500})
        return today, hourly_frame(rows, today, action_type)
    day = source.decision_date(today)
    last_hour = now_hour if day == today else 23
    rows = source.fetch_insights(day, day)
    return day, spread_over_hours(rows, day, last_hour, action_type)


def monitoring_figures_frame(hourly: pd.DataFrame, daily_cap: float) -> pd.DataFrame:
    """One row per day and hour: spend, cumulative spend against the cap's even pace, the
    velocity (cumulative spend over pace), clicks, conversions, CTR and conversion rate."""
    sums = ["spend", "impressions", "clicks", "conversions", "conversion_value"]
    figures = hourly.groupby(["date", "hour"], as_index=False)[sums].sum()
    figures = figures.sort_values(["date", "hour"], ignore_index=True)
    figures["cumulative_spend"] = figures.groupby("date")["spend"].cumsum()
    figures["cap_pace"] = daily_cap * (figures["hour"] + 1) / 24
    figures["spend_velocity"] = figures["cumulative_spend"] / figures["cap_pace"]
    figures["ctr"] = figures["clicks"] / figures["impressions"].where(figures["impressions"] > 0)
    figures["cvr"] = figures["conversions"] / figures["clicks"].where(figures["clicks"] > 0)
    figures["hour_start"] = figures["date"] + pd.to_timedelta(figures["hour"], unit="h")
    return figures


@dg.asset(group_name="monitoring", kinds={"python", "duckdb"}, owners=["team:ads-ops"])
def meta_hourly_insights(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    insights_source: InsightsSource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """One row per account-local hour x ad of today so far (Meta's
    ``hourly_stats_aggregated_by_advertiser_time_zone`` breakdown): spend, impressions,
    clicks, conversions of the configured action type. Each run replaces the day's rows."""
    now = dt.datetime.now(ZoneInfo(settings.account_timezone))
    day, frame = fetch_hourly(
        insights_source, now.date(), now.hour, settings.conversion_action_type
    )
    warehouse.replace(HOURLY_TABLE, frame, "date", [pd.Timestamp(day)])
    context.log.info(f"replaced {len(frame)} hourly rows of {day}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(frame),
            "day": str(day),
            "hours": int(frame["hour"].nunique()) if not frame.empty else 0,
            "spend_so_far": float(frame["spend"].sum()),
            "preview": markdown_preview(frame),
        }
    )


@dg.asset(
    deps=[meta_hourly_insights],
    group_name="monitoring",
    kinds={"python", "duckdb"},
    owners=["team:ads-ops"],
)
def monitoring_figures(
    context: dg.AssetExecutionContext, settings: Aelp2Settings, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """One row per account-local day x hour (the table Grafana reads): spend and cumulative
    spend against the daily cap's pace, spend velocity, clicks, conversions, CTR and
    conversion rate. Each run replaces the days it recomputes."""
    hourly = warehouse.read(HOURLY_TABLE)
    if hourly.empty:
        context.log.info("no hourly insights yet")
        return dg.MaterializeResult(metadata={"dagster/row_count": 0, "preview": "no rows"})
    figures = monitoring_figures_frame(hourly, settings.daily_budget_cap)
    warehouse.replace(FIGURES_TABLE, figures, "date", list(figures["date"].unique()))
    latest = figures.iloc[-1]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(figures),
            "spend_velocity": float(latest["spend_velocity"]),
            "cumulative_spend": float(latest["cumulative_spend"]),
            "preview": markdown_preview(figures.tail(10)),
        }
    )
