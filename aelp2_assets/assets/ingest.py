"""Ingest: Meta insights and the account's objects, as the source returned them."""

import datetime as dt

import dagster as dg
import pandas as pd

from aelp2_assets.assets.metadata import markdown_preview
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import InsightsSource
from aelp2_assets.resources.warehouse import WarehouseResource
from aelp2_assets.tables import RAW_KEY
from aelp2_assets.validation import checked_entities


def partition_days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last account-local day of the partitions this run materializes."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def raw_frame(insights: pd.DataFrame, pulled_at: dt.datetime) -> pd.DataFrame:
    """A pull's rows as the raw table stores them: the insight fields' text
    (``InsightsSource.fetch_insight_table``), each row's position in the pull and its time."""
    return insights.assign(
        row_number=pd.Series(range(1, len(insights) + 1), dtype="int64", index=insights.index),
        pulled_at=pd.Timestamp(pulled_at).tz_convert("UTC").tz_localize(None),
    )


def build_ingest_assets(daily: dg.DailyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The ingest assets over the account's daily partitions."""

    @dg.asset(
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="ingest",
        kinds={"python", "duckdb"},
        owners=["team:ads-ops"],
    )
    def raw_meta_metrics(
        context: dg.AssetExecutionContext,
        insights_source: InsightsSource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        """One row per account-local day x ad x placement, as the source returned it.

        Numbers stay text and ``actions`` may be missing. A re-pull merges: it replaces the
        stored rows it returns again (by day, ad and placement) and keeps those it no longer
        returns, so re-running a partition never duplicates a row and absence is not zero.
        """
        start, end = partition_days(context)
        # The whole pull first, then one merge: a fetch that fails writes nothing.
        frame = raw_frame(insights_source.fetch_insight_table(start, end), dt.datetime.now(dt.UTC))
        outside = frame[
            frame["date_start"].notna()
            & ~frame["date_start"].between(start.isoformat(), end.isoformat())
        ]
        if not outside.empty:
            first = outside.iloc[0]
            raise ValueError(
                f"the source returned row {first['row_number']} dated {first['date_start']},"
                f" outside the requested days {start}..{end}; nothing was written"
            )
        warehouse.merge("raw_meta_metrics", frame, RAW_KEY)
        context.log.info(f"merged {len(frame)} insights rows for {start}..{end}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(frame),
                "days": f"{start}..{end}",
                "spend_text_total": float(pd.to_numeric(frame["spend"], errors="coerce").sum()),
                "preview": markdown_preview(frame),
            }
        )

    return [raw_meta_metrics]


@dg.asset(group_name="ingest", kinds={"python", "duckdb"}, owners=["team:ads-ops"])
def meta_ad_entities(
    context: dg.AssetExecutionContext, insights_source: InsightsSource, settings: Aelp2Settings
) -> pd.DataFrame:
    """One row per campaign, ad set and ad of the account, as of the decision date: status,
    daily and lifetime budgets (integer minor units), creative, and the account's currency,
    time zone and minimum daily budget on every row."""
    as_of = insights_source.decision_date(settings.account_today())
    entities = insights_source.fetch_entities(as_of)
    wrong_currency = entities[entities["account_currency"] != settings.account_currency]
    if not wrong_currency.empty:
        raise ValueError(
            f"the account reports currency {wrong_currency['account_currency'].iloc[0]!r} but"
            f" AELP2_ACCOUNT_CURRENCY is {settings.account_currency!r}; budgets would be wrong"
        )
    wrong_timezone = entities[entities["account_timezone"] != settings.account_timezone]
    if not wrong_timezone.empty:
        raise ValueError(
            f"the account reports time zone {wrong_timezone['account_timezone'].iloc[0]!r} but"
            f" AELP2_ACCOUNT_TIMEZONE is {settings.account_timezone!r}; partitions would be"
            " the wrong days"
        )
    entities, copies = checked_entities(entities)
    if copies:
        context.log.info(f"dropped {copies} identical copies of objects (overlapping pages)")
    context.log.info(f"{len(entities)} objects as of {as_of}")
    context.add_output_metadata(
        {
            "dagster/row_count": len(entities),
            "identical_copies_dropped": copies,
            "as_of": str(as_of),
            "ad_sets": int((entities["level"] == "adset").sum()),
            "preview": markdown_preview(entities),
        }
    )
    return entities
