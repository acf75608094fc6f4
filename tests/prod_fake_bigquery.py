"""A fake BigQuery for tests: google-cloud-bigquery's real client with its network calls
answered by an in-memory DuckDB. BigQuery cannot run here (no network, no credentials).

What stays real: the client's pandas -> Parquet conversion and the BigQuery schema it derives
for every load job (recorded in ``schemas``). What is faked: the service. Every SQL text is
parsed with sqlglot's BigQuery dialect (a syntax error fails the test), translated to DuckDB
and run there, parameters included; one BigQuery behaviour that DuckDB lacks is reproduced on
purpose: a DATE column compared with a 'YYYY-MM-DD HH:MM:SS' literal is refused ("Could not
cast literal"), the trap Dagster's partition clause falls into with DATE columns.
"""

import re
from dataclasses import dataclass, field

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import sqlglot
from google.api_core.exceptions import BadRequest, NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from sqlglot import expressions as exp

PROJECT = "aelp2-test-project"
DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INTEGER": "BIGINT",
    "INT64": "BIGINT",
    "FLOAT": "DOUBLE",
    "FLOAT64": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "DATETIME": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATE": "DATE",
}
_DATETIME_LITERAL = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@dataclass
class Sent:
    """One query as the client sent it: its SQL text and its parameters by name."""

    sql: str
    parameters: dict = field(default_factory=dict)


class _Job:
    def __init__(self, frame: pd.DataFrame | None = None):
        self.frame = frame

    def result(self, *args, **kwargs) -> "_Job":
        return self

    def to_dataframe(self, string_dtype=None, **kwargs) -> pd.DataFrame:
        frame = self.frame if self.frame is not None else pd.DataFrame()
        if string_dtype is None:
            return frame
        # as the real client: STRING columns (text here) in the dtype asked for
        text = [name for name in frame.columns if frame[name].dtype == object]
        return frame.astype(dict.fromkeys(text, string_dtype))


def _name(reference) -> tuple[str, str, str]:
    text = reference if isinstance(reference, str) else str(reference).replace(":", ".")
    if isinstance(reference, bigquery.Table | bigquery.TableReference):
        text = f"{reference.project}.{reference.dataset_id}.{reference.table_id}"
    project, dataset, table = text.split(".")
    return project, dataset, table


def _quoted(project: str, dataset: str, table: str) -> str:
    return f'"{project}"."{dataset}"."{table}"'


class FakeBigQuery(bigquery.Client):
    """The real ``bigquery.Client`` (anonymous credentials) over an in-memory DuckDB."""

    def __init__(self, project: str = PROJECT):
        super().__init__(project=project, credentials=AnonymousCredentials())
        self.db = duckdb.connect()
        self.db.execute(f"ATTACH ':memory:' AS \"{project}\"")
        self.schemas: dict[str, list[bigquery.SchemaField]] = {}  # "dataset.table" -> schema
        self.partitioning: dict[str, str] = {}  # "dataset.table" -> day-partition column
        self.sent: list[Sent] = []
        self.loads: list[tuple[str, int]] = []  # (table, rows) of every load job
        self.canned: list[tuple[str, pd.DataFrame]] = []  # (SQL fragment, answer) not run
        self.fail_on: str | None = None  # a SQL fragment that makes its query fail

    def __call__(self, project=None, location=None, **kwargs) -> "FakeBigQuery":
        """Stands in for ``bigquery.Client(...)``: every client made is this one."""
        return self

    # datasets and tables
    def create_dataset(self, dataset, exists_ok=False, **kwargs):
        project, name = str(dataset).split(".")
        self.db.execute(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{name}"')

    def get_table(self, table, **kwargs) -> bigquery.Table:
        project, dataset, name = _name(table)
        key = f"{dataset}.{name}"
        if key not in self.schemas:
            raise NotFound(f"Not found: Table {project}:{key}")
        found = bigquery.Table(f"{project}.{key}", schema=self.schemas[key])
        if key in self.partitioning:
            found.time_partitioning = bigquery.TimePartitioning(field=self.partitioning[key])
        return found

    def update_table(self, table, fields, **kwargs) -> bigquery.Table:
        if "schema" in fields:  # BigQuery only ever adds columns (NULLABLE) this way
            project, dataset, name = _name(table)
            key = f"{dataset}.{name}"
            known = {field.name for field in self.schemas[key]}
            for field in table.schema:
                if field.name not in known:
                    added = f"{field.name} {DUCKDB_TYPES[field.field_type]}"
                    self.db.execute(f"ALTER TABLE {_quoted(project, dataset, name)} ADD {added}")
            self.schemas[key] = list(table.schema)
        return table

    def create_table(self, table, exists_ok=False, **kwargs) -> bigquery.Table:
        project, dataset, name = _name(table)
        key = f"{dataset}.{name}"
        if key not in self.schemas:
            columns = ", ".join(f"{f.name} {DUCKDB_TYPES[f.field_type]}" for f in table.schema)
            self.db.execute(f"CREATE TABLE {_quoted(project, dataset, name)} ({columns})")
            self.schemas[key] = list(table.schema)
            if table.time_partitioning is not None:
                self.partitioning[key] = table.time_partitioning.field
        return self.get_table(table)

    def delete_table(self, table, not_found_ok=False, **kwargs) -> None:
        project, dataset, name = _name(table)
        self.db.execute(f"DROP TABLE IF EXISTS {_quoted(project, dataset, name)}")
        self.schemas.pop(f"{dataset}.{name}", None)

    def list_tables(self, dataset, **kwargs) -> list[bigquery.TableReference]:
        project, name = str(dataset).split(".")
        return [
            bigquery.TableReference.from_string(f"{project}.{key}")
            for key in self.schemas
            if key.startswith(f"{name}.")
        ]

    # jobs
    def load_table_from_file(self, file_obj, destination, job_config=None, **kwargs) -> _Job:
        project, dataset, name = _name(destination)
        key = f"{dataset}.{name}"
        frame = pq.read_table(file_obj).to_pandas()
        self.loads.append((key, len(frame)))
        self.db.execute(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{dataset}"')
        self.db.register("loaded", frame)
        target = _quoted(project, dataset, name)
        if job_config.write_disposition == "WRITE_TRUNCATE" or key not in self.schemas:
            self.db.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM loaded")
            self.schemas[key] = list(job_config.schema)
        else:
            self.db.execute(f"INSERT INTO {target} BY NAME SELECT * FROM loaded")
        self.db.unregister("loaded")
        return _Job()

    def query(self, query, job_config=None, **kwargs) -> _Job:
        parameters = {
            p.name: p.values if isinstance(p, bigquery.ArrayQueryParameter) else p.value
            for p in (job_config.query_parameters if job_config else [])
        }
        self.sent.append(Sent(query, parameters))
        statements = sqlglot.parse(query, read="bigquery")  # a syntax error fails here
        for fragment, answer in self.canned:
            if fragment in query:
                return _Job(answer)
        if self.fail_on and self.fail_on in query:
            raise BadRequest(f"fake failure on {self.fail_on!r}")
        self._refuse_datetime_literals_on_dates(statements)
        self.db.execute("BEGIN TRANSACTION")
        try:
            result = None
            for statement in statements:
                if isinstance(statement, exp.Transaction | exp.Commit):
                    continue
                sql = statement.sql(dialect="duckdb")
                used = {name: parameters[name] for name in re.findall(r"\$(\w+)", sql)}
                result = self.db.execute(sql, used)
            frame = result.fetchdf() if result is not None and result.description else None
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return _Job(frame)

    def _refuse_datetime_literals_on_dates(self, statements: list[exp.Expression]) -> None:
        date_columns = {
            f.name for schema in self.schemas.values() for f in schema if f.field_type == "DATE"
        }
        for statement in statements:
            for comparison in statement.find_all(exp.GTE, exp.LT, exp.GT, exp.LTE, exp.EQ):
                column, literal = comparison.this, comparison.expression
                if (
                    isinstance(column, exp.Column)
                    and column.name in date_columns
                    and isinstance(literal, exp.Literal)
                    and _DATETIME_LITERAL.fullmatch(literal.this)
                ):
                    raise BadRequest(f'Could not cast literal "{literal.this}" to type DATE')

    def rows(self, dataset: str, table: str) -> pd.DataFrame:
        """Every stored row of a table (for the test's eyes, not through the client)."""
        return self.db.execute(f"SELECT * FROM {_quoted(self.project, dataset, table)}").fetchdf()
