"""AELP2_CAC_CEILING: off by default; when every live ad set is too dear, the budget is held
back (reported, not forced onto the least bad ad set), through real Dagster runs on DuckDB."""

import datetime as dt

import dagster as dg
import pytest

from aelp2_assets.cli import run_main_job
from aelp2_assets.definitions import build_definitions
from aelp2_assets.guardrails import Account, PlannedBudget, apply_guardrails
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse


def test_the_ceiling_is_off_by_default_and_read_from_its_variable():
    assert Aelp2Settings.from_env({}).cac_ceiling == 0.0
    assert Aelp2Settings.from_env({"AELP2_CAC_CEILING": "175.5"}).cac_ceiling == 175.5


@pytest.mark.parametrize("value", ["-1", "inf", "cheap"])
def test_a_bad_ceiling_names_variable_and_value(value):
    with pytest.raises(ValueError) as error:
        Aelp2Settings.from_env({"AELP2_CAC_CEILING": value})
    assert "AELP2_CAC_CEILING" in str(error.value)
    assert repr(value) in str(error.value)


def test_the_guardrails_pass_a_plan_below_the_cap_unchanged():
    plan = [
        PlannedBudget("1", before=120_000, requested=100_000),
        PlannedBudget("2", before=100, requested=100),
    ]
    guarded = apply_guardrails(plan, Account(cap_minor=3_000_000, min_budget_minor=100))
    assert not guarded.refused
    assert [b.after for b in guarded.budgets] == [100_000, 100]
    assert guarded.total_after == 100_100  # far below the cap: nothing tops it up


@pytest.fixture(scope="module")
def ceiling_runs(tmp_path_factory):
    """The demo account's main job with a ceiling far below its CAC (about $150-300), then
    the allocation and the push again with a ceiling above it, in the same warehouse."""
    folder = tmp_path_factory.mktemp("ceiling")
    environment = {
        "AELP2_DUCKDB_PATH": str(folder / "warehouse.duckdb"),
        "AELP2_PARTITION_START_DATE": "2026-01-01",
    }
    low = Aelp2Settings.from_env({**environment, "AELP2_CAC_CEILING": "5"})
    high = Aelp2Settings.from_env({**environment, "AELP2_CAC_CEILING": "100000"})
    warehouse = DuckDBWarehouse(database=low.duckdb_path, dataset=low.dataset)
    today = low.account_today()
    with dg.instance_for_test() as instance:
        held = run_main_job(low, today - dt.timedelta(days=13), today, instance)
        held_allocation = warehouse.read("budget_allocations")
        held_audit = warehouse.read("pushed_budgets")
        job = build_definitions(high).resolve_job_def("main_job")
        selection = [dg.AssetKey("budget_allocations"), dg.AssetKey("pushed_budgets")]
        spent = job.execute_in_process(instance=instance, asset_selection=selection)
        spent_allocation = warehouse.read("budget_allocations")
    yield low, (held, held_allocation, held_audit), (spent, spent_allocation)


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key.to_user_string() == asset
    )


def test_a_ceiling_below_every_ad_set_holds_the_budget_back(ceiling_runs):
    settings, (result, allocation, audit), _ = ceiling_runs
    assert result.success
    cap = settings.daily_budget_cap_minor
    funded = allocation[allocation["budget_minor"] > 0]
    minimum = 100  # the demo account's minimum daily budget, $1

    assert len(funded) >= 8
    assert (funded["budget_minor"] == minimum).all()
    assert funded["reason"].str.startswith("held back to the account minimum").all()
    held_back = int(allocation["held_back_minor"].sum())
    assert held_back == cap - minimum * len(funded)
    metadata = _metadata(result, "budget_allocations")
    assert metadata["held_back_by_cac_ceiling"].value == pytest.approx(held_back / 100)
    assert metadata["unallocated"].value == pytest.approx(held_back / 100)
    # The dry-run push accepts the smaller total: each ad set steps down by the daily limit
    # at most, and nothing is scaled up to fill the cap.
    assert set(audit["status"]) == {"dry_run"}
    assert (audit["requested_minor"] <= audit["before_minor"]).all()
    assert audit["requested_minor"].sum() < cap


def test_a_ceiling_above_an_ad_set_spends_the_whole_cap(ceiling_runs):
    settings, _, (result, allocation) = ceiling_runs
    assert result.success
    assert allocation["budget_minor"].sum() == settings.daily_budget_cap_minor
    assert (allocation["held_back_minor"] == 0).all()
    assert _metadata(result, "budget_allocations")["held_back_by_cac_ceiling"].value == 0
