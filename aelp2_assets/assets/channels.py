"""GA4 channel metrics: sessions and conversions per channel, suspect traffic flagged."""

from pathlib import Path
from typing import Protocol

import dagster as dg
import pandas as pd
from pydantic import Field

from aelp2_assets.assets.metadata import markdown_preview
from aelp2_assets.channels import channel_metrics, read_funnel_csv
from aelp2_assets.resources.settings import Aelp2Settings


class Ga4Source(Protocol):
    """What the GA4 asset needs of a source: the local file or the BigQuery export
    (``aelp2_assets.resources.bigquery.Ga4BigQuerySource``)."""

    def fetch_sessions(self) -> pd.DataFrame:
        """``date, source, medium, sessions, conversions``, one row per day and source/medium."""
        ...


class Ga4FileSource(dg.ConfigurableResource):
    """GA4 sessions and conversions by day and source/medium from a local export of the
    BigQuery funnel query (the embedded default)."""

    path: str = Field(description="The GA4 funnel CSV (AELP2_GA4_FILE).")

    def fetch_sessions(self) -> pd.DataFrame:
        """``date, source, medium, sessions, conversions`` of every day in the file."""
        if not Path(self.path).is_file():
            raise FileNotFoundError(
                f"AELP2_GA4_FILE={self.path!r}: no such file (the sample lives in"
                " ../shared/data/ga4_obfuscated_sample_daily_channel_funnel)"
            )
        return read_funnel_csv(self.path)


@dg.asset(group_name="reports", kinds={"python", "duckdb", "bigquery"}, owners=["team:ads-ops"])
def ga4_channel_metrics(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    ga4_source: dg.ResourceParam[Ga4Source],
) -> pd.DataFrame:
    """One row per GA4 channel (source/medium grouped): sessions, conversions, conversion
    rate, share of sessions, and whether the channel looks like suspect traffic (a collapsing
    conversion rate on large traffic), with the reason."""
    sessions = ga4_source.fetch_sessions()
    metrics = channel_metrics(
        sessions, settings.ga4_suspect_cvr_ratio, settings.ga4_suspect_min_sessions
    )
    suspect = metrics[metrics["suspect_traffic"]]
    for row in suspect.itertuples(index=False):
        context.log.warning(f"suspect traffic: {row.channel} {row.reason}")
    days = f"{sessions['date'].min():%Y-%m-%d}..{sessions['date'].max():%Y-%m-%d}"
    context.log.info(f"{len(metrics)} channels from {len(sessions)} GA4 rows, {days}")
    context.add_output_metadata(
        {
            "dagster/row_count": len(metrics),
            "days": days,
            "sessions": int(metrics["sessions"].sum()),
            "suspect_channels": len(suspect),
            "preview": markdown_preview(metrics, 15),
        }
    )
    return metrics
