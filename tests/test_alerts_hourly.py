"""Today's hourly insights (what the intraday alerts read) and the monitoring figures."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from aelp2_assets.assets.monitoring import (
    DIURNAL_PROFILE,
    FIGURES_TABLE,
    HOURLY_BREAKDOWN,
    HOURLY_TABLE,
    hourly_frame,
    meta_hourly_request,
    monitoring_figures_frame,
    spread_over_hours,
)
from aelp2_assets.definitions import build_definitions
from aelp2_assets.resources.warehouse import DuckDBWarehouse

PURCHASE = "offsite_conversion.fb_pixel_purchase"
DAY = dt.date(2026, 3, 2)


def test_metas_hourly_rows_are_typed_with_one_action_type():
    rows = [
        {
            HOURLY_BREAKDOWN: "13:00:00 - 13:59:59",
            "ad_id": "1",
            "spend": "12.50",
            "impressions": "1000",
            "clicks": "9",
            "actions": [
                {"action_type": PURCHASE, "value": "2"},
                {"action_type": "purchase", "value": "2"},  # an alias: never added
            ],
        }
    ]
    frame = hourly_frame(rows, DAY, PURCHASE)
    assert frame[["hour", "spend", "clicks", "conversions"]].iloc[0].tolist() == [13, 12.5, 9, 2]
    assert frame["conversion_value"].iloc[0] == 0


def test_the_hourly_request_asks_meta_for_the_advertiser_time_zone_hours():
    path, params = meta_hourly_request("act_1", DAY)
    assert path == ("act_1", "insights")
    assert params["breakdowns"] == ["hourly_stats_aggregated_by_advertiser_time_zone"]
    assert params["time_range"] == {"since": "2026-03-02", "until": "2026-03-02"}
    assert params["level"] == "ad"


def test_a_daily_row_spread_over_the_whole_day_keeps_its_totals():
    row = {"ad_id": "1", "spend": "2400", "impressions": "240000", "clicks": "2400"}
    frame = spread_over_hours([row], DAY, 23, PURCHASE)
    assert len(frame) == 24
    assert frame["spend"].sum() == pytest.approx(2400)
    assert abs(frame["clicks"].sum() - 2400) <= 12
    assert DIURNAL_PROFILE.sum() == pytest.approx(1)
    assert len(spread_over_hours([row], DAY, 5, PURCHASE)) == 6


def test_monitoring_figures_compare_cumulative_spend_with_the_caps_pace():
    hourly = pd.DataFrame(
        {
            "date": pd.Timestamp(DAY),
            "hour": [0, 1],
            "ad_id": "1",
            "spend": [1_500.0, 1_500.0],
            "impressions": [1_000, 0],
            "clicks": [10, 0],
            "conversions": [1.0, 0.0],
            "conversion_value": [0.0, 0.0],
        }
    )
    figures = monitoring_figures_frame(hourly, 24_000.0)
    assert figures["cumulative_spend"].tolist() == [1_500.0, 3_000.0]
    assert figures["spend_velocity"].tolist() == [1.5, 1.5]
    assert figures["ctr"].iloc[0] == 0.01 and pd.isna(figures["ctr"].iloc[1])


def test_the_monitoring_job_runs_on_the_demo_source_without_credentials(local_settings):
    defs = build_definitions(local_settings)
    job = defs.resolve_job_def("monitoring_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success
    warehouse = DuckDBWarehouse(database=local_settings.duckdb_path, dataset=local_settings.dataset)
    hourly = warehouse.read(HOURLY_TABLE)
    today = local_settings.account_today()
    assert not hourly.empty and set(hourly["date"].dt.date) == {today}
    assert hourly["spend"].sum() > 0
    assert not warehouse.read(FIGURES_TABLE).empty
    names = {s.name for s in defs.schedules}
    assert "monitoring_schedule" in names
    assert "monitoring_job" not in {"main_job"}
