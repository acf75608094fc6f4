"""Tests of aelp2_assets.validation on raw frames built by hand, as Meta sends them (text)."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aelp2_assets import tables
from aelp2_assets.validation import (
    ValidatedMetrics,
    checked_entities,
    clicks_above_impressions,
    duplicate_keys,
    negative_spend,
    reject_summary,
    unreconciled_totals,
    validate_insights,
)

PURCHASE = "offsite_conversion.fb_pixel_purchase"
PULLED_AT = pd.Timestamp("2025-03-05 06:00", tz="UTC")
REAL_RESPONSE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/meta_insights_api_examples/ads_edge_nested_insights_by_publisher_platform.json"
)


def actions_json(counts: dict[str, str]) -> str:
    """Meta's actions list for the given action types and text values."""
    return json.dumps([{"action_type": kind, "value": value} for kind, value in counts.items()])


def raw_row(row_number: int, **overrides: Any) -> dict[str, Any]:
    """One raw insights row for ad a<row_number>, daily, Facebook feed on mobile, as text."""
    row = {
        "date_start": "2025-03-04",
        "date_stop": "2025-03-04",
        "account_id": "1001",
        "account_currency": "USD",
        "campaign_id": "2001",
        "campaign_name": "Spring sale",
        "adset_id": "3001",
        "adset_name": "Lookalike 1%",
        "ad_id": f"a{row_number}",
        "ad_name": f"creative {row_number}",
        "publisher_platform": "facebook",
        "platform_position": "feed",
        "impression_device": "mobile_app",
        "spend": "12.34",
        "impressions": "1000",
        "clicks": "20",
        "actions": actions_json(
            {"link_click": "20", "purchase": "2", "omni_purchase": "2", PURCHASE: "2"}
        ),
        "action_values": actions_json(
            {"purchase": "80.5", "omni_purchase": "80.5", PURCHASE: "80.5"}
        ),
        "row_number": row_number,
        "pulled_at": PULLED_AT,
    }
    row.update(overrides)
    return row


def raw_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A raw_meta_metrics frame of the rows, columns in the contract's order."""
    return pd.DataFrame(rows, columns=list(tables.RAW_COLUMNS))


def rejects_of(result_rejects: pd.DataFrame, row_number: int) -> pd.DataFrame:
    """The reject rows of one raw row."""
    return result_rejects.loc[result_rejects["row_number"] == row_number]


# --- clean input -----------------------------------------------------------------------------


def test_clean_frame_passes_with_canonical_conversions() -> None:
    raw = raw_frame(
        [
            raw_row(1),
            raw_row(2, platform_position="instagram_reels", publisher_platform="instagram"),
            raw_row(3, spend="0", impressions="0", clicks="0", actions=None, action_values=None),
        ]
    )

    result = validate_insights(raw, PURCHASE)

    assert result.rejects.empty
    assert result.duplicates_dropped == 0
    assert list(result.valid["ad_id"]) == ["a1", "a2", "a3"]
    # purchase, omni_purchase and the pixel purchase are one purchase listed three times.
    assert list(result.valid["conversions"]) == [2, 2, 0]
    assert list(result.valid["conversion_value"]) == [80.5, 80.5, 0.0]
    assert list(result.valid["channel"]) == ["Feed", "Reels", "Feed"]
    assert list(result.valid["spend"]) == [12.34, 12.34, 0.0]
    ValidatedMetrics.validate(result.valid)


def test_missing_actions_or_absent_type_count_zero() -> None:
    raw = raw_frame(
        [
            raw_row(1, actions=None, action_values=None),
            raw_row(2, actions=np.nan, action_values=np.nan),
            raw_row(3, actions=actions_json({"link_click": "5", "purchase": "1"})),
        ]
    )

    result = validate_insights(raw, PURCHASE)

    assert result.rejects.empty
    assert list(result.valid["conversions"]) == [0, 0, 0]
    assert list(result.valid["conversion_value"])[:2] == [0.0, 0.0]


def test_configured_action_type_is_the_one_counted() -> None:
    raw = raw_frame([raw_row(1, actions=actions_json({"purchase": "4", PURCHASE: "3"}))])

    assert validate_insights(raw, "purchase").valid["conversions"].tolist() == [4]
    assert validate_insights(raw, PURCHASE).valid["conversions"].tolist() == [3]


def test_valid_types_are_exactly_the_contract() -> None:
    result = validate_insights(raw_frame([raw_row(1), raw_row(2)]), PURCHASE)

    assert list(result.valid.columns) == list(tables.VALIDATED_COLUMNS)
    dtypes = result.valid.dtypes.astype(str).to_dict()
    assert dtypes.pop("date") == "datetime64[ns]"
    assert (result.valid["date"] == pd.Timestamp("2025-03-04")).all()
    for name in ("spend", "conversion_value"):
        assert dtypes.pop(name) == "float64"
    for name in ("impressions", "clicks", "conversions"):
        assert dtypes.pop(name) == "int64"
    # text as Arrow-backed strings (compact for 1.8 million rows), each cell a str
    assert {result.valid[name].dtype for name in dtypes} == {pd.StringDtype("pyarrow")}
    text_cells = result.valid[list(dtypes)].to_numpy().ravel()
    assert all(isinstance(cell, str) for cell in text_cells)
    assert list(result.rejects.columns) == list(tables.REJECT_COLUMNS)


def test_empty_raw_gives_empty_typed_tables() -> None:
    result = validate_insights(raw_frame([]), PURCHASE)

    assert result.valid.empty and result.rejects.empty
    assert str(result.valid["date"].dtype) == "datetime64[ns]"
    assert str(result.valid["impressions"].dtype) == "int64"
    assert list(result.rejects.columns) == list(tables.REJECT_COLUMNS)
    ValidatedMetrics.validate(result.valid)


def test_raw_without_contract_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="actions"):
        validate_insights(raw_frame([raw_row(1)]).drop(columns=["actions"]), PURCHASE)


# --- one problem per bad row -----------------------------------------------------------------

BAD_INPUTS = [
    ({"spend": "abc"}, "spend", "abc", "spend 'abc' is not a number"),
    ({"spend": "1,2"}, "spend", "1,2", "spend '1,2' is not a number"),
    ({"impressions": "nan"}, "impressions", "nan", "impressions 'nan' is not a number"),
    ({"spend": "inf"}, "spend", "inf", "spend 'inf' is not a finite number"),
    ({"ad_id": None}, "ad_id", None, "ad_id is missing"),
    ({"adset_id": np.nan}, "adset_id", None, "adset_id is missing"),
    ({"campaign_id": "  "}, "campaign_id", None, "campaign_id is missing"),
    ({"spend": None}, "spend", None, "spend is missing"),
    ({"platform_position": None}, "platform_position", None, "platform_position is missing"),
    ({"date_start": None}, "date_start", None, "date_start is missing"),
    ({"spend": "-3.2"}, "spend", "-3.2", "spend -3.2 is negative"),
    ({"clicks": "-1"}, "clicks", "-1", "clicks -1 is negative"),
    ({"impressions": "10.5", "clicks": "1"}, "impressions", "10.5", "not a whole number"),
    (
        {"clicks": "120", "impressions": "80"},
        "clicks",
        "120",
        "clicks 120 exceed impressions 80",
    ),
    ({"actions": '[{"action_type": "purchase"'}, "actions", '[{"action_type": "purchase"', "JSON"),
    ({"actions": '{"purchase": 3}'}, "actions", '{"purchase": 3}', "not a list"),
    (
        {"actions": actions_json({PURCHASE: "three"})},
        "actions",
        "three",
        f"actions {PURCHASE} value 'three' is not a number",
    ),
    ({"actions": actions_json({PURCHASE: "-1"})}, "actions", "-1", "is negative"),
    (
        {"actions": actions_json({PURCHASE: "50"})},
        "actions",
        "50",
        "conversions 50 exceed clicks 20",
    ),
    ({"spend": "0"}, "spend", "0", "spend 0 with 20 clicks"),
    ({"action_values": actions_json({PURCHASE: "x"})}, "action_values", "x", "not a number"),
    ({"date_start": "03/04/2025"}, "date_start", "03/04/2025", "is not an ISO date"),
    ({"date_start": "20250304"}, "date_start", "20250304", "is not an ISO date"),
    ({"date_stop": "2025-02-30"}, "date_stop", "2025-02-30", "is not an ISO date"),
    ({"date_stop": "2025-03-21"}, "date_stop", "2025-03-21", "not a daily row"),
]


@pytest.mark.parametrize(("overrides", "field", "value", "reason"), BAD_INPUTS)
def test_bad_input_is_rejected_with_row_field_and_value(
    overrides: dict[str, Any], field: str, value: str | None, reason: str
) -> None:
    raw = raw_frame([raw_row(1), raw_row(2, **overrides), raw_row(3)])

    result = validate_insights(raw, PURCHASE)

    assert len(result.rejects) == 1, result.rejects.to_string()
    reject = result.rejects.iloc[0]
    assert reject["row_number"] == 2
    assert reject["field"] == field
    assert reject["value"] == value
    assert reason in reject["reason"]
    assert reject["date"] == raw.loc[1, "date_start"]
    assert list(result.valid["ad_id"]) == ["a1", "a3"]


def test_rows_in_another_currency_than_the_accounts_are_rejected() -> None:
    raw = raw_frame(
        [raw_row(1), raw_row(2, account_currency="EUR"), raw_row(3, account_currency=None)]
    )

    result = validate_insights(raw, PURCHASE, "USD")

    (reject,) = result.rejects.itertuples()
    assert (reject.row_number, reject.field, reject.value) == (2, "account_currency", "EUR")
    assert "is not AELP2_ACCOUNT_CURRENCY 'USD'" in reject.reason
    assert list(result.valid["ad_id"]) == ["a1", "a3"]  # a row that states none is kept


def test_few_clicks_may_carry_view_through_conversions_or_cost_under_a_cent() -> None:
    # As in the real 2017 export: 2 conversions on 1 click; Meta bills 3 clicks at under a cent.
    raw = raw_frame(
        [
            raw_row(1, clicks="1", actions=actions_json({PURCHASE: "2"})),
            raw_row(2, clicks="3", spend="0"),
            raw_row(3, clicks="10", actions=actions_json({PURCHASE: "10"})),
        ]
    )

    result = validate_insights(raw, PURCHASE)

    assert result.rejects.empty, result.rejects.to_string()
    assert list(result.valid["conversions"]) == [2, 2, 10]


def test_reject_without_ad_id_or_date_records_none() -> None:
    result = validate_insights(raw_frame([raw_row(1, ad_id=None, date_start=None)]), PURCHASE)

    assert result.rejects["ad_id"].isna().all()
    assert result.rejects["date"].isna().all()
    assert set(result.rejects["field"]) == {"ad_id", "date_start"}


def test_row_with_two_problems_gives_two_rejects() -> None:
    raw = raw_frame([raw_row(1), raw_row(2, spend="abc", clicks="-4")])

    result = validate_insights(raw, PURCHASE)

    assert list(result.rejects["row_number"]) == [2, 2]
    assert list(result.rejects["field"]) == ["spend", "clicks"]
    assert list(result.rejects["value"]) == ["abc", "-4"]
    assert list(result.valid["ad_id"]) == ["a1"]


# --- duplicates ------------------------------------------------------------------------------


def test_identical_duplicates_collapse_without_a_reject() -> None:
    first = raw_row(1)
    copy = {**first, "row_number": 2, "pulled_at": PULLED_AT + pd.Timedelta(minutes=1)}
    raw = raw_frame([first, copy, raw_row(3)])

    result = validate_insights(raw, PURCHASE)

    assert result.rejects.empty
    assert result.duplicates_dropped == 1
    assert list(result.valid["ad_id"]) == ["a1", "a3"]


def test_missing_values_written_differently_are_still_identical() -> None:
    raw = raw_frame(
        [
            raw_row(1, actions=None, ad_name=None),
            raw_row(2, ad_id="a1", actions=np.nan, ad_name=""),
        ]
    )

    result = validate_insights(raw, PURCHASE)

    assert result.rejects.empty
    assert result.duplicates_dropped == 1
    assert len(result.valid) == 1


def test_conflicting_duplicates_are_all_rejected() -> None:
    first = raw_row(1)
    raw = raw_frame(
        [
            first,
            {**first, "row_number": 2, "spend": "15.00"},
            raw_row(3),
            {**first, "row_number": 4},
        ]
    )

    result = validate_insights(raw, PURCHASE)

    # Rows 1 and 4 are identical: 4 is dropped, 1 still conflicts with 2.
    assert result.duplicates_dropped == 1
    assert list(result.rejects["row_number"]) == [1, 2]
    assert set(result.rejects["field"]) == {"key"}
    reason = result.rejects["reason"].iloc[0]
    assert "conflicting" in reason and "spend" in reason
    assert "date_start, ad_id, publisher_platform, platform_position, impression_device" in reason
    assert result.rejects["value"].iloc[0].startswith("2025-03-04 / a1 / facebook / feed")
    assert list(result.valid["ad_id"]) == ["a3"]


def test_same_ad_in_other_placement_is_not_a_duplicate() -> None:
    raw = raw_frame([raw_row(1), raw_row(2, ad_id="a1", impression_device="desktop")])

    result = validate_insights(raw, PURCHASE)

    assert result.rejects.empty
    assert len(result.valid) == 2


# --- every raw row accounted for -------------------------------------------------------------

BAD_MUTATIONS = [overrides for overrides, *_ in BAD_INPUTS] + [
    {"spend": "x", "clicks": "9999"},
    {"ad_id": None, "date_stop": "2025-03-09"},
]


@st.composite
def mixed_raw(draw: st.DrawFn) -> tuple[pd.DataFrame, int]:
    """A raw frame of good, bad, identically copied and conflicting rows, and the copies made."""
    rows: list[dict[str, Any]] = []
    copies = 0
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        number = len(rows) + 1
        kind = draw(st.sampled_from(["good", "bad", "copy", "conflict"]))
        day = draw(st.sampled_from(["2025-03-04", "2025-03-05"]))
        if kind in ("copy", "conflict") and rows:
            earlier = draw(st.sampled_from(rows))
            if kind == "copy":
                copies += 1
                rows.append({**earlier, "row_number": number})
            else:
                # A spend no other row has, so the copy shares the key but not the values.
                rows.append({**earlier, "row_number": number, "spend": f"{number}.25"})
            continue
        overrides = draw(st.sampled_from(BAD_MUTATIONS)) if kind == "bad" else {}
        rows.append(raw_row(number, **{"date_start": day, "date_stop": day, **overrides}))
    return raw_frame(rows), copies


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_raw())
def test_every_raw_row_is_valid_dropped_or_rejected(case: tuple[pd.DataFrame, int]) -> None:
    raw, copies = case

    result = validate_insights(raw, PURCHASE)

    rejected = result.rejects["row_number"].nunique()
    assert result.duplicates_dropped == copies
    assert len(result.valid) + copies + rejected == len(raw)
    assert set(result.valid["ad_id"]).isdisjoint(set(result.rejects["ad_id"].dropna()))
    ValidatedMetrics.validate(result.valid)
    assert unreconciled_totals(result.valid, raw, result.rejects).empty


# --- ValidatedMetrics and the domain checks --------------------------------------------------


@pytest.fixture
def good() -> pd.DataFrame:
    """A valid frame from three clean raw rows."""
    raw = raw_frame([raw_row(1), raw_row(2), raw_row(3, platform_position="instagram_stories")])
    return validate_insights(raw, PURCHASE).valid


def test_validated_metrics_columns_follow_the_contract() -> None:
    assert list(ValidatedMetrics.to_schema().columns) == list(tables.VALIDATED_COLUMNS)


def test_validated_metrics_passes_a_good_frame(good: pd.DataFrame) -> None:
    ValidatedMetrics.validate(good, lazy=True)
    assert duplicate_keys(good).empty
    assert negative_spend(good).empty
    assert clicks_above_impressions(good).empty


def test_duplicated_key_fails_schema_and_check(good: pd.DataFrame) -> None:
    broken = pd.concat([good, good.iloc[[0]]], ignore_index=True)

    with pytest.raises(pa.errors.SchemaError):
        ValidatedMetrics.validate(broken)
    assert list(duplicate_keys(broken).index) == [0, 3]


def test_negative_spend_fails_schema_and_check(good: pd.DataFrame) -> None:
    broken = good.copy()
    broken.loc[1, "spend"] = -0.01

    with pytest.raises(pa.errors.SchemaError, match="spend"):
        ValidatedMetrics.validate(broken)
    assert list(negative_spend(broken).index) == [1]


def test_clicks_above_impressions_fail_schema_and_check(good: pd.DataFrame) -> None:
    broken = good.copy()
    broken.loc[2, "clicks"] = 1001

    with pytest.raises(pa.errors.SchemaError, match="clicks_within_impressions"):
        ValidatedMetrics.validate(broken)
    assert list(clicks_above_impressions(broken).index) == [2]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda f: f.assign(spend=f["spend"].astype(str)),
        lambda f: f.assign(impressions=f["impressions"].astype("float64")),
        lambda f: f.assign(date=f["date"] + pd.Timedelta(hours=3)),
        lambda f: f.assign(date=f["date"].dt.tz_localize("UTC")),
        lambda f: f.assign(channel="Feeds"),
        lambda f: f.assign(channel="Stories"),
        lambda f: f.assign(ad_id=None),
        lambda f: f.drop(columns=["conversion_value"]),
        lambda f: f.assign(extra=1),
        lambda f: f[list(reversed(f.columns))],
    ],
    ids=[
        "spend-text",
        "impressions-float",
        "date-not-midnight",
        "date-with-tz",
        "unknown-channel",
        "channel-not-of-position",
        "missing-ad-id",
        "missing-column",
        "extra-column",
        "column-order",
    ],
)
def test_validated_metrics_fails_a_broken_frame(good: pd.DataFrame, breakage: Any) -> None:
    with pytest.raises((pa.errors.SchemaError, pa.errors.SchemaErrors)):
        ValidatedMetrics.validate(breakage(good), lazy=True)


def test_totals_reconcile_on_a_real_result() -> None:
    raw = raw_frame(
        [
            raw_row(1, spend="10.10"),
            raw_row(2, spend="abc"),
            raw_row(3, spend="5.05", date_start="2025-03-05", date_stop="2025-03-05"),
            raw_row(4, spend="5.05", date_start="2025-03-05", date_stop="2025-03-05", ad_id="a3"),
            raw_row(5, ad_id="a1", spend="99"),
        ]
    )
    result = validate_insights(raw, PURCHASE)

    assert unreconciled_totals(result.valid, raw, result.rejects).empty


def test_tampered_spend_does_not_reconcile() -> None:
    raw = raw_frame(
        [raw_row(1), raw_row(2), raw_row(3, date_start="2025-03-05", date_stop="2025-03-05")]
    )
    result = validate_insights(raw, PURCHASE)
    tampered = result.valid.copy()
    tampered.loc[2, "spend"] += 0.01

    failing = unreconciled_totals(tampered, raw, result.rejects)

    assert failing.to_dict("records") == [
        {
            "date": pd.Timestamp("2025-03-05"),
            "metric": "spend",
            "valid_total": pytest.approx(12.35),
            "raw_total": pytest.approx(12.34),
        }
    ]


def test_lost_row_and_forgotten_reject_do_not_reconcile() -> None:
    raw = raw_frame([raw_row(1), raw_row(2), raw_row(3, spend="abc")])
    result = validate_insights(raw, PURCHASE)

    lost = unreconciled_totals(result.valid.iloc[:1], raw, result.rejects)
    forgotten = unreconciled_totals(result.valid, raw, result.rejects.iloc[:0])

    assert set(lost["metric"]) == {"spend", "impressions", "clicks"}
    assert list(forgotten["metric"]) == ["spend", "impressions", "clicks"]
    assert forgotten["raw_total"].isna().iloc[0]


# --- reject_summary --------------------------------------------------------------------------


def test_reject_summary_is_a_markdown_table_of_the_rejects() -> None:
    raw = raw_frame([raw_row(1, spend="abc"), raw_row(2, ad_id=None), raw_row(3, spend="a|b")])
    rejects = validate_insights(raw, PURCHASE).rejects

    summary = reject_summary(rejects, limit=2)

    lines = summary.splitlines()
    assert lines[0] == "| row | date | ad_id | field | value | reason |"
    assert lines[2] == "| 1 | 2025-03-04 | a1 | spend | abc | spend 'abc' is not a number |"
    assert lines[3] == "| 2 | 2025-03-04 |  | ad_id |  | ad_id is missing |"
    assert "a\\|b" not in summary
    assert lines[-1] == "1 more of 3 rejects not shown."
    assert "a\\|b" in reject_summary(rejects)
    assert reject_summary(rejects.iloc[:0]) == "No rejected rows."


# --- real data -------------------------------------------------------------------------------


def real_rows() -> list[dict[str, Any]]:
    """The real Graph API response's insights rows as raw rows (placement not broken down)."""
    if not REAL_RESPONSE.exists():
        pytest.skip(f"real Meta response not found at {REAL_RESPONSE} (../shared/data absent)")
    ads = json.loads(REAL_RESPONSE.read_text())
    rows = []
    for ad in ads:
        for insight in ad.get("insights", {}).get("data", []):
            rows.append(
                raw_row(
                    len(rows) + 1,
                    date_start=insight["date_start"],
                    date_stop=insight["date_stop"],
                    account_id=ad["campaign"]["account_id"],
                    campaign_id=ad["campaign"]["id"],
                    adset_id=ad["adset"]["id"],
                    ad_id=ad["id"],
                    ad_name=ad["name"],
                    publisher_platform=insight["publisher_platform"],
                    platform_position=None,
                    impression_device=None,
                    spend=insight["spend"],
                    impressions=insight["impressions"],
                    clicks=insight["clicks"],
                    actions=json.dumps(insight["actions"]) if "actions" in insight else None,
                    action_values=None,
                )
            )
    return rows


def test_real_response_rows_are_rejected_as_flight_totals() -> None:
    result = validate_insights(raw_frame(real_rows()), PURCHASE)

    assert result.valid.empty
    flight_rows = result.rejects.loc[result.rejects["field"] == "date_stop", "row_number"]
    assert flight_rows.nunique() > 0
    assert set(result.rejects["field"]) <= {"date_stop", "platform_position", "impression_device"}


def test_real_response_counts_each_purchase_once() -> None:
    rows = [
        {
            **row,
            "date_stop": row["date_start"],
            "platform_position": "feed",
            "impression_device": "all",
        }
        for row in real_rows()
    ]
    purchase_aliases = 0
    pixel_purchases = 0
    for row in rows:
        for action in json.loads(row["actions"] or "[]"):
            if "purchase" in action["action_type"]:
                purchase_aliases += int(action["value"])
            if action["action_type"] == PURCHASE:
                pixel_purchases += int(action["value"])

    result = validate_insights(raw_frame(rows), PURCHASE)

    assert result.rejects.empty
    assert result.valid["conversions"].sum() == pixel_purchases
    assert 0 < pixel_purchases < purchase_aliases


def test_rows_with_and_without_placement_breakdown_for_one_ad_and_day_are_all_rejected() -> None:
    whole_day = raw_row(
        row_number=1,
        ad_id="a1",
        publisher_platform="unknown",
        platform_position="unknown",
        impression_device="unknown",
    )
    feed = raw_row(row_number=2, ad_id="a1")
    other_ad = raw_row(
        row_number=3,
        ad_id="999",
        publisher_platform="unknown",
        platform_position="unknown",
        impression_device="unknown",
    )
    result = validate_insights(raw_frame([whole_day, feed, other_ad]), PURCHASE)
    rejected = result.rejects.drop_duplicates("row_number")
    assert sorted(rejected["row_number"]) == [1, 2]
    assert set(rejected["field"]) == {"publisher_platform"}
    assert "placement breakdown" in rejected["reason"].iloc[0]
    assert list(result.valid["ad_id"]) == ["999"]


def test_entities_with_a_bad_level_id_or_budget_are_refused_naming_row_field_and_value() -> None:
    entities = pd.DataFrame(
        {
            "level": ["campaign", "adset", "adgroup", "ad"],
            "object_id": ["1", "2", "3", None],
            "daily_budget": pd.array([None, -500, None, None], dtype="Int64"),
            "lifetime_budget": pd.array([None] * 4, dtype="Int64"),
        }
    )

    with pytest.raises(ValueError) as refused:
        checked_entities(entities)

    message = str(refused.value)
    assert "row 1 daily_budget -500" in message
    assert "row 2 level 'adgroup'" in message
    assert "row 3 object_id None" in message
    assert "row 0" not in message


def test_entities_listed_twice_identically_are_kept_once() -> None:
    adset = {"level": "adset", "object_id": "2", "daily_budget": 2000, "lifetime_budget": None}
    entities = pd.DataFrame([adset, adset, {**adset, "object_id": "3"}]).astype(
        {"daily_budget": "Int64", "lifetime_budget": "Int64"}
    )

    unique, copies = checked_entities(entities)

    assert copies == 1
    assert unique["object_id"].tolist() == ["2", "3"]
