"""A fake Graph API on 127.0.0.1 that the real facebook-business SDK talks HTTP to.

Nothing here reaches Meta. The fake serves Meta's real shapes from
``../shared/data/meta_insights_api_examples``: the insights values (string numbers, ``actions``
missing on some rows, purchases listed under six action types) and the ads' ids and names of
a real captured response, re-cut into level-ad rows per day and placement; the error bodies,
async job statuses and usage headers of ``graph_api_error_and_status_shapes.json``.

This module holds the fake, and the tests of the source against it; the whole-graph runs in
``test_meta_graph_runs.py`` import the fake from here.
"""

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import sys
from collections import deque
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from facebook_business.crashreporter import CrashReporter
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aelp2_assets.definitions import build_definitions
from aelp2_assets.resources import meta_api, resources_for
from aelp2_assets.resources.meta_api import MetaApiSource
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import ENTITY_COLUMNS
from aelp2_assets.tables import RAW_KEY

EXAMPLES = "meta_insights_api_examples"
VERSION = "v26.0"
# A token value the secret-scrubbing tests search for in everything a run writes.
TOKEN = "EAAGfaketoken0123456789SECRETvalue"
APP_SECRET = "appsecret0123456789abcdef"
PLACEMENTS = (
    ("facebook", "feed", "mobile_app"),
    ("instagram", "instagram_stories", "mobile_app"),
    # the placement of Airbyte's real ads_insights_platform_and_device record
    ("instagram", "instagram_explore", "android_tablet"),
)


class FakeClock:
    """Records the waits the source asks for and advances its own time instead of sleeping."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclasses.dataclass
class Seen:
    """One request the SDK sent: method, path and its parameters (query and form)."""

    method: str
    path: str
    params: dict[str, str]

    def json(self, name: str):
        return json.loads(self.params[name])


@dataclasses.dataclass
class FakeAd:
    ad_id: str
    ad_name: str
    adset_id: str
    adset_name: str
    campaign_id: str
    campaign_name: str
    creative_id: str
    metrics: list[dict]  # the ad's real insights rows


def _load_ads(examples: Path) -> tuple[str, list[FakeAd]]:
    ads = json.loads((examples / "ads_edge_nested_insights_by_publisher_platform.json").read_text())
    fakes = [
        FakeAd(
            ad_id=ad["id"],
            ad_name=ad["name"],
            adset_id=ad["adset"]["id"],
            adset_name=ad["adset"]["name"],
            campaign_id=ad["campaign"]["id"],
            campaign_name=ad["campaign"]["name"],
            creative_id=ad["adcreatives"]["data"][0]["id"],
            metrics=ad["insights"]["data"],
        )
        for ad in ads
        if ad.get("insights", {}).get("data")
    ]
    return ads[0]["campaign"]["account_id"], fakes


class FakeGraph:
    """The Graph API endpoints the source uses, with scripted faults.

    ``fail(route, ...)`` queues error responses served before the normal answer of a route;
    ``report_statuses`` queues, per report job created, the statuses its polls return (the
    last one repeats); ``restate``/``vanish`` change what Meta returns for later pulls.
    """

    def __init__(self, server: HTTPServer, examples: Path):
        self.server = server
        self.shapes = json.loads((examples / "graph_api_error_and_status_shapes.json").read_text())
        account_number, self.ads = _load_ads(examples)
        self.account_id = f"act_{account_number}"
        self.account = {
            "id": self.account_id,
            "account_id": account_number,
            "currency": "USD",
            "timezone_name": "America/Los_Angeles",
            # Meta's number type for this field (Airbyte's real ad_account record: 100.0)
            "min_daily_budget": 100,
        }
        self.token_info = {
            "app_id": "2586347315015828",
            "type": "SYSTEM_USER",
            "is_valid": True,
            "expires_at": 0,
            "data_access_expires_at": 0,
            "scopes": ["ads_read"],
        }
        self.seen: list[Seen] = []
        self.faults: dict[str, deque[Response]] = {}
        self.scheduled: dict[tuple[str, int], Response] = {}
        self.report_statuses: deque[list[dict]] = deque()
        self.reports: dict[str, dict] = {}
        self.success_headers: dict[str, str] = {}
        self.overrides: dict[tuple[str, str], dict] = {}
        self.vanished: set[str] = set()
        self.max_days_per_report: int | None = None  # larger reports: "reduce the amount"
        self.max_page_limit: int | None = None  # larger pages: "reduce the amount"
        self.repeat_cursor_after_page: int | None = None
        self.overlap_pages = False
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    # Scripting.

    @property
    def graph_url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def error(self, name: str) -> dict:
        return next(entry for entry in self.shapes["errors"] if entry["name"] == name)

    def fail(
        self,
        route: str,
        name: str | None = None,
        times: int = 1,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> None:
        """Queue ``times`` error responses on ``route``: the named shape, or a raw body."""
        if name is not None:
            entry = self.error(name)
            body = json.dumps(entry["body"])
            status = status or entry["http_status"]
            headers = {**entry.get("headers", {}), **(headers or {})}
        for _ in range(times):
            self.faults.setdefault(route, deque()).append(
                Response(body, status=status, headers=headers, content_type="application/json")
            )

    def fail_at(self, route: str, nth: int, name: str) -> None:
        """Serve the named error shape as the ``nth`` request of ``route`` (1-based)."""
        entry = self.error(name)
        self.scheduled[(route, nth)] = Response(
            json.dumps(entry["body"]), status=entry["http_status"], content_type="application/json"
        )

    def restate(self, day: str, ad_id: str, **values: str) -> None:
        self.overrides[(day, ad_id)] = values

    def vanish(self, ad_id: str) -> None:
        self.vanished.add(ad_id)

    def requests(self, route: str) -> list[Seen]:
        return [seen for seen in self.seen if self._route(seen.method, seen.path)[0] == route]

    # Data.

    def rows(self, since: str, until: str) -> list[dict]:
        """Level-ad insights rows, one per day x ad x placement, values from the real ads."""
        first, last = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
        rows = []
        for offset in range((last - first).days + 1):
            day = first + dt.timedelta(days=offset)
            for ad in self.ads:
                if ad.ad_id in self.vanished:
                    continue
                for index, (platform, position, device) in enumerate(PLACEMENTS):
                    real = ad.metrics[(day.toordinal() + index) % len(ad.metrics)]
                    row = {
                        "account_id": self.account["account_id"],
                        "account_currency": self.account["currency"],
                        "campaign_id": ad.campaign_id,
                        "campaign_name": ad.campaign_name,
                        "adset_id": ad.adset_id,
                        "adset_name": ad.adset_name,
                        "ad_id": ad.ad_id,
                        "ad_name": ad.ad_name,
                        "spend": real["spend"],
                        "impressions": real["impressions"],
                        "clicks": real["clicks"],
                        "date_start": day.isoformat(),
                        "date_stop": day.isoformat(),
                        "publisher_platform": platform,
                        "platform_position": position,
                        "impression_device": device,
                    }
                    if "actions" in real:
                        row["actions"] = real["actions"]
                    row.update(self.overrides.get((day.isoformat(), ad.ad_id), {}))
                    rows.append(row)
        return rows

    def entities(self, edge: str) -> list[dict]:
        campaigns, adsets = {}, {}
        for ad in self.ads:
            campaigns.setdefault(ad.campaign_id, ad)
            adsets.setdefault(ad.adset_id, ad)
        if edge == "campaigns":
            return [
                {
                    "id": ad.campaign_id,
                    "name": ad.campaign_name,
                    "status": "ACTIVE",
                    "effective_status": "ACTIVE",
                    # the first campaign runs on a campaign budget (CBO)
                    **({"daily_budget": "500000"} if index == 0 else {}),
                }
                for index, ad in enumerate(campaigns.values())
            ]
        if edge == "adsets":
            return [
                {
                    "id": ad.adset_id,
                    "name": ad.adset_name,
                    "campaign_id": ad.campaign_id,
                    "status": "ACTIVE",
                    "effective_status": "ACTIVE" if index else "ARCHIVED",
                    # Meta's strings of minor units; an ad set on a daily budget reads
                    # lifetime_budget "0" (Airbyte's real ad_sets record: 2000.0 and 0.0)
                    "daily_budget": "2000",
                    "lifetime_budget": "0",
                }
                for index, ad in enumerate(adsets.values())
            ]
        return [
            {
                "id": ad.ad_id,
                "name": ad.ad_name,
                "campaign_id": ad.campaign_id,
                "adset_id": ad.adset_id,
                "status": "ACTIVE",
                "effective_status": "ACTIVE",
                "creative": {"id": ad.creative_id},
            }
            for ad in self.ads
        ]

    # Serving.

    def _route(self, method: str, path: str) -> tuple[str, list[str]]:
        parts = path.strip("/").split("/")[1:]  # without the version
        if parts == ["debug_token"]:
            return "debug_token", parts
        if parts == [self.account_id]:
            return "account", parts
        if len(parts) == 2 and parts[0] == self.account_id:
            if parts[1] == "insights":
                return ("report_create" if method == "POST" else "insights"), parts
            return parts[1], parts
        if len(parts) == 1 and parts[0] in self.reports:
            return "report_status", parts
        if len(parts) == 2 and parts[0] in self.reports and parts[1] == "insights":
            return "report_rows", parts
        return "unknown", parts

    def handle(self, request: Request) -> Response:
        params = dict(parse_qsl(request.query_string.decode()))
        params.update(dict(parse_qsl(request.get_data(as_text=True))))
        self.seen.append(Seen(request.method, request.path, params))
        route, parts = self._route(request.method, request.path)
        if self.faults.get(route):
            return self.faults[route].popleft()
        if (route, len(self.requests(route))) in self.scheduled:
            return self.scheduled.pop((route, len(self.requests(route))))
        if route == "debug_token":
            return self._json({"data": self.token_info})
        if route == "account":
            return self._json(self.account)
        if route == "insights":
            time_range = json.loads(params["time_range"])
            rows = self.rows(time_range["since"], time_range["until"])
            return self._page(rows, params, request)
        if route == "report_create":
            return self._create_report(params)
        if route == "report_status":
            statuses = self.reports[parts[0]]["statuses"]
            status = statuses.popleft() if len(statuses) > 1 else statuses[0]
            return self._json({"id": parts[0], **status})
        if route == "report_rows":
            time_range = self.reports[parts[0]]["time_range"]
            return self._page(self.rows(time_range["since"], time_range["until"]), params, request)
        if route in ("campaigns", "adsets", "ads"):
            return self._page(self.entities(route), params, request)
        return Response(json.dumps({"error": {"message": "unknown path", "code": 100}}), 400)

    def _json(self, body: dict, status: int = 200) -> Response:
        return Response(
            json.dumps(body),
            status=status,
            headers=self.success_headers,
            content_type="application/json",
        )

    def _reduce(self) -> Response:
        entry = self.error("reduce_amount_of_data_1")
        return Response(json.dumps(entry["body"]), status=entry["http_status"])

    def _create_report(self, params: dict) -> Response:
        time_range = json.loads(params["time_range"])
        days = (
            dt.date.fromisoformat(time_range["until"]) - dt.date.fromisoformat(time_range["since"])
        ).days + 1
        if self.max_days_per_report is not None and days > self.max_days_per_report:
            return self._reduce()
        run_id = f"60{len(self.reports) + 1:013d}"
        statuses = (
            self.report_statuses.popleft()
            if self.report_statuses
            else [self.shapes["async_report_run"]["completed_example"]]
        )
        statuses = [
            {k: v for k, v in s.items() if not k.startswith("_") and k != "id"} for s in statuses
        ]
        self.reports[run_id] = {"time_range": time_range, "statuses": deque(statuses)}
        return self._json({"report_run_id": run_id})

    def _page(self, rows: list[dict], params: dict, request: Request) -> Response:
        limit = int(params.get("limit", 25))
        if self.max_page_limit is not None and limit > self.max_page_limit:
            return self._reduce()
        offset = int(params["after"].removeprefix("cursor-")) if "after" in params else 0
        page_number = offset // limit + 1
        end = offset + limit
        data = rows[offset:end]
        paging: dict = {"cursors": {"before": f"cursor-{offset}", "after": f"cursor-{end}"}}
        if end < len(rows):
            following = end
            if self.overlap_pages:
                following = max(end - 2, offset + 1)  # the next page repeats two rows
            if self.repeat_cursor_after_page is not None and (
                page_number >= self.repeat_cursor_after_page
            ):
                following = offset  # the cursor of the page just served, again
            paging["cursors"]["after"] = f"cursor-{following}"
            paging["next"] = f"{self.graph_url}{request.path}?after=cursor-{following}"
        return self._json({"data": data, "paging": paging})


def start_fake_graph(server: HTTPServer, shared_data: Path) -> FakeGraph:
    """The fake Graph API on ``server``, serving the shapes in ``shared_data``."""
    folder = shared_data / EXAMPLES
    if not folder.is_dir():
        pytest.skip(f"Meta's response shapes not found: {folder}")
    # The fake's own request log prints the URLs it receives, token included: that is Meta's
    # side of the wire, not something the project writes, so it is kept out of the logs.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    return FakeGraph(server, folder)


def install_fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Every Meta client of the test waits by this clock: no test sleeps for real."""
    clock = FakeClock()
    monkeypatch.setattr(meta_api, "clock", clock)
    return clock


@pytest.fixture
def fake_graph(httpserver: HTTPServer, shared_data: Path) -> FakeGraph:
    """The fake Graph API, fresh for each test."""
    return start_fake_graph(httpserver, shared_data)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return install_fake_clock(monkeypatch)


def meta_settings(graph: FakeGraph, tmp_path: Path, **environ: str) -> Aelp2Settings:
    """Settings selecting the Meta source, pointed at the fake Graph API, into DuckDB."""
    return Aelp2Settings.from_env(
        {
            "AELP2_SOURCE": "meta",
            "META_AD_ACCOUNT_ID": graph.account_id,
            "META_GRAPH_URL": graph.graph_url,
            "AELP2_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "AELP2_PARTITION_START_DATE": "2025-01-01",
            **environ,
        }
    )


def fake_meta_source(graph: FakeGraph, tmp_path: Path, **environ: str) -> MetaApiSource:
    """The Meta source of those settings, with the known token."""
    return MetaApiSource.from_settings(meta_settings(graph, tmp_path, **environ), TOKEN)


# The tests: the real SDK against the fake Graph API (Meta is faked in every test below).

DAY = dt.date(2025, 3, 4)
ADS = 49  # ads with insights in the real captured response
ROW_FIELDS = {
    "account_id",
    "account_currency",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "ad_id",
    "ad_name",
    "spend",
    "impressions",
    "clicks",
    "actions",
    "action_values",
    "date_start",
    "date_stop",
}
BREAKDOWN_FIELDS = ["publisher_platform", "platform_position", "impression_device"]


def _keys(rows: list[dict]) -> list[tuple]:
    return [tuple(row[c] for c in RAW_KEY) for row in rows]


def _assert_insights_request(seen: Seen, since: dt.date, until: dt.date) -> None:
    assert seen.params["level"] == "ad"
    assert seen.params["time_increment"] == "1"
    assert seen.json("time_range") == {"since": since.isoformat(), "until": until.isoformat()}
    assert seen.json("breakdowns") == BREAKDOWN_FIELDS
    assert seen.json("action_breakdowns") == ["action_type"]
    (rule,) = seen.json("filtering")
    assert (rule["field"], rule["operator"]) == ("ad.effective_status", "IN")
    assert {"ACTIVE", "PAUSED", "ARCHIVED", "DELETED", "CAMPAIGN_PAUSED"} <= set(rule["value"])
    fields = seen.params["fields"]
    fields = json.loads(fields) if fields.startswith("[") else fields.split(",")
    assert set(fields) == ROW_FIELDS


def test_fake_meta_one_day_is_one_synchronous_request_at_ad_day_placement_grain(
    fake_graph, fake_clock, tmp_path
):
    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    (request,) = fake_graph.requests("insights")
    assert request.method == "GET"
    assert request.path == f"/{VERSION}/{fake_graph.account_id}/insights"
    _assert_insights_request(request, DAY, DAY)
    assert request.params["limit"] == "500"
    assert not fake_graph.requests("report_create")

    assert rows == fake_graph.rows(DAY.isoformat(), DAY.isoformat())
    assert len(rows) == ADS * 3 and len(set(_keys(rows))) == len(rows)
    assert all(isinstance(row[f], str) for row in rows for f in ("spend", "impressions", "clicks"))
    assert any("actions" not in row for row in rows)  # Meta leaves the key out
    assert all(set(row) <= ROW_FIELDS | set(BREAKDOWN_FIELDS) for row in rows)
    assert fake_clock.sleeps == []


def test_fake_meta_a_range_is_an_async_report_read_only_once_completed(
    fake_graph, fake_clock, tmp_path
):
    statuses = fake_graph.shapes["async_report_run"]
    fake_graph.report_statuses.append(
        [
            {"async_status": "Job Not Started", "async_percent_completion": 0},
            # 100% while still running proves nothing
            {"async_status": "Job Running", "async_percent_completion": 100},
            statuses["completed_example"],
        ]
    )
    last = DAY + dt.timedelta(days=2)

    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, last)

    (create,) = fake_graph.requests("report_create")
    assert create.method == "POST"
    assert create.path == f"/{VERSION}/{fake_graph.account_id}/insights"
    _assert_insights_request(create, DAY, last)
    polls = fake_graph.requests("report_status")
    assert len(polls) == 3
    assert "async_status" in polls[0].params["fields"]
    reads = fake_graph.requests("report_rows")
    assert fake_graph.seen.index(reads[0]) > fake_graph.seen.index(polls[-1])
    assert fake_clock.sleeps == [10.0, 10.0]  # META_ASYNC_POLL_SECONDS between polls
    assert rows == fake_graph.rows(DAY.isoformat(), last.isoformat())
    assert not fake_graph.requests("insights")


@pytest.mark.parametrize("gave_up", ["Job Failed", "Job Skipped"])
def test_fake_meta_a_failed_or_skipped_report_is_created_again(
    fake_graph, fake_clock, tmp_path, gave_up
):
    shapes = fake_graph.shapes["async_report_run"]
    fake_graph.report_statuses.extend(
        [[{**shapes["failed_example_v25"], "async_status": gave_up}], [shapes["completed_example"]]]
    )
    last = DAY + dt.timedelta(days=1)

    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, last)

    assert len(fake_graph.requests("report_create")) == 2
    assert len(fake_graph.requests("report_rows")) == 1  # only the completed job is read
    assert rows == fake_graph.rows(DAY.isoformat(), last.isoformat())


def test_fake_meta_reports_failing_every_time_fail_the_fetch_clearly(
    fake_graph, fake_clock, tmp_path
):
    failed = fake_graph.shapes["async_report_run"]["failed_example_v25"]
    fake_graph.report_statuses.extend([[failed]] * 5)

    with pytest.raises(meta_api.MetaApiError) as error:
        fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY + dt.timedelta(days=3))

    assert "3 report jobs failed" in str(error.value)
    assert "There was an error running your report" in str(error.value)
    assert len(fake_graph.requests("report_create")) == 3  # META_ASYNC_MAX_JOBS
    assert not fake_graph.requests("report_rows")


def test_fake_meta_a_report_that_never_completes_fails_within_the_bound(
    fake_graph, fake_clock, tmp_path
):
    fake_graph.report_statuses.append(
        [{"async_status": "Job Running", "async_percent_completion": 100}]
    )
    source = fake_meta_source(
        fake_graph,
        tmp_path,
        META_ASYNC_MAX_WAIT_SECONDS="60",
        META_ASYNC_POLL_SECONDS="10",
    )

    with pytest.raises(meta_api.MetaApiError, match="did not complete within") as error:
        source.fetch_insights(DAY, DAY + dt.timedelta(days=6))

    assert "'Job Running' at 100%" in str(error.value)
    assert sum(fake_clock.sleeps) <= 60
    assert len(fake_graph.requests("report_status")) == 7  # at 0, 10, ..., 60 s
    assert not fake_graph.requests("report_rows")


def _business_usage(graph: FakeGraph, regain_minutes: int) -> str:
    """The shapes file's insights-shaped x-business-use-case-usage header, keyed by the fake
    account, saying access returns in ``regain_minutes``."""
    header = graph.shapes["rate_limit_headers"]["x-business-use-case-usage_insights_shape"]
    cases = next(iter(json.loads(header).values()))
    cases[0]["estimated_time_to_regain_access"] = regain_minutes
    return json.dumps({graph.account["account_id"]: cases})


def test_fake_meta_rate_limit_then_success_waits_what_meta_said(fake_graph, fake_clock, tmp_path):
    fake_graph.fail(
        "insights",
        "too_many_calls_ad_account_80000_2446079",
        headers={"X-Business-Use-Case-Usage": _business_usage(fake_graph, 3)},
    )

    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    assert fake_clock.sleeps == [180.0]  # estimated_time_to_regain_access: 3 minutes
    assert len(fake_graph.requests("insights")) == 2
    assert rows == fake_graph.rows(DAY.isoformat(), DAY.isoformat())


@pytest.mark.parametrize(
    ("header", "value", "pause"),
    [
        # 95% of the ad account's limit, 100 s to its reset: 80% of the way from 75% to 100%
        (
            "X-Ad-Account-Usage",
            {"acc_id_util_pct": 95, "reset_time_duration": 100},
            80.0,
        ),
        # 90% of the app's calls, no reset time: 60% of META_USAGE_PAUSE_SECONDS (60)
        ("x-app-usage", {"call_count": 90, "total_time": 25, "total_cputime": 25}, 36.0),
        # the insights throttle at 100%
        ("x-fb-ads-insights-throttle", {"app_id_util_pct": 100, "acc_id_util_pct": 10}, 60.0),
        # the shapes file's real readings are far below the threshold: no pause
        ("x-ad-account-usage", {"acc_id_util_pct": 9.67, "reset_time_duration": 100}, 0.0),
    ],
)
def test_fake_meta_high_usage_slows_calls_down_before_the_limit(
    fake_graph, fake_clock, tmp_path, header, value, pause
):
    fake_graph.success_headers = {header: json.dumps(value)}

    fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    expected = [pause] * len(fake_graph.seen) if pause else []
    assert fake_clock.sleeps == pytest.approx(expected)


@pytest.mark.parametrize(
    "name",
    [
        "service_temporarily_unavailable_2",
        "user_request_limit_17",
        "custom_rate_limit_613",
        "app_request_limit_4",
        "too_many_calls_ad_account_80000_2446079",
        "too_many_calls_ads_management_80004",
        "unknown_error_1_99",
        "async_report_not_loadable_2601_1815107",
    ],
)
def test_fake_meta_transient_errors_are_retried_with_backoff(
    fake_graph, fake_clock, tmp_path, name
):
    fake_graph.fail("insights", name)

    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    assert fake_clock.sleeps == [2.0]  # META_RETRY_BASE_SECONDS
    assert len(fake_graph.requests("insights")) == 2
    assert rows == fake_graph.rows(DAY.isoformat(), DAY.isoformat())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "Internal Server Error"),
        (502, "<html><body>502 Bad Gateway</body></html>"),
        # a text the SDK's own error parser trips over (it looks for "error" in it)
        (503, "Service Unavailable: upstream error"),
        # Meta's "Service Unavailable" with HTTP 200, which the SDK reads as an error
        (200, "Service Unavailable"),
    ],
)
def test_fake_meta_server_errors_without_a_graph_body_are_retried(
    fake_graph, fake_clock, tmp_path, status, body
):
    fake_graph.fail("insights", status=status, body=body)

    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    assert fake_clock.sleeps == [2.0]
    assert len(rows) == ADS * 3


def test_fake_meta_retries_back_off_exponentially_then_give_up(fake_graph, fake_clock, tmp_path):
    fake_graph.fail("insights", "service_temporarily_unavailable_2", times=10)
    source = fake_meta_source(fake_graph, tmp_path, META_MAX_ATTEMPTS="4")

    with pytest.raises(meta_api.MetaApiError, match="gave up after 4 attempts") as error:
        source.fetch_insights(DAY, DAY)

    assert "Service temporarily unavailable" in str(error.value)
    assert fake_clock.sleeps == [2.0, 4.0, 8.0]
    assert len(fake_graph.requests("insights")) == 4


def test_fake_meta_asking_to_wait_longer_than_the_bound_fails_without_waiting(
    fake_graph, fake_clock, tmp_path
):
    fake_graph.fail(
        "insights",
        "too_many_calls_ad_account_80000_2446079",
        headers={"x-business-use-case-usage": _business_usage(fake_graph, 30)},
    )
    source = fake_meta_source(fake_graph, tmp_path, META_RETRY_MAX_WAIT_SECONDS="600")

    with pytest.raises(meta_api.MetaApiError, match="asks to wait 30 min"):
        source.fetch_insights(DAY, DAY)

    assert fake_clock.sleeps == []
    assert len(fake_graph.requests("insights")) == 1


@pytest.mark.parametrize(
    ("name", "kind", "says"),
    [
        ("token_expired_190_463", meta_api.MetaTokenError, "must be re-issued"),
        ("token_invalidated_password_change_190_460", meta_api.MetaTokenError, "re-issued"),
        ("app_not_authorized_190_458", meta_api.MetaTokenError, "re-issued"),
        ("missing_permissions_100", meta_api.MetaApiError, "Missing permissions"),
        ("requires_business_management_200", meta_api.MetaApiError, "ads_read"),
        ("invalid_breakdown_combination_100", meta_api.MetaApiError, "combination"),
    ],
)
def test_fake_meta_permanent_errors_fail_at_once_and_clearly(
    fake_graph, fake_clock, tmp_path, name, kind, says
):
    fake_graph.fail("insights", name)

    with pytest.raises(kind, match=says) as error:
        fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    assert len(fake_graph.requests("insights")) == 1  # never retried
    assert fake_clock.sleeps == []
    assert TOKEN not in str(error.value)
    # no exception chain carries the SDK's request context
    assert error.value.__cause__ is None and error.value.__context__ is None


def test_fake_meta_reduce_the_data_splits_the_range_and_keeps_every_row_once(
    fake_graph, fake_clock, tmp_path
):
    fake_graph.max_days_per_report = 2
    last = DAY + dt.timedelta(days=6)

    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, last)

    expected = fake_graph.rows(DAY.isoformat(), last.isoformat())
    assert sorted(_keys(rows)) == sorted(_keys(expected))
    assert len(rows) == len(expected) == ADS * 3 * 7
    # the 7 days were halved until each piece was small enough; every day was read once
    created = [r.json("time_range") for r in fake_graph.requests("report_create")]
    read_runs = {r.path.split("/")[2] for r in fake_graph.requests("report_rows")}
    read = [fake_graph.reports[run]["time_range"] for run in read_runs]
    read += [r.json("time_range") for r in fake_graph.requests("insights")]
    days = sorted(d for piece in read for d in _days(piece))
    assert days == [(DAY + dt.timedelta(days=n)).isoformat() for n in range(7)]
    assert created[0] == {"since": DAY.isoformat(), "until": last.isoformat()}


def _days(time_range: dict) -> list[str]:
    first = dt.date.fromisoformat(time_range["since"])
    last = dt.date.fromisoformat(time_range["until"])
    return [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def test_fake_meta_reduce_the_data_on_one_day_shrinks_the_pages(fake_graph, fake_clock, tmp_path):
    fake_graph.max_page_limit = 100

    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    limits = [int(r.params["limit"]) for r in fake_graph.requests("insights")]
    assert limits[:4] == [500, 250, 125, 62]
    assert set(limits[3:]) == {62}
    assert rows == fake_graph.rows(DAY.isoformat(), DAY.isoformat())


def test_fake_meta_reduce_the_data_on_a_later_page_drops_the_partial_pull(
    fake_graph, fake_clock, tmp_path
):
    fake_graph.fail_at("insights", 2, "reduce_amount_of_data_1")  # page 2 of the first pull

    rows = fake_meta_source(fake_graph, tmp_path, META_PAGE_LIMIT="100").fetch_insights(DAY, DAY)

    limits = [int(r.params["limit"]) for r in fake_graph.requests("insights")]
    assert limits == [100, 100, 50, 50, 50]
    assert rows == fake_graph.rows(DAY.isoformat(), DAY.isoformat())  # each row exactly once


def test_fake_meta_a_repeated_cursor_ends_pagination(fake_graph, fake_clock, tmp_path, caplog):
    fake_graph.repeat_cursor_after_page = 2

    rows = fake_meta_source(fake_graph, tmp_path, META_PAGE_LIMIT="25").fetch_insights(DAY, DAY)

    assert len(fake_graph.requests("insights")) == 2
    assert len(rows) == 50 and len(set(_keys(rows))) == 50
    assert "repeats an earlier cursor" in caplog.text


def test_fake_meta_overlapping_pages_give_each_row_once(fake_graph, fake_clock, tmp_path):
    fake_graph.overlap_pages = True

    rows = fake_meta_source(fake_graph, tmp_path, META_PAGE_LIMIT="25").fetch_insights(DAY, DAY)

    assert len(fake_graph.requests("insights")) > 6  # the overlap made more pages
    assert rows == fake_graph.rows(DAY.isoformat(), DAY.isoformat())


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("timezone_name", "Europe/London", "AELP2_ACCOUNT_TIMEZONE"),
        ("currency", "EUR", "AELP2_ACCOUNT_CURRENCY"),
    ],
)
def test_fake_meta_an_account_unlike_the_settings_fails_before_any_fetch(
    fake_graph, fake_clock, tmp_path, field, value, says
):
    fake_graph.account[field] = value
    source = fake_meta_source(fake_graph, tmp_path)

    with pytest.raises(meta_api.MetaAccountMismatch, match=says) as error:
        source.fetch_insights(DAY, DAY)
    assert repr(value) in str(error.value)
    with pytest.raises(meta_api.MetaAccountMismatch):
        source.fetch_entities(DAY)
    assert not fake_graph.requests("insights")
    assert not fake_graph.requests("campaigns")


def test_fake_meta_entities_in_every_listed_state_with_integer_budgets(
    fake_graph, fake_clock, tmp_path
):
    entities = fake_meta_source(fake_graph, tmp_path).fetch_entities(DAY)

    assert list(entities.columns) == list(ENTITY_COLUMNS)
    levels = entities.groupby("level").size().to_dict()
    assert levels == {"campaign": 14, "adset": 14, "ad": ADS}
    for column in ("daily_budget", "lifetime_budget", "min_daily_budget"):
        assert str(entities[column].dtype) == "Int64"
    campaigns = entities[entities["level"] == "campaign"]
    assert campaigns["daily_budget"].dropna().tolist() == [500000]  # the CBO campaign
    adsets = entities[entities["level"] == "adset"]
    assert (adsets["daily_budget"] == 2000).all()  # minor units: $20.00
    assert adsets["lifetime_budget"].isna().all()  # Meta's "0" means no lifetime budget
    assert "ARCHIVED" in set(adsets["status"])
    ads = entities[entities["level"] == "ad"]
    assert ads["creative_id"].notna().all() and ads["adset_id"].notna().all()
    assert set(entities["min_daily_budget"]) == {100}
    assert set(entities["account_timezone"]) == {"America/Los_Angeles"}
    assert set(entities["account_currency"]) == {"USD"}

    for edge in ("campaigns", "adsets", "ads"):
        (request,) = fake_graph.requests(edge)
        states = set(request.json("effective_status"))
        assert {"ACTIVE", "PAUSED", "ARCHIVED"} <= states
        assert "DELETED" not in states  # Meta refuses it on object edges
    assert "creative" in fake_graph.requests("ads")[0].params["fields"].split(",")
    assert "daily_budget" in fake_graph.requests("adsets")[0].params["fields"].split(",")


@pytest.mark.parametrize(
    ("days_left", "warned"), [(3, True), (6.9, True), (30, False), (None, False)]
)
def test_fake_meta_a_token_expiring_soon_is_warned_about(
    fake_graph, fake_clock, tmp_path, caplog, days_left, warned
):
    if days_left is not None:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days_left)
        fake_graph.token_info["expires_at"] = int(expires.timestamp())

    with caplog.at_level(logging.INFO):
        fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    (check,) = fake_graph.requests("debug_token")
    assert check.params["input_token"] == TOKEN
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("access token expires on" in w for w in warnings) == warned


def test_fake_meta_token_check_uses_the_app_token_with_its_proof(
    fake_graph, fake_clock, tmp_path, caplog
):
    settings = meta_settings(fake_graph, tmp_path, META_APP_ID="2586347315015828")
    source = MetaApiSource.from_settings(settings, TOKEN, app_secret=APP_SECRET)

    source.fetch_insights(DAY, DAY)

    (check,) = fake_graph.requests("debug_token")
    app_token = f"2586347315015828|{APP_SECRET}"
    assert check.params["access_token"] == app_token
    assert check.params["appsecret_proof"] == _proof(app_token)
    (insights,) = fake_graph.requests("insights")
    assert insights.params["access_token"] == TOKEN
    assert insights.params["appsecret_proof"] == _proof(TOKEN)
    assert APP_SECRET not in caplog.text


def _proof(token: str) -> str:
    return hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()


def test_fake_meta_a_token_that_cannot_inspect_itself_is_only_a_warning(
    fake_graph, fake_clock, tmp_path, caplog
):
    # a system user token asking debug_token about itself (mureo PR #744)
    fake_graph.faults["debug_token"] = deque(
        [
            Response(
                json.dumps(
                    {
                        "error": {
                            "message": "(#100) You must provide an app access token, or a user"
                            " access token that is an owner or developer of the app",
                            "type": "OAuthException",
                            "code": 100,
                        }
                    }
                ),
                status=400,
                content_type="application/json",
            )
        ]
    )

    rows = fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    assert len(rows) == ADS * 3
    assert "could not read the access token's expiry" in caplog.text
    assert "META_APP_ID" in caplog.text


def test_fake_meta_request_logs_never_show_the_token(fake_graph, fake_clock, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY + dt.timedelta(days=1))

    urls = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert any("access_token=[redacted]" in line for line in urls)
    assert TOKEN not in caplog.text


def test_the_sdk_crash_reporter_stays_off(fake_graph, fake_clock, tmp_path):
    hook = sys.excepthook

    fake_meta_source(fake_graph, tmp_path).fetch_insights(DAY, DAY)

    assert CrashReporter.reporter_instance is None
    assert sys.excepthook is hook


def test_nothing_calls_meta_when_definitions_load(fake_graph, tmp_path):
    defs = build_definitions(meta_settings(fake_graph, tmp_path))

    source = defs.resources["insights_source"]
    assert isinstance(source, MetaApiSource)
    assert fake_graph.seen == []
    assert source.access_token.env_var_name == "META_ACCESS_TOKEN"
    assert source.app_secret is None  # no META_APP_ID: no app secret


def test_the_switch_builds_the_meta_source_only_with_an_account(fake_graph, tmp_path):
    with_app = resources_for(meta_settings(fake_graph, tmp_path, META_APP_ID="1"))
    assert with_app["insights_source"].app_secret.env_var_name == "META_APP_SECRET"
    no_account = Aelp2Settings.from_env(
        {"AELP2_SOURCE": "meta", "AELP2_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    )
    with pytest.raises(ValueError, match="META_AD_ACCOUNT_ID"):
        resources_for(no_account)
    prod = resources_for(meta_settings(fake_graph, tmp_path, AELP2_ENV="prod"))
    assert isinstance(prod["insights_source"], MetaApiSource)
    assert type(prod["warehouse"]).__name__ == "BigQueryWarehouse"
    prod_into_duckdb = meta_settings(
        fake_graph, tmp_path, AELP2_ENV="prod", AELP2_WAREHOUSE="duckdb"
    )
    assert isinstance(resources_for(prod_into_duckdb)["insights_source"], MetaApiSource)


def test_meta_usage_headers_are_read_whatever_their_case(shared_data):
    path = shared_data / EXAMPLES / "graph_api_error_and_status_shapes.json"
    headers = json.loads(path.read_text())["rate_limit_headers"]

    app = meta_api.read_usage({"X-App-Usage": headers["x-app-usage"]})
    assert (app.percent, app.header) == (28, "x-app-usage")
    account = meta_api.read_usage({"X-AD-ACCOUNT-USAGE": headers["x-ad-account-usage"]})
    assert (account.percent, account.reset_seconds) == (9.67, 100)
    business = meta_api.read_usage(
        {"x-business-use-case-usage": headers["x-business-use-case-usage_insights_shape"]}
    )
    assert (business.percent, business.regain_seconds) == (95, 60)
    throttle = meta_api.read_usage(
        {"X-FB-Ads-Insights-Throttle": headers["x-fb-ads-insights-throttle"]}
    )
    assert throttle.percent == 0
    every = meta_api.read_usage(
        {
            "x-app-usage": headers["x-app-usage"],
            "x-ad-account-usage": headers["x-ad-account-usage"],
            "x-business-use-case-usage": headers["x-business-use-case-usage"],
            "x-fb-ads-insights-throttle": headers["x-fb-ads-insights-throttle"],
        }
    )
    assert (every.percent, every.header) == (28, "x-app-usage")
    assert meta_api.read_usage({"x-app-usage": "not json"}) == meta_api.Usage()


@pytest.mark.parametrize(
    ("value", "minor"),
    [("2000", 2000), (2000, 2000), ("0", None), (None, None), ("", None), (100.0, 100)],
)
def test_meta_budgets_are_integer_minor_units(value, minor):
    assert meta_api.minor_units(value, "daily_budget") == minor


@pytest.mark.parametrize("value", ["20.50", "-100", "lots"])
def test_meta_a_budget_that_is_not_whole_minor_units_is_refused(value):
    with pytest.raises(meta_api.MetaApiError, match="daily_budget"):
        meta_api.minor_units(value, "daily_budget")
