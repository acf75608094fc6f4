"""The refresh schedule: every UPDATE_FREQUENCY_HOURS, one run of the main job."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from aelp2_assets.resources.settings import Aelp2Settings


def refresh_days(scheduled: dt.datetime, settings: Aelp2Settings) -> tuple[dt.date, dt.date]:
    """The account-local days a tick re-pulls: today and the restatement window before it."""
    today = scheduled.astimezone(ZoneInfo(settings.account_timezone)).date()
    first_partition = dt.date.fromisoformat(settings.partition_start_date)
    start = max(today - dt.timedelta(days=settings.restatement_days), first_partition)
    return start, today


def build_refresh_schedule(job_name: str, settings: Aelp2Settings) -> dg.ScheduleDefinition:
    """Every UPDATE_FREQUENCY_HOURS in the account's time zone, one run of ``job_name`` over today's
    partition and the restatement window: ingest and validation for those days in that one run,
    then the model, allocation and push once (a tick never makes two allocations)."""

    @dg.schedule(
        name="refresh_schedule",
        job_name=job_name,
        cron_schedule=f"0 */{settings.update_frequency_hours} * * *",
        execution_timezone=settings.account_timezone,
    )
    def refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        start, today = refresh_days(context.scheduled_execution_time, settings)
        return dg.RunRequest(
            run_key=context.scheduled_execution_time.isoformat(),
            tags={
                "dagster/asset_partition_range_start": start.isoformat(),
                "dagster/asset_partition_range_end": today.isoformat(),
            },
        )

    return refresh_schedule
