"""The refresh schedule: every UPDATE_FREQUENCY_HOURS, one run of the main job."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from aelp2_assets.resources.settings import Aelp2Settings

RESTATEMENT_TAG = "aelp2/restatement"


def is_full_restatement_tick(local: dt.datetime, settings: Aelp2Settings) -> bool:
    """Whether the tick at account-local time ``local`` is the day's first at or after
    AELP2_FULL_RESTATEMENT_HOUR, i.e. no earlier tick of that day fell at or after that hour.

    Ticks fall on the multiples of UPDATE_FREQUENCY_HOURS; one whose hour daylight saving skips
    fires at the end of the gap (Dagster's cron), so it is counted at that time. On the autumn
    day an hour repeats, and with hourly ticks both of its ticks may count: one extra pull.
    """
    zone = ZoneInfo(settings.account_timezone)
    if local.hour < settings.full_restatement_hour:
        return False
    for hour in range(settings.full_restatement_hour, local.hour):
        if hour % settings.update_frequency_hours:
            continue
        earlier = dt.datetime.combine(local.date(), dt.time(hour), zone)
        fired = earlier.astimezone(dt.UTC).astimezone(zone)  # a skipped hour: the gap's end
        if fired.hour < local.hour:
            return False
    return True


def refresh_days(scheduled: dt.datetime, settings: Aelp2Settings) -> tuple[dt.date, dt.date]:
    """The account-local days a tick re-pulls: today and the AELP2_RESTATEMENT_DAYS before it;
    once a day (the first tick from AELP2_FULL_RESTATEMENT_HOUR) today and the whole
    AELP2_RESTATEMENT_WINDOW_DAYS before it, the days Meta may still restate."""
    local = scheduled.astimezone(ZoneInfo(settings.account_timezone))
    today = local.date()
    past = (
        settings.restatement_window_days
        if is_full_restatement_tick(local, settings)
        else settings.restatement_days
    )
    first_partition = dt.date.fromisoformat(settings.partition_start_date)
    start = max(today - dt.timedelta(days=past), first_partition)
    return start, today


def build_refresh_schedule(job_name: str, settings: Aelp2Settings) -> dg.ScheduleDefinition:
    """Every UPDATE_FREQUENCY_HOURS in the account's time zone, one run of ``job_name`` over today's
    partition and the restatement window (the whole window once a day): ingest and validation
    for those days in that one run, then the model, allocation and push once (a tick never
    makes two allocations)."""

    @dg.schedule(
        name="refresh_schedule",
        job_name=job_name,
        cron_schedule=f"0 */{settings.update_frequency_hours} * * *",
        execution_timezone=settings.account_timezone,
    )
    def refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        scheduled = context.scheduled_execution_time
        start, today = refresh_days(scheduled, settings)
        local = scheduled.astimezone(ZoneInfo(settings.account_timezone))
        return dg.RunRequest(
            run_key=scheduled.isoformat(),
            tags={
                "dagster/asset_partition_range_start": start.isoformat(),
                "dagster/asset_partition_range_end": today.isoformat(),
                RESTATEMENT_TAG: "full" if is_full_restatement_tick(local, settings) else "recent",
            },
        )

    return refresh_schedule
