"""The Kaggle ad export's conversion, on the real file and on small hand-made ones."""

import csv
import json
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from aelp2_assets.insights_files import read_insights_file
from aelp2_assets.kaggle_export import convert_kaggle_ad_export, main
from aelp2_assets.tables import INSIGHT_FIELDS

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KAGGLE_CSV = SHARED_DATA / "kaggle_fb_ad_campaign" / "derived_ad_day_clean.csv"
HEADER = (
    "date,ad_id,xyz_campaign_id,fb_campaign_id,age,gender,interest1,interest2,interest3,"
    "impressions,clicks,spent,total_conversion,approved_conversion,row_was_misaligned_in_data_csv"
)


def _real_csv() -> Path:
    if not KAGGLE_CSV.exists():
        pytest.skip(f"the shared real data is not here: {KAGGLE_CSV} is missing")
    return KAGGLE_CSV


def _action(row: dict, action_type: str) -> int:
    entries = {entry["action_type"]: entry["value"] for entry in row.get("actions", [])}
    return int(entries.get(action_type, 0))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    dest = tmp_path_factory.mktemp("kaggle") / "kaggle.jsonl"
    written = convert_kaggle_ad_export(_real_csv(), dest)
    rows = read_insights_file(dest)
    assert written == len(rows)
    return rows


def test_the_real_export_keeps_its_hand_checked_totals(converted: list[dict]) -> None:
    assert len(converted) == 1_143
    assert sum(_action(row, "offsite_conversion.fb_pixel_purchase") for row in converted) == 1_079
    assert sum(_action(row, "lead") for row in converted) == 3_264
    assert sum(int(row["impressions"]) for row in converted) == 213_434_828
    assert sum(int(row["clicks"]) for row in converted) == 38_165
    assert len({row["adset_id"] for row in converted}) == 691
    last_three = {row["adset_id"] for row in converted if row["date_start"] >= "2017-08-28"}
    assert len(last_three) == 118
    assert Counter(row["campaign_id"] for row in converted) == {"916": 54, "936": 464, "1178": 625}


def test_spend_is_rounded_to_cents_without_moving_the_total(converted: list[dict]) -> None:
    with _real_csv().open(newline="") as handle:
        raw = [Decimal(record["spent"]) for record in csv.DictReader(handle)]
    rounded = [Decimal(row["spend"]) for row in converted]

    assert all(value == value.quantize(Decimal("0.01")) for value in rounded)
    # Each row moves by its own rounding shift, so the totals differ by at most their sum;
    # the shifts only remove float32 artefacts, which are far below a cent in total.
    shifts = sum(abs(r - x) for r, x in zip(rounded, raw, strict=True))
    assert shifts < Decimal("0.01")
    assert abs(sum(rounded) - sum(raw)) <= shifts
    assert sum(rounded) == Decimal("58705.23")


def test_rows_have_the_insights_shape(converted: list[dict]) -> None:
    for row in converted:
        assert list(row) == [key for key in INSIGHT_FIELDS if key in row]
        assert set(INSIGHT_FIELDS) - set(row) <= {"actions", "action_values"}
        assert "action_values" not in row
        assert row["date_start"] == row["date_stop"]
        assert row["account_currency"] == "USD"
        assert row["platform_position"] == "unknown"
        assert all(isinstance(value, str) for key, value in row.items() if key != "actions")
        if "actions" in row:
            assert all(entry["value"] != "0" for entry in row["actions"])
    assert any("actions" not in row for row in converted)


def test_zero_actions_are_left_out_and_floats_become_cents(tmp_path: Path) -> None:
    src = tmp_path / "small.csv"
    src.write_text(
        HEADER + "\n"
        "2017-08-17,1,916,10,30-34,M,1,2,3,100,1,1.429999948,2,0,False\n"
        "2017-08-17,2,916,11,30-34,F,1,2,3,50,0,0.0,0,0,False\n"
        "2017-08-18,3,936,11,35-39,F,1,2,3,70.0,2,2.005,1,1,True\n"
    )

    assert convert_kaggle_ad_export(src, tmp_path / "out" / "rows.jsonl") == 3
    first, second, third = read_insights_file(tmp_path / "out" / "rows.jsonl")

    assert first["spend"] == "1.43"
    assert first["actions"] == [{"action_type": "lead", "value": "2"}]
    assert "actions" not in second
    assert third["impressions"] == "70"
    assert third["spend"] == "2.01"  # half up, on the exact decimal text
    assert third["actions"] == [
        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "1"},
        {"action_type": "lead", "value": "1"},
    ]


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    fractional = tmp_path / "fractional.csv"
    fractional.write_text(HEADER + "\n2017-08-17,1,916,10,30-34,M,1,2,3,100,1.5,1.0,0,0,False\n")
    missing = tmp_path / "missing.csv"
    missing.write_text("date,ad_id,spent\n2017-08-17,1,1.0\n")
    dest = tmp_path / "rows.jsonl"

    with pytest.raises(ValueError, match="line 2: clicks '1.5' is not a whole count"):
        convert_kaggle_ad_export(fractional, dest)
    with pytest.raises(ValueError, match="missing columns"):
        convert_kaggle_ad_export(missing, dest)
    assert not dest.exists()


def test_the_command_line_converts_a_file(tmp_path: Path) -> None:
    src = tmp_path / "small.csv"
    src.write_text(HEADER + "\n2017-08-17,1,916,10,30-34,M,1,2,3,100,1,1.0,0,0,False\n")

    assert main([str(src), str(tmp_path / "a.jsonl")]) == 0
    result = subprocess.run(
        [sys.executable, "-m", "aelp2_assets.kaggle_export", str(src), str(tmp_path / "b.jsonl")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )

    assert "1 rows written" in result.stdout
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == read_insights_file(tmp_path / "a.jsonl")
