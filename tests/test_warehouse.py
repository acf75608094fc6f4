"""The warehouse verbs on a real DuckDB file: merge, replace, append, read."""

import duckdb
import pandas as pd
import pytest

from aelp2_assets.resources.warehouse import DuckDBWarehouse


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), dataset="aelp2_prod")


def _rows(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns).astype("string")


def test_merge_replaces_returned_rows_and_keeps_the_others(warehouse):
    first = _rows(day=["d1", "d1", "d1"], ad=["a", "b", None], spend=["1", "2", "3"])
    warehouse.merge("raw", first, ["day", "ad"])
    warehouse.merge("raw", first, ["day", "ad"])  # a re-run: no duplicates, NULL keys included
    assert len(warehouse.read("raw")) == 3

    restated = _rows(day=["d1"], ad=["a"], spend=["5"])
    warehouse.merge("raw", restated, ["day", "ad"])
    stored = dict(zip(*warehouse.read("raw")[["ad", "spend"]].T.values, strict=True))
    assert stored["a"] == "5"  # replaced
    assert stored["b"] == "2"  # not returned again: kept, not zeroed


def test_a_row_with_an_incomplete_key_is_replaced_by_the_next_pull_of_its_day(warehouse):
    bad = _rows(day=["d1", "d1", "d2"], ad=["a", None, None], spend=["1", "2", "3"])
    warehouse.merge("raw", bad, ["day", "ad"])
    fixed = _rows(day=["d1"], ad=["b"], spend=["2"])
    warehouse.merge("raw", fixed, ["day", "ad"])
    stored = warehouse.read("raw").sort_values(["day", "spend"])
    # d1's keyless row is gone, d1's keyed row and d2 (not pulled again) stay
    assert list(zip(stored["day"], stored["ad"].fillna("-"), strict=True)) == [
        ("d1", "a"),
        ("d1", "b"),
        ("d2", "-"),
    ]


def test_replace_swaps_only_the_named_values(warehouse):
    warehouse.replace("t", _rows(day=["d1", "d2"], v=["1", "2"]), "day", ["d1", "d2"])
    warehouse.replace("t", _rows(day=["d2"], v=["9"]), "day", ["d2"])
    assert sorted(warehouse.read("t")["v"]) == ["1", "9"]
    warehouse.replace("t", _rows(day=[], v=[]), "day", ["d1"])
    assert list(warehouse.read("t")["v"]) == ["9"]


def test_append_only_grows(warehouse):
    warehouse.append("audit", _rows(x=["1"]))
    warehouse.append("audit", _rows(x=["1"]))
    assert len(warehouse.read("audit")) == 2


def test_append_adds_a_new_column_and_keeps_every_earlier_row(warehouse):
    # the push audit gained its pause columns after tables with budget rows existed
    warehouse.append("audit", _rows(x=["1"]))
    warehouse.append("audit", _rows(x=["2"], action=["pause"]))
    warehouse.append("audit", _rows(x=["3"]))
    stored = warehouse.read("audit")
    assert stored["x"].tolist() == ["1", "2", "3"]
    assert stored["action"].tolist() == [None, "pause", None]


def test_read_filters_by_range_and_missing_table_is_empty(warehouse):
    assert warehouse.read("nothing_yet").empty
    warehouse.append("t", _rows(day=["2024-01-01", "2024-01-02", "2024-01-03"]))
    assert list(warehouse.read("t", "day", "2024-01-02", "2024-01-02")["day"]) == ["2024-01-02"]
    assert len(warehouse.read("t", "day", start="2024-01-02")) == 2


def test_a_failed_write_leaves_the_table_as_it_was(warehouse, tmp_path):
    warehouse.append("t", pd.DataFrame({"n": [1]}))
    with pytest.raises(duckdb.Error):
        # a text that cannot become the table's integer column fails mid-statement
        warehouse.replace("t", pd.DataFrame({"n": ["not a number"]}), "n", [1])
    assert list(warehouse.read("t")["n"]) == [1]
