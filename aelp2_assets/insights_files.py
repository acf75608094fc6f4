"""The file source's reader: Insights rows from a file on disk (no Dagster import).

Two formats, chosen by the file's extension:

- ``.jsonl`` / ``.json``: JSON lines, one Insights API row per line, returned exactly as the
  file has them. Nothing is coerced: validation, later, rejects a bad value naming its row,
  field and value, so a spend of ``"abc"`` must reach it untouched.
- ``.csv``: a Meta Ads Manager export, its columns renamed to Insights fields by
  ``ADS_MANAGER_COLUMNS`` (and ``SPEND_COLUMN`` for the spend column, which names the
  currency). Values stay the strings the file holds.

``read_insights_file`` returns the rows as dicts; ``read_insights_table``, what the file source
loads, returns the raw table's text columns directly, reading JSON lines with DuckDB (a parse
in Python built 1.8 million dicts for a large export; benchmarks/scale.py).
"""

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from aelp2_assets.tables import INSIGHT_FIELDS, PLACEMENT_KEY, TEXT, insight_text_frame

# Ads Manager column -> Insights field. Targets of the form "actions:<type>" or
# "action_values:<type>" become one entry of that list with that action type; "<purchase>"
# stands for the configured purchase action type (``purchase_action_type``).
#
# Clicks: Insights' ``clicks`` is Ads Manager's "Clicks (all)", and the Meta source pulls
# that field, so "Clicks (all)" fills ``clicks`` and file and API rows mean the same thing.
# "Link clicks" is Meta's ``link_click`` action and is kept as one. An export without
# "Clicks (all)" falls back to "Link clicks" for ``clicks`` (fewer than all clicks, but the
# only clicks the file has).
#
# Dates: "Day" is the row's day when the export is broken down by day, and then it is both
# ``date_start`` and ``date_stop``; otherwise "Reporting starts" and "Reporting ends" are the
# row's period (``date_stop`` = ``date_start`` when the file has no end column).
ADS_MANAGER_COLUMNS: dict[str, str] = {
    "Day": "date_start",
    "Reporting starts": "date_start",
    "Reporting ends": "date_stop",
    "Account ID": "account_id",
    "Currency": "account_currency",
    "Campaign ID": "campaign_id",
    "Campaign name": "campaign_name",
    "Ad set ID": "adset_id",
    "Ad set name": "adset_name",
    "Ad ID": "ad_id",
    "Ad name": "ad_name",
    "Platform": "publisher_platform",
    "Placement": "platform_position",
    "Impression device": "impression_device",
    "Amount spent": "spend",
    "Impressions": "impressions",
    "Clicks (all)": "clicks",
    "Link clicks": "actions:link_click",
    "Purchases": "actions:<purchase>",
    "Purchases conversion value": "action_values:<purchase>",
    "Leads": "actions:lead",
}

# "Amount spent (USD)", "Amount spent (EUR)", ...: spend, in the currency the header names;
# that currency is the row's account_currency when the file has no "Currency" value.
SPEND_COLUMN = re.compile(r"^Amount spent \((?P<currency>[A-Z]{3})\)$")

UNKNOWN_PLACEMENT = "unknown"
_DATE_COLUMNS = ("Day", "Reporting starts")


def read_insights_file(
    path: str | Path, purchase_action_type: str = "offsite_conversion.fb_pixel_purchase"
) -> list[dict]:
    """The Insights rows in ``path``: JSON lines (``.jsonl``, ``.json``) or an Ads Manager CSV.

    ``purchase_action_type`` is the action type a CSV's "Purchases" column becomes. Raises
    ValueError for an unsupported extension, a line that is not a JSON object (naming the file
    and line), a CSV without the required columns (naming them) or a CSV row whose cell count
    differs from the header's (naming its line).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _read_json_lines(path)
    if suffix == ".csv":
        return _read_ads_manager_csv(path, purchase_action_type)
    raise ValueError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .csv)")


def read_insights_table(
    path: str | Path, purchase_action_type: str = "offsite_conversion.fb_pixel_purchase"
) -> pd.DataFrame:
    """The Insights rows in ``path`` as the raw table holds their fields: one row per data row,
    in file order, columns ``INSIGHT_FIELDS`` as text (``tables.insight_text_frame``'s rules).

    JSON lines are read by DuckDB into text columns, each value the text the file has (a
    number's digits, a list's compact JSON), keys other than the Insights fields ignored; a
    file DuckDB cannot read is re-read line by line to name the line at fault. Raises
    ValueError like ``read_insights_file``.
    """
    table = query_insights(path, SELECT_INSIGHTS, purchase_action_type=purchase_action_type)
    return table.to_pandas(types_mapper=lambda _: TEXT)  # every column is VARCHAR


# every Insights field of every row: a query of ``query_insights`` to add a WHERE clause to
SELECT_INSIGHTS = f"SELECT {', '.join(INSIGHT_FIELDS)} FROM insights"
# JSON lines as text columns, numbered in file order (blank lines are not rows)
_JSON_LINES = (
    "SELECT * RENAME (ordinality AS data_row)"
    " FROM read_json($path, format := 'newline_delimited', columns := $columns) WITH ORDINALITY"
)


def query_insights(
    path: str | Path,
    sql: str,
    parameters: Sequence[object] = (),
    purchase_action_type: str = "offsite_conversion.fb_pixel_purchase",
) -> pa.Table:
    """``sql`` run by DuckDB over the rows in ``path`` as the table ``insights``: columns
    ``INSIGHT_FIELDS`` as text (``read_insights_table``'s values) and ``data_row``, the row's
    1-based position among the file's data rows; ``parameters`` are bound to its ``?``.

    DuckDB scans a JSON lines file for each query and keeps nothing, so an aggregate over a
    large export costs a pass over the file, not the file's text in memory. Raises ValueError
    like ``read_insights_table``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv"):
        raise ValueError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .csv)")
    with duckdb.connect() as connection:
        if suffix == ".csv":
            rows = insight_text_frame(_read_ads_manager_csv(path, purchase_action_type))
            connection.register("insights", rows.assign(data_row=range(1, len(rows) + 1)))
            return connection.sql(sql, params=parameters).to_arrow_table()
        columns = dict.fromkeys(INSIGHT_FIELDS, "VARCHAR")
        connection.sql(_JSON_LINES, params={"path": str(path), "columns": columns}).create_view(
            "insights"
        )
        try:
            return connection.sql(sql, params=parameters).to_arrow_table()
        except duckdb.Error as error:
            _read_json_lines(path)  # raises naming the line, when Python finds it too
            raise ValueError(f"{path}: not readable as JSON lines: {error}") from None


def _read_json_lines(path: Path) -> list[dict]:
    """One row per non-blank line, kept as the file has it."""
    rows = []
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not valid JSON: {error.msg}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
    return rows


def _read_ads_manager_csv(path: Path, purchase_action_type: str) -> list[dict]:
    """An Ads Manager export's rows as Insights rows, values kept as strings.

    Empty cells leave their key out. An export without Platform, Placement or Impression
    device columns gets ``"unknown"`` for those keys, so every row still has a placement.
    Rows after the last one with an Ad ID are Ads Manager's summary rows and are dropped; a
    row without an Ad ID among the data is kept, for validation to reject.
    """
    header, lines = _csv_lines(path)
    columns = set(header)

    spend_columns = [c for c in header if c == "Amount spent" or SPEND_COLUMN.match(c)]
    missing = []
    if not columns & set(_DATE_COLUMNS):
        missing.append("'Day' or 'Reporting starts'")
    if "Ad ID" not in columns:
        missing.append("'Ad ID'")
    if not spend_columns:
        missing.append("'Amount spent (<currency>)'")
    if missing:
        raise ValueError(f"{path}: missing required columns: {', '.join(missing)}")
    if len(spend_columns) > 1:
        raise ValueError(f"{path}: more than one spend column: {spend_columns}")

    spend_column = spend_columns[0]
    named = SPEND_COLUMN.match(spend_column)
    header_currency = named["currency"] if named else None
    date_column = "Day" if "Day" in columns else "Reporting starts"
    stop_column = date_column if date_column == "Day" else "Reporting ends"
    if stop_column not in columns:
        stop_column = date_column
    clicks_column = "Clicks (all)" if "Clicks (all)" in columns else None
    if clicks_column is None and "Link clicks" in columns:
        clicks_column = "Link clicks"
    fields = {
        column: target
        for column, target in ADS_MANAGER_COLUMNS.items()
        if column in columns
        and ":" not in target
        and target not in ("date_start", "date_stop", "spend", "clicks")
    }
    lists = {
        column: target.replace("<purchase>", purchase_action_type).split(":", 1)
        for column, target in ADS_MANAGER_COLUMNS.items()
        if column in columns and ":" in target
    }

    ad_index = header.index("Ad ID")
    with_ad = [
        i for i, (_, cells) in enumerate(lines) if ad_index < len(cells) and cells[ad_index].strip()
    ]
    lines = lines[: with_ad[-1] + 1] if with_ad else []

    rows = []
    for number, cells in lines:
        if len(cells) != len(header):
            raise ValueError(
                f"{path}: line {number} has {len(cells)} cells, the header {len(header)}"
            )
        record = dict(zip(header, cells, strict=True))
        row: dict = {"date_start": record[date_column], "date_stop": record[stop_column]}
        for column, target in fields.items():
            row[target] = record[column]
        if header_currency and not row.get("account_currency"):
            row["account_currency"] = header_currency
        for key in PLACEMENT_KEY:
            row.setdefault(key, UNKNOWN_PLACEMENT)
        row["spend"] = record[spend_column]
        if clicks_column:
            row["clicks"] = record[clicks_column]
        for column, (key, action_type) in lists.items():
            if record[column] != "":
                entry = {"action_type": action_type, "value": record[column]}
                row.setdefault(key, []).append(entry)
        rows.append({key: row[key] for key in INSIGHT_FIELDS if row.get(key, "") != ""})
    return rows


def _csv_lines(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows of a CSV with their line numbers, cells as text.

    The csv module rather than pandas: a row with more or fewer cells than the header must be
    an error naming its line, where pandas quietly shifts the columns into an index.
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader, [])]
        lines = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    return header, lines
