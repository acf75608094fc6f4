"""The push's guardrails, in one place, applied to every plan before any write (no Dagster).

A plan is one row per ad set the push manages: its budget now (``before``), the budget the
allocation asks for (``requested``) and its lifecycle stage. The rules, in the order applied:

1. budgets are whole numbers of minor units, never negative (otherwise the plan is refused);
2. an ad set already changed today keeps its budget, unless the push is forced;
3. no ad set moves by more than ``max_change_share`` of its budget in a day (clamped), except
   while launching or being sunset, when the lifecycle rules set the step;
4. no ad set goes below the account minimum (raised to it);
5. the sum of daily budgets never exceeds the cap: the changing ad sets are scaled down towards
   their lowest allowed budget (renormalised).

A rule that cannot be met by repair (the held budgets alone exceed the cap, or the minimum
and the change limit contradict each other) refuses the whole plan, with the reason.
"""

import math
from dataclasses import dataclass, field
from fractions import Fraction

# Stages whose step the lifecycle rules set (allocation.STAGES): no daily change limit.
FREE_STAGES = frozenset({"launch", "sunset"})


@dataclass(frozen=True)
class Account:
    """What the rules need of the account: cap and minimum in minor units."""

    cap_minor: int
    min_budget_minor: int
    max_change_share: float = 0.20


@dataclass(frozen=True)
class PlannedBudget:
    """One ad set of the plan."""

    adset_id: str
    before: int  # its daily budget now, minor units
    requested: int  # what the allocation asks for, minor units
    stage: str = "established"
    reason: str = ""  # the allocation rule that set ``requested``
    changed_today: bool = False  # a change was applied to it earlier this account day


@dataclass(frozen=True)
class GuardedBudget:
    """An ad set's budget after the guardrails: ``after`` is what may be sent."""

    adset_id: str
    before: int
    requested: int
    after: int
    reason: str  # the allocation rule, then each guardrail that changed the figure

    @property
    def changes(self) -> bool:
        return self.after != self.before


@dataclass(frozen=True)
class GuardedPlan:
    """The plan the push may send, or its refusal (``refused`` names the reason)."""

    budgets: list[GuardedBudget] = field(default_factory=list)
    refused: str = ""
    fixed_minor: int = 0  # budgets outside the plan that count against the cap

    @property
    def total_before(self) -> int:
        return sum(b.before for b in self.budgets)

    @property
    def total_after(self) -> int:
        return sum(b.after for b in self.budgets)


def change_bounds(before: int, share: float) -> tuple[int, int]:
    """The lowest and highest budget a day's change of at most ``share`` allows (integers)."""
    exact = Fraction(str(share))
    return math.ceil(before * (1 - exact)), math.floor(before * (1 + exact))


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def apply_guardrails(
    plan: list[PlannedBudget],
    account: Account,
    force: bool = False,
    fixed_minor: int = 0,
) -> GuardedPlan:
    """``plan`` repaired to meet every rule, or refused whole with the reason.

    ``fixed_minor`` is the daily budget of ad sets outside the plan that still spend (planned
    at zero but not paused by the push): it counts against the cap and is never changed here.
    """
    bad = [p.adset_id for p in plan if not (_is_whole(p.before) and _is_whole(p.requested))]
    if bad:
        return GuardedPlan(refused=f"budgets must be whole minor units: ad sets {bad}")
    if len({p.adset_id for p in plan}) != len(plan):
        return GuardedPlan(refused="an ad set appears twice in the plan")

    minimum = account.min_budget_minor
    targets: dict[str, int] = {}
    lowest: dict[str, int] = {}
    reasons: dict[str, list[str]] = {}
    for p in plan:
        notes = [p.reason] if p.reason else []
        if p.changed_today and not force:
            targets[p.adset_id] = lowest[p.adset_id] = p.before
            if p.requested != p.before:
                notes.append("held: already changed today (one change per ad set per day)")
            reasons[p.adset_id] = notes
            continue
        target = p.requested
        low, high = minimum, math.inf
        if p.stage not in FREE_STAGES:
            step_low, step_high = change_bounds(p.before, account.max_change_share)
            if step_high < minimum:
                return GuardedPlan(
                    refused=(
                        f"ad set {p.adset_id}: the account minimum {minimum} is more than a"
                        f" {account.max_change_share:.0%} change from its budget {p.before}"
                    )
                )
            low, high = max(minimum, step_low), step_high
            if target > high:
                target = high
                notes.append(f"clamped to +{account.max_change_share:.0%} a day")
            elif target < step_low:
                target = step_low
                notes.append(f"clamped to -{account.max_change_share:.0%} a day")
        if target < minimum:
            target = minimum
            notes.append(f"raised to the account minimum {minimum}")
        targets[p.adset_id], lowest[p.adset_id] = target, min(low, target)
        reasons[p.adset_id] = notes

    total = fixed_minor + sum(targets.values())
    if total > account.cap_minor:
        floor = fixed_minor + sum(lowest.values())
        if floor > account.cap_minor:
            return GuardedPlan(
                refused=(
                    f"the plan cannot fit the cap {account.cap_minor}: its lowest allowed total"
                    f" is {floor} (minimum, daily change limit and held budgets)"
                )
            )
        room = Fraction(account.cap_minor - floor, total - floor)
        for adset_id, target in targets.items():
            scaled = lowest[adset_id] + math.floor((target - lowest[adset_id]) * room)
            if scaled != target:
                reasons[adset_id].append(f"renormalised to the cap {account.cap_minor}")
            targets[adset_id] = scaled

    return GuardedPlan(
        budgets=[
            GuardedBudget(
                adset_id=p.adset_id,
                before=p.before,
                requested=p.requested,
                after=targets[p.adset_id],
                reason="; ".join(reasons[p.adset_id]),
            )
            for p in plan
        ],
        fixed_minor=fixed_minor,
    )
