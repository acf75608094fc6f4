"""One push at a time: two runs that reach the push together never both write.

What enforces it (Dagster 1.13): the asset's ``pool="meta_budget_push"`` and the shipped
``deploy/dagster.yaml`` (``concurrency: pools: default_limit: 1``, ``granularity: op``). With
op granularity every executor, the in-process one included (``InProcessExecutor`` wraps its
steps in ``InstanceConcurrencyContext``, ``ActiveExecution`` claims a slot before starting a
step in a pool), claims a slot in the instance's event log storage (the ``concurrency_slots``
tables; the SQLite storage of a ``$DAGSTER_HOME`` has them) and waits, polling, while the slot
is held by another run; no daemon is involved. So the test launches two real processes, each
materializing ``pushed_budgets`` by hand (``execute_in_process``, as an engineer's run does),
against one ``$DAGSTER_HOME`` holding the shipped ``dagster.yaml`` verbatim, one warehouse and
one fake Graph API (threaded, each ad set POST held for ``POST_DELAY`` seconds so that two
pushes would overlap). It asserts that no two POSTs were ever in flight together, that one run
was blocked by the pool and then sent nothing (Meta already had the plan: idempotent), and
that the same two launches against a copy of the instance whose yaml lacks the limit do write
at the same time (the control: without the protection this test fails).

Not covered by this protection: two *threads* of one process sharing one instance (the
previous attempt hung on SQLite event storage), and an instance whose yaml is not the shipped
one: without ``default_limit`` the pool is unlimited.
"""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer
from test_meta_fake_graph import TOKEN, install_fake_clock
from test_push_meta import BudgetGraph
from werkzeug import Request, Response

from aelp2_assets.cli import run_main_job
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse

SHIPPED_YAML = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
POST_DELAY = 1.0  # seconds each ad set write is held by the fake Graph API
RUN_TIMEOUT = 180  # seconds a launched push may take before the test kills it

# One hand-launched push of pushed_budgets, as in tests/test_push_meta.py, in its own process.
PUSH = """
import json
import dagster as dg
from aelp2_assets.definitions import build_definitions
from aelp2_assets.resources.settings import Aelp2Settings

defs = build_definitions(Aelp2Settings.from_env())
job = defs.resolve_implicit_global_asset_job_def().get_subset(
    asset_selection={dg.AssetKey("pushed_budgets")}
)
with dg.DagsterInstance.get() as instance:
    result = job.execute_in_process(instance=instance, raise_on_error=False)
print(json.dumps({"run_id": result.run_id, "success": result.success}))
"""


class SlowBudgetGraph(BudgetGraph):
    """The budget fake, holding each ad set write and recording how many were in flight."""

    def __init__(self, server, examples: Path):
        super().__init__(server, examples)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.writes: list[tuple[float, float]] = []  # arrival, answer

    def handle(self, request: Request) -> Response:
        if self._route(request.method, request.path)[0] != "adset_post":
            return super().handle(request)
        arrived = time.monotonic()
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(POST_DELAY)
            return super().handle(request)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.writes.append((arrived, time.monotonic()))

    def reset(self) -> None:
        self.budgets = dict.fromkeys(self.budgets, 2000)
        self.seen.clear()
        self.writes.clear()
        self.in_flight = self.max_in_flight = 0


@pytest.fixture
def graph(shared_data, monkeypatch):
    folder = shared_data / "meta_insights_api_examples"
    if not folder.is_dir():
        pytest.skip(f"Meta's response shapes not found: {folder}")
    install_fake_clock(monkeypatch)  # the preparing run, in this process
    monkeypatch.setenv("META_ACCESS_TOKEN", TOKEN)
    server = HTTPServer(host="127.0.0.1", threaded=True)  # two pushes may be served at once
    server.start()
    try:
        yield SlowBudgetGraph(server, folder)
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def _environ(graph: SlowBudgetGraph, home: Path) -> dict[str, str]:
    return {
        "AELP2_SOURCE": "meta",
        "META_AD_ACCOUNT_ID": graph.account_id,
        "META_GRAPH_URL": graph.graph_url,
        "AELP2_DUCKDB_PATH": str(home / "warehouse.duckdb"),
        "AELP2_PARTITION_START_DATE": "2025-01-01",
        "AELP2_PUSH_MODE": "live",
        "AELP2_PUSH_CAMPAIGNS": ",".join(graph.campaigns),
        "AELP2_PUSH_HOUR": "0",
        "DAILY_BUDGET_CAP": "300",
        "MONTE_CARLO_DRAWS": "100",
    }


def _launch_two(graph: SlowBudgetGraph, home: Path) -> list[dict]:
    """Two hand-launched pushes started together against ``home``; their results."""
    environ = {
        **_environ(graph, home),
        "DAGSTER_HOME": str(home),
        "META_ACCESS_TOKEN": TOKEN,
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(home)),
        **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ},
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PUSH],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=RUN_TIMEOUT)
            assert process.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def _blocked(home: Path, run_id: str) -> bool:
    """Whether the run's push step waited for the pool's slot."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return any(
            "blocked by limit for pool meta_budget_push" in (entry.user_message or "")
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        )


def _applied(home: Path, run_id: str, dataset: str) -> set[str]:
    warehouse = DuckDBWarehouse(database=str(home / "warehouse.duckdb"), dataset=dataset)
    audit = warehouse.read("pushed_budgets")
    rows = audit[audit["run_id"] == run_id]
    return set(rows.loc[rows["status"] == "applied", "adset_id"])


def test_two_pushes_launched_together_take_turns_and_the_second_sends_nothing(graph, tmp_path):
    # The data, checks and allocation of today, made once by a dry run (nothing is sent).
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    settings = Aelp2Settings.from_env({**_environ(graph, prepared), "AELP2_PUSH_MODE": "dry_run"})
    with dg.DagsterInstance.from_config(str(prepared)) as instance:
        today = settings.account_today()
        ready = run_main_job(settings, today - dt.timedelta(days=2), today, instance)
    assert ready.success
    assert graph.posts() == []

    # The shipped instance configuration, verbatim: the pool's limit of one.
    guarded = tmp_path / "guarded"
    shutil.copytree(prepared, guarded)
    shutil.copy(SHIPPED_YAML, guarded / "dagster.yaml")
    assert "default_limit: 1" in (guarded / "dagster.yaml").read_text()
    # The control: the same state, an instance configuration without the limit.
    unguarded = tmp_path / "unguarded"
    shutil.copytree(prepared, unguarded)

    graph.reset()
    first, second = _launch_two(graph, guarded)
    assert first["success"] and second["success"]
    posts = graph.posts()
    assert posts, "the push wrote nothing: nothing to take turns over"
    assert graph.max_in_flight == 1  # never two writes at once
    # exactly one run waited for the pool; it found Meta already changed and sent nothing
    waited = [run for run in (first, second) if _blocked(guarded, run["run_id"])]
    assert len(waited) == 1
    (pusher,) = [run for run in (first, second) if run is not waited[0]]
    assert _applied(guarded, pusher["run_id"], settings.dataset) == {adset for adset, _ in posts}
    assert _applied(guarded, waited[0]["run_id"], settings.dataset) == set()
    assert len(posts) == len({adset for adset, _ in posts})  # each ad set written once

    # Without the limit the same two launches write at the same time.
    graph.reset()
    first, second = _launch_two(graph, unguarded)
    assert first["success"] and second["success"]
    assert graph.max_in_flight == 2, "the control did not overlap: the test proves nothing"
    assert not _blocked(unguarded, first["run_id"])
    assert not _blocked(unguarded, second["run_id"])
