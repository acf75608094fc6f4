"""The project's settings: one typed resource, read from the environment in one place.

Each field is documented with the environment variable that sets it and its default; the
README lists them all. A bad value fails when definitions load, naming the variable and value.
"""

import datetime as dt
import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import Field, ValidationError, field_validator

from aelp2_assets.money import minor_unit_offset

# environment variable -> settings field
ENV_VARS = {
    "AELP2_ENV": "env",
    "AELP2_SOURCE": "source",
    "AELP2_WAREHOUSE": "warehouse",
    "AELP2_DUCKDB_PATH": "duckdb_path",
    "AELP2_SOURCE_FILE": "source_file",
    "BIGQUERY_DATASET": "dataset",
    "META_PLACEMENT_TRACKING": "placement_tracking",
    "MONTE_CARLO_DRAWS": "monte_carlo_draws",
    "THOMPSON_ALPHA_INIT": "thompson_alpha_init",
    "THOMPSON_BETA_INIT": "thompson_beta_init",
    "DAILY_BUDGET_CAP": "daily_budget_cap",
    "CONVERGENCE_THRESHOLD": "convergence_threshold",
    "UPDATE_FREQUENCY_HOURS": "update_frequency_hours",
    "ENABLE_RECSIM": "enable_recsim",
    "ENABLE_AUCTIONGYM": "enable_auctiongym",
    "ENABLE_DEEP_RL": "enable_deep_rl",
    "RESEARCH_MODE": "research_mode",
    "AELP2_ACCOUNT_TIMEZONE": "account_timezone",
    "AELP2_ACCOUNT_CURRENCY": "account_currency",
    "AELP2_CONVERSION_ACTION_TYPE": "conversion_action_type",
    "AELP2_PARTITION_START_DATE": "partition_start_date",
    "AELP2_RESTATEMENT_DAYS": "restatement_days",
    "AELP2_MAX_REJECTED_ROWS": "max_rejected_rows",
    "AELP2_HISTORY_DAYS": "history_days",
    "AELP2_LIVE_WINDOW_DAYS": "live_window_days",
    "AELP2_DEMO_SEED": "demo_seed",
    "AELP2_DEMO_CREATIVES": "demo_creatives",
}

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class Aelp2Settings(dg.ConfigurableResource):
    """Every setting of the project; assets receive it as the ``settings`` resource."""

    env: str = Field("local", description="AELP2_ENV: 'local' (DuckDB + demo) or 'prod'.")
    source: str = Field(
        "", description="AELP2_SOURCE: 'demo', 'file' or 'meta'; default by AELP2_ENV."
    )
    warehouse: str = Field(
        "", description="AELP2_WAREHOUSE: 'duckdb' or 'bigquery'; default by AELP2_ENV."
    )
    duckdb_path: str = Field(
        "data/aelp2.duckdb", description="AELP2_DUCKDB_PATH: the embedded warehouse file."
    )
    source_file: str = Field(
        "", description="AELP2_SOURCE_FILE: Ads Manager CSV or Insights JSON lines (file source)."
    )
    dataset: str = Field(
        "aelp2_prod", description="BIGQUERY_DATASET: dataset (BigQuery) or schema (DuckDB)."
    )
    placement_tracking: bool = Field(
        True, description="META_PLACEMENT_TRACKING: posteriors per placement as well."
    )
    monte_carlo_draws: int = Field(
        1000, description="MONTE_CARLO_DRAWS: the minimum number of forecast draws."
    )
    thompson_alpha_init: float = Field(
        1.0, description="THOMPSON_ALPHA_INIT: alpha of the Beta prior on conversion rate."
    )
    thompson_beta_init: float = Field(
        1.0, description="THOMPSON_BETA_INIT: beta of the Beta prior on conversion rate."
    )
    daily_budget_cap: float = Field(
        30000.0, description="DAILY_BUDGET_CAP: daily budget, account currency major units."
    )
    convergence_threshold: float = Field(
        0.01,
        description="CONVERGENCE_THRESHOLD: draws double until p10/p50/p90 move less than this.",
    )
    update_frequency_hours: int = Field(
        4, description="UPDATE_FREQUENCY_HOURS: hours between scheduled ticks (divides 24)."
    )
    enable_recsim: bool = Field(False, description="ENABLE_RECSIM: research flag (no effect yet).")
    enable_auctiongym: bool = Field(
        False, description="ENABLE_AUCTIONGYM: research flag (no effect yet)."
    )
    enable_deep_rl: bool = Field(
        False, description="ENABLE_DEEP_RL: research flag (no effect yet)."
    )
    research_mode: bool = Field(False, description="RESEARCH_MODE: research flag (no effect yet).")
    account_timezone: str = Field(
        "America/Los_Angeles", description="AELP2_ACCOUNT_TIMEZONE: the ad account's time zone."
    )
    account_currency: str = Field(
        "USD", description="AELP2_ACCOUNT_CURRENCY: the ad account's currency (ISO 4217)."
    )
    conversion_action_type: str = Field(
        "offsite_conversion.fb_pixel_purchase",
        description="AELP2_CONVERSION_ACTION_TYPE: the one action type counted as a conversion.",
    )
    partition_start_date: str = Field(
        "2024-01-01", description="AELP2_PARTITION_START_DATE: first daily partition (account day)."
    )
    restatement_days: int = Field(
        3, description="AELP2_RESTATEMENT_DAYS: past days each scheduled tick re-pulls."
    )
    max_rejected_rows: int = Field(
        0, description="AELP2_MAX_REJECTED_ROWS: rejected rows tolerated before the check fails."
    )
    history_days: int = Field(
        60, description="AELP2_HISTORY_DAYS: days of validated history the model reads."
    )
    live_window_days: int = Field(
        3, description="AELP2_LIVE_WINDOW_DAYS: an arm is live when it delivered in these days."
    )
    demo_seed: int = Field(7, description="AELP2_DEMO_SEED: seed of the demo simulator.")
    demo_creatives: int = Field(
        10, description="AELP2_DEMO_CREATIVES: creatives in the demo account (8-12)."
    )

    @field_validator("env")
    @classmethod
    def _known_env(cls, value: str) -> str:
        if value not in ("local", "prod"):
            raise ValueError("must be 'local' or 'prod'")
        return value

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in ("", "demo", "file", "meta"):
            raise ValueError("must be 'demo', 'file' or 'meta'")
        return value

    @field_validator("warehouse")
    @classmethod
    def _known_warehouse(cls, value: str) -> str:
        if value not in ("", "duckdb", "bigquery"):
            raise ValueError("must be 'duckdb' or 'bigquery'")
        return value

    @field_validator("monte_carlo_draws")
    @classmethod
    def _enough_draws(cls, value: int) -> int:
        if value < 100:
            raise ValueError("must be at least 100")
        return value

    @field_validator("thompson_alpha_init", "thompson_beta_init", "daily_budget_cap")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("convergence_threshold")
    @classmethod
    def _a_share(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError("must be between 0 and 1")
        return value

    @field_validator("update_frequency_hours")
    @classmethod
    def _divides_the_day(cls, value: int) -> int:
        if value < 1 or 24 % value:
            raise ValueError("must be a whole number of hours that divides 24 (1, 2, 3, 4, 6, ...)")
        return value

    @field_validator("account_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError("is not an IANA time zone name") from error
        return value

    @field_validator("account_currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        minor_unit_offset(value)
        return value.upper()

    @field_validator("partition_start_date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        dt.date.fromisoformat(value)
        return value

    @field_validator("restatement_days", "max_rejected_rows", "demo_seed")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("history_days", "live_window_days")
    @classmethod
    def _at_least_a_day(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("demo_creatives")
    @classmethod
    def _portfolio_size(cls, value: int) -> int:
        if not 8 <= value <= 12:
            raise ValueError("must be between 8 and 12")
        return value

    @property
    def source_name(self) -> str:
        """The insights source in force: explicit, else by environment."""
        return self.source or ("meta" if self.env == "prod" else "demo")

    @property
    def warehouse_name(self) -> str:
        """The warehouse in force: explicit, else by environment."""
        return self.warehouse or ("bigquery" if self.env == "prod" else "duckdb")

    @property
    def daily_budget_cap_minor(self) -> int:
        """The daily cap in integer minor units of the account currency."""
        return round(self.daily_budget_cap * minor_unit_offset(self.account_currency))

    def account_today(self) -> dt.date:
        """Today in the ad account's time zone (never a UTC date)."""
        return dt.datetime.now(ZoneInfo(self.account_timezone)).date()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Aelp2Settings":
        """Settings from environment variables; a bad value raises naming variable and value."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for variable, field in ENV_VARS.items():
            raw = environ.get(variable)
            if raw is None or raw.strip() == "":
                continue
            if cls.model_fields[field].annotation is bool:
                lowered = raw.strip().lower()
                if lowered not in _TRUE | _FALSE:
                    raise ValueError(f"{variable}={raw!r}: must be true or false")
                values[field] = lowered in _TRUE
            else:
                values[field] = raw.strip()
        try:
            return cls(**values)
        except ValidationError as error:
            field_to_variable = {field: variable for variable, field in ENV_VARS.items()}
            problems = "; ".join(
                f"{field_to_variable.get(str(e['loc'][0]), e['loc'][0])}="
                f"{values.get(str(e['loc'][0]))!r}: {e['msg']}"
                for e in error.errors()
            )
            raise ValueError(f"bad setting: {problems}") from None
