"""The DuckDB and BigQuery paths hold the same tables with the same columns: the main job run
on the demo account into each (BigQuery faked by ``FakeBigQuery``: the real client deriving
each load's BigQuery schema, the service answered by DuckDB, since BigQuery cannot run here).
"""

import datetime as dt

import dagster as dg
import pytest
from google.cloud import bigquery
from google.cloud.bigquery.schema import LEGACY_TO_STANDARD_TYPES
from prod_fake_bigquery import PROJECT, FakeBigQuery

from aelp2_assets.cli import run_main_job
from aelp2_assets.resources.bigquery import STAGING_PREFIX
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse
from aelp2_assets.tables import RAW_COLUMNS, VALIDATED_COLUMNS

# DuckDB's type of a column -> the BigQuery type (standard SQL name) the client gives the same
# pandas column
SAME_TYPE = {
    "VARCHAR": "STRING",
    "BIGINT": "INT64",
    "INTEGER": "INT64",
    "DOUBLE": "FLOAT64",
    "BOOLEAN": "BOOL",
    "TIMESTAMP": "DATETIME",
    "TIMESTAMP_NS": "DATETIME",
    "TIMESTAMP_MS": "DATETIME",
    "TIMESTAMP_S": "DATETIME",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
}


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory):
    """The same 8 demo days run into DuckDB, then into (fake) BigQuery."""
    folder = tmp_path_factory.mktemp("parity")
    common = {"AELP2_PARTITION_START_DATE": "2026-01-01", "AELP2_DUCKDB_PATH": str(folder / "w")}
    local = Aelp2Settings.from_env(common)
    prod = Aelp2Settings.from_env({**common, "AELP2_WAREHOUSE": "bigquery"})
    today = local.account_today()
    start = today - dt.timedelta(days=7)
    fake = FakeBigQuery()
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        local_result = run_main_job(local, start, today, instance)
        patch.setattr(bigquery, "Client", fake)
        patch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        prod_result = run_main_job(prod, start, today, instance)
    duck = DuckDBWarehouse(database=local.duckdb_path, dataset=local.dataset)
    return local, duck, local_result, fake, prod_result


def _duckdb_columns(settings: Aelp2Settings) -> dict[str, list[tuple[str, str]]]:
    import duckdb

    with duckdb.connect(settings.duckdb_path, read_only=True) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = ? ORDER BY table_name, ordinal_position",
            [settings.dataset],
        ).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        columns.setdefault(table, []).append((column, data_type))
    return columns


def test_both_runs_succeed(both_runs):
    _, _, local_result, _, prod_result = both_runs
    assert local_result.success
    assert prod_result.success, [
        e.message for e in prod_result.all_events if e.event_type_value == "STEP_FAILURE"
    ]


def test_fake_bigquery_holds_the_same_tables_and_columns_as_duckdb(both_runs):
    local, _, _, fake, _ = both_runs
    duckdb_tables = _duckdb_columns(local)
    bigquery_tables = {
        key.split(".", 1)[1]: [
            (f.name, LEGACY_TO_STANDARD_TYPES[f.field_type].name) for f in schema
        ]
        for key, schema in fake.schemas.items()
        if key.startswith(f"{local.dataset}.")
    }
    assert not [name for name in bigquery_tables if name.startswith(STAGING_PREFIX)]
    assert sorted(bigquery_tables) == sorted(duckdb_tables)
    for table, columns in duckdb_tables.items():
        expected = [(name, SAME_TYPE[data_type]) for name, data_type in columns]
        assert bigquery_tables[table] == expected, table
    assert [name for name, _ in bigquery_tables["raw_meta_metrics"]] == list(RAW_COLUMNS)
    validated = dict(bigquery_tables["validated_meta_metrics"])
    assert list(validated) == list(VALIDATED_COLUMNS) and validated["date"] == "DATETIME"
    assert fake.partitioning[f"{local.dataset}.validated_meta_metrics"] == "date"


def test_fake_bigquery_run_stores_the_same_rows_and_allocation(both_runs):
    local, duck, _, fake, _ = both_runs
    for table in duck.table_names():
        assert len(fake.rows(local.dataset, table)) == len(duck.read(table)), table
    ours = fake.rows(local.dataset, "budget_allocations").sort_values("arm_id")
    theirs = duck.read("budget_allocations").sort_values("arm_id")
    assert ours["budget_minor"].tolist() == theirs["budget_minor"].tolist()
    assert ours["budget_minor"].sum() > 0
