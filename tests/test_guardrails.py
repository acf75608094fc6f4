"""The push's guardrails, over random plans and accounts (hypothesis)."""

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from aelp2_assets.guardrails import (
    FREE_STAGES,
    Account,
    PlannedBudget,
    apply_guardrails,
    change_bounds,
)

STAGES = ("launch", "ramp", "established", "top", "sunset")


@st.composite
def plans(draw) -> tuple[list[PlannedBudget], Account, bool, int]:
    minimum = draw(st.integers(1, 5_000))
    size = draw(st.integers(1, 12))
    plan = [
        PlannedBudget(
            adset_id=f"as{index}",
            before=draw(st.integers(minimum, 3_000_000)),
            requested=draw(st.integers(0, 3_000_000)),
            stage=draw(st.sampled_from(STAGES)),
            changed_today=draw(st.booleans()),
        )
        for index in range(size)
    ]
    account = Account(
        cap_minor=draw(st.integers(1, 6_000_000)),
        min_budget_minor=minimum,
        max_change_share=draw(st.sampled_from([0.05, 0.1, 0.2, 0.35, 0.5])),
    )
    return plan, account, draw(st.booleans()), draw(st.integers(0, 100_000))


@settings(max_examples=400, deadline=None)
@given(plans())
def test_a_guarded_plan_meets_every_rule_or_is_refused_with_a_reason(case):
    plan, account, force, fixed = case
    guarded = apply_guardrails(plan, account, force=force, fixed_minor=fixed)

    if guarded.refused:
        assert not guarded.budgets and len(guarded.refused) > 10
        return
    assert [b.adset_id for b in guarded.budgets] == [p.adset_id for p in plan]
    assert fixed + guarded.total_after <= account.cap_minor
    by_id = {p.adset_id: p for p in plan}
    for budget in guarded.budgets:
        planned = by_id[budget.adset_id]
        assert isinstance(budget.after, int) and not isinstance(budget.after, bool)
        if planned.changed_today and not force:
            assert budget.after == planned.before  # one change per ad set per day
            continue
        assert budget.after >= account.min_budget_minor
        if planned.stage not in FREE_STAGES:
            low, high = change_bounds(planned.before, account.max_change_share)
            assert low <= budget.after <= high
            share = Fraction(str(account.max_change_share))  # exact, as the rule is
            assert abs(budget.after - planned.before) <= share * planned.before


@settings(max_examples=200, deadline=None)
@given(plans())
def test_a_refusal_only_when_no_repair_could_meet_the_rules(case):
    plan, account, force, fixed = case
    guarded = apply_guardrails(plan, account, force=force, fixed_minor=fixed)
    if not guarded.refused:
        return
    # the lowest total the rules allow exceeds the cap, or minimum and step contradict
    lowest = fixed
    for p in plan:
        if p.changed_today and not force:
            lowest += p.before
        elif p.stage in FREE_STAGES:
            lowest += account.min_budget_minor
        else:
            low, high = change_bounds(p.before, account.max_change_share)
            if high < account.min_budget_minor:
                return
            lowest += max(account.min_budget_minor, low)
    assert lowest > account.cap_minor


@settings(max_examples=200, deadline=None)
@given(plans())
def test_a_plan_already_within_the_rules_is_left_as_it_is(case):
    plan, account, _, _ = case
    within = [
        PlannedBudget(p.adset_id, p.before, p.before, p.stage) for p in plan
    ]  # no change at all
    if sum(p.before for p in within) > account.cap_minor:
        return
    guarded = apply_guardrails(within, account)
    assert not guarded.refused
    assert all(not b.changes for b in guarded.budgets)


def test_the_change_limit_clamps_and_names_itself():
    account = Account(cap_minor=10_000_000, min_budget_minor=100)
    guarded = apply_guardrails([PlannedBudget("a", 10_000, 20_000, "top", "p_best")], account)
    (budget,) = guarded.budgets
    assert budget.after == 12_000 and "clamped to +20% a day" in budget.reason
    assert budget.reason.startswith("p_best")


def test_launch_and_sunset_move_freely_within_the_minimum():
    account = Account(cap_minor=10_000_000, min_budget_minor=100)
    guarded = apply_guardrails(
        [PlannedBudget("a", 10_000, 50_000, "launch"), PlannedBudget("b", 10_000, 50, "sunset")],
        account,
    )
    assert [b.after for b in guarded.budgets] == [50_000, 100]


def test_held_today_unless_forced():
    account = Account(cap_minor=10_000_000, min_budget_minor=100)
    plan = [PlannedBudget("a", 10_000, 11_000, "top", changed_today=True)]
    assert apply_guardrails(plan, account).budgets[0].after == 10_000
    assert "already changed today" in apply_guardrails(plan, account).budgets[0].reason
    assert apply_guardrails(plan, account, force=True).budgets[0].after == 11_000


def test_over_the_cap_renormalised_or_refused_whole():
    account = Account(cap_minor=20_000, min_budget_minor=100)
    plan = [PlannedBudget("a", 10_000, 12_000, "top"), PlannedBudget("b", 10_000, 12_000, "top")]
    guarded = apply_guardrails(plan, account)
    assert guarded.total_after == 20_000
    assert all("renormalised" in b.reason for b in guarded.budgets)

    refused = apply_guardrails(plan, Account(cap_minor=15_000, min_budget_minor=100))
    assert not refused.budgets and "cannot fit the cap 15000" in refused.refused


def test_fractional_or_negative_budgets_refuse_the_plan():
    account = Account(cap_minor=20_000, min_budget_minor=100)
    assert (
        "whole minor units" in apply_guardrails([PlannedBudget("a", 100, 150.5)], account).refused
    )
    assert "whole minor units" in apply_guardrails([PlannedBudget("a", -1, 150)], account).refused
    assert math.isclose(account.max_change_share, 0.2)
