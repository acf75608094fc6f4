"""Validation of Meta insights: typed rows, rejects with reasons, and domain checks.

``validate_insights`` turns raw_meta_metrics rows (every value text, as Meta sent it) into the
validated_meta_metrics table and its rejects. Every raw row ends in exactly one place: the valid
table, dropped as an identical copy of a row kept there (pagination overlap), or the rejects,
with one reject row per problem found. pandera finds the problems in two passes: a parse pass
that coerces text to numbers and reports what does not coerce or is missing, then a rules pass
(signs, whole counts, ISO dates, daily rows, clicks within impressions) on the parsed values.

``ValidatedMetrics`` and the domain checks (``duplicate_keys``, ``negative_spend``,
``clicks_above_impressions``, ``unreconciled_totals``) are the blocking checks on the result.
No Dagster import: the assets and checks wrap these functions.
"""

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

from aelp2_assets import placements, tables

# Fields a row cannot be used without; the names, account and currency may be absent.
REQUIRED_FIELDS = (
    "date_start",
    "date_stop",
    "campaign_id",
    "adset_id",
    "ad_id",
    *tables.PLACEMENT_KEY,
    "spend",
    "impressions",
    "clicks",
)
TEXT_FIELDS = tuple(
    name
    for name in tables.INSIGHT_FIELDS
    if name not in ("spend", "impressions", "clicks", "actions", "action_values")
)
# The parse pass sees the canonical action's value as text in these columns; a problem there
# is reported against the raw field it came from.
_DERIVED_FIELD = {"conversions": "actions", "conversion_value": "action_values"}
# Validated columns copied from the raw text unchanged.
_PASSED_THROUGH = (
    "account_id",
    "account_currency",
    "campaign_id",
    "adset_id",
    "ad_id",
    "ad_name",
    *tables.PLACEMENT_KEY,
)
_NUMBER_COLUMNS = ("spend", "impressions", "clicks", "conversions", "conversion_value")
_COUNT_COLUMNS = ("impressions", "clicks", "conversions")
_FIELD_ORDER = {name: i for i, name in enumerate((*tables.INSIGHT_FIELDS, "key"))}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
RECONCILE_RELATIVE_TOLERANCE = 1e-6
_RECONCILED = ("spend", "impressions", "clicks")


@dataclass(frozen=True)
class ValidationResult:
    """The validated rows, the rejects, and how many identical duplicate rows were dropped."""

    valid: pd.DataFrame  # columns tables.VALIDATED_COLUMNS, typed as ValidatedMetrics
    rejects: pd.DataFrame  # columns tables.REJECT_COLUMNS, one row per problem
    duplicates_dropped: int = 0


@dataclass(frozen=True)
class _Problem:
    """One problem with one raw row, located by the row's position in the raw frame."""

    position: int
    field: str
    value: str | None
    reason: str


# --- pandera schemas -------------------------------------------------------------------------


def _is_iso_date(value: str) -> bool:
    """Whether ``value`` is a calendar date written YYYY-MM-DD."""
    if not _ISO_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _iso_dates(values: pd.Series) -> pd.Series:
    """``_is_iso_date`` of every cell (False where missing), judged once per distinct text: a
    pull of 90 days holds 90 dates in 1.8 million cells."""
    iso = [value for value in values.dropna().unique() if _is_iso_date(value)]
    return values.isin(iso).astype(bool)


def _channels(positions: pd.Series) -> pd.Series:
    """``placements.channel_of`` of every platform position, computed once per distinct one."""
    distinct = positions.dropna().unique()
    return positions.map({position: placements.channel_of(position) for position in distinct})


def _missing_as_none(value: object) -> object:
    """A cell as a reject reports it: None where missing."""
    return None if pd.isna(value) else value


def _whole(values: pd.Series) -> pd.Series:
    """True where a number has no fractional part (infinities are left to the finite check)."""
    return (values % 1 == 0) | ~np.isfinite(values)


def _clicks_within_impressions(frame: pd.DataFrame) -> pd.Series:
    """True unless both counts are known and clicks exceed impressions."""
    return ~(frame["clicks"] > frame["impressions"])


# From this many clicks a row's clicks and conversions are too many to be noise: a spend of 0
# is a reporting error, not sub-cent billing (the 2017 export's cheapest click cost $0.18),
# and more conversions than clicks is (view-through conversions above clicks there come on 0-2
# clicks; on 10 or more its highest rate is 100%). Either moves budget to the ad set it hits.
MIN_CLICKS_FOR_RATES = 10


def _conversions_within_clicks(frame: pd.DataFrame) -> pd.Series:
    """True unless a row with ``MIN_CLICKS_FOR_RATES`` clicks has more conversions."""
    many = frame["clicks"] >= MIN_CLICKS_FOR_RATES
    return ~(many & (frame["conversions"] > frame["clicks"])).fillna(False).astype(bool)


def _clicks_paid_for(frame: pd.DataFrame) -> pd.Series:
    """True unless a row with ``MIN_CLICKS_FOR_RATES`` clicks spent nothing."""
    many = frame["clicks"] >= MIN_CLICKS_FOR_RATES
    return ~(many & (frame["spend"] == 0)).fillna(False).astype(bool)


def _daily_row(frame: pd.DataFrame) -> pd.Series:
    """True unless both dates are ISO dates and differ (a multi-day row, not a daily one)."""
    both_iso = _iso_dates(frame["date_start"]) & _iso_dates(frame["date_stop"])
    return ~both_iso | (frame["date_start"] == frame["date_stop"]).fillna(False).astype(bool)


def _parse_schema(nullable_everywhere: bool) -> pa.DataFrameSchema:
    """Text to types: what does not coerce to a number, or is missing, fails here."""
    columns = {
        name: pa.Column(
            tables.TEXT, nullable=nullable_everywhere or name not in REQUIRED_FIELDS, coerce=True
        )
        for name in TEXT_FIELDS
    }
    for name in _NUMBER_COLUMNS:
        columns[name] = pa.Column("float64", nullable=nullable_everywhere, coerce=True)
    return pa.DataFrameSchema(columns, name="raw_meta_metrics_parse")


_PARSE = _parse_schema(nullable_everywhere=False)
# Run after the cells that failed to parse were blanked, so it always succeeds.
_PARSE_LENIENT = _parse_schema(nullable_everywhere=True)

_ISO_DATE_CHECK = pa.Check(_iso_dates, name="iso_date")
_NUMBER_CHECKS = [pa.Check.ge(0), pa.Check(np.isfinite, name="finite")]
_COUNT_CHECKS = [pa.Check(_whole, name="whole")]
_RULES = pa.DataFrameSchema(
    {
        "date_start": pa.Column(tables.TEXT, _ISO_DATE_CHECK, nullable=True),
        "date_stop": pa.Column(tables.TEXT, _ISO_DATE_CHECK, nullable=True),
        **{
            name: pa.Column(
                "float64",
                _NUMBER_CHECKS + (_COUNT_CHECKS if name in _COUNT_COLUMNS else []),
                nullable=True,
            )
            for name in _NUMBER_COLUMNS
        },
    },
    checks=[
        pa.Check(_clicks_within_impressions, name="clicks_within_impressions"),
        pa.Check(_conversions_within_clicks, name="conversions_within_clicks"),
        pa.Check(_clicks_paid_for, name="clicks_paid_for"),
        pa.Check(_daily_row, name="daily_row"),
    ],
    name="raw_meta_metrics_rules",
)


# The validated table's text columns in memory: tables.TEXT (as the DuckDB table they become,
# they are VARCHAR either way).
Text = Annotated[pd.StringDtype, "pyarrow", pd.NA]


class ValidatedMetrics(pa.DataFrameModel):
    """validated_meta_metrics: one typed row per account-local day x ad x placement."""

    date: Series[pd.Timestamp]  # datetime64[ns] at midnight, no time zone
    account_id: Series[Text] = pa.Field(nullable=True)
    account_currency: Series[Text] = pa.Field(nullable=True)
    campaign_id: Series[Text]
    adset_id: Series[Text]
    ad_id: Series[Text]
    ad_name: Series[Text] = pa.Field(nullable=True)
    publisher_platform: Series[Text]
    platform_position: Series[Text]
    impression_device: Series[Text]
    channel: Series[Text] = pa.Field(isin=list(placements.CHANNELS))
    spend: Series[np.float64] = pa.Field(ge=0)
    impressions: Series[np.int64] = pa.Field(ge=0)
    clicks: Series[np.int64] = pa.Field(ge=0)
    conversions: Series[np.int64] = pa.Field(ge=0)
    conversion_value: Series[np.float64] = pa.Field(ge=0)

    class Config:
        """Exactly the contract's columns, in its order, one row per key."""

        name = "validated_meta_metrics"
        strict = True
        ordered = True
        unique = list(tables.VALIDATED_KEY)

    @pa.check("date", name="midnight")
    def _midnight(cls, dates: Series[pd.Timestamp]) -> Series[bool]:
        """The partition column is a day, so any time of day means a conversion went wrong."""
        return dates == dates.dt.normalize()

    @pa.check("spend", "conversion_value", name="finite")
    def _finite(cls, values: Series[np.float64]) -> Series[bool]:
        """Money is a finite amount."""
        return pd.Series(np.isfinite(values), index=values.index)

    @pa.dataframe_check(name="clicks_within_impressions")
    def _clicks_within_impressions(cls, frame: pd.DataFrame) -> Series[bool]:
        """A click needs an impression."""
        return frame["clicks"] <= frame["impressions"]

    @pa.dataframe_check(name="conversions_within_clicks")
    def _conversions_within_clicks(cls, frame: pd.DataFrame) -> Series[bool]:
        """No more conversions than ``MIN_CLICKS_FOR_RATES`` or more clicks."""
        return _conversions_within_clicks(frame)

    @pa.dataframe_check(name="clicks_paid_for")
    def _clicks_paid_for(cls, frame: pd.DataFrame) -> Series[bool]:
        """``MIN_CLICKS_FOR_RATES`` or more clicks cost money."""
        return _clicks_paid_for(frame)

    @pa.dataframe_check(name="channel_of_position")
    def _channel_of_position(cls, frame: pd.DataFrame) -> Series[bool]:
        """The channel is the one placements.channel_of gives the platform position."""
        return frame["channel"] == _channels(frame["platform_position"])


# --- validate_insights -----------------------------------------------------------------------


def validate_insights(
    raw: pd.DataFrame, conversion_action_type: str, account_currency: str | None = None
) -> ValidationResult:
    """Type, de-duplicate and check raw insights rows; conversions count one action type only.

    ``raw`` has columns ``tables.RAW_COLUMNS`` with text insight values. Rows identical on every
    insight field are kept once, silently; rows that share ``tables.RAW_KEY`` with different
    values are all rejected, since there is no telling which is right. Any other problem (a
    number that is not one, a missing required field, a negative amount, clicks above
    impressions, a multi-day or non-ISO date, actions that do not parse, an ``account_currency``
    other than the one given) rejects the row with one reject per problem.
    """
    missing = [name for name in tables.RAW_COLUMNS if name not in raw.columns]
    if missing:
        raise ValueError(f"raw insights lack the columns {missing}")
    frame = raw.reset_index(drop=True)
    text = _as_text(frame.loc[:, list(tables.INSIGHT_FIELDS)])

    duplicate = text.duplicated(keep="first")
    if duplicate.any():
        text = text.loc[~duplicate]

    problems = _key_conflicts(text, frame["row_number"])
    problems += _mixed_grains(text)
    problems += _currency_problems(text, account_currency)
    work, action_problems = _with_conversion_text(text, conversion_action_type)
    problems += action_problems
    parsed, parse_problems = _parse(work, conversion_action_type)
    problems += parse_problems
    problems += _rule_problems(parsed, work, conversion_action_type)

    rejected = {problem.position for problem in problems}
    return ValidationResult(
        valid=_to_validated(parsed.loc[~parsed.index.isin(rejected)]),
        rejects=_to_rejects(problems, text, frame),
        duplicates_dropped=int(duplicate.sum()),
    )


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as ``tables.TEXT``, NA where missing or blank, so NaN, None and blanks compare
    equal as 'missing'.

    Column by column in Arrow: a Python call per cell took most of validation's time on a
    1.8-million-row pull (benchmarks/scale.py). ``astype(TEXT)`` gives str() of a non-missing
    value that is not text yet and NA for None and NaN.
    """
    columns = {}
    for name in frame.columns:
        column = frame[name].astype(tables.TEXT)
        blank = column.str.strip().eq("").fillna(False).astype(bool)
        # masked only when needed: a copy of every column is ~750 MB at 1.8 million rows
        columns[name] = column.mask(blank) if blank.any() else column
    return pd.DataFrame(columns, index=frame.index, columns=frame.columns)


def _key_conflicts(text: pd.DataFrame, row_numbers: pd.Series) -> list[_Problem]:
    """Rows (already free of identical copies) that share a key: every one of them, rejected."""
    key = list(tables.RAW_KEY)
    keyed = text.dropna(subset=key)
    clashing = keyed.loc[keyed.duplicated(subset=key, keep=False)]
    problems = []
    for key_values, group in clashing.groupby(key, sort=False):
        differing = [name for name in tables.INSIGHT_FIELDS if group[name].fillna("").nunique() > 1]
        rows = ", ".join(str(row_numbers[position]) for position in group.index)
        reason = (
            f"{len(group)} rows (rows {rows}) share the key ({', '.join(key)}) with conflicting "
            f"values of {', '.join(differing)}; none can be trusted over the others"
        )
        value = " / ".join(key_values)
        problems += [_Problem(position, "key", value, reason) for position in group.index]
    return problems


def _currency_problems(text: pd.DataFrame, account_currency: str | None) -> list[_Problem]:
    """Rows stating a currency other than the account's: their amounts would be read in the
    wrong one (a file export of another account, or the wrong AELP2_ACCOUNT_CURRENCY)."""
    if account_currency is None:
        return []
    stated = text["account_currency"]
    other = (stated.str.upper() != account_currency).fillna(False).astype(bool)
    return [
        _Problem(
            position,
            "account_currency",
            stated.at[position],
            f"account_currency {stated.at[position]!r} is not AELP2_ACCOUNT_CURRENCY"
            f" {account_currency!r}: its amounts would be read in the wrong currency",
        )
        for position in stated.index[other]
    ]


def _mixed_grains(text: pd.DataFrame) -> list[_Problem]:
    """Rows of one ad and day both with and without a placement breakdown: every one of them.

    They overlap (the unbroken-down row is the sum of the others), so keeping both would count
    the day twice; it happens when an export of another grain is loaded over an earlier one.
    """
    keyed = text.dropna(subset=["date_start", "ad_id"])
    unknown = keyed[list(tables.PLACEMENT_KEY)].eq("unknown").all(axis="columns")
    grains = unknown.groupby([keyed["date_start"], keyed["ad_id"]]).transform("nunique")
    mixed = keyed.loc[grains > 1]
    reason = (
        "this ad and day has rows both with and without a placement breakdown; they overlap,"
        " so the day would count twice (was an export of another grain loaded over this one?)"
    )
    return [
        _Problem(position, "publisher_platform", _missing_as_none(value), reason)
        for position, value in mixed["publisher_platform"].items()
    ]


def _with_conversion_text(
    text: pd.DataFrame, action_type: str
) -> tuple[pd.DataFrame, list[_Problem]]:
    """The rows with the canonical action's value (text) in ``conversions``/``conversion_value``.

    The value of the one action whose type is ``action_type``: Meta lists a purchase under
    several aliases with equal values, so summing them would over-count.
    """
    work = text.drop(columns=["actions", "action_values"])
    problems = []
    for field, column in (("actions", "conversions"), ("action_values", "conversion_value")):
        # once per distinct cell (code -1: missing): rows repeat the same few lists
        codes, cells = pd.factorize(text[field])
        found = [_action_value(cell, action_type, field) for cell in (*cells, None)]
        values = np.array([value for value, _ in found], dtype=object)[codes]
        work[column] = pd.array(values, dtype=tables.TEXT)
        for code, (_, reason) in enumerate(found[:-1]):
            if reason is not None:
                cell = cells[code]
                problems += [_Problem(at, field, cell, reason) for at in text.index[codes == code]]
    return work, problems


def _action_value(cell: str | None, action_type: str, field: str) -> tuple[str, str | None]:
    """The text value of ``action_type`` in one actions JSON cell, or the reason it has none.

    With a reason the value is a placeholder "0": the row is rejected already, and a value that
    parses keeps the parse pass from reporting the same problem a second time.
    """
    if cell is None:
        return "0", None
    try:
        actions = json.loads(cell)
    except json.JSONDecodeError as error:
        return "0", f"{field} is not valid JSON ({error.msg})"
    if not isinstance(actions, list) or not all(isinstance(item, dict) for item in actions):
        return "0", f"{field} is not a list of {{action_type, value}} objects"

    matches = [item for item in actions if item.get("action_type") == action_type]
    if not matches:
        return "0", None
    if any(item.get("value") is None for item in matches):
        return "0", f"{field} lists {action_type} without a value"
    values = {str(item["value"]) for item in matches}
    if len(values) > 1:
        return "0", f"{field} lists {action_type} with different values {sorted(values)}"
    return values.pop(), None


def _parse(work: pd.DataFrame, action_type: str) -> tuple[pd.DataFrame, list[_Problem]]:
    """The typed rows, with the cells that do not parse blanked, and a problem for each."""
    try:
        return _PARSE.validate(work, lazy=True), []
    except SchemaErrors as errors:
        cases = errors.failure_cases

    problems = []
    seen: set[tuple[int, str]] = set()
    blanked = work.copy()
    for case in _row_cases(cases).itertuples():
        check = _check_name(case.check)
        column, position = case.column, int(case.index)
        if check == "dtype" or (position, column) in seen:
            continue  # pandera repeats a failed coercion as a dtype case: one problem a cell
        seen.add((position, column))
        value = _missing_as_none(work.at[position, column])
        if check not in ("coerce_dtype", "not_nullable"):
            raise RuntimeError(f"unexpected parse failure {case.check!r} on {column}")
        # pandera may report a missing cell as a failed coercion too: it is missing either way
        reason = (
            f"{_subject(column, action_type)} is missing"
            if value is None
            else f"{_subject(column, action_type)} {value!r} is not a number"
        )
        problems.append(_Problem(position, _DERIVED_FIELD.get(column, column), value, reason))
        blanked.at[position, column] = None
    return _PARSE_LENIENT.validate(blanked), problems


def _rule_problems(parsed: pd.DataFrame, work: pd.DataFrame, action_type: str) -> list[_Problem]:
    """Problems with parsed values: signs, whole counts, dates, daily rows, clicks."""
    try:
        _RULES.validate(parsed, lazy=True)
    except SchemaErrors as errors:
        cases = _row_cases(errors.failure_cases)
    else:
        return []

    problems = []
    frame_cases = cases.loc[cases["schema_context"] == "DataFrameSchema"]
    for (check, position), _ in frame_cases.groupby(["check", "index"], sort=False):
        problems.append(_FRAME_RULES[_check_name(check)](int(position), work))
    for case in cases.loc[cases["schema_context"] != "DataFrameSchema"].itertuples():
        column, position = case.column, int(case.index)
        value = _missing_as_none(work.at[position, column])
        subject = _subject(column, action_type)
        reason = _COLUMN_REASONS[_check_name(case.check)].format(subject=subject, value=value)
        problems.append(_Problem(position, _DERIVED_FIELD.get(column, column), value, reason))
    return problems


_COLUMN_REASONS = {
    "greater_than_or_equal_to": "{subject} {value} is negative",
    "finite": "{subject} {value!r} is not a finite number",
    "whole": "{subject} {value} is not a whole number",
    "iso_date": "{subject} {value!r} is not an ISO date (YYYY-MM-DD)",
}


def _clicks_problem(position: int, work: pd.DataFrame) -> _Problem:
    """The reject for a row whose clicks exceed its impressions."""
    clicks, impressions = work.at[position, "clicks"], work.at[position, "impressions"]
    return _Problem(position, "clicks", clicks, f"clicks {clicks} exceed impressions {impressions}")


def _conversions_problem(position: int, work: pd.DataFrame) -> _Problem:
    """The reject for a row with more conversions than its many clicks."""
    conversions, clicks = work.at[position, "conversions"], work.at[position, "clicks"]
    reason = (
        f"conversions {conversions} exceed clicks {clicks}: above 100% on"
        f" {MIN_CLICKS_FOR_RATES} or more clicks is a reporting error"
    )
    return _Problem(position, "actions", conversions, reason)


def _unpaid_clicks_problem(position: int, work: pd.DataFrame) -> _Problem:
    """The reject for a row with many clicks and no spend."""
    spend, clicks = work.at[position, "spend"], work.at[position, "clicks"]
    reason = f"spend {spend} with {clicks} clicks: {MIN_CLICKS_FOR_RATES} or more clicks cost money"
    return _Problem(position, "spend", spend, reason)


def _daily_problem(position: int, work: pd.DataFrame) -> _Problem:
    """The reject for a row that covers more than one day."""
    start, stop = work.at[position, "date_start"], work.at[position, "date_stop"]
    reason = f"date_stop {stop} differs from date_start {start}: not a daily row"
    return _Problem(position, "date_stop", stop, reason)


_FRAME_RULES: dict[str, Callable[[int, pd.DataFrame], _Problem]] = {
    "clicks_within_impressions": _clicks_problem,
    "conversions_within_clicks": _conversions_problem,
    "clicks_paid_for": _unpaid_clicks_problem,
    "daily_row": _daily_problem,
}


def _row_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """The failure cases located on a row; a case without one is a schema bug, not bad data."""
    unlocated = cases.loc[cases["index"].isna()]
    if not unlocated.empty:
        raise RuntimeError(f"validation could not run a check:\n{unlocated.to_string()}")
    return cases


def _check_name(check: str) -> str:
    """A pandera failure case's check without its arguments ("coerce_dtype('float64')")."""
    return check.split("(", 1)[0]


def _subject(column: str, action_type: str) -> str:
    """How a reason names a column; the conversion columns name the action they came from."""
    if column in _DERIVED_FIELD:
        return f"{_DERIVED_FIELD[column]} {action_type} value"
    return column


def _to_validated(parsed: pd.DataFrame) -> pd.DataFrame:
    """The contract's columns and types from parsed rows that passed every check."""
    valid = pd.DataFrame(
        {
            "date": pd.to_datetime(parsed["date_start"], format="%Y-%m-%d"),
            **{name: parsed[name].astype(tables.TEXT) for name in _PASSED_THROUGH},
            "channel": _channels(parsed["platform_position"]).astype(tables.TEXT),
            "spend": parsed["spend"].astype("float64"),
            **{name: parsed[name].astype("int64") for name in _COUNT_COLUMNS},
            "conversion_value": parsed["conversion_value"].astype("float64"),
        },
        columns=list(tables.VALIDATED_COLUMNS),
    )
    return valid.reset_index(drop=True)


def _to_rejects(problems: list[_Problem], text: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The reject table, in raw row order and field order within a row."""
    ordered = sorted(problems, key=lambda p: (p.position, _FIELD_ORDER.get(p.field, 0)))
    positions = [p.position for p in ordered]
    rejects = pd.DataFrame(
        {
            "date": pd.Series(
                [_missing_as_none(text.at[p.position, "date_start"]) for p in ordered], dtype=object
            ),
            "pulled_at": raw["pulled_at"].iloc[positions].reset_index(drop=True),
            "row_number": raw["row_number"].iloc[positions].astype("int64").reset_index(drop=True),
            "ad_id": pd.Series(
                [_missing_as_none(text.at[p.position, "ad_id"]) for p in ordered], dtype=object
            ),
            "field": pd.Series([p.field for p in ordered], dtype=object),
            "value": pd.Series([p.value for p in ordered], dtype=object),
            "reason": pd.Series([p.reason for p in ordered], dtype=object),
        },
        columns=list(tables.REJECT_COLUMNS),
    )
    return rejects


# --- meta_ad_entities ---------------------------------------------------------------------

_ENTITY_LEVELS = ("campaign", "adset", "ad")
_ENTITIES = pa.DataFrameSchema(
    {
        "level": pa.Column(checks=pa.Check.isin(_ENTITY_LEVELS)),
        "object_id": pa.Column(),
        "daily_budget": pa.Column("Int64", pa.Check.ge(0), nullable=True),
        "lifetime_budget": pa.Column("Int64", pa.Check.ge(0), nullable=True),
    },
    unique=["level", "object_id"],
    name="meta_ad_entities",
)


def checked_entities(entities: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The account's objects once each, and how many identical copies were dropped (a page of
    an edge that repeats the page before). An object listed twice with different values (its
    budget changed while the edge was paged), a level that is none of campaign, ad set and ad,
    a missing id or a negative budget raise, naming the row, field and values."""
    copies = entities.duplicated(keep="first")
    unique = entities.loc[~copies]
    try:
        _ENTITIES.validate(unique, lazy=True)
    except SchemaErrors as errors:
        problems = "; ".join(_entity_problems(unique, errors.failure_cases))
        raise ValueError(f"meta_ad_entities: {problems}; nothing was written") from None
    return unique.reset_index(drop=True), int(copies.sum())


def _entity_problems(entities: pd.DataFrame, cases: pd.DataFrame) -> list[str]:
    listed_twice = entities.duplicated(["level", "object_id"], keep=False)
    problems = [
        f"{level} {object_id} is listed {len(rows)} times (rows {', '.join(map(str, rows.index))})"
        + "".join(
            f", {field} {' and '.join(map(str, rows[field].astype(object).unique()))}"
            for field in rows.columns
            if rows[field].astype(object).nunique(dropna=False) > 1
        )
        for (level, object_id), rows in entities[listed_twice].groupby(["level", "object_id"])
    ]
    checks = cases["check"].astype(str).map(_check_name)
    return problems + _row_problems(cases[checks != "multiple_fields_uniqueness"])


# How a problem reads, by the pandera check that found it.
_PROBLEMS = {
    "coerce_dtype": "is not a number",
    "not_nullable": "is missing",
    "greater_than_or_equal_to": "is negative",
    "finite": "is not finite",
    "whole": "is not a whole number",
    "not_blank": "is blank",
    "isin": "is not one of the allowed values",
    "account_local_day": "is not a day without a time zone (a date, or text YYYY-MM-DD)",
    "conversions_within_clicks": (
        f"exceeds the row's clicks, {MIN_CLICKS_FOR_RATES} or more (a reporting error)"
    ),
    "clicks_paid_for": f"is nothing for {MIN_CLICKS_FOR_RATES} or more clicks (a reporting error)",
}
_MOST_PROBLEMS_NAMED = 10
# The field a check of a whole row is reported against.
_ROW_CHECK_FIELDS = {"conversions_within_clicks": "conversions", "clicks_paid_for": "spend"}


def _row_problems(cases: pd.DataFrame) -> list[str]:
    """pandera failure cases as "row R field 'value' is ..." (the first ten, and how many
    more)."""
    # A value that does not coerce also fails the dtype check after it: one problem, not two;
    # a check of the row names the row once, by the field it judges.
    checks = cases["check"].astype(str)
    dtype = checks.str.startswith("dtype(")
    names = checks.map(_check_name)
    of_row = names.isin(list(_ROW_CHECK_FIELDS))
    one_field = ~of_row | (cases["column"] == names.map(_ROW_CHECK_FIELDS))
    located = (
        cases[cases["index"].notna() & ~dtype & one_field]
        .drop_duplicates(["index", "column", "check"])
        .sort_values("index", kind="stable")
    )
    problems = [
        f"row {case['index']} {case['column']} {case['failure_case']!r}"
        f" {_PROBLEMS.get(_check_name(str(case['check'])), 'fails ' + str(case['check']))}"
        for _, case in located.head(_MOST_PROBLEMS_NAMED).iterrows()
    ]
    if len(located) > _MOST_PROBLEMS_NAMED:
        problems.append(f"and {len(located) - _MOST_PROBLEMS_NAMED} more")
    return problems


# --- the model's history ---------------------------------------------------------------------


def _account_local_days(dates: pd.Series) -> pd.Series:
    """True where a date is a day of the account's calendar: a date or naive datetime, or text
    YYYY-MM-DD; not a time-zone-aware time (whose day depends on the zone), nor text such as
    01/03/2025 (day first or month first?)."""
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        return pd.Series(False, index=dates.index)
    if pd.api.types.is_datetime64_dtype(dates):
        return dates.notna()

    def local_day(value: object) -> bool:
        if isinstance(value, str):
            return _is_iso_date(value)
        if isinstance(value, datetime):
            return value.tzinfo is None
        return isinstance(value, date)

    return dates.map(local_day).astype(bool)


def _not_blank(values: pd.Series) -> pd.Series:
    """True where an id or name has a character besides spaces (ids may come as numbers)."""
    text = values if pd.api.types.is_string_dtype(values) else values.astype(str)
    return (text.str.strip() != "").fillna(True).astype(bool)


_NOT_BLANK = pa.Check(_not_blank, name="not_blank")
_HISTORY = pa.DataFrameSchema(
    {
        "date": pa.Column(checks=pa.Check(_account_local_days, name="account_local_day")),
        "adset_id": pa.Column(checks=_NOT_BLANK),
        "channel": pa.Column(checks=_NOT_BLANK),
        "spend": pa.Column("float64", _NUMBER_CHECKS, coerce=True),
        **{
            name: pa.Column("float64", _NUMBER_CHECKS + _COUNT_CHECKS, coerce=True)
            for name in ("clicks", "conversions")
        },
        "impressions": pa.Column(
            "float64", _NUMBER_CHECKS + _COUNT_CHECKS, nullable=True, coerce=True, required=False
        ),
    },
    checks=[
        pa.Check(_conversions_within_clicks, name="conversions_within_clicks"),
        pa.Check(_clicks_paid_for, name="clicks_paid_for"),
    ],
    name="history",
)
_HISTORY_ROWS_AT_ONCE = 200_000


def check_history(history: pd.DataFrame) -> None:
    """Refuse a daily history the model cannot read, naming row, field and value: a missing or
    blank id or channel; a missing date, one with a time zone or in an ambiguous format; spend,
    clicks or conversions missing, not a number, negative or infinite; fractional counts; the
    impossible rows the insights rules reject (more conversions than 10 or more clicks, 10 or
    more clicks without spend). A slice of rows at a time: pandera's copies of 1.8 million rows
    at once took the forecast to 3 GB."""
    checked = [history.columns.get_loc(name) for name in _HISTORY.columns if name in history]
    failures = []
    for start in range(0, len(history), _HISTORY_ROWS_AT_ONCE):
        rows = history.iloc[start : start + _HISTORY_ROWS_AT_ONCE, checked]
        try:
            _HISTORY.validate(rows, lazy=True)
        except SchemaErrors as errors:
            failures.append(errors.failure_cases)
    if failures:
        problems = "; ".join(_row_problems(pd.concat(failures, ignore_index=True)))
        raise ValueError(f"history: {problems}")


# --- domain checks: each returns the failing rows, empty when the check passes ---------------


def duplicate_keys(valid: pd.DataFrame) -> pd.DataFrame:
    """Validated rows whose (date, ad, placement) key occurs more than once."""
    return valid.loc[valid.duplicated(subset=list(tables.VALIDATED_KEY), keep=False)]


def negative_spend(valid: pd.DataFrame) -> pd.DataFrame:
    """Validated rows with a negative spend."""
    return valid.loc[valid["spend"] < 0]


def clicks_above_impressions(valid: pd.DataFrame) -> pd.DataFrame:
    """Validated rows with more clicks than impressions."""
    return valid.loc[valid["clicks"] > valid["impressions"]]


def unreconciled_totals(
    valid: pd.DataFrame, raw: pd.DataFrame, rejects: pd.DataFrame
) -> pd.DataFrame:
    """Dates whose valid totals differ from those of the raw rows that were accepted.

    The raw side is recomputed from the raw text: identical copies dropped, rejected rows
    (matched on pull time and row number) removed, numbers parsed with ``pd.to_numeric``. A
    total differs when it is off by more than ``RECONCILE_RELATIVE_TOLERANCE`` of the larger.
    Returns one row per date and metric that differs: date, metric, valid_total, raw_total.
    """
    metrics = list(_RECONCILED)
    frame = raw.reset_index(drop=True)
    text = _as_text(frame.loc[:, list(tables.INSIGHT_FIELDS)])
    rejected = pd.MultiIndex.from_arrays(
        [pd.to_datetime(rejects["pulled_at"]), rejects["row_number"].astype("int64")]
    )
    row_keys = pd.MultiIndex.from_arrays(
        [pd.to_datetime(frame["pulled_at"]), frame["row_number"].astype("int64")]
    )
    accepted = (
        ~text.duplicated(keep="first")
        & text["date_start"].notna()
        & ~pd.Series(row_keys.isin(rejected), index=text.index, dtype=bool)
    )

    kept = text.loc[accepted]
    raw_numbers = pd.DataFrame(
        {name: pd.to_numeric(kept[name], errors="coerce") for name in metrics},
        index=kept.index,
    )
    raw_numbers["date"] = pd.to_datetime(kept["date_start"], format="%Y-%m-%d", errors="coerce")
    # A number that does not parse leaves its day's total NaN, so it cannot reconcile.
    raw_totals = raw_numbers.groupby("date", dropna=False)[metrics].agg(
        lambda values: values.sum(skipna=False)
    )
    valid_totals = valid.groupby("date")[metrics].sum()

    dates = raw_totals.index.union(valid_totals.index)
    raw_totals = raw_totals.reindex(dates, fill_value=0).astype("float64")
    valid_totals = valid_totals.reindex(dates, fill_value=0).astype("float64")
    rows = []
    for metric in metrics:
        mine, theirs = valid_totals[metric], raw_totals[metric]
        allowed = RECONCILE_RELATIVE_TOLERANCE * np.maximum(mine.abs(), theirs.abs())
        differs = ~((mine - theirs).abs() <= allowed)
        rows += [
            {"date": day, "metric": metric, "valid_total": mine[day], "raw_total": theirs[day]}
            for day in dates[differs.to_numpy()]
        ]
    return pd.DataFrame(rows, columns=["date", "metric", "valid_total", "raw_total"])


# --- a long range, a few days at a time ------------------------------------------------------


@dataclass(frozen=True)
class RangeValidation:
    """``validate_insights`` and ``unreconciled_totals`` of raw rows validated in parts."""

    result: ValidationResult
    unreconciled: pd.DataFrame  # unreconciled_totals' rows
    raw_rows: int


def validate_in_parts(
    parts: Iterable[pd.DataFrame], conversion_action_type: str, account_currency: str | None = None
) -> RangeValidation:
    """Validate raw rows part by part, holding one part's raw text at a time.

    The parts must share no day: every rule, every identical copy and every key conflict is
    within one day, and so is every total that ``unreconciled_totals`` compares. The valid rows
    and rejects are then those of one pass over the parts concatenated (rows in the parts'
    order), and the totals that differ come in the same order (metric, then date).
    """
    valid, rejects, unreconciled, duplicates, raw_rows = [], [], [], 0, 0
    for raw in parts:
        result = validate_insights(raw, conversion_action_type, account_currency)
        valid.append(result.valid)
        rejects.append(result.rejects)
        unreconciled.append(unreconciled_totals(result.valid, raw, result.rejects))
        duplicates += result.duplicates_dropped
        raw_rows += len(raw)
    metric_order = {metric: i for i, metric in enumerate(_RECONCILED)}
    return RangeValidation(
        result=ValidationResult(
            valid=_stacked(valid), rejects=_stacked(rejects), duplicates_dropped=duplicates
        ),
        unreconciled=_stacked(unreconciled)
        .sort_values(
            ["metric", "date"], key=lambda c: c.map(metric_order) if c.name == "metric" else c
        )
        .reset_index(drop=True),
        raw_rows=raw_rows,
    )


def _stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one after the other, renumbered; empty ones only count when all are, so
    their column types do not decide the result's."""
    return pd.concat([frame for frame in frames if len(frame)] or frames[:1], ignore_index=True)


# --- reporting -------------------------------------------------------------------------------


def rejected_row_count(rejects: pd.DataFrame) -> int:
    """How many raw rows the rejects name (a row with two problems counts once)."""
    if rejects.empty:
        return 0
    return len(rejects.drop_duplicates(["date", "pulled_at", "row_number"]))


def reject_summary(rejects: pd.DataFrame, limit: int = 20) -> str:
    """The first ``limit`` rejects as a markdown table, for check metadata and error messages."""
    if rejects.empty:
        return "No rejected rows."
    lines = [
        "| row | date | ad_id | field | value | reason |",
        "|---:|---|---|---|---|---|",
    ]
    for reject in rejects.head(limit).itertuples(index=False):
        cells = [reject.row_number, reject.date, reject.ad_id, reject.field, reject.value]
        lines.append("| " + " | ".join([*map(_cell, cells), _cell(reject.reason, 200)]) + " |")
    if len(rejects) > limit:
        lines.append(f"\n{len(rejects) - limit} more of {len(rejects)} rejects not shown.")
    return "\n".join(lines)


def _cell(value: object, width: int = 60) -> str:
    """A value as one markdown table cell: empty when missing, pipes escaped, long text cut."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 3] + "..."
