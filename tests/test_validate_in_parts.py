"""Validating a long range a few days at a time gives what one pass over it gives."""

import datetime as dt
import json
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_validation import BAD_MUTATIONS, PURCHASE, raw_frame, raw_row

from aelp2_assets import validation
from aelp2_assets.assets.validate import DAYS_AT_A_TIME, REJECTS_TABLE
from aelp2_assets.cli import run_main_job
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse
from aelp2_assets.validation import unreconciled_totals, validate_in_parts, validate_insights

DAYS = [f"2025-03-0{day}" for day in range(1, 6)]


@st.composite
def days_of_raw(draw: st.DrawFn) -> pd.DataFrame:
    """Good, bad, identically copied and conflicting rows over five days, in date order."""
    rows: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=30))):
        number = len(rows) + 1
        kind = draw(st.sampled_from(["good", "bad", "copy", "conflict"]))
        if kind in ("copy", "conflict") and rows:
            earlier = draw(st.sampled_from(rows))
            spend = earlier["spend"] if kind == "copy" else f"{number}.25"
            rows.append({**earlier, "row_number": number, "spend": spend})
            continue
        day = draw(st.sampled_from(DAYS))
        overrides = draw(st.sampled_from(BAD_MUTATIONS)) if kind == "bad" else {}
        # a bad row keeps a day of the range: the warehouse is read by its days
        overrides = {key: value for key, value in overrides.items() if key != "date_start"}
        rows.append(raw_row(number, **{"date_start": day, "date_stop": day, **overrides}))
    return raw_frame(rows).sort_values("date_start", kind="stable", ignore_index=True)


def _by_day(raw: pd.DataFrame) -> list[pd.DataFrame]:
    return [part for _, part in raw.groupby("date_start", sort=True)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days_of_raw())
def test_parts_give_the_valid_rows_rejects_and_checks_of_one_pass(raw: pd.DataFrame) -> None:
    whole = validate_insights(raw, PURCHASE)

    parts = validate_in_parts(_by_day(raw), PURCHASE)

    pd.testing.assert_frame_equal(parts.result.valid, whole.valid)
    pd.testing.assert_frame_equal(parts.result.rejects, whole.rejects)
    assert parts.result.duplicates_dropped == whole.duplicates_dropped
    assert parts.raw_rows == len(raw)
    pd.testing.assert_frame_equal(
        parts.unreconciled, unreconciled_totals(whole.valid, raw, whole.rejects)
    )


def test_totals_that_differ_come_in_one_pass_order(monkeypatch) -> None:
    raw = raw_frame([raw_row(1, date_start=day, date_stop=day) for day in DAYS])

    def tampered(
        raw: pd.DataFrame, action_type: str, currency: str | None = None
    ) -> validation.ValidationResult:
        result = validate_insights(raw, action_type, currency)
        valid = result.valid.assign(spend=result.valid["spend"] + 1, clicks=0)
        return validation.ValidationResult(valid, result.rejects, result.duplicates_dropped)

    whole = tampered(raw, PURCHASE)
    monkeypatch.setattr(validation, "validate_insights", tampered)

    unreconciled = validate_in_parts(_by_day(raw), PURCHASE).unreconciled

    expected = unreconciled_totals(whole.valid, raw, whole.rejects)
    assert len(expected) == 2 * len(DAYS)  # spend and clicks differ on every day
    pd.testing.assert_frame_equal(unreconciled, expected)


def _export_row(day: dt.date, ad: int, **overrides: str) -> dict:
    return {
        "date_start": day.isoformat(),
        "date_stop": day.isoformat(),
        "campaign_id": "10",
        "adset_id": "20",
        "ad_id": str(ad),
        "publisher_platform": "facebook",
        "platform_position": "feed",
        "impression_device": "mobile_app",
        "spend": f"{ad + day.day}.50",
        "impressions": "1000",
        "clicks": "20",
        "actions": [{"action_type": PURCHASE, "value": "2"}],
        **overrides,
    }


def test_a_reject_in_a_later_week_is_named_by_row_field_and_value(tmp_path) -> None:
    first = dt.date(2024, 3, 1)
    days = [first + dt.timedelta(days=offset) for offset in range(2 * DAYS_AT_A_TIME + 1)]
    rows = [_export_row(day, ad) for day in days for ad in (1, 2)]
    bad_row = 2 * (DAYS_AT_A_TIME + 2) + 2  # ad 2 on the tenth day: the second week
    rows[bad_row - 1]["spend"] = "12,5"
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = Aelp2Settings.from_env(
        {
            "AELP2_SOURCE": "file",
            "AELP2_SOURCE_FILE": str(export),
            "AELP2_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "AELP2_PARTITION_START_DATE": first.isoformat(),
        }
    )
    warehouse = DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset)

    with dg.instance_for_test() as instance:
        result = run_main_job(settings, first, days[-1], instance)

    failed = {c.check_name: c for c in result.get_asset_check_evaluations() if not c.passed}
    assert set(failed) == {"no_rejected_rows"}
    assert failed["no_rejected_rows"].description == (
        "1 rejected rows (tolerance 0); first: row 20 (2024-03-10, ad 2):"
        " spend='12,5': spend '12,5' is not a number"
    )
    # what was stored is what one pass over the whole range finds
    whole = validate_insights(warehouse.read("raw_meta_metrics", compact_text=True), PURCHASE)
    stored = warehouse.read("validated_meta_metrics")
    assert len(stored) == len(rows) - 1
    pd.testing.assert_frame_equal(
        stored[["date", "ad_id", "spend"]],
        whole.valid[["date", "ad_id", "spend"]].astype({"ad_id": object}),
    )
    rejects = warehouse.read(REJECTS_TABLE)
    assert rejects[["row_number", "field", "value"]].values.tolist() == [[20, "spend", "12,5"]]


@pytest.mark.parametrize("days", [1, DAYS_AT_A_TIME, DAYS_AT_A_TIME + 1, 90])
def test_day_ranges_cover_the_range_once(days: int) -> None:
    from aelp2_assets.assets.validate import _day_ranges

    start = dt.date(2024, 12, 28)
    end = start + dt.timedelta(days=days - 1)
    ranges = list(_day_ranges(start, end))

    covered = [
        dt.date.fromisoformat(first) + dt.timedelta(days=offset)
        for first, last in ranges
        for offset in range((dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1)
    ]
    assert covered == [start + dt.timedelta(days=offset) for offset in range(days)]
    assert all(
        (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days < DAYS_AT_A_TIME
        for first, last in ranges
    )
