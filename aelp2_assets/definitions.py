"""The project's one ``Definitions``: built here, from the settings in the environment."""

import warnings

import dagster as dg

from aelp2_assets.assets.accuracy import model_accuracy
from aelp2_assets.assets.act import campaign_pauses, pushed_budgets
from aelp2_assets.assets.channels import ga4_channel_metrics
from aelp2_assets.assets.decide import budget_allocations
from aelp2_assets.assets.ingest import build_ingest_assets, meta_ad_entities
from aelp2_assets.assets.model import cac_forecasts, creative_posteriors
from aelp2_assets.assets.monitoring import meta_hourly_insights, monitoring_figures
from aelp2_assets.assets.reports import REPORT_ASSETS
from aelp2_assets.assets.validate import build_validate_assets
from aelp2_assets.resources import resources_for
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.sensors.alerts import data_alerts_sensor, run_failure_alert_sensor
from aelp2_assets.sensors.schedules import build_refresh_schedule

MAIN_JOB = "main_job"
MONITORING_JOB = "monitoring_job"
REPORTS_JOB = "reports_job"
ACCURACY_JOB = "model_accuracy_job"


def _job_on_a_schedule(
    name: str, assets: list, description: str, cron: str, timezone: str
) -> tuple[object, dg.ScheduleDefinition]:
    """A job of ``assets`` (as ``define_asset_job`` makes it) and its schedule, stopped until
    started in the UI."""
    job = dg.define_asset_job(
        name, selection=dg.AssetSelection.assets(*assets), description=description
    )
    schedule = dg.ScheduleDefinition(
        name=name.removesuffix("_job") + "_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
    )
    return job, schedule


def build_definitions(settings: Aelp2Settings) -> dg.Definitions:
    """Assets, checks, the main job, its schedule and the resources for ``settings``."""
    daily = dg.DailyPartitionsDefinition(
        start_date=settings.partition_start_date,
        timezone=settings.account_timezone,
        # today's partition exists: the schedule refreshes it every few hours
        end_offset=1,
    )
    with warnings.catch_warnings():
        # Single-run backfills (one run over a range of days) are beta in Dagster 1.13; the
        # schedule depends on them knowingly, so the warning would only be noise.
        warnings.simplefilter("ignore", dg.BetaWarning)
        partitioned = [*build_ingest_assets(daily), *build_validate_assets(daily)]
    assets = [
        *partitioned,
        meta_ad_entities,
        creative_posteriors,
        cac_forecasts,
        budget_allocations,
        pushed_budgets,
    ]
    main_job = dg.define_asset_job(
        MAIN_JOB,
        selection=dg.AssetSelection.assets(*assets),
        description="Ingest and validate the run's days, then model, allocate and push once.",
    )
    timezone = settings.account_timezone
    # Monitoring hangs off the graph: its own hourly job, never part of a push.
    monitoring = [meta_hourly_insights, monitoring_figures]
    monitoring_job, monitoring_schedule = _job_on_a_schedule(
        MONITORING_JOB,
        monitoring,
        "Today's hourly insights and the monitoring figures Grafana reads.",
        "5 * * * *",
        timezone,
    )
    # Reports read validated insights and feed nothing: their own daily job, off the push path
    # and out of the demo's run.
    reports_job, reports_schedule = _job_on_a_schedule(
        REPORTS_JOB,
        REPORT_ASSETS,
        "Creative rankings, launch trajectories, performance drivers, cost and return.",
        "30 6 * * *",
        timezone,
    )
    # The backtest replays stored history and feeds only cost_and_return (through its table):
    # its own job, off the push path, scheduled before the reports so they read today's row.
    accuracy_job, accuracy_schedule = _job_on_a_schedule(
        ACCURACY_JOB,
        [model_accuracy],
        "The model replayed on stored history: winner identification and CAC.",
        "0 6 * * *",
        timezone,
    )
    return dg.Definitions(
        # reports: materialized from the UI or the command line, never part of a push
        # campaign_pauses: launched by data_alerts_sensor when opted in, or by hand
        assets=[
            *assets,
            *monitoring,
            campaign_pauses,
            ga4_channel_metrics,
            *REPORT_ASSETS,
            model_accuracy,
        ],
        jobs=[main_job, monitoring_job, reports_job, accuracy_job],
        schedules=[
            build_refresh_schedule(MAIN_JOB, settings),
            monitoring_schedule,
            reports_schedule,
            accuracy_schedule,
        ],
        sensors=[data_alerts_sensor, run_failure_alert_sensor],
        resources=resources_for(settings),
        # DuckDB allows one writing process per file: run steps in one process.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What Dagster loads from this module, built from the environment's settings when it
    loads them (importing the module reads no setting, so a command that imports it can say
    what is wrong with them in one line)."""
    return build_definitions(Aelp2Settings.from_env())
