"""Metadata every materialization carries: previews and pictures for the Dagster UI."""

import base64

import dagster as dg
import pandas as pd


def markdown_preview(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """The first ``rows`` rows as a markdown table."""
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False))


def png_markdown(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG picture shown inline in the Dagster UI."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")
