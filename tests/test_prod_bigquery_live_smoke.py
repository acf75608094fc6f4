"""Smoke test against a real BigQuery project: runs only with credentials, else skips saying
which are missing. It writes to a throwaway dataset and deletes it afterwards."""

import datetime as dt
import os
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from aelp2_assets.resources.bigquery import BigQueryIOManager, BigQueryWarehouse

PROJECT = os.environ.get("GOOGLE_CLOUD_PROJECT", "")
KEY_FILE = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")

pytestmark = pytest.mark.skipif(
    not (PROJECT and KEY_FILE and Path(KEY_FILE).is_file()),
    reason="no BigQuery credentials: set GOOGLE_CLOUD_PROJECT and GOOGLE_APPLICATION_CREDENTIALS"
    " (a service-account key file with BigQuery Data Editor and Job User) to run it",
)

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.asset(partitions_def=DAILY, metadata={"partition_expr": "date"})
def smoke_daily(context: dg.AssetExecutionContext) -> pd.DataFrame:
    day = pd.Timestamp(context.partition_key)
    return pd.DataFrame({"date": [day], "value": [float(context.run.tags["round"])]})


@pytest.fixture
def dataset():
    name = f"aelp2_smoke_{uuid.uuid4().hex[:12]}"
    warehouse = BigQueryWarehouse(project=PROJECT, dataset=name)
    yield name
    with warehouse.get_client() as client:
        client.delete_dataset(f"{PROJECT}.{name}", delete_contents=True, not_found_ok=True)


def test_live_bigquery_warehouse_and_second_partitions(dataset):
    warehouse = BigQueryWarehouse(project=PROJECT, dataset=dataset)
    key = ("date_start", "ad_id")
    warehouse.merge("raw", pd.DataFrame({"date_start": ["2024-01-01"], "ad_id": ["a"]}), key)
    warehouse.merge("raw", pd.DataFrame({"date_start": ["2024-01-01"], "ad_id": ["a"]}), key)
    assert len(warehouse.read("raw", "date_start", "2024-01-01", dt.date(2024, 1, 1))) == 1

    io_manager = BigQueryIOManager(project=PROJECT, dataset=dataset)
    for day, round_ in [("2024-01-01", "1"), ("2024-01-02", "1"), ("2024-01-02", "2")]:
        result = dg.materialize(
            [smoke_daily],
            partition_key=day,
            tags={"round": round_},
            resources={"io_manager": io_manager},
        )
        assert result.success
    stored = warehouse.read("smoke_daily").sort_values("date")
    assert stored["value"].tolist() == [1.0, 2.0]
