"""The BigQuery warehouse, IO manager and GA4 source, on a fake BigQuery (``FakeBigQuery``:
the real client, the service answered by DuckDB), since BigQuery cannot run here."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from google.cloud import bigquery
from prod_fake_bigquery import PROJECT, FakeBigQuery

from aelp2_assets.resources import bigquery as bq
from aelp2_assets.resources import resources_for
from aelp2_assets.resources.bigquery import BigQueryIOManager, BigQueryWarehouse, Ga4BigQuerySource
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse
from aelp2_assets.tables import TEXT

KEY = ("date_start", "ad_id", "placement")


@pytest.fixture
def fake(monkeypatch) -> FakeBigQuery:
    """Every ``bigquery.Client(...)`` made by the project or Dagster is this fake one."""
    client = FakeBigQuery()
    monkeypatch.setattr(bigquery, "Client", client)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    return client


def _raw(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[*KEY, "spend"])


def _sorted(frame: pd.DataFrame) -> list[tuple]:
    return sorted(frame.astype(object).where(frame.notna(), None).itertuples(index=False))


def test_fake_bigquery_merge_replace_append_read_match_duckdb(fake, tmp_path):
    duck = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), dataset="aelp2_prod")
    big = BigQueryWarehouse(project=PROJECT, dataset="aelp2_prod")
    pulls = [
        _raw([("2024-01-01", "a1", "feed", "1.00"), ("2024-01-01", "a2", "feed", "2.00")]),
        # a re-pull: a1 restated, a2 missing (kept, not zeroed), a bad row with a NULL key
        _raw([("2024-01-01", "a1", "feed", "1.50"), ("2024-01-01", None, "feed", "9.99")]),
        # the next pull of that day replaces the NULL-keyed row
        _raw([("2024-01-01", "a3", "reels", "3.00")]),
    ]
    for pull in pulls:
        duck.merge("raw_meta_metrics", pull, KEY)
        big.merge("raw_meta_metrics", pull, KEY)
    expected = [
        ("2024-01-01", "a1", "feed", "1.50"),
        ("2024-01-01", "a2", "feed", "2.00"),
        ("2024-01-01", "a3", "reels", "3.00"),
    ]
    assert _sorted(duck.read("raw_meta_metrics")) == expected
    assert _sorted(big.read("raw_meta_metrics")) == expected

    days = pd.to_datetime(["2024-01-01", "2024-01-02"])
    history = pd.DataFrame({"decision_date": days, "budget": [10, 20]})
    for warehouse in (duck, big):
        warehouse.replace("history", history, "decision_date", list(days))
        warehouse.replace(
            "history", history.iloc[[1]].assign(budget=25), "decision_date", [days[1]]
        )
        warehouse.append("audit", pd.DataFrame({"run_id": ["r1"], "status": [None]}))
        warehouse.append("audit", pd.DataFrame({"run_id": ["r2"], "status": ["applied"]}))
        # a later audit row with a field the table lacks: the column is added, no row lost
        warehouse.append("audit", pd.DataFrame({"run_id": ["r3"], "action": ["pause"]}))
    for table in ("history", "audit"):
        assert _sorted(big.read(table)) == _sorted(duck.read(table)), table
    assert sorted(big.read("history")["budget"]) == [10, 25]
    audit = big.read("audit").sort_values("run_id")
    assert list(audit["run_id"]) == ["r1", "r2", "r3"]
    assert audit["action"].isna().tolist() == [True, True, False]
    one_day = big.read("history", "decision_date", dt.date(2024, 1, 2), dt.date(2024, 1, 2))
    assert list(one_day["budget"]) == [25]
    text_day = big.read("raw_meta_metrics", "date_start", "2024-01-01", "2024-01-01")
    assert len(text_day) == 3
    # the compact read (validation and the model use it) gives Arrow-backed text in both
    for warehouse in (duck, big):
        compact = warehouse.read("raw_meta_metrics", compact_text=True)
        assert compact["spend"].dtype == TEXT, type(warehouse).__name__
        assert _sorted(compact) == expected
    assert big.table_names() == duck.table_names() == ["audit", "history", "raw_meta_metrics"]
    assert big.read("absent").empty and not fake.schemas.get("aelp2_prod.absent")


def test_fake_bigquery_sql_carries_values_only_as_typed_parameters(fake):
    big = BigQueryWarehouse(project=PROJECT, dataset="aelp2_prod")
    big.merge("raw_meta_metrics", _raw([("2024-01-01", "ad-777", "feed", "1.00")]), KEY)
    days = [pd.Timestamp("2024-03-05")]
    big.replace(
        "history", pd.DataFrame({"decision_date": days, "budget": [1]}), "decision_date", days
    )
    big.read("history", "decision_date", dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    big.read("raw_meta_metrics", "date_start", "2024-01-01", "2024-01-31")

    sql = "\n".join(sent.sql for sent in fake.sent)
    for value in ("ad-777", "2024-03-05", "2024-03-01", "2024-01-31", "1.00"):
        assert value not in sql
    scripts = [sent.sql for sent in fake.sent if "INSERT" in sent.sql]
    assert len(scripts) == 2
    for script in scripts:
        assert script.startswith("BEGIN TRANSACTION;") and script.endswith("COMMIT TRANSACTION;")
        assert script.index("DELETE FROM") < script.index("INSERT INTO")
    replace, date_read, text_read = fake.sent[1], fake.sent[2], fake.sent[3]
    assert replace.parameters == {"values": [dt.datetime(2024, 3, 5)]}
    assert date_read.parameters == {
        "start": dt.datetime(2024, 3, 1),
        "end": dt.datetime(2024, 3, 31),
    }
    assert text_read.parameters == {"start": "2024-01-01", "end": "2024-01-31"}
    staged = [table for table, _ in fake.loads]
    assert all(t.split(".")[1].startswith(bq.STAGING_PREFIX) for t in staged)
    assert not [key for key in fake.schemas if bq.STAGING_PREFIX in key]  # dropped after use


def test_fake_bigquery_failed_swap_leaves_the_table_as_it_was(fake):
    big = BigQueryWarehouse(project=PROJECT, dataset="aelp2_prod")
    big.merge("raw_meta_metrics", _raw([("2024-01-01", "a1", "feed", "1.00")]), KEY)
    fake.fail_on = "INSERT INTO"
    with pytest.raises(Exception, match="fake failure"):
        big.merge("raw_meta_metrics", _raw([("2024-01-01", "a1", "feed", "5.00")]), KEY)
    fake.fail_on = None
    # the bad frame (a column the table lacks) fails inside the transaction: nothing deleted
    widened = _raw([("2024-01-01", "a1", "feed", "7.00")]).assign(extra="x")
    with pytest.raises(Exception):  # noqa: B017 - DuckDB's binder error stands in for BigQuery's
        big.merge("raw_meta_metrics", widened, KEY)
    assert _sorted(big.read("raw_meta_metrics")) == [("2024-01-01", "a1", "feed", "1.00")]
    assert not [key for key in fake.schemas if bq.STAGING_PREFIX in key]


def test_fake_bigquery_large_frames_load_in_slices(fake, monkeypatch):
    monkeypatch.setattr(bq, "LOAD_SLICE_ROWS", 1_000)
    rows = [(f"2024-01-{1 + i % 28:02d}", f"ad{i}", "feed", f"{i}.00") for i in range(2_500)]
    BigQueryWarehouse(project=PROJECT, dataset="aelp2_prod").merge("raw", _raw(rows), KEY)
    assert [rows for _, rows in fake.loads] == [1_000, 1_000, 500]
    assert len(fake.rows("aelp2_prod", "raw")) == 2_500


DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="America/Los_Angeles")


@dg.asset(partitions_def=DAILY, metadata={"partition_expr": "date"})
def daily_numbers(context: dg.AssetExecutionContext) -> pd.DataFrame:
    window = context.partition_time_window
    days = pd.date_range(window.start.date(), window.end.date(), inclusive="left")
    run = context.run.tags.get("round", "1")
    return pd.DataFrame(
        {"date": days, "ad_id": "a1", "value": [float(run)] * len(days), "note": None}
    )


@dg.asset
def numbers_summary(daily_numbers: pd.DataFrame) -> pd.DataFrame:
    return daily_numbers.groupby("date", as_index=False)["value"].sum()


def _materialize(assets, partition=None, tags=None):
    """A run through the production IO manager, its project read from the environment."""
    io_manager = BigQueryIOManager(project=dg.EnvVar("GOOGLE_CLOUD_PROJECT"), dataset="ds")
    return dg.materialize(
        assets, partition_key=partition, tags=tags or {}, resources={"io_manager": io_manager}
    )


def test_fake_bigquery_io_manager_rewrites_second_and_later_partitions(fake):
    for day, round_ in [("2024-01-01", "1"), ("2024-01-02", "1"), ("2024-01-03", "1")]:
        assert _materialize([daily_numbers], day, {"round": round_}).success
    # the second and later partitions again (the DATE trap would fail here): replaced, not added
    assert _materialize([daily_numbers], "2024-01-02", {"round": "2"}).success
    assert _materialize([daily_numbers], "2024-01-03", {"round": "3"}).success

    stored = fake.rows("ds", "daily_numbers").sort_values("date")
    assert list(stored["value"]) == [1.0, 2.0, 3.0]
    schema = {f.name: f.field_type for f in fake.schemas["ds.daily_numbers"]}
    assert schema == {"date": "DATETIME", "ad_id": "STRING", "value": "FLOAT", "note": "STRING"}
    assert fake.partitioning["ds.daily_numbers"] == "date"
    deletes = [
        s.sql for s in fake.sent if "DELETE FROM `aelp2-test-project.ds.daily_numbers`" in s.sql
    ]
    assert "date >= '2024-01-02 00:00:00' AND date < '2024-01-03 00:00:00'" in deletes[3]

    downstream = dg.materialize(
        [daily_numbers.to_source_asset(), numbers_summary],
        resources={"io_manager": BigQueryIOManager(project=PROJECT, dataset="ds")},
    )
    assert downstream.success
    summary = fake.rows("ds", "numbers_summary")
    assert list(summary.sort_values("date")["value"]) == [1.0, 2.0, 3.0]


def test_fake_bigquery_date_columns_are_refused_before_any_write(fake):
    @dg.asset(partitions_def=DAILY, metadata={"partition_expr": "date"}, name="dated")
    def dated() -> pd.DataFrame:
        return pd.DataFrame({"date": [dt.date(2024, 1, 1)], "value": [1.0]})

    with pytest.raises(TypeError, match=r"dated: partition column 'date' is object, must be"):
        _materialize([dated], "2024-01-01")
    # only Dagster's own CREATE SCHEMA ran: nothing loaded, nothing deleted
    assert [sent.sql for sent in fake.sent] == ["CREATE SCHEMA IF NOT EXISTS ds"]
    assert fake.loads == []


def test_fake_bigquery_reproduces_the_date_trap_it_guards_against(fake):
    # What would happen without the guard: a DATE column (db-dtypes' dbdate) and Dagster's
    # clause for the second partition. BigQuery refuses the literal; so does the fake.
    fake.create_dataset(f"{PROJECT}.ds")
    frame = pd.DataFrame({"date": pd.Series([dt.date(2024, 1, 1)], dtype="dbdate")})
    fake.load_table_from_dataframe(frame, f"{PROJECT}.ds.t").result()
    assert fake.schemas["ds.t"][0].field_type == "DATE"
    with pytest.raises(Exception, match="Could not cast literal"):
        fake.query(f"DELETE FROM `{PROJECT}.ds.t` WHERE date >= '2024-01-02 00:00:00'")


def test_fake_bigquery_unpartitioned_asset_is_replaced_whole_or_not_at_all(fake):
    @dg.asset(name="plan")
    def plan(context: dg.AssetExecutionContext) -> pd.DataFrame:
        size = int(context.run.tags["rows"])
        return pd.DataFrame({"adset_id": [f"s{i}" for i in range(size)], "budget": np.arange(size)})

    assert _materialize([plan], tags={"rows": "3"}).success
    assert _materialize([plan], tags={"rows": "2"}).success
    assert sorted(fake.rows("ds", "plan")["adset_id"]) == ["s0", "s1"]
    fake.fail_on = "INSERT INTO"
    with pytest.raises(Exception, match="fake failure"):
        _materialize([plan], tags={"rows": "5"})
    assert sorted(fake.rows("ds", "plan")["adset_id"]) == ["s0", "s1"]


def test_fake_bigquery_ga4_query_is_parameterized(fake, monkeypatch):
    answer = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-05-01"]),
            "source": ["google"],
            "medium": ["cpc"],
            "sessions": [100],
            "conversions": [3],
        }
    )
    fake.canned.append(("events_*", answer))
    source = Ga4BigQuerySource(
        project=PROJECT,
        export_dataset="ga4-project.analytics_123456",
        days=7,
        conversion_event="purchase",
        timezone="America/Los_Angeles",
    )
    sessions = source.fetch_sessions()
    assert sessions["source"].dtype == "string" and sessions["sessions"].tolist() == [100]
    (sent,) = fake.sent
    assert "FROM `ga4-project.analytics_123456.events_*`" in sent.sql
    assert "purchase" not in sent.sql and not any(ch.isdigit() for ch in _values_region(sent.sql))
    last_day = dt.datetime.now(ZoneInfo("America/Los_Angeles")).date() - dt.timedelta(days=1)
    assert sent.parameters == {
        "first_day": f"{last_day - dt.timedelta(days=6):%Y%m%d}",
        "last_day": f"{last_day:%Y%m%d}",
        "conversion_event": "purchase",
    }
    same_project = Ga4BigQuerySource(
        project=PROJECT,
        export_dataset="analytics_1",
        days=1,
        conversion_event="purchase",
        timezone="UTC",
    )
    same_project.fetch_sessions()
    assert f"FROM `{PROJECT}.analytics_1.events_*`" in fake.sent[-1].sql


def _values_region(sql: str) -> str:
    """The query's WHERE clause: where a formatted value would show."""
    return sql[sql.index("WHERE _TABLE_SUFFIX") : sql.index(")", sql.index("WHERE _TABLE"))]


def test_prod_resources_build_with_envvars_and_no_network(tmp_path, monkeypatch):
    def no_client(*args, **kwargs):
        raise AssertionError("a BigQuery client was made while the definitions loaded")

    monkeypatch.setattr(bigquery, "Client", no_client)
    settings = Aelp2Settings.from_env(
        {
            "AELP2_ENV": "prod",
            "META_AD_ACCOUNT_ID": "act_1",
            "BIGQUERY_DATASET": "ads_prod",
            "BIGQUERY_LOCATION": "EU",
            "AELP2_GCP_KEY_FROM_ENV": "true",
            "AELP2_GA4_DATASET": "ga4-project.analytics_9",
        }
    )
    resources = resources_for(settings)
    warehouse, io_manager, ga4 = (resources[k] for k in ("warehouse", "io_manager", "ga4_source"))
    assert isinstance(warehouse, BigQueryWarehouse) and isinstance(io_manager, BigQueryIOManager)
    assert isinstance(ga4, Ga4BigQuerySource)
    for resource in (warehouse, io_manager, ga4):
        assert resource.project.env_var_name == "GOOGLE_CLOUD_PROJECT"
        assert resource.gcp_credentials.env_var_name == "GCP_CREDENTIALS"
    assert warehouse.dataset == io_manager.dataset == "ads_prod"
    assert warehouse.location == io_manager.location == "EU"
    assert not (tmp_path / "data").exists()

    from aelp2_assets.definitions import build_definitions

    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("main_job") is not None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BIGQUERY_LOCATION", "the moon"),
        ("AELP2_GA4_DATASET", "my project.analytics"),
        ("AELP2_GA4_DAYS", "0"),
        ("AELP2_GA4_CONVERSION_EVENT", "buy now"),
        ("AELP2_GCP_KEY_FROM_ENV", "maybe"),
    ],
)
def test_prod_settings_refuse_bad_values_naming_them(variable, value):
    with pytest.raises(ValueError, match=variable):
        Aelp2Settings.from_env({variable: value})
