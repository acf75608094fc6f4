"""The alert rules: plain functions over plain numbers and tables, no Dagster import.

Each rule returns the ``Finding``s it trips (nothing when its data is too thin to judge or the
condition holds). ``reconcile`` turns findings into what changes: alerts that start firing and
alerts that clear, given those already open, so each condition fires once per window and an
alert clears when its condition does. The sensors in ``aelp2_assets.sensors.alerts`` load the
data, call these and deliver.
"""

import dataclasses
import datetime as dt

import pandas as pd

OPS = "ops"
ENGINEERING = "engineering"
CRITICAL = "critical"
WARNING = "warning"


@dataclasses.dataclass(frozen=True)
class AlertThresholds:
    """Every threshold of the rules, with its default (the settings in the README set them)."""

    spend_velocity_ratio: float = 1.2  # spend so far over the daily cap's pace
    target_cac: float = 150.0  # account currency major units
    cac_ratio: float = 2.0  # blended CAC over target CAC
    cac_window_days: int = 7
    cac_min_conversions: int = 30
    cvr_floor: float = 0.001  # 0.1%
    cvr_window_hours: int = 2
    cvr_min_clicks: int = 2000
    attribution_delay_hours: int = 1  # the latest hours are left out: conversions still arrive
    ctr_floor: float = 0.005  # 0.5%
    ctr_min_impressions: int = 10_000
    failed_materialization_ratio: float = 0.01  # over the last 24 hours


@dataclasses.dataclass(frozen=True)
class Finding:
    """One tripped condition. ``key`` names the condition and its window: the same key is one
    alert, fired once; a later window (the next account day) is a new alert."""

    rule: str
    key: str
    audience: str  # ops or engineering
    severity: str  # critical pages; warning posts only
    message: str
    value: float
    threshold: float


def spend_velocity(
    spend_so_far: float,
    daily_cap: float,
    hours_elapsed: float,
    day: dt.date,
    thresholds: AlertThresholds = AlertThresholds(),
) -> list[Finding]:
    """Account spend running ahead of the daily cap's even pace: spend so far over
    ``daily_cap * hours_elapsed / 24`` above ``spend_velocity_ratio``. Not judged in the
    day's first hour (no pace yet)."""
    if hours_elapsed < 1 or daily_cap <= 0:
        return []
    pace = daily_cap * min(hours_elapsed, 24) / 24
    ratio = spend_so_far / pace
    if ratio <= thresholds.spend_velocity_ratio:
        return []
    return [
        Finding(
            rule="spend_velocity",
            key=f"spend_velocity:account:{day}",
            audience=OPS,
            severity=CRITICAL,
            message=(
                f"spend velocity {ratio:.0%} of the daily cap's pace: {spend_so_far:,.2f} spent"
                f" in {hours_elapsed:g} h against a pace of {pace:,.2f}"
                f" (alert above {thresholds.spend_velocity_ratio:.0%})"
            ),
            value=ratio,
            threshold=thresholds.spend_velocity_ratio,
        )
    ]


def runaway_campaigns(
    spend: pd.DataFrame,
    budgets: pd.DataFrame,
    hours_elapsed: float,
    thresholds: AlertThresholds = AlertThresholds(),
) -> pd.DataFrame:
    """Which campaigns drive the account's excess spend: those running ahead of their own daily
    budget's pace by more than the account rule allows.

    ``spend``: today's rows (``campaign_id``, ``adset_id``, ``spend``); ``budgets``: the
    account's objects (``level``, ``object_id``, ``campaign_id``, ``daily_budget``, all in
    major units, NaN when unset). A campaign's daily budget is its own (a campaign budget,
    CBO), otherwise the sum of the daily budgets of its ad sets that spent today; its pace is
    that budget times ``hours_elapsed / 24``. It runs away when its spend so far exceeds
    ``spend_velocity_ratio`` times its pace. A campaign with an ad set that spent on a
    lifetime budget, or unknown to ``budgets``, has no daily pace and is not judged (``note``).
    One row per campaign that spent, the largest spend above its own pace first.
    """
    today = spend.groupby("campaign_id", as_index=False)["spend"].sum()
    campaigns = budgets[budgets["level"] == "campaign"].set_index("object_id")["daily_budget"]
    adsets = budgets[budgets["level"] == "adset"].set_index("object_id")["daily_budget"]
    delivered = spend.groupby("campaign_id")["adset_id"].unique()
    rows = []
    for campaign_id, spent in zip(today["campaign_id"], today["spend"], strict=True):
        own = campaigns.get(campaign_id)
        if campaign_id not in campaigns.index:
            budget, note = float("nan"), "not among the account's campaigns"
        elif pd.notna(own) and own > 0:
            budget, note = float(own), "campaign budget"
        else:
            spenders = adsets.reindex(delivered[campaign_id])
            unknown = spenders[spenders.isna() | (spenders <= 0)]
            budget = float("nan") if len(unknown) else float(spenders.sum())
            note = (
                f"ad sets without a daily budget: {', '.join(map(str, unknown.index))}"
                if len(unknown)
                else "sum of its delivering ad sets' budgets"
            )
        pace = budget * min(hours_elapsed, 24) / 24
        velocity = spent / pace if pace > 0 else float("nan")
        rows.append(
            {
                "campaign_id": campaign_id,
                "spend": float(spent),
                "daily_budget": budget,
                "pace": pace,
                "velocity": velocity,
                "runaway": bool(velocity > thresholds.spend_velocity_ratio),
                "note": note,
            }
        )
    judged = pd.DataFrame(
        rows,
        columns=["campaign_id", "spend", "daily_budget", "pace", "velocity", "runaway", "note"],
    )
    excess = (judged["spend"] - judged["pace"]).fillna(float("-inf"))
    return judged.iloc[excess.sort_values(ascending=False, kind="stable").index].reset_index(
        drop=True
    )


def blended_cac(
    spend: float, conversions: float, day: dt.date, thresholds: AlertThresholds = AlertThresholds()
) -> list[Finding]:
    """Blended account CAC over the trailing window above ``cac_ratio`` times the target;
    judged only on at least ``cac_min_conversions`` conversions."""
    if conversions < thresholds.cac_min_conversions or conversions <= 0:
        return []
    cac = spend / conversions
    limit = thresholds.cac_ratio * thresholds.target_cac
    if cac <= limit:
        return []
    return [
        Finding(
            rule="blended_cac",
            key=f"blended_cac:account:{day}",
            audience=OPS,
            severity=WARNING,
            message=(
                f"review targeting: blended CAC {cac:,.2f} over the last"
                f" {thresholds.cac_window_days} days ({conversions:,.0f} conversions) is above"
                f" {thresholds.cac_ratio:.0%} of the target {thresholds.target_cac:,.2f}"
            ),
            value=cac,
            threshold=limit,
        )
    ]


def cvr_window(last_hour: int, thresholds: AlertThresholds = AlertThresholds()) -> range:
    """The hours the tracking rule judges: ``cvr_window_hours`` ending
    ``attribution_delay_hours`` before the latest hour with data (conversions of the latest
    hours are still being attributed)."""
    end = last_hour - thresholds.attribution_delay_hours
    return range(max(end - thresholds.cvr_window_hours + 1, 0), end + 1)


def account_cvr(
    hourly: pd.DataFrame, day: dt.date, thresholds: AlertThresholds = AlertThresholds()
) -> list[Finding]:
    """Account-wide conversion rate (conversions per click) below ``cvr_floor`` over the
    ``cvr_window`` hours of ``hourly`` (columns ``hour``, ``clicks``, ``conversions``), judged
    only on at least ``cvr_min_clicks`` clicks."""
    if hourly.empty:
        return []
    hours = cvr_window(int(hourly["hour"].max()), thresholds)
    window = hourly[hourly["hour"].isin(list(hours))]
    clicks = float(window["clicks"].sum())
    if not hours or clicks < thresholds.cvr_min_clicks:
        return []
    cvr = float(window["conversions"].sum()) / clicks
    if cvr >= thresholds.cvr_floor:
        return []
    return [
        Finding(
            rule="account_cvr",
            key=f"account_cvr:account:{day}",
            audience=OPS,
            severity=CRITICAL,
            message=(
                f"check tracking: conversion rate {cvr:.3%} on {clicks:,.0f} clicks in hours"
                f" {hours.start:02d}-{hours.stop:02d} of {day} is below {thresholds.cvr_floor:.2%}"
            ),
            value=cvr,
            threshold=thresholds.cvr_floor,
        )
    ]


def creative_ctr(
    by_creative: pd.DataFrame, day: dt.date, thresholds: AlertThresholds = AlertThresholds()
) -> list[Finding]:
    """Each creative (``ad_id``, ``impressions``, ``clicks``) whose click-through rate is below
    ``ctr_floor``, judged only on at least ``ctr_min_impressions`` impressions."""
    findings = []
    totals = by_creative.groupby("ad_id", as_index=False)[["impressions", "clicks"]].sum()
    for row in totals.itertuples(index=False):
        if row.impressions < thresholds.ctr_min_impressions:
            continue
        ctr = row.clicks / row.impressions
        if ctr >= thresholds.ctr_floor:
            continue
        findings.append(
            Finding(
                rule="creative_ctr",
                key=f"creative_ctr:{row.ad_id}:{day}",
                audience=OPS,
                severity=WARNING,
                message=(
                    f"creative review: ad {row.ad_id} CTR {ctr:.2%} on {row.impressions:,.0f}"
                    f" impressions is below {thresholds.ctr_floor:.2%}"
                ),
                value=ctr,
                threshold=thresholds.ctr_floor,
            )
        )
    return findings


def failed_materializations(
    failed: int, succeeded: int, day: dt.date, thresholds: AlertThresholds = AlertThresholds()
) -> list[Finding]:
    """Failed asset materializations over the last 24 hours above
    ``failed_materialization_ratio`` of those attempted (an engineering alert)."""
    attempted = failed + succeeded
    if attempted == 0:
        return []
    ratio = failed / attempted
    if ratio <= thresholds.failed_materialization_ratio:
        return []
    return [
        Finding(
            rule="failed_materializations",
            key=f"failed_materializations:pipeline:{day}",
            audience=ENGINEERING,
            severity=CRITICAL,
            message=(
                f"{failed} of {attempted} asset materializations failed in the last 24 hours"
                f" ({ratio:.1%}, alert above {thresholds.failed_materialization_ratio:.1%})"
            ),
            value=ratio,
            threshold=thresholds.failed_materialization_ratio,
        )
    ]


def failed_run(run_id: str, job_name: str, error: str) -> Finding:
    """Any failed run: an engineering alert, one per run."""
    return Finding(
        rule="failed_run",
        key=f"failed_run:{run_id}",
        audience=ENGINEERING,
        severity=CRITICAL,
        message=f"run {run_id} of {job_name} failed: {error}",
        value=1.0,
        threshold=0.0,
    )


def open_alerts(history: pd.DataFrame, rules: set[str] | None = None) -> dict[str, pd.Series]:
    """The alerts still firing in an alert history (columns ``key``, ``rule``, ``state``,
    ``recorded_at``): keys whose latest row is 'firing', optionally of ``rules`` only."""
    if history.empty:
        return {}
    latest = history.sort_values("recorded_at", kind="stable").groupby("key").tail(1)
    firing = latest[latest["state"] == "firing"]
    if rules is not None:
        firing = firing[firing["rule"].isin(rules)]
    return {row["key"]: row for _, row in firing.iterrows()}


def reconcile(already_open: set[str], findings: list[Finding]) -> tuple[list[Finding], list[str]]:
    """What changes: the findings not already open (they fire now) and the open keys no
    finding holds any more (they clear now). A finding already open sends nothing again."""
    current = {finding.key: finding for finding in findings}
    fire = [finding for key, finding in current.items() if key not in already_open]
    clear = sorted(key for key in already_open if key not in current)
    return fire, clear
