"""The refresh schedule on a frozen clock, across daylight-saving changes."""

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from aelp2_assets.definitions import MAIN_JOB, build_definitions
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.sensors.schedules import RESTATEMENT_TAG

LOS_ANGELES = ZoneInfo("America/Los_Angeles")
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _defs(tmp_path, **environ: str) -> dg.Definitions:
    settings = Aelp2Settings.from_env(
        {
            "AELP2_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
            "AELP2_PARTITION_START_DATE": "2026-01-01",
            **environ,
        }
    )
    return build_definitions(settings)


@pytest.fixture
def defs(tmp_path) -> dg.Definitions:
    return _defs(tmp_path)


def _tick(defs: dg.Definitions, when: dt.datetime) -> dg.RunRequest:
    schedule = defs.get_schedule_def("refresh_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=when)
    return schedule.evaluate_tick(context).run_requests[0]


def test_cron_is_every_four_hours_in_the_account_time_zone(defs):
    schedule = defs.get_schedule_def("refresh_schedule")
    assert schedule.cron_schedule == "0 */4 * * *"
    assert schedule.execution_timezone == "America/Los_Angeles"
    assert schedule.job_name == MAIN_JOB


def test_a_tick_refreshes_today_and_the_restatement_window(defs):
    request = _tick(defs, dt.datetime(2026, 6, 15, 8, tzinfo=LOS_ANGELES))
    assert request.tags[RANGE_START] == "2026-06-12"
    assert request.tags[RANGE_END] == "2026-06-15"
    assert request.tags[RESTATEMENT_TAG] == "recent"
    assert request.run_key == "2026-06-15T08:00:00-07:00"


def test_the_first_tick_of_the_day_refreshes_the_whole_28_day_window(defs):
    request = _tick(defs, dt.datetime(2026, 6, 15, 0, tzinfo=LOS_ANGELES))
    assert request.tags[RANGE_START] == "2026-05-18"  # 28 days before today
    assert request.tags[RANGE_END] == "2026-06-15"
    assert request.tags[RESTATEMENT_TAG] == "full"
    later = [_tick(defs, dt.datetime(2026, 6, 15, h, tzinfo=LOS_ANGELES)) for h in range(4, 24, 4)]
    assert {r.tags[RESTATEMENT_TAG] for r in later} == {"recent"}


def test_the_full_window_hour_and_length_are_settings(tmp_path):
    defs = _defs(tmp_path, AELP2_FULL_RESTATEMENT_HOUR="6", AELP2_RESTATEMENT_WINDOW_DAYS="10")
    ticks = {h: _tick(defs, dt.datetime(2026, 6, 15, h, tzinfo=LOS_ANGELES)) for h in (4, 8, 12)}
    # the first tick at or after 06:00 is 08:00
    assert {h: r.tags[RESTATEMENT_TAG] for h, r in ticks.items()} == {
        4: "recent",
        8: "full",
        12: "recent",
    }
    assert ticks[8].tags[RANGE_START] == "2026-06-05"
    assert ticks[4].tags[RANGE_START] == "2026-06-12"


def test_late_evening_is_still_the_account_day_not_the_utc_day(defs):
    # 20:00 in Los Angeles is already 03:00 the next day in UTC.
    request = _tick(defs, dt.datetime(2026, 6, 15, 20, tzinfo=LOS_ANGELES))
    assert request.tags[RANGE_END] == "2026-06-15"


@pytest.mark.parametrize(
    ("day", "utc_hours"),
    [
        # autumn: clocks fall back at 02:00 PDT; the day has 25 hours
        (dt.date(2026, 11, 1), [7, 12, 16, 20, 0, 4]),
        # spring: clocks jump forward at 02:00 PST; the day has 23 hours
        (dt.date(2026, 3, 8), [8, 11, 15, 19, 23, 3]),
    ],
)
def test_every_tick_of_a_daylight_saving_day_refreshes_that_local_day(defs, day, utc_hours):
    daily = defs.resolve_assets_def("raw_meta_metrics").partitions_def
    for local_hour, utc_hour in zip(range(0, 24, 4), utc_hours, strict=True):
        when = dt.datetime.combine(day, dt.time(local_hour), LOS_ANGELES)
        assert when.astimezone(dt.UTC).hour == utc_hour  # the clock really changed that day
        request = _tick(defs, when)
        assert request.tags[RANGE_END] == day.isoformat()
        # the day's first tick re-pulls the whole restatement window, the others three days
        past = 28 if local_hour == 0 else 3
        assert request.tags[RANGE_START] == (day - dt.timedelta(days=past)).isoformat()
        # today's partition exists at tick time (end offset), so the run can target it
        assert day.isoformat() in daily.get_partition_keys(current_time=when)


@pytest.mark.parametrize(
    ("frequency", "hour", "full_at"),
    [
        # hourly ticks: 02:00 does not exist on 8 March, the 03:00 tick is the first after it
        ("1", "2", [3]),
        # two-hourly: Dagster fires the skipped 02:00 tick at 03:00; 04:00 is not the first
        ("2", "2", [3]),
        ("4", "0", [0]),
    ],
)
def test_the_full_window_is_pulled_once_on_the_spring_daylight_saving_day(
    tmp_path, frequency, hour, full_at
):
    defs = _defs(tmp_path, UPDATE_FREQUENCY_HOURS=frequency, AELP2_FULL_RESTATEMENT_HOUR=hour)
    day = dt.date(2026, 3, 8)
    schedule = defs.get_schedule_def("refresh_schedule")
    start = dt.datetime.combine(day, dt.time(0), LOS_ANGELES) - dt.timedelta(minutes=1)
    # the times the daemon fires, by Dagster's own cron iterator
    fired = cron_string_iterator(
        start.timestamp(), schedule.cron_schedule, schedule.execution_timezone
    )
    ticks = list(itertools.takewhile(lambda when: when.date() == day, fired))
    full = [t.hour for t in ticks if _tick(defs, t).tags[RESTATEMENT_TAG] == "full"]
    assert full == full_at


def test_ticks_of_one_day_have_distinct_run_keys(defs):
    day = dt.date(2026, 11, 1)
    keys = {
        _tick(defs, dt.datetime.combine(day, dt.time(hour), LOS_ANGELES)).run_key
        for hour in range(0, 24, 4)
    }
    assert len(keys) == 6


def test_the_window_never_starts_before_the_first_partition(defs):
    request = _tick(defs, dt.datetime(2026, 1, 2, 4, tzinfo=LOS_ANGELES))
    assert request.tags[RANGE_START] == "2026-01-01"
    full = _tick(defs, dt.datetime(2026, 1, 10, 0, tzinfo=LOS_ANGELES))
    assert full.tags[RANGE_START] == "2026-01-01"
