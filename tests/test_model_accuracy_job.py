"""The model-accuracy backtest in real Dagster runs: its own job, on the demo, no credentials."""

import datetime as dt

import dagster as dg
import pytest

from aelp2_assets.cli import run_main_job
from aelp2_assets.definitions import ACCURACY_JOB, MAIN_JOB, REPORTS_JOB, build_definitions
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse


@pytest.fixture
def settings(tmp_path) -> Aelp2Settings:
    return Aelp2Settings.from_env(
        {
            "AELP2_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "AELP2_PARTITION_START_DATE": "2026-01-01",
            "AELP2_REPORTS_DIR": str(tmp_path / "reports"),
        }
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }


def test_the_backtest_is_off_the_push_path(settings):
    defs = build_definitions(settings)
    main = defs.resolve_job_def(MAIN_JOB).asset_layer.executable_asset_keys
    assert dg.AssetKey("model_accuracy") not in main
    accuracy = defs.resolve_job_def(ACCURACY_JOB).asset_layer.executable_asset_keys
    assert accuracy == {dg.AssetKey("model_accuracy")}
    assert defs.resolve_schedule_def("model_accuracy_schedule").job_name == ACCURACY_JOB


def test_the_backtest_runs_on_the_demo_and_cost_and_return_reads_it(settings):
    today = settings.account_today()
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        assert run_main_job(settings, today - dt.timedelta(days=30), today, instance).success
        result = defs.resolve_job_def(ACCURACY_JOB).execute_in_process(instance=instance)
        assert result.success
        reports = defs.resolve_job_def(REPORTS_JOB).execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("cost_and_return")]
        )
    accuracy = _metadata(result)["model_accuracy"]
    assert accuracy["decision_days"].value == 14
    assert "no counterfactual delivery" in accuracy["caveat"].value
    for name in ("precision_at_5", "recall_at_5", "model_cac", "baseline_cac"):
        assert accuracy[name].value is not None, name
    stored = DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset).read(
        "model_accuracy"
    )
    assert len(stored) == 1 and {"baseline_cac", "model_cac"} <= set(stored.columns)
    cost = _metadata(reports)["cost_and_return"]
    assert cost["backtest"].value == "latest backtest row"
    assert cost["monthly_saving"].value is not None
