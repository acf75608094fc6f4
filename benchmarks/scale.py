"""How the whole graph scales: ingest from the file source to the dry-run push on big accounts.

Run: ``python benchmarks/scale.py [--sizes 250,1000,4000] [--days 90] [--profile DIR]``.

For each size it writes a synthetic Insights export (JSON lines: ``ads`` ads x 5 placements x
``days`` days, four ads to an ad set), then runs ``main_job`` once over every day of it through
``aelp2_assets.cli.run_main_job`` with ``AELP2_SOURCE=file`` and ``AELP2_PUSH_MODE=dry_run``,
each size in a fresh process so its figures are its own. Printed per size: the rows, the wall
time of the run (file generation excluded), rows per second, and the process's peak resident
memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the whole process, Python and native
buffers such as DuckDB's and numpy's, not only the Python heap). Then, per size, each step of the
run: its wall time (from the run's event log) and the process's peak resident memory while it
ran (sampled every 20 ms), so the stage that costs shows. ``--profile DIR`` also writes a
cProfile of each run to DIR (read it with ``python -m pstats``).

Goal (issue 5): 4,000 ads (1.8 million rows) within 3 minutes and 3 GB, time growing no faster
than the rows.
"""

import argparse
import cProfile
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PURCHASE = "offsite_conversion.fb_pixel_purchase"
ADS_PER_ADSET = 4
DAILY_BUDGET = 30_000.0
START = dt.date(2025, 1, 1)

# (publisher_platform, platform_position, impression_device, cpm, ctr, cvr): DESIGN.md's
# placements, and Marketplace as the fifth.
PLACEMENTS = (
    ("facebook", "feed", "desktop", 14.87, 0.0135, 0.0068),
    ("facebook", "feed", "mobile_app", 18.54, 0.0117, 0.0068),
    ("instagram", "instagram_stories", "mobile_app", 8.29, 0.0079, 0.0018),
    ("instagram", "instagram_reels", "mobile_app", 5.02, 0.0105, 0.0012),
    ("facebook", "marketplace", "mobile_app", 9.50, 0.0090, 0.0030),
)


def write_export(path: Path, ads: int, days: int, seed: int = 0) -> int:
    """Write ``ads`` x 5 placements x ``days`` Insights rows to ``path``; returns the row count.

    Spend is the daily budget split evenly over ads with a per-ad, per-placement lognormal
    weight; impressions, clicks and purchases are Poisson given spend and the placement's
    rates times a per-ad creative effect. Rows are formatted from a template (not
    ``json.dumps`` per row) so a 1.8-million-row file takes seconds, not minutes.
    """
    rng = np.random.default_rng(seed)
    n_places = len(PLACEMENTS)
    cpm = np.array([p[3] for p in PLACEMENTS])
    ctr = np.array([p[4] for p in PLACEMENTS])
    cvr = np.array([p[5] for p in PLACEMENTS])
    weight = rng.lognormal(0.0, 0.5, (ads, n_places))
    weight /= weight.sum()
    ctr_effect = rng.lognormal(0.0, 0.25, ads)[:, None]
    cvr_effect = rng.lognormal(0.0, 0.35, ads)[:, None]
    head = (
        '{{"date_start": "{day}", "date_stop": "{day}", "account_id": "100000000000001",'
        ' "account_currency": "USD", "campaign_id": "120200000000000001",'
        ' "campaign_name": "Scale test", "adset_id": "{adset}", "adset_name": "Ad set {adset}",'
        ' "ad_id": "{ad}", "ad_name": "Ad {ad}", "publisher_platform": "{platform}",'
        ' "platform_position": "{position}", "impression_device": "{device}",'
    )
    template = head + (
        ' "spend": "{spend:.2f}", "impressions": "{impressions}", "clicks": "{clicks}",'
        ' "actions": [{{"action_type": "link_click", "value": "{clicks}"}},'
        ' {{"action_type": "' + PURCHASE + '", "value": "{purchases}"}}]}}\n'
    )
    ad_ids = [f"{120202000000000000 + i + 1}" for i in range(ads)]
    adset_ids = [f"{120201000000000000 + i // ADS_PER_ADSET + 1}" for i in range(ads)]
    rows = 0
    with path.open("w") as out:
        for offset in range(days):
            day = (START + dt.timedelta(days=offset)).isoformat()
            noise = rng.lognormal(0.0, 0.2, (ads, n_places))
            spend = np.round(DAILY_BUDGET * weight * noise, 2)
            impressions = rng.poisson(spend / cpm * 1000.0)
            clicks = rng.binomial(impressions, np.minimum(ctr * ctr_effect, 0.5))
            purchases = rng.binomial(clicks, np.minimum(cvr * cvr_effect, 0.5))
            lines = []
            for i in range(ads):
                for j, (platform, position, device, *_rates) in enumerate(PLACEMENTS):
                    lines.append(
                        template.format(
                            day=day,
                            adset=adset_ids[i],
                            ad=ad_ids[i],
                            platform=platform,
                            position=position,
                            device=device,
                            spend=spend[i, j],
                            impressions=impressions[i, j],
                            clicks=clicks[i, j],
                            purchases=purchases[i, j],
                        )
                    )
            out.writelines(lines)
            rows += len(lines)
    return rows


class ResidentMemory:
    """The process's resident memory, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.02):
        self.samples: list[tuple[float, float]] = []  # (unix time, MB)
        self._interval = interval
        self._stop = threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with open("/proc/self/statm") as statm:
            while not self._stop.is_set():
                statm.seek(0)
                self.samples.append((time.time(), int(statm.read().split()[1]) * self._page_mb))
                self._stop.wait(self._interval)

    def __enter__(self) -> "ResidentMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> float:
        """The highest sample taken from ``start`` to ``end`` (unix times)."""
        return max((mb for at, mb in self.samples if start <= at <= end), default=float("nan"))


def step_figures(instance, run_id: str, memory: ResidentMemory) -> list[dict]:
    """Each step of the run in the order it started: wall seconds and peak RSS while it ran."""
    began, ended = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            began[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ended[event.step_key] = entry.timestamp
    return [
        {
            "step": step,
            "wall_s": ended[step] - start,
            "peak_rss_mb": memory.peak_between(start, ended[step]),
        }
        for step, start in sorted(began.items(), key=lambda item: item[1])
        if step in ended
    ]


def run_one(ads: int, days: int, workdir: Path, profile_dir: Path | None) -> dict:
    """Generate the export and run the main job once over it, in this process."""
    export = workdir / f"scale_{ads}.jsonl"
    began = time.perf_counter()
    rows = write_export(export, ads, days)
    generated = time.perf_counter() - began

    os.environ.update(
        {
            "AELP2_ENV": "local",
            "AELP2_SOURCE": "file",
            "AELP2_SOURCE_FILE": str(export),
            "AELP2_WAREHOUSE": "duckdb",
            "AELP2_DUCKDB_PATH": str(workdir / f"scale_{ads}.duckdb"),
            "AELP2_PARTITION_START_DATE": START.isoformat(),
            "AELP2_ACCOUNT_CURRENCY": "USD",
            "AELP2_HISTORY_DAYS": str(days),
            "AELP2_MAX_REJECTED_ROWS": "0",
            "AELP2_PUSH_MODE": "dry_run",
            "DAILY_BUDGET_CAP": str(DAILY_BUDGET),
        }
    )
    # imported here: the settings and definitions read the environment set just above
    import dagster as dg

    from aelp2_assets.cli import run_main_job
    from aelp2_assets.resources.settings import Aelp2Settings

    settings = Aelp2Settings.from_env()
    end = START + dt.timedelta(days=days - 1)
    instance = dg.DagsterInstance.ephemeral()
    profiler = cProfile.Profile() if profile_dir else None
    with ResidentMemory() as memory:
        began = time.perf_counter()
        if profiler:
            profiler.enable()
        result = run_main_job(settings, START, end, instance, "WARNING")
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(profile_dir / f"scale_{ads}.prof"))
        wall = time.perf_counter() - began
    failures = [
        event.step_failure_data.error.message.strip()
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data.error
    ]
    return {
        "ads": ads,
        "rows": rows,
        "generate_s": generated,
        "wall_s": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "success": result.success,
        "failures": failures[:3],
        "steps": step_figures(instance, result.run_id, memory),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250,1000,4000", help="ads per account, comma separated")
    parser.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of each run here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child's single size
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)

    if arguments.one:
        figures = run_one(arguments.one, arguments.days, arguments.workdir, arguments.profile)
        sys.stdout.write("SCALE " + json.dumps(figures) + "\n")
        return 0

    sizes = [int(size) for size in arguments.sizes.split(",")]
    lines = [
        f"Whole graph (file source -> dry-run push), {arguments.days} days, 5 placements,"
        f" {ADS_PER_ADSET} ads per ad set; peak memory is the process's max RSS",
        "| ads | rows | wall time | rows/s | peak RSS | s per 100k rows | run |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    failed = False
    stages = {}
    for ads in sizes:
        with tempfile.TemporaryDirectory(prefix="aelp2_scale_") as workdir:
            command = [sys.executable, __file__, "--one", str(ads), "--days", str(arguments.days)]
            command += ["--workdir", workdir]
            if arguments.profile:
                arguments.profile.mkdir(parents=True, exist_ok=True)
                command += ["--profile", str(arguments.profile)]
            child = subprocess.run(command, capture_output=True, text=True, check=False)
        reports = [line for line in child.stdout.splitlines() if line.startswith("SCALE ")]
        if child.returncode != 0 or not reports:
            print(f"| {ads:,} | - | - | - | - | - | crashed: {child.stderr.strip()[-400:]} |")
            failed = True
            continue
        figures = json.loads(reports[-1][len("SCALE ") :])
        stages[ads] = figures["steps"]
        status = "ok" if figures["success"] else f"FAILED: {figures['failures']}"
        failed |= not figures["success"]
        print(
            f"| {ads:,} | {figures['rows']:,} | {figures['wall_s']:.1f} s"
            f" | {figures['rows'] / figures['wall_s']:,.0f}"
            f" | {figures['peak_rss_mb']:,.0f} MB"
            f" | {figures['wall_s'] / figures['rows'] * 1e5:.2f} | {status} |",
            flush=True,
        )
    for ads, steps in stages.items():
        print(f"\nSteps of the {ads:,}-ad run (wall time, peak RSS while the step ran):")
        print("| step | wall time | peak RSS |\n|---|---|---|")
        for step in steps:
            print(f"| {step['step']} | {step['wall_s']:.1f} s | {step['peak_rss_mb']:,.0f} MB |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
