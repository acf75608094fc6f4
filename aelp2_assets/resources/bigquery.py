"""The production warehouse on BigQuery: the same tables, columns and verbs as the DuckDB one.

Everything goes through google-cloud-bigquery, by way of dagster-gcp's ``BigQueryResource``
and Dagster's BigQuery pandas IO manager. A frame reaches BigQuery as a load job (the client
turns it into Parquet and derives the schema), never as SQL text: the only values in SQL are
query parameters. Rows that replace others are loaded into a staging table first, then swapped
in by one multi-statement transaction (DELETE, then INSERT), so a failure leaves the table as
it was.
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import InputContext, OutputContext
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbIOManager, TableSlice
from dagster_gcp import BigQueryResource
from dagster_gcp.bigquery.io_manager import BigQueryClient

# Dagster's own WHERE clause for a partition slice (pinned 0.29.27), so that the rows replaced
# are exactly the rows Dagster reads back for that slice.
from dagster_gcp.bigquery.io_manager import _partition_where_clause as partition_where_clause
from dagster_gcp_pandas import BigQueryPandasIOManager
from dagster_gcp_pandas.bigquery.bigquery_pandas_type_handler import BigQueryPandasTypeHandler
from google.api_core.exceptions import NotFound
from google.cloud import bigquery
from google.cloud.bigquery.schema import LEGACY_TO_STANDARD_TYPES
from pydantic import Field

from aelp2_assets.resources.warehouse import storable
from aelp2_assets.tables import TEXT

# Staging tables carry this prefix, are dropped once swapped in, and expire on their own when
# a process dies before it could drop them.
STAGING_PREFIX = "_aelp2_staging_"
STAGING_LIFETIME = dt.timedelta(hours=6)
# Frames are loaded in slices of this many rows: the client's Parquet copy of a frame is then
# never more than one slice, so a large re-pull is not held in memory twice.
LOAD_SLICE_ROWS = 200_000


def dataframe(job: bigquery.QueryJob, compact_text: bool = False) -> pd.DataFrame:
    """A query's rows as DuckDB's ``fetchdf`` gives them: numpy integers and booleans (float
    when NULLs occur), not pandas' nullable types, so both warehouses hand assets equal frames.
    With ``compact_text`` text columns come as Arrow-backed strings (``tables.TEXT``).
    """
    return job.to_dataframe(
        create_bqstorage_client=False,
        int_dtype=None,
        bool_dtype=None,
        string_dtype=TEXT if compact_text else None,
    )


def _parameter(name: str, field: bigquery.SchemaField, value: object):
    """A query parameter holding ``value`` (or a list of values) typed like ``field``."""
    field_type = LEGACY_TO_STANDARD_TYPES[field.field_type].name

    def typed(item: object) -> object:
        if field_type == "STRING":
            return str(item)
        if field_type == "DATE":
            return pd.Timestamp(item).date()
        if field_type in ("DATETIME", "TIMESTAMP"):
            return pd.Timestamp(item).to_pydatetime()
        return item

    if isinstance(value, list):
        return bigquery.ArrayQueryParameter(name, field_type, [typed(item) for item in value])
    return bigquery.ScalarQueryParameter(name, field_type, typed(value))


def _loadable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` typed as it must reach the client: text as text (``storable``) and every
    datetime in nanoseconds. The client maps only ``datetime64[ns]`` to DATETIME; a naive
    column in seconds would become a TIMESTAMP (read as UTC), unlike DuckDB's TIMESTAMP."""
    typed = storable(frame)
    clocks = {
        column: pd.DatetimeTZDtype("ns", dtype.tz)
        if getattr(dtype, "tz", None)
        else "datetime64[ns]"
        for column, dtype in typed.dtypes.items()
        if pd.api.types.is_datetime64_any_dtype(dtype)
    }
    return typed.astype(clocks)


def _load_staging(client: bigquery.Client, dataset: str, table: str, frame: pd.DataFrame):
    """``frame`` loaded into a new staging table beside ``table``; its schema is the one the
    client derives from the frame (text columns typed STRING even when empty)."""
    staging = f"{client.project}.{dataset}.{STAGING_PREFIX}{table}_{uuid.uuid4().hex}"
    for start in range(0, max(len(frame), 1), LOAD_SLICE_ROWS):
        write = "WRITE_TRUNCATE" if start == 0 else "WRITE_APPEND"
        client.load_table_from_dataframe(
            _loadable(frame.iloc[start : start + LOAD_SLICE_ROWS]),
            staging,
            job_config=bigquery.LoadJobConfig(write_disposition=write),
        ).result()
    loaded = client.get_table(staging)
    loaded.expires = dt.datetime.now(dt.UTC) + STAGING_LIFETIME
    return client.update_table(loaded, ["expires"])


def swap_in(
    client: bigquery.Client,
    dataset: str,
    table: str,
    frame: pd.DataFrame,
    deleted: str | None,
    values: tuple[str, Sequence] | None = None,
    partition_column: str | None = None,
    add_columns: bool = False,
) -> None:
    """Insert ``frame`` into ``table`` and, in the same transaction, delete the stored rows
    matching the SQL condition ``deleted`` (alias ``t``; ``{staging}`` names the new rows;
    ``@values`` is ``values[1]``, typed like the frame's column ``values[0]``).

    The table is created with the frame's schema when absent (partitioned by day on
    ``partition_column`` when given). With ``add_columns``, a column of ``frame`` the table
    lacks is added first (NULL in the rows before); otherwise such a frame fails, deleting
    nothing.
    """
    client.create_dataset(f"{client.project}.{dataset}", exists_ok=True)
    staging = _load_staging(client, dataset, table, frame)
    target = f"{client.project}.{dataset}.{table}"
    try:
        created = bigquery.Table(target, schema=staging.schema)
        if partition_column:
            created.time_partitioning = bigquery.TimePartitioning(field=partition_column)
        stored = client.create_table(created, exists_ok=True)
        known = {field.name for field in stored.schema}
        added = [field for field in staging.schema if field.name not in known]
        if added and add_columns:
            stored.schema = [*stored.schema, *added]
            client.update_table(stored, ["schema"])
        columns = ", ".join(field.name for field in staging.schema)
        staged = f"`{staging.project}.{staging.dataset_id}.{staging.table_id}`"
        delete = (
            f"DELETE FROM `{target}` AS t WHERE {deleted.format(staging=staged)};\n"
            if deleted
            else ""
        )
        script = (
            "BEGIN TRANSACTION;\n"
            f"{delete}"
            f"INSERT INTO `{target}` ({columns}) SELECT {columns} FROM {staged};\n"
            "COMMIT TRANSACTION;"
        )
        parameters = []
        if values:
            column, items = values
            field = next(field for field in staging.schema if field.name == column)
            parameters.append(_parameter("values", field, list(items)))
        config = bigquery.QueryJobConfig(query_parameters=parameters)
        client.query(script, job_config=config).result()
    finally:
        client.delete_table(staging, not_found_ok=True)


class BigQueryWarehouse(BigQueryResource):
    """Tables in a BigQuery dataset, with the verbs and semantics of ``DuckDBWarehouse``.

    ``project``, ``location`` and ``gcp_credentials`` are dagster-gcp's; without a key the
    client uses Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, or the
    machine's service account).
    """

    dataset: str = Field(description="Dataset holding the tables (BIGQUERY_DATASET).")

    def merge(self, table: str, frame: pd.DataFrame, key: Sequence[str]) -> None:
        """Replace the stored rows whose ``key`` matches a row of ``frame``; keep all others.

        A stored row with a NULL in its key can never be matched again, so any new pull of its
        ``key[0]`` (the day) replaces it.
        """
        day, *rest = key
        same_key = " AND ".join(f"t.{column} IS NOT DISTINCT FROM i.{column}" for column in key)
        incomplete = " OR ".join(f"t.{column} IS NULL" for column in rest)
        matched = (
            "EXISTS (SELECT 1 FROM {staging} AS i"
            f" WHERE ({same_key}) OR (t.{day} = i.{day} AND ({incomplete})))"
        )
        with self.get_client() as client:
            swap_in(client, self.dataset, table, frame, matched)

    def replace(self, table: str, frame: pd.DataFrame, column: str, values: Sequence) -> None:
        """Replace every stored row whose ``column`` is one of ``values`` by ``frame``'s rows."""
        with self.get_client() as client:
            replaced = f"{column} IN UNNEST(@values)"
            swap_in(client, self.dataset, table, frame, replaced, (column, values))

    def append(self, table: str, frame: pd.DataFrame) -> None:
        """Add ``frame``'s rows to ``table``; nothing stored is ever changed. A column the
        table lacks is added first (NULL in the rows before), as in ``DuckDBWarehouse``."""
        with self.get_client() as client:
            swap_in(client, self.dataset, table, frame, None, add_columns=True)

    def table_names(self) -> list[str]:
        """The tables in the dataset, sorted (staging tables left out)."""
        with self.get_client() as client:
            try:
                tables = list(client.list_tables(f"{client.project}.{self.dataset}"))
            except NotFound:
                return []
        return sorted(t.table_id for t in tables if not t.table_id.startswith(STAGING_PREFIX))

    def read(
        self,
        table: str,
        column: str | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        compact_text: bool = False,
    ) -> pd.DataFrame:
        """Rows of ``table`` with ``start <= column <= end`` (either bound optional), the bounds
        sent as query parameters of the column's type. An absent table reads as an empty frame.
        With ``compact_text`` text columns come as Arrow-backed strings, as in DuckDB's read.
        """
        with self.get_client() as client:
            target = f"{client.project}.{self.dataset}.{table}"
            try:
                fields = {field.name: field for field in client.get_table(target).schema}
            except NotFound:
                return pd.DataFrame()
            conditions, parameters = [], []
            for name, operator, bound in (("start", ">=", start), ("end", "<=", end)):
                if bound is not None:
                    conditions.append(f"{column} {operator} @{name}")
                    parameters.append(_parameter(name, fields[column], bound))
            where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            config = bigquery.QueryJobConfig(query_parameters=parameters)
            query = client.query(f"SELECT * FROM `{target}`{where}", job_config=config)
            return dataframe(query, compact_text)


class _SliceKeepingClient(BigQueryClient):
    """Dagster's BigQuery client, except that it leaves the old slice in place before a write:
    the type handler deletes it in the same transaction that inserts the new rows."""

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        return None


class _FrameHandler(BigQueryPandasTypeHandler):
    """Stores a frame as the slice of its table (the whole table when unpartitioned) in one
    transaction, keeping column names as they are (lower case, as in DuckDB; Dagster's handler
    upper-cases them), and reads frames back as the warehouse does."""

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection
    ) -> dict:
        deleted, partition_column = "TRUE", None
        if table_slice.partition_dimensions:
            for dimension in table_slice.partition_dimensions:
                _check_partition_column(context, obj, dimension.partition_expr)
            deleted = partition_where_clause(table_slice.partition_dimensions)
            partition_column = table_slice.partition_dimensions[0].partition_expr
        swap_in(
            connection,
            table_slice.schema,
            table_slice.table,
            obj,
            deleted,
            partition_column=partition_column,
        )
        rows = len(obj)
        counted = (
            TableMetadataSet(partition_row_count=rows, storage_kind="bigquery")
            if context.has_partition_key
            else TableMetadataSet(row_count=rows, storage_kind="bigquery")
        )
        return dict(counted)

    def load_input(
        self, context: InputContext, table_slice: TableSlice, connection
    ) -> pd.DataFrame:
        if table_slice.partition_dimensions and not context.asset_partition_keys:
            return pd.DataFrame()
        return dataframe(connection.query(BigQueryClient.get_select_statement(table_slice)))


def _check_partition_column(context: OutputContext, frame: pd.DataFrame, column: str) -> None:
    """The partition column must be a naive datetime column, stored as DATETIME.

    Dagster selects a day's rows with ``column >= 'YYYY-MM-DD 00:00:00'``: against a DATE
    column BigQuery refuses that literal once the table exists (so the second partition
    written fails), against text it compares strings and misses rows, and against a TIMESTAMP
    it reads the literal as UTC rather than the account's day.
    """
    dtype = frame[column].dtype if column in frame.columns else None
    if not (pd.api.types.is_datetime64_dtype(dtype) and getattr(dtype, "tz", None) is None):
        raise TypeError(
            f"{context.asset_key.to_user_string()}: partition column {column!r} is {dtype},"
            " must be datetime64 without a time zone (stored as DATETIME)"
        )


class BigQueryIOManager(BigQueryPandasIOManager):
    """Dagster's BigQuery pandas IO manager writing each slice in one transaction.

    A partitioned asset's table is partitioned by day on its ``partition_expr`` column, and a
    run replaces exactly its partitions' rows; an unpartitioned asset's table is replaced whole.
    """

    @staticmethod
    def type_handlers() -> list[_FrameHandler]:
        return [_FrameHandler()]

    @staticmethod
    def default_load_type() -> type:
        return pd.DataFrame

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_SliceKeepingClient(gcp_credentials=self.gcp_credentials),
            io_manager_name="BigQueryIOManager",
            database=self.project,
            schema=self.dataset,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
        )


# GA4's BigQuery export: one events_YYYYMMDD table per day in the property's time zone. A
# session is user_pseudo_id + the ga_session_id event parameter; source and medium are the
# user's first-touch traffic source, as in the local sample. The table name is the only text
# put into the query (an identifier, checked by the settings); every value is a parameter.
GA4_SESSIONS_SQL = """
SELECT
  DATETIME(PARSE_DATE('%Y%m%d', event_date)) AS date,
  COALESCE(traffic_source.source, '(not set)') AS source,
  COALESCE(traffic_source.medium, '(not set)') AS medium,
  COUNT(DISTINCT IF(event_name = 'session_start', session, NULL)) AS sessions,
  COUNT(DISTINCT IF(event_name = @conversion_event, session, NULL)) AS conversions
FROM (
  SELECT
    event_date,
    event_name,
    traffic_source,
    CONCAT(user_pseudo_id, '.', CAST(
      (SELECT value.int_value FROM UNNEST(event_params) WHERE key = 'ga_session_id') AS STRING
    )) AS session
  FROM `{events}`
  WHERE _TABLE_SUFFIX BETWEEN @first_day AND @last_day
)
GROUP BY date, source, medium
ORDER BY date, source, medium
"""


class Ga4BigQuerySource(BigQueryResource):
    """GA4 sessions and conversions by day and source/medium, queried from the property's
    BigQuery export; the same verb as the local ``Ga4FileSource``."""

    export_dataset: str = Field(description="The GA4 export dataset, [project.]analytics_<id>.")
    days: int = Field(description="Complete days read, ending yesterday (AELP2_GA4_DAYS).")
    conversion_event: str = Field(description="The GA4 event counted as a conversion.")
    timezone: str = Field(description="Time zone whose yesterday ends the window.")

    def fetch_sessions(self) -> pd.DataFrame:
        """``date, source, medium, sessions, conversions`` of the last ``days`` complete days."""
        last = dt.datetime.now(ZoneInfo(self.timezone)).date() - dt.timedelta(days=1)
        first = last - dt.timedelta(days=self.days - 1)
        parameters = [
            bigquery.ScalarQueryParameter("first_day", "STRING", f"{first:%Y%m%d}"),
            bigquery.ScalarQueryParameter("last_day", "STRING", f"{last:%Y%m%d}"),
            bigquery.ScalarQueryParameter("conversion_event", "STRING", self.conversion_event),
        ]
        with self.get_client() as client:
            events = f"{self.export_dataset}.events_*"
            if events.count(".") == 1:
                events = f"{client.project}.{events}"
            job = client.query(
                GA4_SESSIONS_SQL.format(events=events),
                job_config=bigquery.QueryJobConfig(query_parameters=parameters),
            )
            frame = dataframe(job)
        return frame.astype({"source": "string", "medium": "string"})
