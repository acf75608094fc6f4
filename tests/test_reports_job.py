"""The reports in real Dagster runs: registered in their own job, on the embedded default."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from aelp2_assets.cli import run_main_job
from aelp2_assets.definitions import MAIN_JOB, REPORTS_JOB, build_definitions
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse

REPORTS = ("creative_rankings", "launch_trajectories", "performance_drivers", "cost_and_return")


@pytest.fixture
def settings(tmp_path) -> Aelp2Settings:
    return Aelp2Settings.from_env(
        {
            "AELP2_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "AELP2_PARTITION_START_DATE": "2026-01-01",
            "AELP2_REPORTS_DIR": str(tmp_path / "reports"),
        }
    )


def _warehouse(settings: Aelp2Settings) -> DuckDBWarehouse:
    return DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset)


def _validated(today: dt.date) -> pd.DataFrame:
    """40 days of two campaigns launched 30 days ago: 'good' returns 1.5x its spend from day
    0, 'poor' half its spend for ever; and 'old', delivering from the first day."""
    rows = []
    for back in range(40):
        day = pd.Timestamp(today - dt.timedelta(days=back))
        for campaign, value, launched in (
            ("good", 150.0, 30),
            ("poor", 50.0, 30),
            ("old", 90.0, 40),
        ):
            if back >= launched:
                continue
            for platform, spend in (("facebook", 60.0), ("instagram", 40.0)):
                rows.append(
                    {
                        "date": day,
                        "account_id": "1",
                        "account_currency": "USD",
                        "campaign_id": campaign,
                        "adset_id": f"{campaign}-set",
                        "ad_id": f"{campaign}-ad",
                        "ad_name": f"{campaign} creative",
                        "publisher_platform": platform,
                        "platform_position": "feed",
                        "impression_device": "mobile_app",
                        "channel": "Feed",
                        "spend": spend,
                        "impressions": 10_000,
                        "clicks": 100,
                        "conversions": 1 if campaign != "poor" else back % 2,
                        "conversion_value": value * spend / 100,
                    }
                )
    return pd.DataFrame(rows)


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def test_the_reports_run_in_their_own_job_never_in_the_push_path(settings):
    defs = build_definitions(settings)
    assert set(REPORTS) <= {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    main = {
        key.to_user_string()
        for key in defs.resolve_job_def(MAIN_JOB).asset_layer.executable_asset_keys
    }
    assert not main & set(REPORTS)
    schedule = defs.resolve_schedule_def("reports_schedule")
    assert schedule.job_name == REPORTS_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    graph = defs.resolve_asset_graph()
    for name in REPORTS:  # nothing downstream of a report
        assert not graph.get(dg.AssetKey(name)).child_keys


def test_the_reports_job_reads_what_trips_each_report(settings):
    _warehouse(settings).append("validated_meta_metrics", _validated(settings.account_today()))
    job = build_definitions(settings).resolve_job_def(REPORTS_JOB)
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success
    metadata = _metadata(result)
    assert set(metadata) == set(REPORTS)
    for name, values in metadata.items():
        assert values["chart"].value.startswith("![") and "base64," in values["chart"].value, name
        assert settings.reports_dir and values["chart_path"].value.endswith(".png"), name

    launches = metadata["launch_trajectories"]
    assert launches["launches"].value == 2 and launches["launched_before_window"].value == 1
    assert launches["share_positive_roas_within_14d"].value == 0.5  # good yes, poor never
    assert launches["median_breakeven"].value == "not reached by half the launches"

    rankings = result.output_for_node("creative_rankings")
    assert rankings["ad_id"].tolist()[0] == "good-ad"

    drivers = metadata["performance_drivers"]
    assert "Sequential (type I) sums of squares" in drivers["method"].value
    assert drivers["audience"].value.startswith("audience: not measurable")

    cost = metadata["cost_and_return"]
    assert cost["status"].value.startswith("not measurable yet")
    assert cost["monthly_saving"].value is None


def test_cost_and_return_reads_the_backtest_once_it_exists(settings):
    warehouse = _warehouse(settings)
    warehouse.append("validated_meta_metrics", _validated(settings.account_today()))
    warehouse.append(
        "model_accuracy", pd.DataFrame({"baseline_cac": [150.0], "model_cac": [120.0]})
    )
    job = build_definitions(settings).resolve_job_def(REPORTS_JOB)
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("cost_and_return")]
        )
    cost = _metadata(result)["cost_and_return"]
    assert cost["status"].value == "the saving covers the pipeline's cost"
    assert cost["monthly_saving"].value > 0


def test_the_reports_run_after_the_demo_without_credentials(settings):
    today = settings.account_today()
    with dg.instance_for_test() as instance:
        assert run_main_job(settings, today - dt.timedelta(days=20), today, instance).success
        job = build_definitions(settings).resolve_job_def(REPORTS_JOB)
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"launch_trajectories": {"config": {"unit": "adset_id"}}}},
        )
    assert result.success
    metadata = _metadata(result)
    assert metadata["creative_rankings"]["dagster/row_count"].value >= 8
    assert metadata["performance_drivers"]["share_creative"].value is not None
