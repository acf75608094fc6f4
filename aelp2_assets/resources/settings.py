"""The project's settings: one typed resource, read from the environment in one place.

Each field is documented with the environment variable that sets it and its default; the
README lists them all. A bad value fails when definitions load, naming the variable and value.
"""

import datetime as dt
import math
import os
import re
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from aelp2_assets.money import minor_unit_offset

# environment variable -> settings field
ENV_VARS = {
    "AELP2_ENV": "env",
    "AELP2_SOURCE": "source",
    "AELP2_WAREHOUSE": "warehouse",
    "AELP2_DUCKDB_PATH": "duckdb_path",
    "AELP2_SOURCE_FILE": "source_file",
    "BIGQUERY_DATASET": "dataset",
    # Production on BigQuery (README: "Production"). The project and the optional key are
    # never settings: the resources read GOOGLE_CLOUD_PROJECT and GCP_CREDENTIALS via EnvVar.
    "BIGQUERY_LOCATION": "bigquery_location",
    "AELP2_GCP_KEY_FROM_ENV": "gcp_key_from_env",
    "AELP2_GA4_DATASET": "ga4_dataset",
    "AELP2_GA4_DAYS": "ga4_days",
    "AELP2_GA4_CONVERSION_EVENT": "ga4_conversion_event",
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
    "AELP2_CAC_CEILING": "cac_ceiling",
    "AELP2_DEMO_SEED": "demo_seed",
    "AELP2_DEMO_CREATIVES": "demo_creatives",
    "AELP2_RESTATEMENT_WINDOW_DAYS": "restatement_window_days",
    "AELP2_FULL_RESTATEMENT_HOUR": "full_restatement_hour",
    "META_AD_ACCOUNT_ID": "meta_ad_account_id",
    "META_APP_ID": "meta_app_id",
    "META_API_VERSION": "meta_api_version",
    "META_GRAPH_URL": "meta_graph_url",
    "META_CONNECT_TIMEOUT_SECONDS": "meta_connect_timeout_seconds",
    "META_READ_TIMEOUT_SECONDS": "meta_read_timeout_seconds",
    "META_PAGE_LIMIT": "meta_page_limit",
    "META_MAX_ATTEMPTS": "meta_max_attempts",
    "META_RETRY_BASE_SECONDS": "meta_retry_base_seconds",
    "META_RETRY_MAX_WAIT_SECONDS": "meta_retry_max_wait_seconds",
    "META_USAGE_SLOWDOWN_PCT": "meta_usage_slowdown_pct",
    "META_USAGE_PAUSE_SECONDS": "meta_usage_pause_seconds",
    "META_ASYNC_POLL_SECONDS": "meta_async_poll_seconds",
    "META_ASYNC_MAX_WAIT_SECONDS": "meta_async_max_wait_seconds",
    "META_ASYNC_MAX_JOBS": "meta_async_max_jobs",
    "META_TOKEN_EXPIRY_WARNING_DAYS": "meta_token_expiry_warning_days",
    # Monitoring, alerts and reports (README: "Monitoring and reports").
    "AELP2_ALERT_SPEND_VELOCITY_PCT": "alert_spend_velocity_pct",
    "AELP2_ALERT_TARGET_CAC": "alert_target_cac",
    "AELP2_ALERT_CAC_RATIO_PCT": "alert_cac_ratio_pct",
    "AELP2_ALERT_CAC_WINDOW_DAYS": "alert_cac_window_days",
    "AELP2_ALERT_CAC_MIN_CONVERSIONS": "alert_cac_min_conversions",
    "AELP2_ALERT_CVR_FLOOR_PCT": "alert_cvr_floor_pct",
    "AELP2_ALERT_CVR_WINDOW_HOURS": "alert_cvr_window_hours",
    "AELP2_ALERT_CVR_MIN_CLICKS": "alert_cvr_min_clicks",
    "AELP2_ALERT_ATTRIBUTION_DELAY_HOURS": "alert_attribution_delay_hours",
    "AELP2_ALERT_CTR_FLOOR_PCT": "alert_ctr_floor_pct",
    "AELP2_ALERT_CTR_MIN_IMPRESSIONS": "alert_ctr_min_impressions",
    "AELP2_ALERT_FAILED_MATERIALIZATION_PCT": "alert_failed_materialization_pct",
    "AELP2_SLACK_CHANNEL": "slack_channel",
    "AELP2_SLACK_BASE_URL": "slack_base_url",
    "AELP2_PAGERDUTY_ALERTS": "pagerduty_alerts",
    "AELP2_PAGERDUTY_URL": "pagerduty_url",
    "AELP2_GA4_FILE": "ga4_file",
    "AELP2_GA4_SUSPECT_CVR_RATIO": "ga4_suspect_cvr_ratio",
    "AELP2_GA4_SUSPECT_MIN_SESSIONS": "ga4_suspect_min_sessions",
    "AELP2_REPORTS_DIR": "reports_dir",
    "AELP2_PIPELINE_MONTHLY_COST": "pipeline_monthly_cost",
    # Pushing budgets (README: "Pushing budgets").
    "AELP2_PUSH_MODE": "push_mode",
    "AELP2_PUSH_KILL_SWITCH": "push_kill_switch",
    "AELP2_PUSH_CAMPAIGNS": "push_campaigns",
    "AELP2_PUSH_ADSETS": "push_adsets",
    "AELP2_PUSH_MAX_CHANGE_SHARE": "push_max_change_share",
    "AELP2_PUSH_HOUR": "push_hour",
    "AELP2_PAUSE_RUNAWAY_CAMPAIGNS": "pause_runaway_campaigns",
}

# The Graph API version the pinned facebook-business SDK targets (facebook_business/apiconfig.py).
META_DEFAULT_API_VERSION = "v26.0"

# The largest daily cap accepted, in minor units: 10 billion dollars a day is above any ad
# account, and budgets this size stay exact in the allocator's floating-point shares (a cap
# of 1e17 minor units lost whole units and hung the integer rounding).
MAX_DAILY_BUDGET_MINOR = 10**12

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
    bigquery_location: str = Field(
        "US", description="BIGQUERY_LOCATION: where the dataset and its query jobs live."
    )
    gcp_key_from_env: bool = Field(
        False,
        description="AELP2_GCP_KEY_FROM_ENV: true reads a base64 service-account key from"
        " GCP_CREDENTIALS; false uses Application Default Credentials.",
    )
    ga4_dataset: str = Field(
        "",
        description="AELP2_GA4_DATASET: the GA4 BigQuery export, [project.]analytics_<id>; when"
        " set, GA4 channel metrics are queried from it instead of AELP2_GA4_FILE.",
    )
    ga4_days: int = Field(
        30, description="AELP2_GA4_DAYS: complete days of the GA4 export read, ending yesterday."
    )
    ga4_conversion_event: str = Field(
        "purchase", description="AELP2_GA4_CONVERSION_EVENT: the GA4 event counted as conversion."
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
    cac_ceiling: float = Field(
        0.0,
        description="AELP2_CAC_CEILING: when every live ad set's expected CAC is above it"
        " (account currency), fund each at the account minimum and hold the rest back; 0: off.",
    )
    demo_seed: int = Field(7, description="AELP2_DEMO_SEED: seed of the demo simulator.")
    demo_creatives: int = Field(
        10, description="AELP2_DEMO_CREATIVES: creatives in the demo account (8-12)."
    )
    restatement_window_days: int = Field(
        28,
        description="AELP2_RESTATEMENT_WINDOW_DAYS: past days re-pulled once a day (Meta restates"
        " conversions for 28 days).",
    )
    full_restatement_hour: int = Field(
        0,
        description="AELP2_FULL_RESTATEMENT_HOUR: account-local hour from which the day's first"
        " tick re-pulls the whole restatement window.",
    )
    # The Meta Marketing API source (AELP2_SOURCE=meta). The access token and app secret are
    # never settings: the resource reads META_ACCESS_TOKEN and META_APP_SECRET through EnvVar.
    meta_ad_account_id: str = Field(
        "", description="META_AD_ACCOUNT_ID: the ad account, 'act_<id>' or '<id>' (meta source)."
    )
    meta_app_id: str = Field(
        "",
        description="META_APP_ID: the app that issued the token; when set, META_APP_SECRET is"
        " required and every call carries appsecret_proof.",
    )
    meta_api_version: str = Field(
        META_DEFAULT_API_VERSION, description="META_API_VERSION: Graph API version, 'vNN.N'."
    )
    meta_graph_url: str = Field(
        "https://graph.facebook.com", description="META_GRAPH_URL: the Graph API's base URL."
    )
    meta_connect_timeout_seconds: float = Field(
        10.0, description="META_CONNECT_TIMEOUT_SECONDS: time to connect to the Graph API."
    )
    meta_read_timeout_seconds: float = Field(
        120.0, description="META_READ_TIMEOUT_SECONDS: time to wait for a Graph API response."
    )
    meta_page_limit: int = Field(
        500, description="META_PAGE_LIMIT: rows per page asked of Meta (25-5000)."
    )
    meta_max_attempts: int = Field(
        6, description="META_MAX_ATTEMPTS: attempts of one call before a transient error fails."
    )
    meta_retry_base_seconds: float = Field(
        2.0, description="META_RETRY_BASE_SECONDS: first backoff; it doubles on each retry."
    )
    meta_retry_max_wait_seconds: float = Field(
        900.0,
        description="META_RETRY_MAX_WAIT_SECONDS: longest single wait; Meta asking for longer"
        " fails the run (the next tick tries again).",
    )
    meta_usage_slowdown_pct: float = Field(
        75.0, description="META_USAGE_SLOWDOWN_PCT: usage (% of Meta's limit) to slow down at."
    )
    meta_usage_pause_seconds: float = Field(
        60.0,
        description="META_USAGE_PAUSE_SECONDS: pause at 100% usage when Meta names no reset time"
        " (proportionally less above the slowdown threshold).",
    )
    meta_async_poll_seconds: float = Field(
        10.0, description="META_ASYNC_POLL_SECONDS: time between polls of an async report."
    )
    meta_async_max_wait_seconds: float = Field(
        1800.0, description="META_ASYNC_MAX_WAIT_SECONDS: longest wait for one async report."
    )
    meta_async_max_jobs: int = Field(
        3, description="META_ASYNC_MAX_JOBS: async reports created for a range before failing."
    )
    meta_token_expiry_warning_days: int = Field(
        7, description="META_TOKEN_EXPIRY_WARNING_DAYS: warn when the token expires this soon."
    )
    # Pushing budgets to Meta (README "Pushing budgets").
    push_mode: str = Field(
        "dry_run",
        description="AELP2_PUSH_MODE: 'dry_run' (record only), 'approve' (scheduled runs stop at"
        " the plan; a run launched by hand pushes) or 'live' (the schedule pushes).",
    )
    push_kill_switch: bool = Field(
        False, description="AELP2_PUSH_KILL_SWITCH: true stops every budget write, in any mode."
    )
    push_campaigns: str = Field(
        "",
        description="AELP2_PUSH_CAMPAIGNS: comma-separated campaign ids whose ad sets the push"
        " may write (required by approve and live).",
    )
    push_adsets: str = Field(
        "",
        description="AELP2_PUSH_ADSETS: comma-separated ad set ids; when set, only these (within"
        " the allowed campaigns) may be written.",
    )
    push_max_change_share: float = Field(
        0.20,
        description="AELP2_PUSH_MAX_CHANGE_SHARE: the largest daily change of an ad set's budget"
        " (launch and sunset excepted).",
    )
    push_hour: int = Field(
        6,
        description="AELP2_PUSH_HOUR: account-local hour from which a scheduled live push may"
        " write (0-23); earlier ticks only record the plan.",
    )
    pause_runaway_campaigns: bool = Field(
        False,
        description="AELP2_PAUSE_RUNAWAY_CAMPAIGNS: true lets the spend velocity alert pause the"
        " campaigns running ahead of their own budget's pace, through the push's mode, kill"
        " switch and allow-lists. Off by default: Meta may deliver up to 25% over a daily budget"
        " on a given day.",
    )

    # Monitoring and alerts. The Slack token and PagerDuty routing key are never settings: the
    # notifier reads SLACK_BOT_TOKEN and PAGERDUTY_ROUTING_KEY through EnvVar.
    alert_spend_velocity_pct: float = Field(
        120.0,
        description="AELP2_ALERT_SPEND_VELOCITY_PCT: alert when spend so far exceeds this % of the"
        " daily cap's even pace.",
    )
    alert_target_cac: float = Field(
        150.0, description="AELP2_ALERT_TARGET_CAC: target CAC, account currency major units."
    )
    alert_cac_ratio_pct: float = Field(
        200.0, description="AELP2_ALERT_CAC_RATIO_PCT: alert when blended CAC exceeds this % of it."
    )
    alert_cac_window_days: int = Field(
        7, description="AELP2_ALERT_CAC_WINDOW_DAYS: trailing days of the blended CAC and CTR."
    )
    alert_cac_min_conversions: int = Field(
        30, description="AELP2_ALERT_CAC_MIN_CONVERSIONS: conversions needed to judge the CAC."
    )
    alert_cvr_floor_pct: float = Field(
        0.1, description="AELP2_ALERT_CVR_FLOOR_PCT: account conversion rate floor, %."
    )
    alert_cvr_window_hours: int = Field(
        2, description="AELP2_ALERT_CVR_WINDOW_HOURS: hours the conversion rate is judged over."
    )
    alert_cvr_min_clicks: int = Field(
        2000, description="AELP2_ALERT_CVR_MIN_CLICKS: clicks needed to judge the conversion rate."
    )
    alert_attribution_delay_hours: int = Field(
        1,
        description="AELP2_ALERT_ATTRIBUTION_DELAY_HOURS: latest hours left out of the conversion"
        " rate (their conversions are still being attributed).",
    )
    alert_ctr_floor_pct: float = Field(
        0.5, description="AELP2_ALERT_CTR_FLOOR_PCT: a creative's click-through rate floor, %."
    )
    alert_ctr_min_impressions: int = Field(
        10_000, description="AELP2_ALERT_CTR_MIN_IMPRESSIONS: impressions needed to judge a CTR."
    )
    alert_failed_materialization_pct: float = Field(
        1.0,
        description="AELP2_ALERT_FAILED_MATERIALIZATION_PCT: failed materializations (% over 24 h)"
        " that alert engineering.",
    )
    slack_channel: str = Field(
        "",
        description="AELP2_SLACK_CHANNEL: channel alerts are posted to; when set, SLACK_BOT_TOKEN"
        " is required.",
    )
    slack_base_url: str = Field(
        "https://slack.com/api/", description="AELP2_SLACK_BASE_URL: the Slack Web API's base URL."
    )
    pagerduty_alerts: bool = Field(
        False,
        description="AELP2_PAGERDUTY_ALERTS: page critical alerts; PAGERDUTY_ROUTING_KEY required.",
    )
    pagerduty_url: str = Field(
        "https://events.pagerduty.com",
        description="AELP2_PAGERDUTY_URL: the PagerDuty Events API v2 base URL.",
    )
    ga4_file: str = Field(
        "../shared/data/ga4_obfuscated_sample_daily_channel_funnel/BigQuery_conversion_funnel.csv",
        description="AELP2_GA4_FILE: the GA4 daily channel funnel the local GA4 source reads.",
    )
    ga4_suspect_cvr_ratio: float = Field(
        0.1,
        description="AELP2_GA4_SUSPECT_CVR_RATIO: a channel converting below this share of the"
        " other channels' rate on large traffic is suspect.",
    )
    ga4_suspect_min_sessions: int = Field(
        10_000, description="AELP2_GA4_SUSPECT_MIN_SESSIONS: sessions needed to judge a channel."
    )
    reports_dir: str = Field(
        "data/reports", description="AELP2_REPORTS_DIR: folder the report charts are saved in."
    )
    pipeline_monthly_cost: float = Field(
        1500.0,
        description="AELP2_PIPELINE_MONTHLY_COST: the pipeline's own monthly cost (compute,"
        " warehouse, API, upkeep), account currency major units.",
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

    @field_validator("bigquery_location")
    @classmethod
    def _bigquery_location(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{2}|[a-z]+-[a-z]+[0-9]+", value):
            raise ValueError("must be a BigQuery location such as US, EU or europe-west1")
        return value

    @field_validator("ga4_dataset")
    @classmethod
    def _ga4_dataset(cls, value: str) -> str:
        # project ids: 6-30 lower-case letters, digits and hyphens; dataset names as above
        if value and not re.fullmatch(
            r"([a-z][a-z0-9-]{4,28}[a-z0-9]\.)?[A-Za-z0-9_]{1,1024}", value
        ):
            raise ValueError("must be [project.]dataset, e.g. my-project.analytics_123456789")
        return value

    @field_validator("ga4_conversion_event")
    @classmethod
    def _ga4_event(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", value):
            raise ValueError("must be a GA4 event name (letters, digits, underscores)")
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
        if not 0 < value < math.inf:
            raise ValueError("must be a finite number greater than 0")
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        # BigQuery's rule for dataset names; DuckDB takes the same name as a schema
        if not re.fullmatch(r"[A-Za-z0-9_]{1,1024}", value):
            raise ValueError("must be letters, digits and underscores only")
        return value

    @model_validator(mode="after")
    def _cap_in_whole_minor_units(self) -> "Aelp2Settings":
        """The cap is money the push may spend: a whole number of the currency's minor units
        (never rounded up past what was set), at least one, and at most
        ``MAX_DAILY_BUDGET_MINOR``."""
        currency = self.account_currency
        scaled = self.daily_budget_cap * minor_unit_offset(currency)
        problem = None
        if round(scaled) < 1:
            problem = f"less than one minor unit of {currency}"
        elif round(scaled) > MAX_DAILY_BUDGET_MINOR:
            problem = f"more than {MAX_DAILY_BUDGET_MINOR:,} minor units of {currency}"
        elif abs(scaled - round(scaled)) > 1e-6:
            problem = f"finer than one minor unit of {currency}"
        if problem:
            raise ValueError(f"DAILY_BUDGET_CAP='{self.daily_budget_cap!r}': {problem}")
        return self

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

    @field_validator(
        "restatement_days", "max_rejected_rows", "demo_seed", "meta_token_expiry_warning_days"
    )
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("history_days", "live_window_days", "ga4_days")
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

    @field_validator("restatement_window_days")
    @classmethod
    def _window_covers_the_recent_days(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("restatement_days", 0):
            raise ValueError("must be at least AELP2_RESTATEMENT_DAYS")
        return value

    @field_validator("full_restatement_hour")
    @classmethod
    def _hour_with_a_tick(cls, value: int, info: ValidationInfo) -> int:
        frequency = info.data.get("update_frequency_hours", 1)
        if not 0 <= value <= 24 - frequency:
            raise ValueError(
                f"must be an hour from 0 to {24 - frequency}, so that a tick of the day falls"
                " at or after it (UPDATE_FREQUENCY_HOURS)"
            )
        return value

    @field_validator("meta_ad_account_id")
    @classmethod
    def _ad_account(cls, value: str) -> str:
        if value and not re.fullmatch(r"(act_)?\d+", value):
            raise ValueError("must be the ad account id, 'act_<digits>' or '<digits>'")
        return f"act_{value.removeprefix('act_')}" if value else value

    @field_validator("meta_app_id")
    @classmethod
    def _app_id(cls, value: str) -> str:
        if value and not value.isdigit():
            raise ValueError("must be the app's numeric id")
        return value

    @field_validator("meta_api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not re.fullmatch(r"v\d+\.\d+", value):
            raise ValueError("must look like 'v26.0'")
        return value

    @field_validator("meta_graph_url")
    @classmethod
    def _graph_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(
                "must be an http(s) URL without query, e.g. https://graph.facebook.com"
            )
        return value.rstrip("/")

    @field_validator(
        "meta_connect_timeout_seconds",
        "meta_read_timeout_seconds",
        "meta_retry_base_seconds",
        "meta_retry_max_wait_seconds",
        "meta_async_poll_seconds",
        "meta_async_max_wait_seconds",
    )
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be a number of seconds greater than 0")
        return value

    @field_validator("meta_usage_pause_seconds")
    @classmethod
    def _seconds_not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("meta_page_limit")
    @classmethod
    def _page_limit(cls, value: int) -> int:
        if not 25 <= value <= 5000:
            raise ValueError("must be between 25 and 5000")
        return value

    @field_validator("meta_max_attempts", "meta_async_max_jobs")
    @classmethod
    def _attempts(cls, value: int) -> int:
        if not 1 <= value <= 20:
            raise ValueError("must be between 1 and 20")
        return value

    @field_validator("meta_usage_slowdown_pct")
    @classmethod
    def _a_percentage(cls, value: float) -> float:
        if not 0 < value <= 100:
            raise ValueError("must be a percentage above 0 and at most 100")
        return value

    @field_validator(
        "alert_spend_velocity_pct",
        "alert_target_cac",
        "alert_cac_ratio_pct",
        "alert_cvr_floor_pct",
        "alert_ctr_floor_pct",
        "alert_failed_materialization_pct",
        "ga4_suspect_cvr_ratio",
    )
    @classmethod
    def _positive_threshold(cls, value: float) -> float:
        if not 0 < value < math.inf:
            raise ValueError("must be a finite number greater than 0")
        return value

    @field_validator("alert_cvr_floor_pct", "alert_ctr_floor_pct")
    @classmethod
    def _a_rate_pct(cls, value: float) -> float:
        if value >= 100:
            raise ValueError("must be a percentage below 100")
        return value

    @field_validator(
        "alert_cac_window_days",
        "alert_cac_min_conversions",
        "alert_cvr_window_hours",
        "alert_cvr_min_clicks",
        "alert_ctr_min_impressions",
        "ga4_suspect_min_sessions",
    )
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("alert_cvr_window_hours", "alert_attribution_delay_hours")
    @classmethod
    def _hours_of_a_day(cls, value: int) -> int:
        if not 0 <= value <= 23:
            raise ValueError("must be a number of hours from 0 to 23")
        return value

    @field_validator("pipeline_monthly_cost", "cac_ceiling")
    @classmethod
    def _cost_not_negative(cls, value: float) -> float:
        if not 0 <= value < math.inf:
            raise ValueError("must be a finite number, 0 or more")
        return value

    @field_validator("slack_base_url", "pagerduty_url")
    @classmethod
    def _service_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http(s) URL without query")
        return value

    @field_validator("pagerduty_url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https URL (PagerDuty's client refuses plain http)")
        return value

    @field_validator("slack_channel")
    @classmethod
    def _slack_channel(cls, value: str) -> str:
        if value and not re.fullmatch(r"[#@]?[A-Za-z0-9_.-]{1,80}", value):
            raise ValueError("must be a channel name or id, e.g. #ads-alerts or C0123456789")
        return value

    @field_validator("push_mode")
    @classmethod
    def _known_push_mode(cls, value: str) -> str:
        if value not in ("dry_run", "approve", "live"):
            raise ValueError("must be 'dry_run', 'approve' or 'live'")
        return value

    @field_validator("push_campaigns", "push_adsets")
    @classmethod
    def _id_list(cls, value: str) -> str:
        ids = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in ids):
            raise ValueError("must be Meta ids (digits) separated by commas")
        return ",".join(ids)

    @field_validator("push_max_change_share")
    @classmethod
    def _change_share(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError("must be a share above 0 and at most 1 (0.20 is 20%)")
        return value

    @field_validator("push_hour")
    @classmethod
    def _an_hour(cls, value: int) -> int:
        if not 0 <= value <= 23:
            raise ValueError("must be an hour from 0 to 23")
        return value

    @model_validator(mode="after")
    def _writes_need_an_account_and_an_allow_list(self) -> "Aelp2Settings":
        if self.push_mode == "dry_run":
            return self
        missing = []
        if not self.meta_ad_account_id:
            missing.append("META_AD_ACCOUNT_ID (the ad account written to)")
        if not self.push_campaigns:
            missing.append("AELP2_PUSH_CAMPAIGNS (the campaigns the push may write)")
        if missing:
            raise ValueError(
                f"AELP2_PUSH_MODE='{self.push_mode}' needs "
                + " and ".join(missing)
                + "; META_ACCESS_TOKEN is read when a run starts"
            )
        return self

    @property
    def push_campaign_ids(self) -> frozenset[str]:
        """The campaigns whose ad sets the push may write."""
        return frozenset(filter(None, self.push_campaigns.split(",")))

    @property
    def push_adset_ids(self) -> frozenset[str]:
        """The ad sets the push may write; empty: every ad set of the allowed campaigns."""
        return frozenset(filter(None, self.push_adsets.split(",")))

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

            def described(problem: dict) -> str:
                if not problem["loc"]:  # a rule across settings names them in its message
                    return problem["msg"].removeprefix("Value error, ")
                field = str(problem["loc"][0])
                return (
                    f"{field_to_variable.get(field, field)}={values.get(field)!r}: {problem['msg']}"
                )

            problems = "; ".join(described(problem) for problem in error.errors())
            raise ValueError(f"bad setting: {problems}") from None
