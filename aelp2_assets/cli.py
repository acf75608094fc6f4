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

from aelp2_assets.definitions import MAIN_JOB, build_definitions
from aelp2_assets.money import format_minor
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse


def _days(settings: Aelp2Settings, days: int) -> tuple[dt.date, dt.date]:
    """The partitions to run: the ``days`` days up to the source's decision date."""
    try:
        defs = build_definitions(settings)
    except ValueError as error:  # a source without what it needs (META_AD_ACCOUNT_ID, say)
        raise SystemExit(str(error)) from None
    source = defs.resources["insights_source"]
    try:
        end = source.decision_date(settings.account_today())
    except ValueError as error:  # a source that cannot say its last day names the row and value
        raise SystemExit(f"{settings.source_name} source: {error}") from None
    except FileNotFoundError:
        raise SystemExit(
            f"{settings.source_name} source: no file {settings.source_file!r}"
            " (AELP2_SOURCE_FILE, relative to this folder)"
        ) from None
    first_partition = dt.date.fromisoformat(settings.partition_start_date)
    if end < first_partition:
        raise SystemExit(
            f"the decision date {end} is before AELP2_PARTITION_START_DATE="
            f"{settings.partition_start_date}: there is no partition to run"
        )
    return max(end - dt.timedelta(days=days - 1), first_partition), end


def _at_least_one(text: str) -> int:
    days = int(text)
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {days}")
    return days


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
    warehouse = DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset)
    allocation = warehouse.read("budget_allocations")
    allocation = allocation[allocation["budget_minor"] > 0].sort_values(
        "budget_minor", ascending=False
    )
    currency = settings.account_currency
    allocation["budget"] = [format_minor(v, currency) for v in allocation["budget_minor"]]
    print(f"\nAllocation of {format_minor(settings.daily_budget_cap_minor, currency)} per day:")
    print(
        allocation[["arm_id", "stage", "budget", "share", "expected_cac", "reason"]].to_string(
            index=False,
            formatters={"share": "{:.1%}".format, "expected_cac": "{:,.2f}".format},
        )
    )
    total = format_minor(int(allocation["budget_minor"].sum()), currency)
    print(f"Total {total} across {len(allocation)} ad sets.")
    print(f"\nTables: DuckDB file {settings.duckdb_path}, schema {settings.dataset}:")
    print("  " + ", ".join(warehouse.table_names()))


def _config_problem(message: str) -> str:
    """A Dagster config error's own words, without its stack trace and exception class."""
    last_line = message.split("\n\nStack Trace")[0].strip().splitlines()[-1]
    return last_line.split("Error: ", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    """Run the main job over the last ``--days`` days and print the allocation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=_at_least_one, default=28, help="days of partitions to (re)load (default 28)"
    )
    arguments = parser.parse_args(argv)
    try:
        settings = Aelp2Settings.from_env()
    except ValueError as error:  # names the variable and its value
        raise SystemExit(str(error)) from None
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
    try:
        result = run_main_job(settings, start, end, instance, log_level="INFO")
    except dg.DagsterInvalidConfigError as error:  # a resource's EnvVar not set, say
        raise SystemExit(
            "configuration: " + "; ".join(_config_problem(p.message) for p in error.errors)
        ) from None
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
        for failure in (event for event in result.all_events if event.is_step_failure):
            error = failure.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause  # Dagster's wrapper first; the cause says what went wrong
            print(f"  step {failure.step_key} failed: {error.message.strip() if error else ''}")
        pushed = any(
            event.asset_key == dg.AssetKey("pushed_budgets")
            for event in result.get_asset_materialization_events()
        )
        print(
            "The allocation and its push ran (the failure is not upstream of them)."
            if pushed
            else "The push did not run; the last good allocation stands."
        )
        return 1
    _print_allocation(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
