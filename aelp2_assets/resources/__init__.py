"""One switch for environments: the complete set of resources for the settings in force.

``AELP2_ENV`` picks the defaults (local: DuckDB + demo; prod: BigQuery + Meta API) and
``AELP2_SOURCE`` / ``AELP2_WAREHOUSE`` override each. Assets never read the environment; they
receive these resources under the same keys whatever was chosen.
"""

from pathlib import Path

import dagster as dg

from aelp2_assets.assets.channels import Ga4FileSource
from aelp2_assets.resources.bigquery import BigQueryIOManager, BigQueryWarehouse, Ga4BigQuerySource
from aelp2_assets.resources.meta_api import MetaApiSource
from aelp2_assets.resources.meta_budgets import BudgetWriter, MetaBudgets, NoBudgetWrites
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import DemoSource, FileSource
from aelp2_assets.resources.warehouse import DuckDBIOManager, DuckDBWarehouse
from aelp2_assets.sensors.notify import AlertNotifier


def _insights_source(settings: Aelp2Settings) -> dg.ConfigurableResource:
    if settings.source_name == "demo":
        return DemoSource(
            seed=settings.demo_seed,
            creatives=settings.demo_creatives,
            start_date=settings.partition_start_date,
            daily_budget=settings.daily_budget_cap,
            currency=settings.account_currency,
            timezone=settings.account_timezone,
        )
    if settings.source_name == "file":
        if not settings.source_file:
            raise ValueError("AELP2_SOURCE=file needs AELP2_SOURCE_FILE, the export to read")
        return FileSource(
            path=settings.source_file,
            purchase_action_type=settings.conversion_action_type,
            currency=settings.account_currency,
            timezone=settings.account_timezone,
        )
    if not settings.meta_ad_account_id:
        raise ValueError("AELP2_SOURCE=meta needs META_AD_ACCOUNT_ID, the ad account to read")
    # The secrets stay environment variables, resolved when a run starts: never settings,
    # never read here. Without META_APP_ID the token is used alone (no appsecret_proof).
    return MetaApiSource.from_settings(
        settings,
        access_token=dg.EnvVar("META_ACCESS_TOKEN"),
        app_secret=dg.EnvVar("META_APP_SECRET") if settings.meta_app_id else None,
    )


def _alert_notifier(settings: Aelp2Settings) -> AlertNotifier:
    # Slack and PagerDuty only when switched on by a setting; their secrets stay EnvVars,
    # resolved when a sensor first uses them.
    return AlertNotifier(
        slack_token=dg.EnvVar("SLACK_BOT_TOKEN") if settings.slack_channel else None,
        slack_channel=settings.slack_channel,
        slack_base_url=settings.slack_base_url,
        pagerduty_routing_key=(
            dg.EnvVar("PAGERDUTY_ROUTING_KEY") if settings.pagerduty_alerts else None
        ),
        pagerduty_url=settings.pagerduty_url,
    )


def _budget_writer(settings: Aelp2Settings) -> BudgetWriter:
    # Dry run and the kill switch wire a writer that cannot send anything: no token needed.
    if settings.push_mode == "dry_run" or settings.push_kill_switch:
        return NoBudgetWrites()
    return MetaBudgets(
        api=MetaApiSource.from_settings(
            settings,
            access_token=dg.EnvVar("META_ACCESS_TOKEN"),
            app_secret=dg.EnvVar("META_APP_SECRET") if settings.meta_app_id else None,
        )
    )


def _gcp(settings: Aelp2Settings) -> dict[str, object]:
    """Where BigQuery work runs and who it runs as: EnvVars, resolved when a run starts."""
    return {
        "project": dg.EnvVar("GOOGLE_CLOUD_PROJECT"),
        # a base64 service-account key when asked for; else Application Default Credentials
        "gcp_credentials": dg.EnvVar("GCP_CREDENTIALS") if settings.gcp_key_from_env else None,
    }


def _storage(settings: Aelp2Settings) -> dict[str, object]:
    """The warehouse resource and the IO manager, both on the same warehouse."""
    if settings.warehouse_name == "bigquery":
        where = {**_gcp(settings), "location": settings.bigquery_location}
        return {
            "warehouse": BigQueryWarehouse(**where, dataset=settings.dataset),
            "io_manager": BigQueryIOManager(**where, dataset=settings.dataset),
        }
    Path(settings.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "warehouse": DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset),
        "io_manager": DuckDBIOManager(database=settings.duckdb_path, schema=settings.dataset),
    }


def _ga4_source(settings: Aelp2Settings) -> dg.ConfigurableResource:
    if not settings.ga4_dataset:
        return Ga4FileSource(path=settings.ga4_file)
    # no location: BigQuery runs the query where the export dataset lives
    return Ga4BigQuerySource(
        **_gcp(settings),
        export_dataset=settings.ga4_dataset,
        days=settings.ga4_days,
        conversion_event=settings.ga4_conversion_event,
        timezone=settings.account_timezone,
    )


def resources_for(settings: Aelp2Settings) -> dict[str, object]:
    """The resources of every asset: settings, insights source, warehouse and IO manager."""
    return {
        "settings": settings,
        "insights_source": _insights_source(settings),
        **_storage(settings),
        "meta_budgets": _budget_writer(settings),
        "alert_notifier": _alert_notifier(settings),
        "ga4_source": _ga4_source(settings),
    }
