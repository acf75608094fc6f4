"""Table names, columns and keys shared by the sources, the warehouse and the model.

Names are lower-case everywhere: BigQuery's IO manager changes column case, DuckDB does not,
and both must hold the same tables.
"""

import json

import pandas as pd

# Text columns of the insights tables in memory: Arrow-backed strings, one compact buffer per
# column, where Python str objects cost ~50 bytes each plus a pointer (1.8 million rows x 18
# fields held 2-3 GB as objects; benchmarks/scale.py).
TEXT = pd.StringDtype("pyarrow")

# raw_meta_metrics: one row per account-local day x ad x placement, as Meta returned it. Every
# value is text (Meta sends numbers as strings; any value that is not a string is kept as its
# compact JSON text); actions and action_values are the JSON text of Meta's lists, NULL when Meta
# left the key out. row_number is the row's 1-based position in the pull that wrote it;
# pulled_at is when that pull ran (UTC).
INSIGHT_FIELDS = (
    "date_start",
    "date_stop",
    "account_id",
    "account_currency",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "ad_id",
    "ad_name",
    "publisher_platform",
    "platform_position",
    "impression_device",
    "spend",
    "impressions",
    "clicks",
    "actions",
    "action_values",
)
RAW_COLUMNS = (*INSIGHT_FIELDS, "row_number", "pulled_at")


def insight_text_frame(rows: list[dict]) -> pd.DataFrame:
    """Insights rows as the raw table holds their fields: ``INSIGHT_FIELDS`` as ``TEXT``.

    A string stays as it is, a missing key or None is NULL, and any other value (a list of
    actions, a number, a boolean) becomes its compact JSON text, as DuckDB's JSON reader keeps
    the values of a JSON lines file (``insights_files.read_insights_table``).
    """

    def as_text(value: object) -> str | None:
        if value is None or type(value) is str:
            return value
        return json.dumps(value, separators=(",", ":"))

    # column by column: a frame built from a list of row dicts held a second copy of every row
    return pd.DataFrame(
        {
            field: pd.array([as_text(row.get(field)) for row in rows], dtype=TEXT)
            for field in INSIGHT_FIELDS
        },
        columns=list(INSIGHT_FIELDS),
    )


PLACEMENT_KEY = ("publisher_platform", "platform_position", "impression_device")
RAW_KEY = ("date_start", "ad_id", *PLACEMENT_KEY)

# validated_meta_metrics: typed, de-duplicated, one canonical conversion count per row.
VALIDATED_COLUMNS = (
    "date",  # DATE, the account-local day (partition column)
    "account_id",
    "account_currency",
    "campaign_id",
    "adset_id",
    "ad_id",
    "ad_name",
    "publisher_platform",
    "platform_position",
    "impression_device",
    "channel",  # Feed, Stories, Reels, Marketplace or other
    "spend",  # float, account currency major units
    "impressions",  # int64
    "clicks",  # int64
    "conversions",  # int64, the configured action type only
    "conversion_value",  # float, action_values of that action type (0 when absent)
)
VALIDATED_KEY = ("date", "ad_id", *PLACEMENT_KEY)

# validated_meta_metrics_rejects: rows kept aside, one row per problem found. A raw row is
# identified by its pull (pulled_at) and its position in it (row_number): merged raw days hold
# rows of several pulls.
REJECT_COLUMNS = ("date", "pulled_at", "row_number", "ad_id", "field", "value", "reason")

# meta_ad_entities: one row per campaign, ad set or ad (budgets in integer minor units); the
# sources add the account's currency, time zone and minimum daily budget to every row.
OBJECT_COLUMNS = (
    "level",
    "object_id",
    "campaign_id",
    "adset_id",
    "name",
    "status",
    "daily_budget",
    "lifetime_budget",
    "creative_id",
)
