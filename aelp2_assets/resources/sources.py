"""Insights sources: where ``raw_meta_metrics`` and ``meta_ad_entities`` come from.

Every source has the same verbs and returns rows shaped like Meta's Insights API (level ad,
one row per day and placement, numbers as strings, ``actions`` possibly missing):

- ``fetch_insights(start, end)``: the rows of the account-local days ``start..end``;
- ``fetch_insight_table(start, end)``: the same rows as the raw table's text columns (what the
  ingest stores; the file source reads them straight into columns);
- ``fetch_entities()``: the account's campaigns, ad sets and ads with their budgets;
- ``decision_date(today)``: the day the model decides for.

The Meta Marketing API source (``meta_api.MetaApiSource``) is a third class with the same
verbs.
"""

import datetime as dt
import json
from functools import cache, lru_cache
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import Field

from aelp2_assets.insights_files import SELECT_INSIGHTS, query_insights
from aelp2_assets.simulator import SimulatedHistory, simulate_history
from aelp2_assets.tables import OBJECT_COLUMNS, TEXT, insight_text_frame

# meta_ad_entities: the objects with the account's facts on every row.
ENTITY_COLUMNS = (*OBJECT_COLUMNS, "account_currency", "account_timezone", "min_daily_budget")


def with_account(
    entities: pd.DataFrame, currency: str, timezone: str, minimum: object
) -> pd.DataFrame:
    """``entities`` with the account's currency, time zone and minimum daily budget on every
    row, budgets as nullable integers, in ``ENTITY_COLUMNS`` order."""
    frame = entities.assign(
        account_currency=currency, account_timezone=timezone, min_daily_budget=minimum
    )
    for column in ("daily_budget", "lifetime_budget", "min_daily_budget"):
        frame[column] = frame[column].astype("Int64")
    return frame.reindex(columns=ENTITY_COLUMNS)


@cache
def _demo_history(
    seed: int, start: dt.date, end: dt.date, creatives: int, budget: float, currency: str
) -> SimulatedHistory:
    return simulate_history(
        seed=seed,
        start=start,
        end=end,
        n_creatives=creatives,
        daily_budget=budget,
        currency=currency,
    )


@lru_cache(maxsize=1)
def _file_last_day(path: str, purchase_action_type: str, stamp: tuple[int, int]) -> str | None:
    """The file's last day (None when it holds no rows), found once per version of the file
    (``stamp``: mtime and size): a run asks for it several times, and every verb of the file
    source first refuses a file with a row that cannot be placed in a partition.

    Only the distinct dates come back from DuckDB (a few hundred for millions of rows), each
    with the first data row that holds it, so a date that is not ISO is named by its row.
    """
    days = query_insights(
        path,
        "SELECT date_start, min(data_row) AS first_row FROM insights"
        " GROUP BY date_start ORDER BY first_row",
        purchase_action_type=purchase_action_type,
    ).to_pandas()
    dates = days["date_start"]
    iso = (
        dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}", na=False)
        & pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce").notna()
    ).astype(bool)
    if not iso.all():
        first = days.loc[~iso].iloc[0]
        value = first["date_start"]
        raise ValueError(
            f"{path}: data row {first['first_row']}: date_start"
            f" {None if pd.isna(value) else value!r} is not an ISO date (YYYY-MM-DD);"
            " nothing was written"
        )
    return dates.max() if len(dates) else None


class InsightsSource(dg.ConfigurableResource):
    """What every source offers; assets ask for this type, the environment picks the class."""

    def fetch_insights(self, start: dt.date, end: dt.date) -> list[dict]:
        """Insights rows of the account-local days ``start..end``."""
        raise NotImplementedError

    def fetch_insight_table(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The same rows as the raw table holds their fields (``insight_text_frame``)."""
        return insight_text_frame(self.fetch_insights(start, end))

    def fetch_entities(self, as_of: dt.date) -> pd.DataFrame:
        """The account's campaigns, ad sets and ads (columns ``ENTITY_COLUMNS``)."""
        raise NotImplementedError

    def decision_date(self, today: dt.date) -> dt.date:
        """The day the model decides for, given the account's today."""
        raise NotImplementedError


class DemoSource(InsightsSource):
    """A simulated account (``aelp2_assets.simulator``): no credentials, no network.

    The simulation starts on ``start_date`` and is deterministic for a seed, so a day's rows
    are the same whenever they are fetched. It simulates whole days, today's included.
    """

    seed: int = Field(description="Simulator seed (AELP2_DEMO_SEED).")
    creatives: int = Field(description="Creatives in the account (AELP2_DEMO_CREATIVES).")
    start_date: str = Field(description="First simulated day (AELP2_PARTITION_START_DATE).")
    daily_budget: float = Field(description="Daily spend, major units (DAILY_BUDGET_CAP).")
    currency: str = Field(description="Account currency (AELP2_ACCOUNT_CURRENCY).")
    timezone: str = Field(description="Account time zone (AELP2_ACCOUNT_TIMEZONE).")
    min_daily_budget: int = Field(100, description="Account minimum daily budget, minor units.")

    def _history(self, end: dt.date) -> SimulatedHistory:
        start = dt.date.fromisoformat(self.start_date)
        return _demo_history(
            self.seed, start, max(start, end), self.creatives, self.daily_budget, self.currency
        )

    def fetch_insights(self, start: dt.date, end: dt.date) -> list[dict]:
        """Simulated rows of the days ``start..end``."""
        history = self._history(end)
        first, last = start.isoformat(), end.isoformat()
        return [row for row in history.rows if first <= row["date_start"] <= last]

    def fetch_entities(self, as_of: dt.date) -> pd.DataFrame:
        """The simulated account's objects and budgets on ``as_of``."""
        entities = self._history(as_of).entities.drop(columns="first_delivery_date")
        return with_account(entities, self.currency, self.timezone, self.min_daily_budget)

    def decision_date(self, today: dt.date) -> dt.date:
        """The account's today."""
        return today


class FileSource(InsightsSource):
    """A Meta Ads Manager CSV export or Insights rows saved as JSON lines.

    Budgets are not in an export, so entities carry no ``daily_budget``; the decision date is
    the file's last day, and freshness is judged against it.
    """

    path: str = Field(description="The export file (AELP2_SOURCE_FILE).")
    purchase_action_type: str = Field(
        description="The action type of an export's Purchases (AELP2_CONVERSION_ACTION_TYPE)."
    )
    currency: str = Field(description="Account currency (AELP2_ACCOUNT_CURRENCY).")
    timezone: str = Field(description="Account time zone (AELP2_ACCOUNT_TIMEZONE).")
    min_daily_budget: int = Field(100, description="Account minimum daily budget, minor units.")

    def _last_day(self) -> str | None:
        """The file's last day; each row must carry an ISO ``date_start``, the key of its
        partition.

        Every other field is checked by validation, which names the row; a row that cannot be
        placed in a partition is refused here, naming it, before anything is written.
        """
        status = Path(self.path).stat()
        return _file_last_day(
            self.path, self.purchase_action_type, (status.st_mtime_ns, status.st_size)
        )

    def _query(self, sql: str, parameters: list[str]) -> pd.DataFrame:
        """``sql`` over the file's rows (``insights_files.query_insights``), text as ``TEXT``."""
        self._last_day()
        table = query_insights(self.path, sql, parameters, self.purchase_action_type)
        return table.to_pandas(types_mapper={pa.string(): TEXT}.get)

    def fetch_insight_table(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The file's rows dated ``start..end``, in file order, as raw text columns."""
        return self._query(
            f"{SELECT_INSIGHTS} WHERE date_start BETWEEN ? AND ?",
            [start.isoformat(), end.isoformat()],
        )

    def fetch_insights(self, start: dt.date, end: dt.date) -> list[dict]:
        """The file's rows dated ``start..end`` as Insights rows: values as text, lists of
        actions as lists, absent fields left out."""
        table = self.fetch_insight_table(start, end).astype(object)
        rows = table.where(table.notna(), None).to_dict("records")
        for row in rows:
            for field in ("actions", "action_values"):
                if row[field] is not None:
                    row[field] = json.loads(row[field])
        return [{key: value for key, value in row.items() if value is not None} for row in rows]

    def fetch_entities(self, as_of: dt.date) -> pd.DataFrame:
        """Campaigns, ad sets and ads named in the file's rows up to ``as_of``; an export holds
        neither budgets nor delivery status, so both are left empty."""
        names = "campaign_id, campaign_name, adset_id, adset_name, ad_id, ad_name"
        # the distinct rows in DuckDB, in the order they first appear: a few thousand where the
        # file has millions
        rows = self._query(
            f"SELECT {names} FROM insights WHERE date_start <= ?"
            " GROUP BY ALL ORDER BY min(data_row)",
            [as_of.isoformat()],
        )
        rows = rows.astype(object).where(rows.notna(), None)
        levels = (
            ("campaign", "campaign_id", "campaign_name", ["campaign_id"]),
            ("adset", "adset_id", "adset_name", ["campaign_id", "adset_id"]),
            ("ad", "ad_id", "ad_name", ["campaign_id", "adset_id"]),
        )
        frames = [
            rows.dropna(subset=[id_column])
            .drop_duplicates(id_column)
            .assign(level=level, object_id=lambda f, c=id_column: f[c], name=lambda f, n=name: f[n])
            .reindex(columns=["level", "object_id", "name", *parents])
            for level, id_column, name, parents in levels
        ]
        entities = pd.concat(frames, ignore_index=True)
        entities[["status", "creative_id"]] = None
        entities[["daily_budget", "lifetime_budget"]] = pd.NA
        return with_account(entities, self.currency, self.timezone, self.min_daily_budget)

    def decision_date(self, today: dt.date) -> dt.date:
        """The last day in the file."""
        last = self._last_day()
        if last is None:
            raise ValueError(f"{self.path} holds no rows")
        return dt.date.fromisoformat(last)
