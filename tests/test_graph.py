"""The whole graph in real Dagster runs on a real DuckDB file: the embedded demo default."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from aelp2_assets.cli import run_main_job
from aelp2_assets.definitions import build_definitions
from aelp2_assets.resources.warehouse import DuckDBWarehouse
from aelp2_assets.tables import RAW_KEY

ASSETS = (
    "raw_meta_metrics",
    "meta_ad_entities",
    "validated_meta_metrics",
    "creative_posteriors",
    "cac_forecasts",
    "budget_allocations",
    "pushed_budgets",
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One run of the main job over the last 21 days of the demo account."""
    from aelp2_assets.resources.settings import Aelp2Settings

    folder = tmp_path_factory.mktemp("demo")
    settings = Aelp2Settings.from_env(
        {
            "AELP2_DUCKDB_PATH": str(folder / "warehouse.duckdb"),
            "AELP2_PARTITION_START_DATE": "2026-01-01",
        }
    )
    today = settings.account_today()
    start = today - dt.timedelta(days=20)
    with dg.instance_for_test() as instance:
        result = run_main_job(settings, start, today, instance)
        yield settings, result, start, today


def _warehouse(settings) -> DuckDBWarehouse:
    return DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset)


def test_the_run_materializes_every_asset_and_passes_every_check(demo_run):
    _, result, start, today = demo_run
    assert result.success
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert materialized == set(ASSETS)
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 8  # six on validated_meta_metrics, two on creative_posteriors
    assert all(check.passed for check in checks), [c.description for c in checks if not c.passed]
    partitions = {
        m.partition
        for m in result.get_asset_materialization_events()
        if m.asset_key.to_user_string() == "raw_meta_metrics"
    }
    assert len(partitions) == 21
    assert max(partitions) == today.isoformat()


def test_every_materialization_carries_count_preview_and_numbers(demo_run):
    _, result, _, _ = demo_run
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        name = event.asset_key.to_user_string()
        assert "dagster/row_count" in metadata, name
        assert "preview" in metadata, name
        assert isinstance(metadata["preview"], dg.MarkdownMetadataValue), name
    forecast = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "cac_forecasts"
    )
    assert forecast["fan_chart"].value.startswith("![forecast fan chart](data:image/png;base64,")
    assert forecast["cac_day30_p10"].value <= forecast["cac_day30_p50"].value
    assert forecast["cac_day30_p50"].value <= forecast["cac_day30_p90"].value
    assert forecast["draws"].value >= 1000
    assert forecast["calibrated"].value is True  # 21 days of demo history are enough


def test_allocation_invariants_hold(demo_run):
    settings, _, _, today = demo_run
    allocation = _warehouse(settings).read("budget_allocations")
    entities = _warehouse(settings).read("meta_ad_entities")
    cap = settings.daily_budget_cap_minor
    funded = allocation[allocation["budget_minor"] > 0]

    assert allocation["budget_minor"].dtype.kind == "i"
    assert allocation["budget_minor"].sum() <= cap
    # 8-12 live demo arms under a 30% ceiling leave nothing over: the whole cap is allocated
    assert allocation["budget_minor"].sum() == cap
    assert (funded["budget_minor"] >= entities["min_daily_budget"].max()).all()
    assert (funded["share"] <= 0.30 + 1 / cap).all()
    assert allocation["reason"].str.len().gt(0).all()
    assert 8 <= len(funded) <= 12
    assert set(pd.to_datetime(allocation["decision_date"]).dt.date) == {today}
    launching = funded[funded["stage"].isin(["launch", "ramp"])]
    assert (launching["share"] <= 0.15 + 1 / cap).all()


def test_every_funded_change_is_in_the_dry_run_audit(demo_run):
    settings, result, _, _ = demo_run
    allocation = _warehouse(settings).read("budget_allocations")
    audit = _warehouse(settings).read("pushed_budgets")
    changed = allocation[
        (allocation["budget_minor"] > 0)
        & allocation["previous_budget_minor"].ne(allocation["budget_minor"]).fillna(True)
    ]
    assert sorted(audit["adset_id"]) == sorted(changed["arm_id"])
    assert set(audit["status"]) == {"dry_run"}
    assert set(audit["run_id"]) == {result.run_id}
    assert audit["read_back_minor"].isna().all()


def test_rerunning_partitions_never_duplicates_a_row(demo_run, tmp_path):
    settings, _, start, today = demo_run
    warehouse = _warehouse(settings)
    raw_before = warehouse.read("raw_meta_metrics")
    valid_before = warehouse.read("validated_meta_metrics")
    with dg.instance_for_test() as instance:
        again = run_main_job(settings, today - dt.timedelta(days=3), today, instance)
    assert again.success
    raw_after = warehouse.read("raw_meta_metrics")
    valid_after = warehouse.read("validated_meta_metrics")
    assert len(raw_after) == len(raw_before)
    assert not raw_after.duplicated(list(RAW_KEY)).any()
    assert len(valid_after) == len(valid_before)
    # the audit only grows: two runs, two sets of rows
    assert warehouse.read("pushed_budgets")["run_id"].nunique() == 2


def test_the_same_inputs_give_the_same_allocation(demo_run):
    settings, _, _, today = demo_run
    first = _warehouse(settings).read("budget_allocations")
    with dg.instance_for_test() as instance:
        job = build_definitions(settings).resolve_job_def("main_job")
        job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("budget_allocations")]
        )
    second = _warehouse(settings).read("budget_allocations")
    pd.testing.assert_frame_equal(
        first.sort_values("arm_id").reset_index(drop=True),
        second.sort_values("arm_id").reset_index(drop=True),
    )
