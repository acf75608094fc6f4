"""The budget push: the real facebook-business SDK against the fake Graph API on 127.0.0.1.

The fake of ``test_meta_fake_graph.py`` is extended with the ad set and campaign nodes: GET
reads a budget, POST sets ``daily_budget``. Every test asserts the exact budget requests sent,
and that nothing was sent where nothing may be. Runs go through ``run_main_job``.
"""

import datetime as dt
import json
from pathlib import Path
from urllib.parse import parse_qsl

import dagster as dg
import pandas as pd
import pytest
from test_meta_fake_graph import (
    TOKEN,
    FakeGraph,
    Seen,
    install_fake_clock,
    meta_settings,
)
from werkzeug import Request, Response

from aelp2_assets.cli import run_main_job
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse

BUDGET_ROUTES = ("adset_get", "adset_post", "campaign_get", "campaign_post")


class BudgetGraph(FakeGraph):
    """The fake Graph API with ad set budgets and campaign statuses that POSTs change (Meta's
    own answer shapes)."""

    def __init__(self, server, examples: Path):
        super().__init__(server, examples)
        adsets = {ad.adset_id: ad.campaign_id for ad in self.ads}
        self.adset_campaign = adsets
        self.budgets = dict.fromkeys(adsets, 2000)
        self.lifetime: set[str] = set()
        self.campaigns = list(dict.fromkeys(ad.campaign_id for ad in self.ads))
        self.cbo = {self.campaigns[0]}  # the base fake's first campaign has a campaign budget
        self.read_back_offset = 0  # what Meta reports differs from what was set
        self.campaign_status = dict.fromkeys(self.campaigns, "ACTIVE")
        self.ignore_pauses = False  # Meta answers success but the campaign keeps delivering

    def entities(self, edge: str) -> list[dict]:
        rows = super().entities(edge)
        if edge == "adsets":
            for row in rows:
                row["daily_budget"] = str(self.budgets[row["id"]])
                if row["id"] in self.lifetime:
                    row["daily_budget"], row["lifetime_budget"] = "0", "900000"
        return rows

    def _route(self, method: str, path: str) -> tuple[str, list[str]]:
        parts = path.strip("/").split("/")[1:]
        if len(parts) == 1 and parts[0] in self.budgets:
            return ("adset_post" if method == "POST" else "adset_get"), parts
        if len(parts) == 1 and parts[0] in self.campaigns:
            return ("campaign_post" if method == "POST" else "campaign_get"), parts
        return super()._route(method, path)

    def handle(self, request: Request) -> Response:
        route, parts = self._route(request.method, request.path)
        if route not in BUDGET_ROUTES:
            return super().handle(request)
        params = dict(parse_qsl(request.query_string.decode()))
        params.update(dict(parse_qsl(request.get_data(as_text=True))))
        self.seen.append(Seen(request.method, request.path, params))
        if self.faults.get(route):
            return self.faults[route].popleft()
        node = parts[0]
        if route == "campaign_get":
            budget = "500000" if node in self.cbo else "0"
            status = self.campaign_status[node]
            return self._json(
                {
                    "id": node,
                    "daily_budget": budget,
                    "lifetime_budget": "0",
                    "status": status,
                    "effective_status": status,
                }
            )
        if route == "campaign_post":
            if not self.ignore_pauses:
                self.campaign_status[node] = params["status"]
            return self._json({"success": True})
        if route == "adset_post":
            self.budgets[node] = int(params["daily_budget"]) + self.read_back_offset
            return self._json({"success": True})
        lifetime = node in self.lifetime
        return self._json(
            {
                "id": node,
                "campaign_id": self.adset_campaign[node],
                "daily_budget": "0" if lifetime else str(self.budgets[node]),
                "lifetime_budget": "900000" if lifetime else "0",
            }
        )

    def posts(self) -> list[tuple[str, int]]:
        return [
            (seen.path.strip("/").split("/")[1], int(seen.params["daily_budget"]))
            for seen in self.requests("adset_post")
        ]

    def pauses(self) -> list[tuple[str, dict[str, str]]]:
        """Each campaign POST: the campaign id and every parameter sent but the token."""
        return [
            (
                seen.path.strip("/").split("/")[1],
                {
                    k: v
                    for k, v in seen.params.items()
                    if k not in ("access_token", "appsecret_proof")
                },
            )
            for seen in self.requests("campaign_post")
        ]

    def budget_requests(self) -> list[Seen]:
        return [s for s in self.seen if self._route(s.method, s.path)[0] in BUDGET_ROUTES]


@pytest.fixture
def graph(httpserver, shared_data, monkeypatch) -> BudgetGraph:
    folder = shared_data / "meta_insights_api_examples"
    if not folder.is_dir():
        pytest.skip(f"Meta's response shapes not found: {folder}")
    install_fake_clock(monkeypatch)
    monkeypatch.setenv("META_ACCESS_TOKEN", TOKEN)
    return BudgetGraph(httpserver, folder)


def _settings(graph: BudgetGraph, tmp_path: Path, **environ: str) -> Aelp2Settings:
    campaigns = ",".join(graph.campaigns)
    base = {
        "AELP2_PUSH_MODE": "live",
        "AELP2_PUSH_CAMPAIGNS": campaigns,
        "AELP2_PUSH_HOUR": "0",
        "DAILY_BUDGET_CAP": "300",
        "MONTE_CARLO_DRAWS": "100",
    }
    return meta_settings(graph, tmp_path, **{**base, **environ})


def _run(settings: Aelp2Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    today = settings.account_today()
    return run_main_job(settings, today - dt.timedelta(days=2), today, instance)


def _audit(settings: Aelp2Settings) -> pd.DataFrame:
    return DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset).read(
        "pushed_budgets"
    )


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure
    )


def test_live_writes_each_change_reads_it_back_and_a_second_run_sends_nothing(graph, tmp_path):
    settings = _settings(graph, tmp_path)
    with dg.instance_for_test() as instance:
        first = _run(settings, instance)
        assert first.success, _failure(first)
        posts = graph.posts()
        audit = _audit(settings)
        applied = audit[audit["status"] == "applied"]
        assert posts and sorted(posts) == sorted(
            zip(applied["adset_id"], applied["requested_minor"].astype(int), strict=True)
        )
        # each write within 20% of 2000 minor units, an integer, read back equal
        assert all(1600 <= value <= 2400 for _, value in posts)
        assert (applied["read_back_minor"] == applied["requested_minor"]).all()
        assert (applied["before_minor"] == 2000).all()
        # the sum of every written budget stays within the cap
        assert sum(graph.budgets[a] for a in applied["adset_id"]) <= settings.daily_budget_cap_minor
        # never a CBO ad set, never an archived (unfunded) one
        cbo_adsets = {a for a, c in graph.adset_campaign.items() if c in graph.cbo}
        assert not {a for a, _ in posts} & cbo_adsets
        assert set(audit.loc[audit["adset_id"].isin(cbo_adsets), "status"]) <= {"not_daily_budget"}
        logs = [e.user_message for e in instance.all_logs(first.run_id)]
        assert sum("live push:" in m for m in logs) == 1
        (line,) = [m for m in logs if "live push:" in m]
        assert f"{len(posts)} ad sets changed" in line and " -> " in line

        sent = len(graph.budget_requests())
        second = _run(settings, instance)
    assert second.success, _failure(second)
    assert graph.posts() == posts  # the same plan twice: nothing sent the second time
    assert len(graph.budget_requests()) > sent  # it did look at what Meta reports now
    later = _audit(settings)
    assert not (later[later["run_id"] == second.run_id]["status"] == "applied").any()


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
        result = _run(settings, instance)
    assert result.success, _failure(result)
    assert graph.budget_requests() == []
    audit = _audit(settings)
    assert len(audit) and set(audit["status"]) <= {status, "refused"}


def test_nothing_is_sent_outside_the_allow_list(graph, tmp_path):
    allowed = graph.campaigns[-1]
    settings = _settings(graph, tmp_path, AELP2_PUSH_CAMPAIGNS=allowed)
    with dg.instance_for_test() as instance:
        result = _run(settings, instance)
    assert result.success, _failure(result)
    touched = {s.path.strip("/").split("/")[1] for s in graph.budget_requests()}
    allowed_adsets = {a for a, c in graph.adset_campaign.items() if c == allowed}
    assert touched <= allowed_adsets | {allowed}
    audit = _audit(settings)
    outside = audit[~audit["adset_id"].isin(allowed_adsets)]
    assert len(outside) and set(outside["status"]) == {"out_of_scope"}


def test_a_lifetime_budget_ad_set_is_reported_and_left_alone(graph, tmp_path):
    writable = [a for a, c in graph.adset_campaign.items() if c not in graph.cbo]
    graph.lifetime = set(writable)
    settings = _settings(graph, tmp_path)
    with dg.instance_for_test() as instance:
        result = _run(settings, instance)
    assert result.success, _failure(result)
    assert graph.posts() == []
    audit = _audit(settings)
    assert set(audit["status"]) <= {"not_daily_budget", "out_of_scope"}


def test_a_read_back_mismatch_marks_the_change_failed(graph, tmp_path):
    graph.read_back_offset = 1
    settings = _settings(graph, tmp_path)
    with dg.instance_for_test() as instance:
        result = _run(settings, instance)
    assert result.success, _failure(result)
    audit = _audit(settings)
    written = audit[audit["adset_id"].isin([a for a, _ in graph.posts()])]
    assert len(written) and set(written["status"]) == {"read_back_mismatch"}
    assert (written["read_back_minor"] == written["requested_minor"] + 1).all()


def test_budget_too_low_keeps_the_old_budget_and_a_rate_limit_defers_the_rest(graph, tmp_path):
    graph.fail("adset_post", "budget_too_low_100_1885272")
    graph.fail("adset_post", "user_request_limit_17")
    settings = _settings(graph, tmp_path)
    with dg.instance_for_test() as instance:
        first = _run(settings, instance)
        assert first.success, _failure(first)
        audit = _audit(settings)
        statuses = audit.loc[audit["status"].isin(["too_low", "deferred", "applied"]), "status"]
        assert list(statuses)[:2] == ["too_low", "deferred"]
        assert "applied" not in set(statuses)
        posts_first = len(graph.posts())
        assert posts_first == 2  # the refused one and the rate-limited one; nothing after
        too_low = audit[audit["status"] == "too_low"].iloc[0]
        assert graph.budgets[too_low["adset_id"]] == 2000
        assert "1885272" in too_low["reason"]

        second = _run(settings, instance)  # the next run applies what is left
    assert second.success, _failure(second)
    later = _audit(settings)
    done = later[(later["run_id"] == second.run_id) & (later["status"] == "applied")]
    deferred = set(audit.loc[audit["status"] == "deferred", "adset_id"])
    assert deferred <= set(done["adset_id"])


def test_a_failed_blocking_check_sends_nothing_in_the_run_and_by_hand_later(graph, tmp_path):
    settings = _settings(graph, tmp_path)
    with dg.instance_for_test() as instance:
        # the same run: the sixth rejected row fails no_rejected_rows; nothing downstream runs
        graph.restate(settings.account_today().isoformat(), graph.ads[2].ad_id, spend="-5")
        bad = _run(settings, instance)
        assert not bad.success
        assert graph.budget_requests() == []

        # by hand later, on the allocation a good run made before: refused, nothing sent
        graph.overrides.clear()
        good = _run(settings.model_copy(update={"push_mode": "dry_run"}), instance)
        assert good.success, _failure(good)
        graph.restate(settings.account_today().isoformat(), graph.ads[2].ad_id, spend="-5")
        assert not _run(settings.model_copy(update={"push_mode": "dry_run"}), instance).success
        from aelp2_assets.definitions import build_definitions

        defs = build_definitions(settings)
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey("pushed_budgets")}
        )
        by_hand = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not by_hand.success
    assert "push refused, nothing sent" in _failure(by_hand)
    assert "validated_meta_metrics" in _failure(by_hand)
    assert graph.budget_requests() == []
    audit = _audit(settings)
    assert set(audit.loc[audit["run_id"] == by_hand.run_id, "status"]) == {"refused"}


def test_live_without_a_token_is_a_clear_error_not_a_dry_run(graph, tmp_path, monkeypatch):
    settings = _settings(graph, tmp_path)
    monkeypatch.delenv("META_ACCESS_TOKEN")
    with (
        dg.instance_for_test() as instance,
        pytest.raises(dg.DagsterInvalidConfigError, match="META_ACCESS_TOKEN"),
    ):
        _run(settings, instance)
    assert graph.budget_requests() == []


def test_live_without_an_allow_list_or_account_fails_at_load():
    with pytest.raises(ValueError, match="AELP2_PUSH_CAMPAIGNS"):
        Aelp2Settings.from_env({"AELP2_PUSH_MODE": "live", "META_AD_ACCOUNT_ID": "act_1"})
    with pytest.raises(ValueError, match="META_AD_ACCOUNT_ID"):
        Aelp2Settings.from_env({"AELP2_PUSH_MODE": "approve", "AELP2_PUSH_CAMPAIGNS": "1"})
    with pytest.raises(ValueError, match="AELP2_PUSH_MODE"):
        Aelp2Settings.from_env({"AELP2_PUSH_MODE": "yes"})
    with pytest.raises(ValueError, match="AELP2_PUSH_MAX_CHANGE_SHARE"):
        Aelp2Settings.from_env({"AELP2_PUSH_MAX_CHANGE_SHARE": "1.5"})
    assert Aelp2Settings.from_env({}).push_mode == "dry_run"
    assert json.dumps(Aelp2Settings.from_env({}).push_max_change_share) == "0.2"


def test_a_live_push_is_announced_where_alerts_go(graph, tmp_path, monkeypatch):
    from pytest_httpserver import HTTPServer

    slack = HTTPServer(host="127.0.0.1")
    slack.expect_request("/api/chat.postMessage", method="POST").respond_with_json(
        {"ok": True, "channel": "C1", "ts": "1.0"}
    )
    slack.start()
    try:
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-announcement")
        settings = _settings(
            graph,
            tmp_path,
            AELP2_SLACK_CHANNEL="#ads-ops",
            AELP2_SLACK_BASE_URL=slack.url_for("/api/"),
        )
        with dg.instance_for_test() as instance:
            result = _run(settings, instance)
        assert result.success, _failure(result)
        messages = [request.get_data(as_text=True) for request, _ in slack.log]
    finally:
        slack.clear()
        slack.stop()
    announcements = [m for m in messages if "live push:" in m]
    assert len(announcements) == 1
    assert f"live push: {len(graph.posts())} ad sets changed" in announcements[0]
    assert " USD -> " in announcements[0]


def test_approve_mode_stops_a_scheduled_run_at_the_plan_and_a_run_by_hand_pushes(graph, tmp_path):
    from aelp2_assets.definitions import build_definitions

    settings = _settings(graph, tmp_path, AELP2_PUSH_MODE="approve")
    today = settings.account_today()
    job = build_definitions(settings).resolve_job_def("main_job")
    with dg.instance_for_test() as instance:
        scheduled = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={
                "dagster/schedule_name": "refresh_schedule",
                "dagster/asset_partition_range_start": (today - dt.timedelta(days=2)).isoformat(),
                "dagster/asset_partition_range_end": today.isoformat(),
            },
        )
        assert scheduled.success, _failure(scheduled)
        assert graph.posts() == []  # the schedule stops at the plan
        planned = _audit(settings)
        assert set(planned["status"]) == {"awaiting_approval"}

        # the engineer reviewed the plan and materializes the push by hand
        by_hand = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            asset_selection=[dg.AssetKey("pushed_budgets")],
        )
    assert by_hand.success, _failure(by_hand)
    posts = graph.posts()
    assert posts
    audit = _audit(settings)
    applied = audit[(audit["run_id"] == by_hand.run_id) & (audit["status"] == "applied")]
    assert sorted(posts) == sorted(
        zip(applied["adset_id"], applied["requested_minor"].astype(int), strict=True)
    )


def test_a_scheduled_live_run_before_the_push_hour_only_records_the_plan(graph, tmp_path):
    from zoneinfo import ZoneInfo

    from aelp2_assets.definitions import build_definitions

    settings = _settings(graph, tmp_path)
    hour_now = dt.datetime.now(ZoneInfo(settings.account_timezone)).hour
    if hour_now == 23:
        pytest.skip("no later hour today to set the push hour to")
    settings = _settings(graph, tmp_path, AELP2_PUSH_HOUR=str(hour_now + 1))
    today = settings.account_today()
    with dg.instance_for_test() as instance:
        result = (
            build_definitions(settings)
            .resolve_job_def("main_job")
            .execute_in_process(
                instance=instance,
                raise_on_error=False,
                tags={
                    "dagster/schedule_name": "refresh_schedule",
                    "dagster/asset_partition_range_start": today.isoformat(),
                    "dagster/asset_partition_range_end": today.isoformat(),
                },
            )
        )
    assert result.success, _failure(result)
    assert graph.posts() == []
    assert set(_audit(settings)["status"]) == {"before_push_hour"}
