"""Pausing runaway campaigns: the real facebook-business SDK against the fake Graph API.

Meta is faked (``BudgetGraph`` of ``test_push_meta.py``: campaign GET reads a status, POST
sets it). The entities come from a real run of ``meta_ad_entities`` against the fake; today's
hourly spend is written into the warehouse as the monitoring job would. The sensor is
evaluated as the daemon would (``build_sensor_context``), and the run it requests is executed
with the tags the daemon adds. Every test asserts the exact campaign requests sent, and that
nothing was sent where nothing may be.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from test_meta_fake_graph import TOKEN, install_fake_clock, meta_settings
from test_push_meta import BudgetGraph

from aelp2_assets.definitions import build_definitions
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse
from aelp2_assets.sensors.alerts import HOURLY_TABLE, PAUSE_TAG, data_alerts_sensor
from aelp2_assets.sensors.notify import AlertNotifier

HOURS = 6  # hours 0-5 of today have data: each campaign's pace is 6/24 of its budget
ADSET_BUDGET = 20.0  # the fake's ad set daily budget, 2000 minor units


@pytest.fixture
def graph(httpserver, shared_data, monkeypatch) -> BudgetGraph:
    folder = shared_data / "meta_insights_api_examples"
    if not folder.is_dir():
        pytest.skip(f"Meta's response shapes not found: {folder}")
    install_fake_clock(monkeypatch)
    monkeypatch.setenv("META_ACCESS_TOKEN", TOKEN)
    return BudgetGraph(httpserver, folder)


def _settings(graph: BudgetGraph, tmp_path: Path, **environ: str) -> Aelp2Settings:
    base = {
        "AELP2_PUSH_MODE": "live",
        "AELP2_PUSH_CAMPAIGNS": ",".join(graph.campaigns),
        "AELP2_PAUSE_RUNAWAY_CAMPAIGNS": "true",
        # 6 hours of a 60 cap: a pace of 15; the spend below (32.50) is 217% of it
        "DAILY_BUDGET_CAP": "60",
    }
    return meta_settings(graph, tmp_path, **{**base, **environ})


def _runaway(graph: BudgetGraph) -> str:
    return graph.campaigns[1]


def _spend_today(graph: BudgetGraph, settings: Aelp2Settings) -> None:
    """Today's hourly rows: campaign 1 at 300% of its own pace (a runaway), campaign 2 at
    110% (within the rule's 120%), campaigns 3-5 at 80%; the CBO campaign 0 did not spend."""
    pace = ADSET_BUDGET * HOURS / 24
    velocity = {graph.campaigns[1]: 3.0, graph.campaigns[2]: 1.1}
    adsets = {campaign: adset for adset, campaign in graph.adset_campaign.items()}
    rows = [
        {
            "date": pd.Timestamp(settings.account_today()),
            "hour": hour,
            "campaign_id": campaign,
            "adset_id": adsets[campaign],
            "ad_id": f"ad-{campaign}",
            "spend": velocity.get(campaign, 0.8) * pace / HOURS,
            "impressions": 10_000,
            "clicks": 100,
            "conversions": 2.0,
            "conversion_value": 0.0,
        }
        for campaign in graph.campaigns[1:6]
        for hour in range(HOURS)
    ]
    _warehouse(settings).replace(
        HOURLY_TABLE, pd.DataFrame(rows), "date", [pd.Timestamp(settings.account_today())]
    )


def _warehouse(settings: Aelp2Settings) -> DuckDBWarehouse:
    return DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset)


def _pause_rows(settings: Aelp2Settings) -> pd.DataFrame:
    audit = _warehouse(settings).read("pushed_budgets")
    return audit[audit["action"] == "pause"] if not audit.empty else audit


def _entities(settings: Aelp2Settings, instance: dg.DagsterInstance) -> None:
    """``meta_ad_entities`` materialized from the fake Graph API, as the main job does."""
    job = (
        build_definitions(settings)
        .resolve_implicit_global_asset_job_def()
        .get_subset(asset_selection={dg.AssetKey("meta_ad_entities")})
    )
    assert job.execute_in_process(instance=instance).success


def _tick(settings: Aelp2Settings, instance: dg.DagsterInstance):
    """One evaluation of the data alerts sensor, as the daemon runs it."""
    context = dg.build_sensor_context(
        instance=instance,
        resources={
            "settings": settings,
            "warehouse": _warehouse(settings),
            "alert_notifier": AlertNotifier(),
        },
    )
    return data_alerts_sensor(context)


def _launch(
    settings: Aelp2Settings, instance: dg.DagsterInstance, tags: dict[str, str]
) -> dg.ExecuteInProcessResult:
    job = (
        build_definitions(settings)
        .resolve_implicit_global_asset_job_def()
        .get_subset(asset_selection={dg.AssetKey("campaign_pauses")})
    )
    return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)


def _launched_by_the_sensor(
    settings: Aelp2Settings, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """The sensor's run request, executed with the tags the daemon adds to it."""
    result = _tick(settings, instance)
    [request] = result.run_requests
    assert request.run_key == f"campaign_pauses:spend_velocity:account:{settings.account_today()}"
    assert request.asset_selection is None  # the sensor's own selection: campaign_pauses
    return _launch(
        settings, instance, {**request.tags, "dagster/sensor_name": "data_alerts_sensor"}
    )


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure
    )


def test_live_pauses_the_runaway_campaign_only_reads_it_back_and_never_twice_a_day(graph, tmp_path):
    settings = _settings(graph, tmp_path)
    runaway = _runaway(graph)
    with dg.instance_for_test() as instance:
        _entities(settings, instance)
        _spend_today(graph, settings)
        first = _launched_by_the_sensor(settings, instance)
        assert first.success, _failure(first)
        assert graph.pauses() == [(runaway, {"status": "PAUSED"})]
        assert graph.campaign_status[runaway] == "PAUSED"
        logs = [e.user_message for e in instance.all_logs(first.run_id)]
        [announcement] = [m for m in logs if "live pause:" in m]
        assert f"1 runaway campaigns paused ({runaway})" in announcement

        # the condition still holds: the next tick asks again under the same run key (the
        # daemon launches nothing for it), and a run anyway sends nothing
        again = _tick(settings, instance)
        assert [r.run_key for r in again.run_requests] == [
            f"campaign_pauses:spend_velocity:account:{settings.account_today()}"
        ]
        second = _launch(settings, instance, {"dagster/sensor_name": "data_alerts_sensor"})
    assert second.success, _failure(second)
    assert len(graph.pauses()) == 1
    rows = _pause_rows(settings)
    assert list(rows["campaign_id"]) == [runaway, runaway]
    assert list(rows["status"]) == ["applied", "already_paused_today"]
    applied = rows.iloc[0]
    assert applied["campaign_status_before"] == "ACTIVE"
    assert applied["campaign_status_read_back"] == "PAUSED"
    assert "300% of its own pace 5.00" in applied["reason"]
    assert pd.isna(applied["adset_id"]) and pd.isna(applied["before_minor"])
    # no ad set budget was touched
    assert graph.posts() == []


@pytest.mark.parametrize(
    ("environ", "status"),
    [
        ({"AELP2_PUSH_MODE": "dry_run"}, "dry_run"),
        ({"AELP2_PUSH_KILL_SWITCH": "true"}, "killed"),
    ],
)
def test_nothing_is_sent_in_dry_run_or_under_the_kill_switch(graph, tmp_path, environ, status):
    settings = _settings(graph, tmp_path, **environ)
    with dg.instance_for_test() as instance:
        _entities(settings, instance)
        _spend_today(graph, settings)
        result = _launched_by_the_sensor(settings, instance)
    assert result.success, _failure(result)
    assert graph.budget_requests() == []
    rows = _pause_rows(settings)
    assert list(rows["campaign_id"]) == [_runaway(graph)]
    assert list(rows["status"]) == [status]


def test_nothing_is_sent_outside_the_allow_list(graph, tmp_path):
    settings = _settings(graph, tmp_path, AELP2_PUSH_CAMPAIGNS=graph.campaigns[3])
    with dg.instance_for_test() as instance:
        _entities(settings, instance)
        _spend_today(graph, settings)
        result = _launched_by_the_sensor(settings, instance)
    assert result.success, _failure(result)
    assert graph.budget_requests() == []
    assert list(_pause_rows(settings)["status"]) == ["out_of_scope"]


def test_an_ad_set_allow_list_keeps_a_campaign_with_other_ad_sets(graph, tmp_path):
    other = next(a for a, c in graph.adset_campaign.items() if c != _runaway(graph))
    settings = _settings(graph, tmp_path, AELP2_PUSH_ADSETS=other)
    with dg.instance_for_test() as instance:
        _entities(settings, instance)
        _spend_today(graph, settings)
        result = _launched_by_the_sensor(settings, instance)
    assert result.success, _failure(result)
    assert graph.pauses() == []
    [row] = _pause_rows(settings).itertuples()
    assert row.status == "out_of_scope" and "AELP2_PUSH_ADSETS" in row.reason


def test_off_by_default_the_sensor_asks_nothing_and_a_run_by_hand_sends_nothing(graph, tmp_path):
    settings = meta_settings(
        graph,
        tmp_path,
        AELP2_PUSH_MODE="live",
        AELP2_PUSH_CAMPAIGNS=",".join(graph.campaigns),
        DAILY_BUDGET_CAP="60",
    )
    assert settings.pause_runaway_campaigns is False
    with dg.instance_for_test() as instance:
        _entities(settings, instance)
        _spend_today(graph, settings)
        tick = _tick(settings, instance)
        by_hand = _launch(settings, instance, {})
    assert isinstance(tick, dg.SkipReason) and "1 alerts fired" in str(tick.skip_message)
    assert by_hand.success, _failure(by_hand)
    assert graph.budget_requests() == []
    assert _pause_rows(settings).empty


def test_approve_records_the_sensors_run_and_a_run_by_hand_pauses(graph, tmp_path):
    settings = _settings(graph, tmp_path, AELP2_PUSH_MODE="approve")
    with dg.instance_for_test() as instance:
        _entities(settings, instance)
        _spend_today(graph, settings)
        launched = _launched_by_the_sensor(settings, instance)
        assert launched.success, _failure(launched)
        assert graph.budget_requests() == []
        # the engineer reviewed it and materializes campaign_pauses by hand
        by_hand = _launch(settings, instance, {})
    assert by_hand.success, _failure(by_hand)
    assert graph.pauses() == [(_runaway(graph), {"status": "PAUSED"})]
    assert list(_pause_rows(settings)["status"]) == ["awaiting_approval", "applied"]


def test_a_pause_meta_does_not_apply_is_a_read_back_mismatch(graph, tmp_path):
    graph.ignore_pauses = True
    settings = _settings(graph, tmp_path)
    with dg.instance_for_test() as instance:
        _entities(settings, instance)
        _spend_today(graph, settings)
        result = _launched_by_the_sensor(settings, instance)
    # recorded, then the run fails: the failed-run alert tells engineering the runaway goes on
    assert not result.success
    assert f"runaway campaigns not paused: {_runaway(graph)}" in _failure(result)
    assert len(graph.pauses()) == 1
    [row] = _pause_rows(settings).itertuples()
    assert row.status == "read_back_mismatch"
    assert row.campaign_status_read_back == "ACTIVE"


def test_spend_back_under_the_threshold_pauses_nothing(graph, tmp_path):
    # the same spend against a cap of 200: a pace of 50, 65%
    settings = _settings(graph, tmp_path, DAILY_BUDGET_CAP="200")
    with dg.instance_for_test() as instance:
        _entities(settings, instance)
        _spend_today(graph, settings)
        tick = _tick(settings, instance)
        by_hand = _launch(settings, instance, {PAUSE_TAG: "by hand"})
    assert isinstance(tick, dg.SkipReason)
    assert by_hand.success, _failure(by_hand)
    assert graph.budget_requests() == []
    assert _pause_rows(settings).empty


def test_the_pause_setting_is_validated_naming_the_variable():
    with pytest.raises(ValueError, match="AELP2_PAUSE_RUNAWAY_CAMPAIGNS='maybe'"):
        Aelp2Settings.from_env({"AELP2_PAUSE_RUNAWAY_CAMPAIGNS": "maybe"})
    assert Aelp2Settings.from_env({}).pause_runaway_campaigns is False
    assert Aelp2Settings.from_env({"AELP2_PAUSE_RUNAWAY_CAMPAIGNS": "true"}).pause_runaway_campaigns


def test_the_sensor_targets_the_pause_and_shares_the_push_pool(graph, tmp_path):
    defs = build_definitions(_settings(graph, tmp_path))
    sensor = defs.resolve_sensor_def("data_alerts_sensor")
    assert sensor.asset_selection.resolve(defs.resolve_asset_graph()) == {
        dg.AssetKey("campaign_pauses")
    }
    graph_assets = defs.resolve_asset_graph()
    pools = {
        key.to_user_string(): graph_assets.get(key).pools
        for key in (dg.AssetKey("campaign_pauses"), dg.AssetKey("pushed_budgets"))
    }
    assert pools == {
        "campaign_pauses": {"meta_budget_push"},
        "pushed_budgets": {"meta_budget_push"},
    }


def test_budget_rows_written_before_the_pause_columns_still_hold_the_days_changes(tmp_path):
    from aelp2_assets.assets.act import _applied_today

    settings = Aelp2Settings.from_env({"AELP2_DUCKDB_PATH": str(tmp_path / "w.duckdb")})
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    old_schema = pd.DataFrame(
        {"recorded_at": [now, now], "adset_id": ["1", "2"], "status": ["applied", "dry_run"]}
    )
    assert _applied_today(old_schema, settings, "budget") == {"1"}
    assert _applied_today(old_schema, settings, "pause") == set()
