"""Act: push the changed ad set budgets to Meta, safely, recorded in an append-only audit.

Modes (``AELP2_PUSH_MODE``): ``dry_run`` records the guarded plan and sends nothing;
``approve`` records it on scheduled runs and pushes when an engineer materializes the asset by
hand; ``live`` pushes on the schedule from ``AELP2_PUSH_HOUR``. ``AELP2_PUSH_KILL_SWITCH``
stops every write in any mode. Before any request: the latest evaluations of the blocking
checks on the data the plan comes from must have passed, and the guardrails
(``aelp2_assets.guardrails``) must accept or repair the plan. One push at a time: the asset
runs in the pool ``meta_budget_push``, whose limit of one is in the shipped ``dagster.yaml``.

``campaign_pauses`` pauses runaway campaigns (``AELP2_PAUSE_RUNAWAY_CAMPAIGNS``, off by
default) through the same path: the same mode, kill switch, allow-lists, pool and audit table.
"""

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from pydantic import Field

from aelp2_assets import alert_rules
from aelp2_assets.assets.metadata import markdown_preview
from aelp2_assets.assets.monitoring import HOURLY_TABLE, meta_hourly_insights
from aelp2_assets.guardrails import (
    Account,
    GuardedBudget,
    GuardedPlan,
    PlannedBudget,
    apply_guardrails,
)
from aelp2_assets.money import format_minor, minor_unit_offset, to_major_units
from aelp2_assets.resources.meta_api import MetaTokenError
from aelp2_assets.resources.meta_budgets import (
    PAUSED,
    BudgetTooLow,
    BudgetWriteError,
    BudgetWriter,
    RateLimited,
)
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import Warehouse, WarehouseResource
from aelp2_assets.sensors.alerts import hours_elapsed, spend_velocity_today, thresholds_from
from aelp2_assets.sensors.notify import AlertEvent, AlertNotifier

AUDIT_TABLE = "pushed_budgets"
POOL = "meta_budget_push"
SCHEDULE_TAG = "dagster/schedule_name"
SENSOR_TAG = "dagster/sensor_name"

# The blocking checks on the data a plan comes from (assets/validate.py, assets/model.py).
VALIDATION_CHECKS = (
    "no_rejected_rows",
    "matches_schema",
    "unique_keys",
    "spend_not_negative",
    "clicks_within_impressions",
    "totals_reconcile",
)
MODEL_CHECKS = ("history_is_fresh", "conversions_observed")
BLOCKING_CHECKS = {
    "validated_meta_metrics": VALIDATION_CHECKS,
    "creative_posteriors": MODEL_CHECKS,
}
# One row per ad set budget change (action 'budget') or campaign pause (action 'pause').
AUDIT_COLUMNS = (
    "run_id",
    "recorded_at",
    "decision_date",
    "action",
    "campaign_id",  # the campaign paused (pause rows)
    "adset_id",  # the ad set whose budget changes (budget rows)
    "before_minor",
    "requested_minor",
    "read_back_minor",
    "campaign_status_before",  # pause rows: the campaign's status in Meta before, and read back
    "campaign_status_read_back",
    "status",
    "reason",
)
TEXT_COLUMNS = (
    "run_id",
    "action",
    "campaign_id",
    "adset_id",
    "campaign_status_before",
    "campaign_status_read_back",
    "status",
    "reason",
)


class PushConfig(dg.Config):
    """Options of a push launched by hand."""

    force: bool = Field(
        False,
        description="Change ad sets already changed today (the one-change-a-day rule is lifted;"
        " every other guardrail still holds).",
    )


def change_set(allocations: pd.DataFrame) -> pd.DataFrame:
    """The funded ad sets whose planned budget differs from their current one (an unknown
    current budget counts as different). An ad set planned at zero is not a budget change:
    stopping one is a pause, which this project does not send."""
    before = allocations["previous_budget_minor"].astype("Int64")
    changed = before.ne(allocations["budget_minor"]).fillna(True)
    return allocations[changed & (allocations["budget_minor"] > 0)]


def failed_blocking_checks(
    instance: dg.DagsterInstance, settings: Aelp2Settings, decision: dt.date
) -> list[str]:
    """Why the data behind a plan is not known to be good ('' problems: it is).

    The latest evaluation of each blocking check must exist and have passed; and each
    partition of ``validated_meta_metrics`` in the model's history window must have been last
    materialized by a run whose six checks all passed (a range run records its checks once,
    not per partition).
    """
    problems = []
    for asset, names in BLOCKING_CHECKS.items():
        for name in names:
            record = instance.get_latest_asset_check_evaluation_record(
                dg.AssetCheckKey(dg.AssetKey(asset), name)
            )
            if record is None:
                problems.append(f"{asset}.{name} was never evaluated")
            elif record.status != AssetCheckExecutionRecordStatus.SUCCEEDED:
                problems.append(
                    f"{asset}.{name}: latest evaluation {record.status.value} (run {record.run_id})"
                )

    window = {
        (decision - dt.timedelta(days=offset)).isoformat()
        for offset in range(settings.history_days + 1)
    }
    latest_run: dict[str, str] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("validated_meta_metrics"), asset_partitions=sorted(window)
            ),
            limit=500,
            cursor=cursor,
        )
        for record in page.records:
            latest_run.setdefault(record.partition_key, record.run_id)
        if not page.has_more or set(latest_run) >= window:
            break
        cursor = page.cursor
    for run_id in sorted(set(latest_run.values())):
        passed = {
            entry.dagster_event.event_specific_data.check_name
            for entry in instance.all_logs(
                run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
            if entry.dagster_event.event_specific_data.asset_key.path == ["validated_meta_metrics"]
            and entry.dagster_event.event_specific_data.passed
        }
        missing = [name for name in VALIDATION_CHECKS if name not in passed]
        if missing:
            days = sorted(day for day, run in latest_run.items() if run == run_id)
            problems.append(
                f"validated_meta_metrics {days[0]}..{days[-1]} (run {run_id}): {missing}"
                " failed or not evaluated"
            )
    return problems


def _applied_today(audit: pd.DataFrame, settings: Aelp2Settings, action: str) -> set[str]:
    """The ad sets ('budget') or campaigns ('pause') changed earlier in the account's day.
    Rows written before the audit had an ``action`` column are budget rows."""
    if audit.empty:
        return set()
    audit = audit.reindex(columns=list(AUDIT_COLUMNS))
    applied = audit[(audit["status"] == "applied") & (audit["action"].fillna("budget") == action)]
    zone = ZoneInfo(settings.account_timezone)
    local_days = pd.to_datetime(applied["recorded_at"]).dt.tz_localize("UTC").dt.tz_convert(zone)
    column = "campaign_id" if action == "pause" else "adset_id"
    return set(applied.loc[local_days.dt.date == settings.account_today(), column])


def _now() -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.now(dt.UTC)).tz_localize(None)


class _Audit:
    """Rows of the audit, appended as they are decided (an interrupted push stays exact)."""

    def __init__(self, warehouse: Warehouse, run_id: str, decision: dt.date):
        self.warehouse, self.run_id, self.decision = warehouse, run_id, decision
        self.rows: list[dict] = []
        self._held = False

    @contextmanager
    def held(self) -> Iterator[None]:
        """Rows recorded in the block are appended together when it ends: for rows where
        nothing is sent, so no interruption can leave a change unrecorded; one append per ad
        set cost ~0.1 s each (1,000 ad sets: 100 s, benchmarks/scale.py)."""
        first, self._held = len(self.rows), True
        try:
            yield
        finally:
            self._held = False
        if len(self.rows) > first:
            self.warehouse.append(AUDIT_TABLE, _frame(self.rows[first:]))

    def record(
        self,
        adset_id: str,
        before: int | None,
        requested: int | None,
        status: str,
        reason: str,
        read_back: int | None = None,
    ) -> None:
        """An ad set budget change."""
        self._append(
            action="budget",
            adset_id=str(adset_id),
            before_minor=before,
            requested_minor=requested,
            read_back_minor=read_back,
            status=status,
            reason=reason,
        )

    def record_pause(
        self,
        campaign_id: str,
        status: str,
        reason: str,
        before: str | None = None,
        read_back: str | None = None,
    ) -> None:
        """A campaign pause; ``before`` and ``read_back`` are its status in Meta."""
        self._append(
            action="pause",
            campaign_id=str(campaign_id),
            campaign_status_before=before,
            campaign_status_read_back=read_back,
            status=status,
            reason=reason,
        )

    def _append(self, **values: object) -> None:
        row = {
            "run_id": self.run_id,
            "recorded_at": _now(),
            "decision_date": pd.Timestamp(self.decision),
            **values,
        }
        self.rows.append(row)
        if not self._held:
            self.warehouse.append(AUDIT_TABLE, _frame([row]))

    def table(self) -> pd.DataFrame:
        return _frame(self.rows)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))
    for column in ("before_minor", "requested_minor", "read_back_minor"):
        frame[column] = frame[column].astype("Int64")
    frame["recorded_at"] = pd.to_datetime(frame["recorded_at"])
    frame["decision_date"] = pd.to_datetime(frame["decision_date"])
    return frame.astype(dict.fromkeys(TEXT_COLUMNS, "string"))


def _why_not_writing(context: dg.AssetExecutionContext, settings: Aelp2Settings) -> str:
    """The status recorded instead of writing to Meta (a push or a pause), or '' when this run
    may write: the kill switch, dry run, and in approve mode any run a schedule or a sensor
    launched (only a run launched by hand writes)."""
    launched_automatically = SCHEDULE_TAG in context.run.tags or SENSOR_TAG in context.run.tags
    if settings.push_kill_switch:
        return "killed"
    if settings.push_mode == "dry_run":
        return "dry_run"
    if settings.push_mode == "approve" and launched_automatically:
        return "awaiting_approval"
    return ""


def _why_not_pushing(context: dg.AssetExecutionContext, settings: Aelp2Settings) -> str:
    """``_why_not_writing``, and a scheduled live push waits for ``AELP2_PUSH_HOUR``."""
    status = _why_not_writing(context, settings)
    hour = dt.datetime.now(ZoneInfo(settings.account_timezone)).hour
    scheduled = SCHEDULE_TAG in context.run.tags
    if not status and settings.push_mode == "live" and scheduled and hour < settings.push_hour:
        return "before_push_hour"
    return status


def _failed_write(error: BudgetWriteError | MetaTokenError) -> tuple[str, str]:
    """The audit status and reason of a write Meta refused."""
    if isinstance(error, RateLimited):
        return "deferred", f"rate limited, left for the next run: {error}"
    if isinstance(error, BudgetTooLow):
        return "too_low", f"kept the old budget: {error}"
    if isinstance(error, MetaTokenError):
        return "token_refused", str(error)
    return "failed", str(error)


@dg.asset(
    group_name="act",
    kinds={"python", "duckdb"},
    owners=["team:ads-ops"],
    pool=POOL,
)
def pushed_budgets(
    context: dg.AssetExecutionContext,
    config: PushConfig,
    settings: Aelp2Settings,
    warehouse: WarehouseResource,
    meta_budgets: BudgetWriter,
    alert_notifier: AlertNotifier,
    budget_allocations: pd.DataFrame,
    meta_ad_entities: pd.DataFrame,
) -> dg.MaterializeResult:
    """Append-only audit of every budget change: run id, time, ad set, budget before,
    requested and read back, status and the reason (the allocation rule, then any guardrail).
    Sends ad set ``daily_budget`` changes to Meta in approve (by hand) and live modes only."""
    decision = pd.Timestamp(budget_allocations["decision_date"].iloc[0]).date()
    audit = _Audit(warehouse, context.run.run_id, decision)
    minimum = int(meta_ad_entities["min_daily_budget"].dropna().max())
    account = Account(settings.daily_budget_cap_minor, minimum, settings.push_max_change_share)
    changed_today = _applied_today(warehouse.read(AUDIT_TABLE), settings, "budget")
    pauses = budget_allocations[
        (budget_allocations["budget_minor"] == 0)
        & budget_allocations["previous_budget_minor"].notna()
        & (budget_allocations["stage"] != "inactive")
    ]
    fixed = int(pauses["previous_budget_minor"].sum())

    status = _why_not_pushing(context, settings)
    if status or not meta_budgets.writes:
        result = _record_plan(audit, budget_allocations, account, changed_today, fixed, status)
        return _result(context, settings, audit, status or "dry_run", pauses, result.refused)

    problems = failed_blocking_checks(context.instance, settings, decision)
    if decision != settings.account_today():
        problems.append(f"the allocation is for {decision}, not the account's today")
    if problems:
        with audit.held():
            for row in change_set(budget_allocations).itertuples():
                audit.record(
                    row.arm_id,
                    _int(row.previous_budget_minor),
                    None,
                    "refused",
                    "; ".join(problems),
                )
        raise dg.Failure(
            description="push refused, nothing sent: " + "; ".join(problems),
            metadata={"refused_ad_sets": len(audit.rows)},
        )
    return _push(
        context,
        settings,
        audit,
        meta_budgets,
        budget_allocations,
        meta_ad_entities,
        (account, changed_today, fixed, config.force),
        pauses,
        alert_notifier,
    )


def _int(value: object) -> int | None:
    return None if pd.isna(value) else int(value)


def _record_plan(
    audit: _Audit,
    allocations: pd.DataFrame,
    account: Account,
    changed_today: set[str],
    fixed: int,
    status: str,
) -> GuardedPlan:
    """The change set under the guardrails, recorded with ``status``; nothing is sent."""
    changes = change_set(allocations)
    known = changes[changes["previous_budget_minor"].notna()]
    plan = [
        PlannedBudget(
            str(row.arm_id),
            int(row.previous_budget_minor),
            int(row.budget_minor),
            str(row.stage),
            str(row.reason),
            str(row.arm_id) in changed_today,
        )
        for row in known.itertuples()
    ]
    guarded = apply_guardrails(plan, account, fixed_minor=fixed)
    after = {b.adset_id: b for b in guarded.budgets}
    with audit.held():
        for row in changes.itertuples():
            adset_id, before = str(row.arm_id), _int(row.previous_budget_minor)
            if guarded.refused:
                audit.record(adset_id, before, int(row.budget_minor), "refused", guarded.refused)
            elif adset_id in after:
                budget = after[adset_id]
                audit.record(adset_id, before, budget.after, status, budget.reason)
            else:
                reason = f"{row.reason}; current budget unknown: no guardrail applied"
                audit.record(adset_id, before, int(row.budget_minor), status, reason)
    return guarded


def _push(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    audit: _Audit,
    meta: BudgetWriter,
    allocations: pd.DataFrame,
    entities: pd.DataFrame,
    rules: tuple[Account, set[str], int, bool],
    pauses: pd.DataFrame,
    notifier: AlertNotifier,
) -> dg.MaterializeResult:
    """Read each allowed ad set's budget now, guard the plan, write what changes, read back."""
    account, changed_today, fixed, force = rules
    adsets = entities[entities["level"] == "adset"].set_index("object_id")
    funded = allocations[allocations["budget_minor"] > 0]
    campaigns, only = settings.push_campaign_ids, settings.push_adset_ids
    plan: list[PlannedBudget] = []
    deferred_reason = ""
    for row in funded.itertuples():
        adset_id = str(row.arm_id)
        campaign = str(adsets["campaign_id"].get(adset_id, "") or "")
        requested, before = int(row.budget_minor), _int(row.previous_budget_minor)
        if campaign not in campaigns or (only and adset_id not in only):
            audit.record(adset_id, before, requested, "out_of_scope", "not on the allow-list")
            continue
        if deferred_reason:
            audit.record(adset_id, before, requested, "deferred", deferred_reason)
            continue
        try:
            now = meta.read_adset(adset_id)
        except RateLimited as error:
            _, deferred_reason = _failed_write(error)
            audit.record(adset_id, before, requested, "deferred", deferred_reason)
            continue
        if now.campaign_id and now.campaign_id not in campaigns:
            audit.record(adset_id, before, requested, "out_of_scope", "campaign not allowed")
            continue
        if now.unwritable:
            audit.record(adset_id, now.daily_budget, requested, "not_daily_budget", now.unwritable)
            continue
        plan.append(
            PlannedBudget(
                adset_id,
                int(now.daily_budget),
                requested,
                str(row.stage),
                str(row.reason),
                adset_id in changed_today,
            )
        )

    guarded = apply_guardrails(plan, account, force=force, fixed_minor=fixed)
    if guarded.refused:
        for p in plan:
            audit.record(p.adset_id, p.before, p.requested, "refused", guarded.refused)
        raise dg.Failure(description=f"push refused by the guardrails: {guarded.refused}")

    counts: dict[str, int] = {}
    total_before = total_after = 0
    for budget in guarded.budgets:
        status, read_back, reason = _write(meta, budget, deferred_reason)
        if status == "deferred":
            deferred_reason = reason
        counts[status] = counts.get(status, 0) + 1
        total_before += budget.before
        total_after += budget.after if status in ("applied", "unchanged") else budget.before
        audit.record(budget.adset_id, budget.before, budget.after, status, reason, read_back)
        if status == "token_refused":
            raise dg.Failure(description=reason)

    currency = settings.account_currency
    summary = (
        f"live push: {counts.get('applied', 0)} ad sets changed, total"
        f" {format_minor(total_before, currency)} -> {format_minor(total_after, currency)};"
        f" deferred {counts.get('deferred', 0)}, failed"
        f" {counts.get('failed', 0) + counts.get('read_back_mismatch', 0)}, too low"
        f" {counts.get('too_low', 0)}"
    )
    # announced where alerts go: the log always, Slack and PagerDuty when configured
    notifier.deliver(
        AlertEvent(
            key=f"live_push:{context.run.run_id}",
            rule="live_push",
            state="announced",
            audience="ads-ops",
            severity="info",
            message=summary,
        ),
        context.log,
    )
    return _result(context, settings, audit, "live", pauses, "", (total_before, total_after))


def _write(meta: BudgetWriter, budget: GuardedBudget, deferred: str) -> tuple[str, int | None, str]:
    """One write and its read-back: status, the budget read back, the reason."""
    adset_id, minor = budget.adset_id, budget.after
    if not budget.changes:
        return "unchanged", None, budget.reason or "Meta already has this budget"
    if deferred:
        return "deferred", None, deferred
    try:
        meta.set_daily_budget(adset_id, minor)
    except (BudgetWriteError, MetaTokenError) as error:
        status, reason = _failed_write(error)
        return status, None, reason
    try:
        read_back = meta.read_adset(adset_id).daily_budget
    except BudgetWriteError as error:
        return "failed", None, f"sent, but the read-back failed: {error}"
    if read_back != minor:
        return "read_back_mismatch", read_back, f"Meta reports {read_back}, not {minor}"
    return "applied", read_back, budget.reason


def _result(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    audit: _Audit,
    mode: str,
    pauses: pd.DataFrame,
    refused: str,
    totals: tuple[int, int] | None = None,
) -> dg.MaterializeResult:
    table = audit.table()
    currency = settings.account_currency
    if totals is None:
        totals = (
            int(table["before_minor"].fillna(0).sum()),
            int(table["requested_minor"].fillna(0).sum()),
        )
    before, after = (to_major_units(total, currency) for total in totals)
    if mode != "live":
        context.log.info(
            f"{mode}: {len(table)} ad set budgets would change ({before:,.2f} ->"
            f" {after:,.2f} {currency}); nothing sent"
            + (f"; the guardrails refuse the plan: {refused}" if refused else "")
        )
    if len(pauses):
        context.log.warning(
            f"{len(pauses)} ad sets planned at zero keep their budget: pausing is not sent"
            f" ({', '.join(map(str, pauses['arm_id']))})"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "mode": mode,
            "changed_ad_sets": int((table["status"] == "applied").sum())
            if mode == "live"
            else len(table),
            "statuses": dg.MetadataValue.json(table["status"].value_counts().to_dict()),
            "total_before": before,
            "total_after": after,
            "pauses_not_sent": len(pauses),
            "refused": refused,
            "preview": markdown_preview(table, 15),
        }
    )


# Outcomes of a live pause that leave the campaign delivering.
NOT_PAUSED = ("read_back_mismatch", "failed", "deferred")


def _budgets_in_major_units(entities: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The entities' daily budgets in major units (NaN when unset), as the hourly spend is."""
    daily = entities["daily_budget"].astype("Float64").astype(float)
    return entities.assign(daily_budget=daily / minor_unit_offset(currency))


def _pause(meta: BudgetWriter, campaign_id: str) -> tuple[str, str | None, str | None, str]:
    """One pause: the campaign's status read first (already paused: nothing sent), then
    ``status=PAUSED`` sent once and read back. Returns status, before, read back, reason."""
    try:
        before = meta.read_campaign(campaign_id).status
    except (BudgetWriteError, MetaTokenError) as error:
        status, reason = _failed_write(error)
        return status, None, None, reason
    if before == PAUSED:
        return "unchanged", before, None, "already paused in Meta"
    try:
        meta.pause_campaign(campaign_id)
    except (BudgetWriteError, MetaTokenError) as error:
        status, reason = _failed_write(error)
        return status, before, None, reason
    try:
        read_back = meta.read_campaign(campaign_id).status
    except BudgetWriteError as error:
        return "failed", before, None, f"sent, but the read-back failed: {error}"
    if read_back != PAUSED:
        return "read_back_mismatch", before, read_back, f"Meta reports {read_back}, not {PAUSED}"
    return "applied", before, read_back, ""


@dg.asset(
    deps=[meta_hourly_insights],
    group_name="act",
    kinds={"python", "duckdb"},
    owners=["team:ads-ops"],
    pool=POOL,
)
def campaign_pauses(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    warehouse: WarehouseResource,
    meta_budgets: BudgetWriter,
    alert_notifier: AlertNotifier,
    meta_ad_entities: pd.DataFrame,
) -> dg.MaterializeResult:
    """Pauses of runaway campaigns, one audit row per runaway campaign and run, appended to the
    push audit ``pushed_budgets`` (action ``pause``): campaign, its status before and read
    back, status, reason. Only with ``AELP2_PAUSE_RUNAWAY_CAMPAIGNS`` on, only while today's
    account spend velocity is above its alert threshold, and only for the campaigns running
    ahead of their own daily budget's pace by as much (``alert_rules.runaway_campaigns``).
    Sends ``status=PAUSED`` in approve (by hand) and live modes only, at most once per
    campaign and account day. Launched by ``data_alerts_sensor``, or by hand."""
    today = settings.account_today()
    audit = _Audit(warehouse, context.run.run_id, today)
    if not settings.pause_runaway_campaigns:
        context.log.info("AELP2_PAUSE_RUNAWAY_CAMPAIGNS is off: nothing judged, nothing sent")
        return _pause_result(audit, "pausing is off", pd.DataFrame())

    hourly = warehouse.read(HOURLY_TABLE, "date", today, today)
    thresholds = thresholds_from(settings)
    findings = spend_velocity_today(hourly, settings.daily_budget_cap, today, thresholds)
    if not findings:
        context.log.info(f"account spend of {today} is not running away: nothing to pause")
        return _pause_result(audit, "spend velocity within its threshold", pd.DataFrame())
    (account,) = findings
    budgets = _budgets_in_major_units(meta_ad_entities, settings.account_currency)
    judged = alert_rules.runaway_campaigns(hourly, budgets, hours_elapsed(hourly), thresholds)
    runaway = judged[judged["runaway"]]
    if runaway.empty:
        context.log.warning(
            f"{account.message}, but no campaign runs ahead of its own budget's pace (the"
            " budgets add up to more than the cap, or the runaway has no daily budget to judge"
            " it by); nothing paused"
        )

    paused_today = _applied_today(warehouse.read(AUDIT_TABLE), settings, "pause")
    adsets = meta_ad_entities[meta_ad_entities["level"] == "adset"]
    only = settings.push_adset_ids
    mode = _why_not_writing(context, settings) or ("" if meta_budgets.writes else "dry_run")
    counts: dict[str, int] = {}
    for row in runaway.itertuples():
        campaign_id = str(row.campaign_id)
        why = (
            f"spend {row.spend:,.2f} is {row.velocity:.0%} of its own pace {row.pace:,.2f}"
            f" ({row.note}); account at {account.value:.0%} of the cap's pace"
        )
        members = set(adsets.loc[adsets["campaign_id"] == campaign_id, "object_id"])
        before = read_back = None
        if campaign_id not in settings.push_campaign_ids:
            status, reason = "out_of_scope", f"not on the allow-list; {why}"
        elif only and not (members and members <= only):
            status, reason = "out_of_scope", f"has ad sets outside AELP2_PUSH_ADSETS; {why}"
        elif campaign_id in paused_today:
            status, reason = "already_paused_today", f"paused earlier today; {why}"
        elif mode:
            status, reason = mode, why
        else:
            status, before, read_back, outcome = _pause(meta_budgets, campaign_id)
            reason = "; ".join(filter(None, [outcome, why]))
        counts[status] = counts.get(status, 0) + 1
        audit.record_pause(campaign_id, status, reason, before, read_back)
        if status == "token_refused":
            raise dg.Failure(description=reason)

    if not mode and counts.keys() & {"applied", "unchanged", *NOT_PAUSED}:
        paused = [r["campaign_id"] for r in audit.rows if r["status"] == "applied"]
        # announced where alerts go, as a live push is
        alert_notifier.deliver(
            AlertEvent(
                key=f"live_pause:{context.run.run_id}",
                rule="live_pause",
                state="announced",
                audience="ads-ops",
                severity="info",
                message=(
                    f"live pause: {len(paused)} runaway campaigns paused"
                    f" ({', '.join(paused) or 'none'}) at account spend velocity"
                    f" {account.value:.0%}; already paused {counts.get('unchanged', 0)},"
                    f" failed {counts.get('failed', 0) + counts.get('read_back_mismatch', 0)},"
                    f" deferred {counts.get('deferred', 0)}"
                ),
            ),
            context.log,
        )
    unpaused = [r["campaign_id"] for r in audit.rows if r["status"] in NOT_PAUSED]
    if unpaused:
        # the runaway goes on: the run fails, so the failed-run alert reaches engineering
        raise dg.Failure(
            description=f"runaway campaigns not paused: {', '.join(unpaused)} (see the audit)",
            metadata={"not_paused": len(unpaused)},
        )
    return _pause_result(audit, mode or "live", judged)


def _pause_result(audit: _Audit, outcome: str, judged: pd.DataFrame) -> dg.MaterializeResult:
    """The pause's metadata: what it did (``outcome``), its audit rows and the campaigns judged."""
    table = audit.table()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "outcome": outcome,
            "statuses": dg.MetadataValue.json(table["status"].value_counts().to_dict()),
            "runaway_campaigns": int(judged["runaway"].sum()) if len(judged) else 0,
            "campaigns_judged": markdown_preview(judged, 15) if len(judged) else "none",
            "preview": markdown_preview(table, 15),
        }
    )
