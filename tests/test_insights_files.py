"""The file source's reader, on small real files written into a temporary directory."""

import json
from pathlib import Path

import pandas as pd
import pytest

from aelp2_assets.insights_files import (
    ADS_MANAGER_COLUMNS,
    query_insights,
    read_insights_file,
    read_insights_table,
)
from aelp2_assets.tables import INSIGHT_FIELDS, TEXT

ROW = {
    "date_start": "2025-03-04",
    "date_stop": "2025-03-04",
    "account_id": "111",
    "account_currency": "USD",
    "campaign_id": "222",
    "adset_id": "333",
    "ad_id": "444",
    "publisher_platform": "facebook",
    "platform_position": "feed",
    "impression_device": "desktop",
    "spend": "12.50",
    "impressions": "1200",
    "clicks": "14",
    "actions": [{"action_type": "purchase", "value": "2"}],
}

HEADER = (
    "Day,Account ID,Campaign ID,Campaign name,Ad set ID,Ad set name,Ad ID,Ad name,Platform,"
    "Placement,Impression device,Amount spent (USD),Impressions,Reach,Clicks (all),Link clicks,"
    "Purchases,Purchases conversion value,Leads"
)


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_json_lines_come_back_as_the_file_has_them(tmp_path: Path) -> None:
    odd = {**ROW, "spend": "abc", "impressions": 1200, "extra": {"kept": True}}
    path = _write_lines(tmp_path / "rows.jsonl", [json.dumps(ROW), "", json.dumps(odd)])

    rows = read_insights_file(path)

    assert rows == [ROW, odd]
    assert rows[1]["spend"] == "abc"
    assert rows[1]["impressions"] == 1200


def test_a_json_extension_is_read_as_json_lines(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "rows.json", [json.dumps(ROW)])

    assert read_insights_file(str(path)) == [ROW]


def test_a_malformed_json_line_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "rows.jsonl", [json.dumps(ROW), json.dumps(ROW), '{"spend": '])

    with pytest.raises(ValueError, match=r"rows\.jsonl: line 3 is not valid JSON"):
        read_insights_file(path)


def test_a_json_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "rows.jsonl", [json.dumps(ROW), "[1, 2]"])

    with pytest.raises(ValueError, match="line 2 is not a JSON object"):
        read_insights_file(path)


def test_json_lines_load_as_text_columns_holding_the_values_the_file_has(tmp_path: Path) -> None:
    odd = {**ROW, "spend": 12.50, "impressions": 1200, "clicks": True, "extra": "ignored"}
    del odd["account_id"]
    path = _write_lines(tmp_path / "rows.jsonl", [json.dumps(ROW), "", "  ", json.dumps(odd)])

    table = read_insights_table(path)

    assert list(table.columns) == list(INSIGHT_FIELDS)
    assert set(table.dtypes) == {TEXT}
    first, second = table.astype(object).where(table.notna(), None).to_dict("records")
    assert first["spend"] == "12.50"  # a string stays the text it is
    assert json.loads(first["actions"]) == ROW["actions"]
    assert first["ad_name"] is None and first["action_values"] is None  # absent keys are NULL
    # values that are not strings: their JSON text; lists as compact JSON
    assert (second["spend"], second["impressions"], second["clicks"]) == ("12.5", "1200", "true")
    assert second["actions"] == '[{"action_type":"purchase","value":"2"}]'
    assert second["account_id"] is None


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [json.dumps(ROW), json.dumps(ROW), '{"spend": '],
            r"rows\.jsonl: line 3 is not valid JSON",
        ),
        ([json.dumps(ROW), "", "[1, 2]"], r"rows\.jsonl: line 3 is not a JSON object"),
    ],
)
def test_the_columnar_reader_names_the_line_at_fault(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = _write_lines(tmp_path / "rows.jsonl", lines)

    with pytest.raises(ValueError, match=message):
        read_insights_table(path)


def test_a_query_sees_the_data_rows_numbered_in_file_order(tmp_path: Path) -> None:
    lines = [json.dumps({**ROW, "ad_id": ad}) for ad in ("7", "5", "6")]
    jsonl = _write_lines(tmp_path / "rows.jsonl", [lines[0], "", lines[1], "  ", lines[2]])
    csv = _write_lines(
        tmp_path / "export.csv",
        ["Day,Ad ID,Amount spent (USD)", "2025-03-04,7,1", "", "2025-03-04,5,1", "2025-03-05,6,1"],
    )
    sql = "SELECT data_row, ad_id FROM insights WHERE ad_id <> ? ORDER BY ad_id"

    for path in (jsonl, csv):
        assert query_insights(path, sql, ["6"]).to_pylist() == [
            {"data_row": 2, "ad_id": "5"},
            {"data_row": 1, "ad_id": "7"},
        ]


def test_a_csv_loads_as_the_text_of_its_mapped_rows(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "export.csv",
        [
            "Day,Ad ID,Amount spent (USD),Impressions,Link clicks,Purchases",
            "2025-03-04,444,abc,1e3,7,",
            "2025-03-05,445,1.00,10,,2",
        ],
    )

    table = read_insights_table(path, purchase_action_type="purchase")

    assert set(table.dtypes) == {TEXT}
    assert table["spend"].tolist() == ["abc", "1.00"]
    assert table["impressions"].tolist() == ["1e3", "10"]
    assert table["clicks"].tolist() == ["7", pd.NA]
    assert table["actions"].tolist() == [
        '[{"action_type":"link_click","value":"7"}]',
        '[{"action_type":"purchase","value":"2"}]',
    ]
    assert table["platform_position"].tolist() == ["unknown", "unknown"]


def test_an_ads_manager_csv_maps_to_insights_fields(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "export.csv",
        [
            HEADER,
            "2025-03-04,111,222,Spring,333,Broad,444,Video A,facebook,feed,desktop,"
            "12.50,1200,900,20,14,2,99.90,1",
            "2025-03-04,111,222,Spring,333,Broad,445,Video B,instagram,instagram_reels,"
            "mobile_app,0.75,80,70,0,,,,",
        ],
    )

    first, second = read_insights_file(path)

    assert first == {
        "date_start": "2025-03-04",
        "date_stop": "2025-03-04",
        "account_id": "111",
        "account_currency": "USD",
        "campaign_id": "222",
        "campaign_name": "Spring",
        "adset_id": "333",
        "adset_name": "Broad",
        "ad_id": "444",
        "ad_name": "Video A",
        "publisher_platform": "facebook",
        "platform_position": "feed",
        "impression_device": "desktop",
        "spend": "12.50",
        "impressions": "1200",
        "clicks": "20",
        "actions": [
            {"action_type": "link_click", "value": "14"},
            {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "2"},
            {"action_type": "lead", "value": "1"},
        ],
        "action_values": [
            {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "99.90"}
        ],
    }
    # Empty cells leave their keys out; a row without any action has no actions at all.
    assert "actions" not in second
    assert "action_values" not in second
    assert second["clicks"] == "0"
    assert set(first) <= set(INSIGHT_FIELDS)


def test_the_purchase_action_type_is_configurable(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "export.csv",
        ["Day,Ad ID,Amount spent (USD),Purchases", "2025-03-04,444,5.00,3"],
    )

    (row,) = read_insights_file(path, purchase_action_type="purchase")

    assert row["actions"] == [{"action_type": "purchase", "value": "3"}]


def test_the_spend_header_names_the_currency_unless_a_currency_column_does(tmp_path: Path) -> None:
    euro = _write_lines(
        tmp_path / "euro.csv", ["Day,Ad ID,Amount spent (EUR)", "2025-03-04,444,7.10"]
    )
    both = _write_lines(
        tmp_path / "both.csv",
        ["Day,Ad ID,Currency,Amount spent (EUR)", "2025-03-04,444,GBP,7.10"],
    )

    assert read_insights_file(euro)[0]["account_currency"] == "EUR"
    assert read_insights_file(euro)[0]["spend"] == "7.10"
    assert read_insights_file(both)[0]["account_currency"] == "GBP"


def test_a_byte_order_mark_and_trailing_summary_rows_are_handled(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    text = "Day,Ad ID,Amount spent (USD),Impressions\n2025-03-04,444,5.00,100\n,,5.00,100\nTotal\n"
    path.write_text(text, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    rows = read_insights_file(path)

    assert rows == [
        {
            "date_start": "2025-03-04",
            "date_stop": "2025-03-04",
            "account_currency": "USD",
            "ad_id": "444",
            "publisher_platform": "unknown",
            "platform_position": "unknown",
            "impression_device": "unknown",
            "spend": "5.00",
            "impressions": "100",
        }
    ]


def test_a_csv_row_with_extra_cells_is_named_by_line(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "export.csv",
        ["Day,Ad ID,Amount spent (USD)", "2025-03-04,444,5.00", "2025-03-04,445,1,234.00"],
    )

    with pytest.raises(ValueError, match="line 3 has 4 cells, the header 3"):
        read_insights_file(path)


def test_bad_numbers_pass_through_untouched(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "export.csv",
        ["Day,Ad ID,Amount spent (USD),Impressions,Clicks (all)", "2025-03-04,444,abc,1e3,007"],
    )

    (row,) = read_insights_file(path)

    assert (row["spend"], row["impressions"], row["clicks"]) == ("abc", "1e3", "007")


def test_reporting_period_columns_and_link_clicks_fallback(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "export.csv",
        [
            "Reporting starts,Reporting ends,Ad ID,Amount spent (USD),Link clicks",
            "2025-03-04,2025-03-05,444,5.00,9",
        ],
    )

    (row,) = read_insights_file(path)

    assert (row["date_start"], row["date_stop"]) == ("2025-03-04", "2025-03-05")
    assert row["clicks"] == "9"
    assert row["actions"] == [{"action_type": "link_click", "value": "9"}]


def test_missing_required_columns_are_named(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "export.csv", ["Day,Ad name,Impressions", "2025-03-04,A,10"])

    with pytest.raises(ValueError, match="missing required columns") as error:
        read_insights_file(path)

    assert "'Ad ID'" in str(error.value)
    assert "Amount spent" in str(error.value)
    assert "Day" not in str(error.value)


def test_other_file_types_are_refused(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "export.xlsx", ["x"])

    with pytest.raises(ValueError, match="unsupported file type"):
        read_insights_file(path)


def test_the_mapping_only_targets_insights_fields() -> None:
    for target in ADS_MANAGER_COLUMNS.values():
        assert target.split(":", 1)[0] in INSIGHT_FIELDS
