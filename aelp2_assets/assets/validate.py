"""Validate: typed, de-duplicated insights, with blocking checks on everything money uses."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from aelp2_assets.assets.ingest import partition_days
from aelp2_assets.assets.metadata import markdown_preview
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import WarehouseResource
from aelp2_assets.validation import (
    ValidatedMetrics,
    clicks_above_impressions,
    duplicate_keys,
    negative_spend,
    reject_summary,
    rejected_row_count,
    validate_in_parts,
)

REJECTS_TABLE = "validated_meta_metrics_rejects"
# Raw days validated at a time: every rule is within one day, and a week of a large account's
# raw rows is a fraction of the memory of 90 days' (benchmarks/scale.py).
DAYS_AT_A_TIME = 7

_CHECKS = {
    "no_rejected_rows": "Every raw row passed validation (or the rejects are within tolerance).",
    "matches_schema": "The table matches the pandera schema ValidatedMetrics.",
    "unique_keys": "One row per day, ad and placement.",
    "spend_not_negative": "No negative spend.",
    "clicks_within_impressions": "Clicks never exceed impressions.",
    "totals_reconcile": "Spend, impressions and clicks add up to the accepted raw rows.",
}


def _rows_check(name: str, failing: pd.DataFrame) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=failing.empty,
        metadata={"failing_rows": len(failing), "failures": markdown_preview(failing, 20)},
    )


def _schema_check(valid: pd.DataFrame) -> dg.AssetCheckResult:
    try:
        ValidatedMetrics.validate(valid, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return _rows_check("matches_schema", errors.failure_cases)
    return _rows_check("matches_schema", pd.DataFrame())


def build_validate_assets(daily: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The validation asset over the account's daily partitions, with its blocking checks."""

    @dg.asset(
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["raw_meta_metrics"],
        metadata={"partition_expr": "date"},
        check_specs=[
            dg.AssetCheckSpec(name, asset="validated_meta_metrics", blocking=True, description=text)
            for name, text in _CHECKS.items()
        ],
        group_name="validate",
        kinds={"pandas", "pandera", "duckdb"},
        owners=["team:ads-ops"],
    )
    def validated_meta_metrics(
        context: dg.AssetExecutionContext, settings: Aelp2Settings, warehouse: WarehouseResource
    ):
        """One typed row per account-local day x ad x placement, from ``raw_meta_metrics``.

        Numbers coerced, identical duplicates collapsed, and one canonical conversion count per
        row: the configured action type only, never the sum of its aliases. Rows that fail are
        kept aside in ``validated_meta_metrics_rejects`` with their reasons and fail the
        blocking check ``no_rejected_rows``, which names the row, field and value.
        """
        start, end = partition_days(context)
        checked = validate_in_parts(
            (
                warehouse.read("raw_meta_metrics", "date_start", first, last, compact_text=True)
                for first, last in _day_ranges(start, end)
            ),
            settings.conversion_action_type,
            settings.account_currency,
        )
        result = checked.result
        # raw rows were read by their ISO date_start, so every reject's date parses
        rejects = result.rejects.assign(date=pd.to_datetime(result.rejects["date"]))
        warehouse.replace(REJECTS_TABLE, rejects, "date", list(pd.date_range(start, end)))

        rejected = rejected_row_count(result.rejects)
        context.log.info(
            f"{start}..{end}: {checked.raw_rows} raw rows -> {len(result.valid)} valid,"
            f" {rejected} rejected into {REJECTS_TABLE},"
            f" {result.duplicates_dropped} identical copies of kept rows dropped"
        )
        yield dg.Output(
            result.valid,
            metadata={
                "dagster/row_count": len(result.valid),
                "rejected_rows": int(rejected),
                "identical_copies_dropped": result.duplicates_dropped,
                "spend": float(result.valid["spend"].sum()),
                "conversions": int(result.valid["conversions"].sum()),
                "preview": markdown_preview(result.valid),
            },
        )
        yield dg.AssetCheckResult(
            check_name="no_rejected_rows",
            passed=bool(rejected <= settings.max_rejected_rows),
            description=(
                f"{rejected} rejected rows (tolerance {settings.max_rejected_rows})"
                + (f"; first: {_first_problem(result.rejects)}" if rejected else "")
            ),
            metadata={
                "rejected_rows": int(rejected),
                "rejects": dg.MetadataValue.md(reject_summary(result.rejects)),
            },
        )
        yield _schema_check(result.valid)
        yield _rows_check("unique_keys", duplicate_keys(result.valid))
        yield _rows_check("spend_not_negative", negative_spend(result.valid))
        yield _rows_check("clicks_within_impressions", clicks_above_impressions(result.valid))
        yield _rows_check("totals_reconcile", checked.unreconciled)

    return [validated_meta_metrics]


def _day_ranges(start: dt.date, end: dt.date) -> Iterator[tuple[str, str]]:
    """``start..end`` as ranges of at most ``DAYS_AT_A_TIME`` days: first and last day, ISO."""
    first = start
    while first <= end:
        last = min(first + dt.timedelta(days=DAYS_AT_A_TIME - 1), end)
        yield first.isoformat(), last.isoformat()
        first = last + dt.timedelta(days=1)


def _first_problem(rejects: pd.DataFrame) -> str:
    first = rejects.iloc[0]
    return (
        f"row {first['row_number']} ({first['date']}, ad {first['ad_id']}):"
        f" {first['field']}={first['value']!r}: {first['reason']}"
    )
