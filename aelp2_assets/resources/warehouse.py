"""The warehouse resource: the tables that are merged or appended on purpose.

Dagster's database IO managers replace a partition's rows, which suits derived tables. Restated
insights must merge (a re-pull replaces the rows it returns; a row it no longer returns is kept,
not zeroed), and audit tables only ever grow: those go through these verbs, each one statement
group in one transaction, so a failure leaves no partial table.
"""

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler
from pydantic import Field

from aelp2_assets.tables import TEXT


class Warehouse(Protocol):
    """The table verbs the assets and sensors use, whichever warehouse holds the tables:
    ``DuckDBWarehouse`` (embedded, the default) or ``BigQueryWarehouse`` (production)."""

    def merge(self, table: str, frame: pd.DataFrame, key: Sequence[str]) -> None: ...

    def replace(self, table: str, frame: pd.DataFrame, column: str, values: Sequence) -> None: ...

    def append(self, table: str, frame: pd.DataFrame) -> None: ...

    def table_names(self) -> list[str]: ...

    def read(
        self,
        table: str,
        column: str | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        compact_text: bool = False,
    ) -> pd.DataFrame: ...


WarehouseResource = dg.ResourceParam[Warehouse]
"""How an asset or sensor asks for the ``warehouse`` resource (a protocol is not a resource
class, so Dagster is told it is one)."""


def storable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns typed as text.

    DuckDB types a column of Python objects from its values, so an empty or all-NULL text
    column would become a NULL-typed column that later rows cannot be inserted into. Dates
    must therefore be ``datetime64`` columns, never Python date objects.
    """
    text = [column for column in frame.columns if frame[column].dtype == object]
    return frame.astype(dict.fromkeys(text, "string"))


class _TypedPandasHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context, table_slice, obj: pd.DataFrame, connection) -> None:
        super().handle_output(context, table_slice, storable(obj), connection)


class DuckDBIOManager(DuckDBPandasIOManager):
    """Dagster's DuckDB pandas IO manager, storing text columns as text even when empty."""

    @staticmethod
    def type_handlers() -> list[DuckDBPandasTypeHandler]:
        return [_TypedPandasHandler()]


class DuckDBWarehouse(dg.ConfigurableResource):
    """Tables in an embedded DuckDB file, in the schema named like the BigQuery dataset."""

    database: str = Field(description="Path of the DuckDB file (AELP2_DUCKDB_PATH).")
    dataset: str = Field(description="Schema holding the tables (BIGQUERY_DATASET).")

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with DuckDBResource(database=self.database).get_connection() as connection:
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.dataset}"')
            connection.execute("BEGIN TRANSACTION")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _name(self, table: str) -> str:
        return f'"{self.dataset}"."{table}"'

    def _create_like(self, connection: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame):
        connection.register("incoming", storable(frame))
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {self._name(table)} AS SELECT * FROM incoming WHERE false"
        )

    def merge(self, table: str, frame: pd.DataFrame, key: Sequence[str]) -> None:
        """Replace the stored rows whose ``key`` matches a row of ``frame``; keep all others.

        A stored row with a NULL in its key (a bad row, kept so that validation can reject it)
        can never be matched again, so any new pull of its ``key[0]`` (the day) replaces it.
        """
        day, *rest = key
        same_key = " AND ".join(f"t.{column} IS NOT DISTINCT FROM i.{column}" for column in key)
        incomplete = " OR ".join(f"t.{column} IS NULL" for column in rest)
        with self._transaction() as connection:
            self._create_like(connection, table, frame)
            # two statements, not one with OR: an OR of the two made DuckDB compare every
            # stored row with every incoming one (a nested-loop join) instead of hashing keys
            connection.execute(
                f"DELETE FROM {self._name(table)} AS t USING incoming AS i WHERE {same_key}"
            )
            connection.execute(
                f"DELETE FROM {self._name(table)} AS t"
                f" WHERE ({incomplete}) AND t.{day} IN (SELECT {day} FROM incoming)"
            )
            connection.execute(f"INSERT INTO {self._name(table)} BY NAME SELECT * FROM incoming")

    def replace(self, table: str, frame: pd.DataFrame, column: str, values: Sequence) -> None:
        """Replace every stored row whose ``column`` is one of ``values`` by ``frame``'s rows."""
        with self._transaction() as connection:
            self._create_like(connection, table, frame)
            connection.register("replaced", pd.DataFrame({column: list(values)}))
            connection.execute(
                f"DELETE FROM {self._name(table)} WHERE {column} IN (SELECT {column} FROM replaced)"
            )
            connection.execute(f"INSERT INTO {self._name(table)} BY NAME SELECT * FROM incoming")

    def append(self, table: str, frame: pd.DataFrame) -> None:
        """Add ``frame``'s rows to ``table``; nothing stored is ever changed. A column the
        table lacks is added first (NULL in the rows before), as BigQuery's
        ``ALLOW_FIELD_ADDITION`` does: an audit table can gain a field without losing a row."""
        with self._transaction() as connection:
            self._create_like(connection, table, frame)
            stored = {
                name
                for (name,) in connection.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = ? AND table_name = ?",
                    [self.dataset, table],
                ).fetchall()
            }
            for name, kind, *_ in connection.execute("DESCRIBE incoming").fetchall():
                if name not in stored:
                    added = f'"{name}" {kind}'
                    connection.execute(f"ALTER TABLE {self._name(table)} ADD COLUMN {added}")
            connection.execute(f"INSERT INTO {self._name(table)} BY NAME SELECT * FROM incoming")

    def table_names(self) -> list[str]:
        """The tables in the dataset, sorted."""
        with DuckDBResource(database=self.database).get_connection() as connection:
            rows = connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
                " ORDER BY table_name",
                [self.dataset],
            ).fetchall()
        return [name for (name,) in rows]

    def read(
        self,
        table: str,
        column: str | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        compact_text: bool = False,
    ) -> pd.DataFrame:
        """Rows of ``table`` with ``start <= column <= end`` (either bound optional).

        An absent table reads as an empty frame: the first run has no history yet. With
        ``compact_text`` text columns come as Arrow-backed strings (``tables.TEXT``), not
        Python objects: a fraction of the memory for a large table.
        """
        conditions, parameters = [], []
        if start is not None:
            conditions.append(f"{column} >= ?")
            parameters.append(start)
        if end is not None:
            conditions.append(f"{column} <= ?")
            parameters.append(end)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with DuckDBResource(database=self.database).get_connection() as connection:
            exists = connection.execute(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = ? AND table_name = ?",
                [self.dataset, table],
            ).fetchall()[0][0]
            if not exists:
                return pd.DataFrame()
            query = f"SELECT * FROM {self._name(table)}{where}"
            if not compact_text:
                return connection.execute(query, parameters).fetchdf()
            arrow = connection.sql(query, params=parameters).to_arrow_table()
        return arrow.to_pandas(types_mapper={pa.string(): TEXT}.get)
