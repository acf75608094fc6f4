"""The demo and file sources as resources: the verbs every source offers."""

import datetime as dt
import json

import pytest

from aelp2_assets.resources.sources import ENTITY_COLUMNS, DemoSource, FileSource


def _demo(start: str = "2026-01-01") -> DemoSource:
    return DemoSource(
        seed=3,
        creatives=9,
        start_date=start,
        daily_budget=30000,
        currency="USD",
        timezone="America/Los_Angeles",
    )


def test_demo_rows_of_a_day_do_not_depend_on_when_they_are_fetched():
    day = dt.date(2026, 2, 10)
    alone = _demo().fetch_insights(day, day)
    within_a_range = [
        row
        for row in _demo().fetch_insights(day - dt.timedelta(days=5), day + dt.timedelta(days=5))
        if row["date_start"] == day.isoformat()
    ]
    assert alone == within_a_range
    assert {row["date_start"] for row in alone} == {"2026-02-10"}
    assert 8 <= len({row["adset_id"] for row in alone}) <= 12


def test_demo_entities_carry_the_account_and_integer_budgets():
    entities = _demo().fetch_entities(dt.date(2026, 2, 10))
    assert list(entities.columns) == list(ENTITY_COLUMNS)
    adsets = entities[(entities["level"] == "adset") & (entities["status"] == "ACTIVE")]
    assert 8 <= len(adsets) <= 12
    assert str(adsets["daily_budget"].dtype) == "Int64"
    assert abs(int(adsets["daily_budget"].sum()) - 3_000_000) <= len(adsets)
    assert set(entities["account_timezone"]) == {"America/Los_Angeles"}
    assert set(entities["min_daily_budget"]) == {100}


def _file(tmp_path, rows) -> FileSource:
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return FileSource(
        path=str(path),
        purchase_action_type="offsite_conversion.fb_pixel_purchase",
        currency="USD",
        timezone="America/Los_Angeles",
    )


def _row(day: str, ad: str, adset: str = "20") -> dict:
    return {"date_start": day, "campaign_id": "10", "adset_id": adset, "ad_id": ad}


def test_file_source_days_decision_date_and_entities(tmp_path):
    source = _file(
        tmp_path,
        [_row("2024-03-01", "1"), _row("2024-03-02", "2", "21"), _row("2024-03-04", "3", "21")],
    )
    assert [
        r["ad_id"] for r in source.fetch_insights(dt.date(2024, 3, 2), dt.date(2024, 3, 4))
    ] == [
        "2",
        "3",
    ]
    assert source.decision_date(dt.date(2030, 1, 1)) == dt.date(2024, 3, 4)
    entities = source.fetch_entities(dt.date(2024, 3, 2))
    levels = entities.groupby("level")["object_id"].apply(sorted).to_dict()
    assert levels == {"ad": ["1", "2"], "adset": ["20", "21"], "campaign": ["10"]}
    assert entities["daily_budget"].isna().all()  # an export has no budgets


@pytest.mark.parametrize("bad_date", ["2024/03/01", "20240301", "", None, "2024-02-30"])
def test_file_rows_that_cannot_be_placed_in_a_day_are_refused_naming_the_row(tmp_path, bad_date):
    source = _file(
        tmp_path, [_row("2024-03-01", "1"), {**_row("2024-03-01", "2"), "date_start": bad_date}]
    )
    with pytest.raises(ValueError, match="data row 2") as error:
        source.fetch_insights(dt.date(2024, 3, 1), dt.date(2024, 3, 1))
    assert "nothing was written" in str(error.value)


def test_file_rows_come_as_text_columns_for_the_raw_table_and_as_insights_rows(tmp_path):
    actions = [{"action_type": "offsite_conversion.fb_pixel_purchase", "value": "2"}]
    source = _file(
        tmp_path,
        [_row("2024-03-01", "1"), {**_row("2024-03-02", "2"), "spend": 4.5, "actions": actions}],
    )
    day = dt.date(2024, 3, 2)

    table = source.fetch_insight_table(day, day)
    (row,) = source.fetch_insights(day, day)

    assert table[["ad_id", "spend", "actions"]].to_dict("records") == [
        {"ad_id": "2", "spend": "4.5", "actions": json.dumps(actions, separators=(",", ":"))}
    ]
    assert table.index.tolist() == [0]  # numbered from the pull's first row
    # the same row as a source's Insights row: text values, actions a list, absent keys left out
    assert row == {**_row("2024-03-02", "2"), "spend": "4.5", "actions": actions}


@pytest.mark.parametrize("verb", ["decision_date", "fetch_entities"])
def test_every_file_verb_refuses_a_row_without_an_iso_date_naming_the_first(tmp_path, verb):
    source = _file(
        tmp_path,
        [
            _row("2024-03-01", "1"),
            {**_row("2024-03-01", "2"), "date_start": "3/2/2024"},
            {**_row("2024-03-01", "3"), "date_start": "2024-13-01"},
        ],
    )
    with pytest.raises(ValueError, match=r"data row 2: date_start '3/2/2024' is not an ISO"):
        getattr(source, verb)(dt.date(2024, 3, 1))


def test_file_entities_come_in_first_appearance_order_with_their_first_names(tmp_path):
    def named(day: str, ad: str, adset: str, name: str) -> dict:
        return {**_row(day, ad, adset), "ad_name": name, "adset_name": f"set {adset} {name}"}

    source = _file(
        tmp_path,
        [
            named("2024-03-02", "7", "21", "first"),
            named("2024-03-01", "5", "20", "first"),
            named("2024-03-02", "7", "21", "renamed"),
            {**_row("2024-03-01", "9"), "ad_id": None},  # no ad: names its ad set only
            named("2024-03-03", "8", "22", "too late"),
        ],
    )

    entities = source.fetch_entities(dt.date(2024, 3, 2))

    assert entities[["level", "object_id", "name"]].values.tolist() == [
        ["campaign", "10", None],
        ["adset", "21", "set 21 first"],
        ["adset", "20", "set 20 first"],
        ["ad", "7", "first"],
        ["ad", "5", "first"],
    ]


def test_a_file_changed_on_disk_is_read_again(tmp_path):
    source = _file(tmp_path, [_row("2024-03-01", "1")])
    assert source.decision_date(dt.date(2030, 1, 1)) == dt.date(2024, 3, 1)

    _file(tmp_path, [_row("2024-03-01", "1"), _row("2024-03-05", "2")])

    assert source.decision_date(dt.date(2030, 1, 1)) == dt.date(2024, 3, 5)
    assert len(source.fetch_insight_table(dt.date(2024, 3, 1), dt.date(2024, 3, 5))) == 2


def test_an_empty_file_has_no_decision_date(tmp_path):
    with pytest.raises(ValueError, match="holds no rows"):
        _file(tmp_path, []).decision_date(dt.date(2030, 1, 1))
