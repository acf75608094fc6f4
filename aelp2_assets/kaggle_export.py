"""Turn the public Kaggle Facebook ad export into the file source's JSON lines (no Dagster import).

The input is ``derived_ad_day_clean.csv`` of ``../shared/data/kaggle_fb_ad_campaign`` (see its
PROVENANCE.md): one row per ad and day from an anonymous company's campaigns, August 2017.
Each row becomes one Insights API row (level ad, one day) with every value a string:

- ``date_start`` = ``date_stop`` = ``date``; ``campaign_id`` = ``xyz_campaign_id`` (the
  advertiser's campaign); ``adset_id`` = ``fb_campaign_id`` (Facebook's id, which behaves like
  an ad set and is the budget holder); ``ad_id`` = ``ad_id``. Names are built from the ids and
  the ad's targeting in the file (age, gender, interest codes), so a person can tell rows apart.
- ``account_id`` is the placeholder ``KAGGLE_ACCOUNT_ID``: the export has no account.
- ``account_currency`` is ``"USD"``: an ASSUMPTION. The export does not say its currency.
- ``spend`` = ``spent`` rounded half up to cents. The file holds float32 artefacts
  (``1.429999948`` for 1.43); rounding restores the cents (each shift is under 0.00001).
- ``impressions`` and ``clicks`` as integer strings.
- ``actions``: ``approved_conversion`` (purchases) as ``offsite_conversion.fb_pixel_purchase``
  and ``total_conversion`` (enquiries) as ``lead``; zero counts are left out, and the key
  too when both are zero, as Meta does. There is no ``action_values``: the export has no
  purchase value.
- ``publisher_platform``, ``platform_position`` and ``impression_device`` are ``"unknown"``:
  the export has no placement breakdown.

Run it as ``python -m aelp2_assets.kaggle_export SRC DEST``.
"""

import argparse
import csv
import json
import logging
import sys
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from aelp2_assets.tables import INSIGHT_FIELDS, PLACEMENT_KEY

KAGGLE_ACCOUNT_ID = "100000000000000"
KAGGLE_CURRENCY = "USD"
PURCHASE_ACTION_TYPE = "offsite_conversion.fb_pixel_purchase"
LEAD_ACTION_TYPE = "lead"
UNKNOWN_PLACEMENT = "unknown"

_REQUIRED = (
    "date",
    "ad_id",
    "xyz_campaign_id",
    "fb_campaign_id",
    "impressions",
    "clicks",
    "spent",
    "total_conversion",
    "approved_conversion",
)

logger = logging.getLogger(__name__)


def _decimal(value: str, column: str, line: int) -> Decimal:
    """A numeric cell as an exact decimal (no float rounding on the way)."""
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"line {line}: {column} {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"line {line}: {column} {value!r} is not a non-negative number")
    return number


def _count(value: str, column: str, line: int) -> str:
    """A whole-number cell as an integer string ("12", also from "12.0")."""
    number = _decimal(value, column, line)
    if number != number.to_integral_value():
        raise ValueError(f"line {line}: {column} {value!r} is not a whole count")
    return str(int(number))


def _insights_row(record: dict[str, str], line: int) -> dict:
    """One CSV record as an Insights row, keys in ``INSIGHT_FIELDS`` order."""
    targeting = (
        f"age {record.get('age', '?')}, {record.get('gender', '?')}, interests "
        f"{record.get('interest1', '?')}/{record.get('interest2', '?')}/"
        f"{record.get('interest3', '?')}"
    )
    spend = _decimal(record["spent"], "spent", line).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    row = {
        "date_start": record["date"],
        "date_stop": record["date"],
        "account_id": KAGGLE_ACCOUNT_ID,
        "account_currency": KAGGLE_CURRENCY,
        "campaign_id": record["xyz_campaign_id"],
        "campaign_name": f"xyz campaign {record['xyz_campaign_id']}",
        "adset_id": record["fb_campaign_id"],
        "adset_name": f"fb campaign {record['fb_campaign_id']}",
        "ad_id": record["ad_id"],
        "ad_name": f"ad {record['ad_id']} ({targeting})",
        **dict.fromkeys(PLACEMENT_KEY, UNKNOWN_PLACEMENT),
        "spend": str(spend),
        "impressions": _count(record["impressions"], "impressions", line),
        "clicks": _count(record["clicks"], "clicks", line),
    }
    actions = [
        {"action_type": action_type, "value": _count(record[column], column, line)}
        for action_type, column in (
            (PURCHASE_ACTION_TYPE, "approved_conversion"),
            (LEAD_ACTION_TYPE, "total_conversion"),
        )
    ]
    actions = [action for action in actions if action["value"] != "0"]
    if actions:
        row["actions"] = actions
    return {key: row[key] for key in INSIGHT_FIELDS if key in row}


def convert_kaggle_ad_export(src: Path, dest: Path) -> int:
    """Write ``src`` (the Kaggle ad x day CSV) to ``dest`` as Insights JSON lines.

    Returns the number of rows written. Raises ValueError, before writing anything, when a
    required column is missing or a number is bad (naming the line).
    """
    src, dest = Path(src), Path(dest)
    with src.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in _REQUIRED if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{src}: missing columns {missing}")
        try:
            rows = [_insights_row(record, reader.line_num) for record in reader]
        except ValueError as error:
            raise ValueError(f"{src}: {error}") from None

    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    logger.info("wrote %d Insights rows from %s to %s", len(rows), src, dest)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m aelp2_assets.kaggle_export SRC DEST``."""
    parser = argparse.ArgumentParser(
        prog="python -m aelp2_assets.kaggle_export",
        description="Convert the Kaggle Facebook ad export to Insights JSON lines.",
    )
    parser.add_argument("src", type=Path, help="derived_ad_day_clean.csv")
    parser.add_argument("dest", type=Path, help="the JSON lines file to write (.jsonl)")
    args = parser.parse_args(argv)

    written = convert_kaggle_ad_export(args.src, args.dest)
    sys.stdout.write(f"{written} rows written to {args.dest}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
