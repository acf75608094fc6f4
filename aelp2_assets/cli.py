"""``aelp2-demo``: run the main job once on the settings in force and print what it decided.

With no settings this is the embedded default: the demo simulator into a DuckDB file, no
credentials, no network. Runs go to the Dagster instance in DAGSTER_HOME when it is set (so the
UI shows them), else to a throwaway one.
"""

import argparse
import datetime as dt
import os
import sys
import time

import dagster as dg
import duckdb

from aelp2_assets.definitions import MAIN_JOB, build_definitions
from aelp2_assets.money import to_major_units
from aelp2_assets.resources.settings import Aelp2Settings


def _days(settings: Aelp2Settings, days: int) -> tuple[dt.date, dt.date]:
    """The partitions to run: the ``days`` days up to the source's decision date."""
    defs = build_definitions(settings)
    source = defs.resources["insights_source"]
    end = source.decision_date(settings.account_today())
    first_partition = dt.date.fromisoformat(settings.partition_start_date)
    return max(end - dt.timedelta(days=days - 1), first_partition), end


def run_main_job(
    settings: Aelp2Settings,
    start: dt.date,
    end: dt.date,
    instance: dg.DagsterInstance,
    log_level: str = "DEBUG",
) -> dg.ExecuteInProcessResult:
    """One run of the main job over the daily partitions ``start..end``, as a tick makes it."""
    job = build_definitions(settings).resolve_job_def(MAIN_JOB)
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
        },
    )


def _print_allocation(settings: Aelp2Settings) -> None:
    schema = f'"{settings.dataset}"'
    with duckdb.connect(settings.duckdb_path, read_only=True) as connection:
        allocation = connection.execute(
            f"SELECT arm_id, stage, budget_minor, share, expected_cac, reason"
            f" FROM {schema}.budget_allocations WHERE budget_minor > 0"
            f" ORDER BY budget_minor DESC"
        ).fetchdf()
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
            " ORDER BY table_name",
            [settings.dataset],
        ).fetchall()
    currency = settings.account_currency
    allocation["budget"] = [to_major_units(int(v), currency) for v in allocation["budget_minor"]]
    print(f"\nAllocation of {settings.daily_budget_cap:,.2f} {currency} per day:")
    print(
        allocation[["arm_id", "stage", "budget", "share", "expected_cac", "reason"]].to_string(
            index=False,
            formatters={
                "budget": "{:,.2f}".format,
                "share": "{:.1%}".format,
                "expected_cac": "{:,.2f}".format,
            },
        )
    )
    print(f"Total {allocation['budget'].sum():,.2f} {currency} across {len(allocation)} ad sets.")
    print(f"\nTables: DuckDB file {settings.duckdb_path}, schema {settings.dataset}:")
    print("  " + ", ".join(name for (name,) in tables))


def main(argv: list[str] | None = None) -> int:
    """Run the main job over the last ``--days`` days and print the allocation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=int, default=28, help="days of partitions to (re)load (default 28)"
    )
    arguments = parser.parse_args(argv)
    settings = Aelp2Settings.from_env()
    start, end = _days(settings, arguments.days)
    print(
        f"Running {MAIN_JOB}: source {settings.source_name}, warehouse"
        f" {settings.warehouse_name}, partitions {start}..{end}"
    )

    began = time.perf_counter()
    instance = (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )
    result = run_main_job(settings, start, end, instance, log_level="INFO")
    elapsed = time.perf_counter() - began
    failed_checks = [
        f"{check.asset_key.to_user_string()}.{check.check_name}: {check.description}"
        for check in result.get_asset_check_evaluations()
        if not check.passed
    ]
    print(f"Run {result.run_id}: {'success' if result.success else 'FAILED'} in {elapsed:.1f} s")
    for line in failed_checks:
        print(f"  failed check {line}")
    if not result.success:
        print("Nothing downstream of a failed check ran; the last good allocation stands.")
        return 1
    _print_allocation(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
