"""The alert sensors: the data rules on a timer, and every failed run.

``data_alerts_sensor`` reads today's hourly insights, the trailing validated metrics and the
instance's last 24 hours of step outcomes, evaluates the rules of ``aelp2_assets.alert_rules``
and compares them with the alerts still open in ``alert_history``: a new condition fires once,
an open one sends nothing again, and one whose condition is gone clears. The history table is
the state (append-only, through the warehouse), so a reset cursor or a restarted daemon never
re-sends. With ``AELP2_PAUSE_RUNAWAY_CAMPAIGNS`` on, an open spend velocity alert also
launches ``campaign_pauses`` (once per condition and day, by run key), which pauses the runaway
campaigns through the push's guarded path. ``run_failure_alert_sensor`` alerts engineering once
per failed run.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd

from aelp2_assets import alert_rules
from aelp2_assets.alert_rules import AlertThresholds, Finding
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import Warehouse, WarehouseResource
from aelp2_assets.sensors.notify import AlertEvent, AlertNotifier

ALERT_HISTORY = "alert_history"
# The asset that pauses runaway campaigns (assets/act.py), and the tag naming the alert it acts on.
PAUSE_ASSET = dg.AssetKey("campaign_pauses")
PAUSE_TAG = "aelp2/pause_condition"
HOURLY_TABLE = "meta_hourly_insights"
DATA_RULES = {
    "spend_velocity",
    "blended_cac",
    "account_cvr",
    "creative_ctr",
    "failed_materializations",
}


def thresholds_from(settings: Aelp2Settings) -> AlertThresholds:
    """The rules' thresholds from the settings (percentages become fractions)."""
    return AlertThresholds(
        spend_velocity_ratio=settings.alert_spend_velocity_pct / 100,
        target_cac=settings.alert_target_cac,
        cac_ratio=settings.alert_cac_ratio_pct / 100,
        cac_window_days=settings.alert_cac_window_days,
        cac_min_conversions=settings.alert_cac_min_conversions,
        cvr_floor=settings.alert_cvr_floor_pct / 100,
        cvr_window_hours=settings.alert_cvr_window_hours,
        cvr_min_clicks=settings.alert_cvr_min_clicks,
        attribution_delay_hours=settings.alert_attribution_delay_hours,
        ctr_floor=settings.alert_ctr_floor_pct / 100,
        ctr_min_impressions=settings.alert_ctr_min_impressions,
        failed_materialization_ratio=settings.alert_failed_materialization_pct / 100,
    )


def hours_elapsed(hourly: pd.DataFrame) -> int:
    """Hours of the day the hourly rows cover: up to the end of the latest hour with data."""
    return int(hourly["hour"].max()) + 1


def spend_velocity_today(
    hourly: pd.DataFrame, daily_cap: float, today: dt.date, thresholds: AlertThresholds
) -> list[Finding]:
    """The spend velocity rule on today's hourly rows (``hour``, ``spend``): the alert, and
    the condition the pause of runaway campaigns acts on (``assets/act.py``)."""
    if hourly.empty:
        return []
    return alert_rules.spend_velocity(
        float(hourly["spend"].sum()), daily_cap, hours_elapsed(hourly), today, thresholds
    )


def evaluate_data_rules(
    today: dt.date,
    daily_cap: float,
    hourly: pd.DataFrame,
    trailing: pd.DataFrame,
    step_outcomes: tuple[int, int],
    thresholds: AlertThresholds,
) -> list[Finding]:
    """Every data rule on today's hourly rows (``hour``, ``spend``, ``clicks``,
    ``conversions``), the trailing window's validated rows (``ad_id``, ``spend``,
    ``impressions``, ``clicks``, ``conversions``) and (failed, succeeded) steps of 24 hours."""
    findings: list[Finding] = []
    if not hourly.empty:
        by_hour = hourly.groupby("hour", as_index=False)[["spend", "clicks", "conversions"]].sum()
        findings += spend_velocity_today(hourly, daily_cap, today, thresholds)
        findings += alert_rules.account_cvr(by_hour, today, thresholds)
    if not trailing.empty:
        findings += alert_rules.blended_cac(
            float(trailing["spend"].sum()), float(trailing["conversions"].sum()), today, thresholds
        )
        findings += alert_rules.creative_ctr(trailing, today, thresholds)
    failed, succeeded = step_outcomes
    findings += alert_rules.failed_materializations(failed, succeeded, today, thresholds)
    return findings


def step_outcomes(instance: dg.DagsterInstance, since: dt.datetime) -> tuple[int, int]:
    """(failed, succeeded) steps since ``since``: in an asset job each step materializes one
    asset, so these are the materializations attempted."""
    counts = []
    for event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SUCCESS):
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=event_type, after_timestamp=since.timestamp()),
            limit=10_000,
        )
        counts.append(len(records))
    return counts[0], counts[1]


def record_events(
    warehouse: Warehouse,
    notifier: AlertNotifier,
    log: dg.DagsterLogManager,
    fire: list[Finding],
    clear: list[pd.Series],
    now: dt.datetime,
) -> pd.DataFrame:
    """Deliver and append to the alert history: the findings that fire and the open alerts
    (history rows) that clear. Returns the appended rows."""
    events = [
        (
            AlertEvent(f.key, f.rule, "firing", f.audience, f.severity, f.message),
            f.value,
            f.threshold,
        )
        for f in fire
    ] + [
        (
            AlertEvent(
                row["key"],
                row["rule"],
                "cleared",
                row["audience"],
                row["severity"],
                f"cleared: {row['message']}",
            ),
            float("nan"),
            float(row["threshold"]),
        )
        for row in clear
    ]
    rows = []
    for event, value, threshold in events:
        delivered = notifier.deliver(event, log)
        rows.append(
            {
                "recorded_at": pd.Timestamp(now).tz_convert("UTC").tz_localize(None),
                "rule": event.rule,
                "key": event.key,
                "state": event.state,
                "audience": event.audience,
                "severity": event.severity,
                "message": event.message,
                "value": value,
                "threshold": threshold,
                "delivered": delivered,
            }
        )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        warehouse.append(ALERT_HISTORY, frame)
    return frame


def run_data_alerts(
    settings: Aelp2Settings,
    warehouse: Warehouse,
    notifier: AlertNotifier,
    instance: dg.DagsterInstance,
    log: dg.DagsterLogManager,
    now: dt.datetime | None = None,
) -> pd.DataFrame:
    """One evaluation of the data rules: returns the alert history rows it appended."""
    now = now or dt.datetime.now(dt.UTC)
    thresholds = thresholds_from(settings)
    today = now.astimezone(dt.UTC).astimezone(ZoneInfo(settings.account_timezone)).date()
    hourly = warehouse.read(HOURLY_TABLE, "date", today, today)
    first = today - dt.timedelta(days=thresholds.cac_window_days - 1)
    trailing = warehouse.read("validated_meta_metrics", "date", first, today)
    outcomes = step_outcomes(instance, now - dt.timedelta(hours=24))
    findings = evaluate_data_rules(
        today, settings.daily_budget_cap, hourly, trailing, outcomes, thresholds
    )
    history = warehouse.read(ALERT_HISTORY)
    already_open = alert_rules.open_alerts(history, DATA_RULES)
    fire, clear = alert_rules.reconcile(set(already_open), findings)
    log.info(
        f"alerts for {today}: {len(findings)} conditions hold, {len(fire)} fire,"
        f" {len(clear)} clear, {len(already_open)} were open"
    )
    return record_events(warehouse, notifier, log, fire, [already_open[key] for key in clear], now)


def pause_run_requests(settings: Aelp2Settings, warehouse: Warehouse) -> list[dg.RunRequest]:
    """With ``AELP2_PAUSE_RUNAWAY_CAMPAIGNS`` on, a run of ``campaign_pauses`` for each open
    spend velocity alert (after this tick's reconcile, at most today's). Its run key is the
    alert's key, so Dagster launches one run per condition and day however many ticks see it."""
    if not settings.pause_runaway_campaigns:
        return []
    history = warehouse.read(ALERT_HISTORY)
    return [
        dg.RunRequest(run_key=f"{PAUSE_ASSET.to_user_string()}:{key}", tags={PAUSE_TAG: key})
        for key in sorted(alert_rules.open_alerts(history, {"spend_velocity"}))
    ]


@dg.sensor(
    name="data_alerts_sensor",
    minimum_interval_seconds=300,
    asset_selection=[PAUSE_ASSET],
    description="Spend velocity, blended CAC, account conversion rate, creative CTR and the"
    " failed-materialization rate: each fires once per condition and day, clears when it clears."
    " With AELP2_PAUSE_RUNAWAY_CAMPAIGNS on, runaway spend also launches campaign_pauses.",
)
def data_alerts_sensor(
    context: dg.SensorEvaluationContext,
    settings: Aelp2Settings,
    warehouse: WarehouseResource,
    alert_notifier: AlertNotifier,
) -> dg.SensorResult | dg.SkipReason:
    """Evaluates the data rules every 5 minutes; launches the pause of runaway campaigns only
    when opted in and the spend velocity alert is open."""
    appended = run_data_alerts(settings, warehouse, alert_notifier, context.instance, context.log)
    states = appended["state"].value_counts().to_dict() if not appended.empty else {}
    summary = f"{states.get('firing', 0)} alerts fired, {states.get('cleared', 0)} cleared"
    requests = pause_run_requests(settings, warehouse)
    if requests:
        context.log.info(f"{summary}; requesting the pause of runaway campaigns")
        return dg.SensorResult(run_requests=requests)
    return dg.SkipReason(summary)


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    description="Alerts engineering once for every failed run.",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext,
    warehouse: WarehouseResource,
    alert_notifier: AlertNotifier,
) -> None:
    """One engineering alert per failed run, recorded in the alert history."""
    run = context.dagster_run
    error = context.failure_event.message or "no message"
    finding = alert_rules.failed_run(run.run_id, run.job_name, error[:500])
    history = warehouse.read(ALERT_HISTORY)
    if not history.empty and (history["key"] == finding.key).any():
        context.log.info(f"run {run.run_id}: already alerted")
        return
    record_events(warehouse, alert_notifier, context.log, [finding], [], dt.datetime.now(dt.UTC))
