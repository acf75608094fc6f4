"""The whole graph with AELP2_SOURCE=meta into DuckDB, against the fake Graph API.

Meta is faked in every test here: the real facebook-business SDK talks HTTP to the fake of
``test_meta_fake_graph.py`` on 127.0.0.1, serving Meta's real response shapes. Runs go through
``run_main_job`` exactly as a schedule tick makes them.
"""

import datetime as dt
import logging
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from test_meta_fake_graph import (
    ADS,
    TOKEN,
    FakeClock,
    FakeGraph,
    install_fake_clock,
    meta_settings,
    start_fake_graph,
)

from aelp2_assets.cli import run_main_job
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse
from aelp2_assets.tables import RAW_KEY

ASSETS = {
    "raw_meta_metrics",
    "meta_ad_entities",
    "validated_meta_metrics",
    "creative_posteriors",
    "cac_forecasts",
    "budget_allocations",
    "pushed_budgets",
}


@pytest.fixture
def fake_graph(httpserver, shared_data) -> FakeGraph:
    return start_fake_graph(httpserver, shared_data)


@pytest.fixture
def fake_clock(monkeypatch) -> FakeClock:
    return install_fake_clock(monkeypatch)


@pytest.fixture
def token(monkeypatch) -> str:
    """The known token, where resources_for's EnvVar finds it."""
    monkeypatch.setenv("META_ACCESS_TOKEN", TOKEN)
    return TOKEN


def _days(settings: Aelp2Settings, count: int) -> tuple[dt.date, dt.date]:
    today = settings.account_today()
    return today - dt.timedelta(days=count - 1), today


def _run_days(settings: Aelp2Settings, count: int) -> dg.ExecuteInProcessResult:
    """The main job over the last ``count`` days, as a schedule tick runs it."""
    start, today = _days(settings, count)
    with dg.instance_for_test() as instance:
        return run_main_job(settings, start, today, instance)


def _warehouse(settings: Aelp2Settings) -> DuckDBWarehouse:
    return DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the run was expected to fail"
    return "\n".join(e.step_failure_data.error.to_string() for e in failures)


def test_fake_meta_the_whole_graph_runs_into_duckdb(
    fake_graph, fake_clock, token, tmp_path, caplog
):
    settings = meta_settings(fake_graph, tmp_path)
    start, today = _days(settings, 5)

    with dg.instance_for_test() as instance:
        result = run_main_job(settings, start, today, instance)

    assert result.success, _failure(result)
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert materialized == ASSETS
    assert all(check.passed for check in result.get_asset_check_evaluations())

    (report,) = fake_graph.requests("report_create")  # five days: one async report
    assert report.json("time_range") == {"since": start.isoformat(), "until": today.isoformat()}
    raw = _warehouse(settings).read("raw_meta_metrics")
    assert len(raw) == ADS * 3 * 5
    assert not raw.duplicated(list(RAW_KEY)).any()
    assert raw["actions"].isna().any() and raw["actions"].notna().any()
    entities = _warehouse(settings).read("meta_ad_entities")
    adsets = entities[entities["level"] == "adset"]
    assert adsets["daily_budget"].dtype.kind == "i" or str(adsets["daily_budget"].dtype) == "Int64"
    assert set(adsets["daily_budget"]) == {2000}
    allocation = _warehouse(settings).read("budget_allocations")
    assert allocation["budget_minor"].sum() <= settings.daily_budget_cap_minor
    assert fake_clock.sleeps == []


def test_fake_meta_a_restated_day_replaces_its_rows_and_a_vanished_ad_is_kept(
    fake_graph, fake_clock, token, tmp_path
):
    settings = meta_settings(fake_graph, tmp_path)
    start, today = _days(settings, 4)
    warehouse = _warehouse(settings)
    restated_day = (start + dt.timedelta(days=1)).isoformat()
    restated_ad, vanished_ad = fake_graph.ads[0].ad_id, fake_graph.ads[1].ad_id

    with dg.instance_for_test() as instance:
        assert run_main_job(settings, start, today, instance).success
        before = warehouse.read("raw_meta_metrics")
        fake_graph.restate(restated_day, restated_ad, spend="123.45", impressions="9000")
        fake_graph.vanish(vanished_ad)
        again = run_main_job(settings, start, today, instance)

    assert again.success, _failure(again)
    after = warehouse.read("raw_meta_metrics")
    assert len(after) == len(before)
    assert not after.duplicated(list(RAW_KEY)).any()

    restated = after[(after["date_start"] == restated_day) & (after["ad_id"] == restated_ad)]
    assert len(restated) == 3  # one row per placement, replaced, not added
    assert set(restated["spend"]) == {"123.45"} and set(restated["impressions"]) == {"9000"}

    def vanished(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame[frame["ad_id"] == vanished_ad]
        return rows.drop(columns="pulled_at").sort_values(list(RAW_KEY)).reset_index(drop=True)

    # the second pull no longer returned the ad: its stored rows stay, values unchanged
    assert len(vanished(after)) == 3 * 4
    pd.testing.assert_frame_equal(
        vanished(after).drop(columns="row_number"), vanished(before).drop(columns="row_number")
    )
    assert pd.to_numeric(vanished(after)["spend"]).sum() > 0  # not turned into zero
    valid = warehouse.read("validated_meta_metrics")
    assert len(valid[valid["ad_id"] == vanished_ad]) == 3 * 4
    assert valid.loc[valid["ad_id"] == restated_ad, "spend"].max() == pytest.approx(123.45)


def test_fake_meta_an_expired_token_fails_clearly_writes_nothing_and_is_not_retried(
    fake_graph, fake_clock, token, tmp_path
):
    fake_graph.fail("debug_token", "token_expired_190_463", times=2)
    settings = meta_settings(fake_graph, tmp_path)
    result = _run_days(settings, 3)

    assert not result.success
    message = _failure(result)
    assert "must be re-issued" in message and "META_ACCESS_TOKEN" in message
    assert "Session has expired" in message
    assert fake_clock.sleeps == []
    assert not fake_graph.requests("report_create") and not fake_graph.requests("insights")
    assert _warehouse(settings).read("raw_meta_metrics").empty
    assert _warehouse(settings).read("meta_ad_entities").empty


@pytest.mark.parametrize(
    ("field", "value", "setting"),
    [
        ("currency", "EUR", "AELP2_ACCOUNT_CURRENCY"),
        ("timezone_name", "UTC", "AELP2_ACCOUNT_TIMEZONE"),
    ],
)
def test_fake_meta_an_account_unlike_the_settings_fails_before_any_write(
    fake_graph, fake_clock, token, tmp_path, field, value, setting
):
    fake_graph.account[field] = value
    settings = meta_settings(fake_graph, tmp_path)
    result = _run_days(settings, 2)

    assert not result.success
    assert setting in _failure(result) and repr(value) in _failure(result)
    assert _warehouse(settings).read("raw_meta_metrics").empty
    assert _warehouse(settings).read("meta_ad_entities").empty


def test_fake_meta_each_run_warns_of_a_token_about_to_expire(
    fake_graph, fake_clock, token, tmp_path
):
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    fake_graph.token_info["expires_at"] = int(soon.timestamp())
    settings = meta_settings(fake_graph, tmp_path)
    start, today = _days(settings, 2)

    with dg.instance_for_test() as instance:
        for _ in range(2):
            result = run_main_job(settings, start, today, instance)
            assert result.success, _failure(result)
            warnings = [
                entry.user_message
                for entry in instance.all_logs(result.run_id)
                if entry.level == logging.WARNING
            ]
            assert any("access token expires on" in w for w in warnings), warnings


def _everything_the_run_wrote(
    instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, settings: Aelp2Settings
) -> str:
    texts = []
    for entry in instance.all_logs(result.run_id):
        texts.append(dg.serialize_value(entry))  # message, metadata, error and its causes
        texts.append(entry.user_message)
        if entry.dagster_event and entry.dagster_event.is_step_failure:
            texts.append(entry.dagster_event.step_failure_data.error.to_string())
    texts.append(dg.serialize_value(instance.get_run_by_id(result.run_id)))
    for path in Path(instance.root_directory).rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    warehouse = _warehouse(settings)
    with warehouse_connection(settings) as connection:
        tables = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
        for schema, table in tables:
            frame = connection.execute(f'SELECT * FROM "{schema}"."{table}"').fetchdf()
            texts.append(frame.astype(str).to_csv())
    del warehouse
    return "\n".join(texts)


def warehouse_connection(settings: Aelp2Settings):
    import duckdb

    return duckdb.connect(settings.duckdb_path, read_only=True)


@pytest.mark.parametrize(
    "provoke",
    ["token_expired", "permission", "server_error"],
)
def test_fake_meta_the_token_never_appears_in_anything_a_failed_run_wrote(
    fake_graph, fake_clock, token, tmp_path, caplog, capfd, provoke
):
    if provoke == "token_expired":
        fake_graph.fail("report_create", "token_expired_190_463")
    elif provoke == "permission":
        fake_graph.fail("report_create", "requires_business_management_200")
    else:
        fake_graph.fail(
            "report_create", status=500, body="<html>Internal Server Error</html>", times=9
        )
    settings = meta_settings(fake_graph, tmp_path, META_MAX_ATTEMPTS="3")
    start, today = _days(settings, 3)
    caplog.set_level(logging.DEBUG)

    with dg.instance_for_test() as instance:
        result = run_main_job(settings, start, today, instance)
        written = _everything_the_run_wrote(instance, result, settings)

    assert not result.success
    captured = capfd.readouterr()
    logs = "\n".join([caplog.text, captured.out, captured.err])
    # the token did travel (to the fake Meta), and the failure is in what was searched
    assert fake_graph.requests("report_create")[0].params["access_token"] == TOKEN
    assert "creating insights report" in written
    assert TOKEN not in written
    assert TOKEN not in logs
    assert _warehouse(settings).read("raw_meta_metrics").empty


def test_fake_meta_entity_pages_that_overlap_give_each_object_once(
    fake_graph, fake_clock, token, tmp_path
):
    # Meta's next page of ads repeats two ads of the page before: the copies are dropped.
    fake_graph.overlap_pages = True
    settings = meta_settings(fake_graph, tmp_path, META_PAGE_LIMIT="25")
    result = _run_days(settings, 3)

    assert result.success, _failure(result)
    assert len(fake_graph.requests("ads")) > 2  # 49 ads in pages of 25 that overlap by 2
    entities = _warehouse(settings).read("meta_ad_entities")
    assert not entities.duplicated(["level", "object_id"]).any()
    assert (entities["level"] == "ad").sum() == ADS


def test_fake_meta_an_object_listed_twice_with_different_budgets_fails_before_any_write(
    fake_graph, fake_clock, token, tmp_path
):
    # An ad set whose budget changed while its edge was being paged: there is no telling which
    # budget is right, so nothing is decided from either.
    adset = fake_graph.ads[3].adset_id
    listed = fake_graph.entities

    def listed_twice(edge: str) -> list[dict]:
        objects = listed(edge)
        if edge == "adsets":
            changed = next(o for o in objects if o["id"] == adset)
            objects.append({**changed, "daily_budget": "3500"})
        return objects

    fake_graph.entities = listed_twice
    settings = meta_settings(fake_graph, tmp_path)
    result = _run_days(settings, 2)

    assert not result.success
    failure = _failure(result)
    assert adset in failure and "daily_budget" in failure and "3500" in failure
    assert _warehouse(settings).read("meta_ad_entities").empty
    assert _warehouse(settings).read("budget_allocations").empty
