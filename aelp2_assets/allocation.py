"""Thompson-sampling budget split under the creative lifecycle rules (no Dagster import).

Arms are budget holders (Meta ad sets). Money is integer minor units of the account currency.

How a decision is made:

1. **Who may spend.** Only live arms get budget; the others get 0 and stage 'inactive'.
2. **Thompson split on a response curve.** ``draws`` joint samples of every live arm's
   conversions per dollar. Returns diminish with spend: an arm's conversions grow as
   ``spend ** response_exponent`` (``RESPONSE_EXPONENT``, 0.7), so in each draw the split that
   equalises marginal cost per conversion gives each arm a share proportional to
   ``lambda ** (1 / (1 - response_exponent))``; the mean of those shares over the draws is the
   arm's ``p_alloc``. An arm near the best keeps a real share (10% dearer: about 73% of the
   best's) instead of falling to the account minimum, as it does when the budget follows the
   probability of being best; with ``response_exponent=None`` that probability (how often the
   arm has the largest sample) is ``p_alloc``, plain Thompson probability matching. Either
   way ``p_alloc`` is kept in the table so a later policy can be evaluated off-policy on this
   decision. Arms free of a lifecycle rule get shares proportional to ``p_alloc``.
3. **Lifecycle.** By the arm's age (days since it first delivered):
   - age 0: 'launch', a fixed share of ``launch_share``. With many live arms, where 5% each is
     impossible (118 live ad sets in a real export), the launch share is
     ``min(launch_share, 1 / n_live)``.
   - age 1 .. ramp_days - 1: 'ramp', Thompson share capped by a cap rising linearly from the
     launch share to ``ramp_max_share`` at day ``ramp_days``.
   - older: 'established', Thompson share capped at ``top_max_share``; an arm the cap holds
     back is reported as 'top'.
   - an underperformer, whatever its age, goes to 'sunset': its share falls linearly to 0 over
     ``sunset_days`` decisions from the share it had when its sunset began. The rule: the
     optimistic end of its CAC interval (the 10th percentile of 1 / lambda) is above
     ``underperformer_factor`` times the portfolio's CAC: the median, over the live arms past
     their ramp (all live arms if none is), of each arm's posterior median CAC. A median of
     medians, because a mean would be dragged down by the few arms whose thin data leave the
     ``Beta(1, 1)`` prior's 50% conversion rate in charge (and so sunset every established arm
     the day a creative launches) or by one star. Judging the arm by the optimistic end of
     its interval means an arm with little data is never sunset on noise. With a single live
     arm there is nothing to shift budget to, so nothing is sunset. An arm that no longer
     meets the rule leaves sunset at once and is treated by its age again.
4. **Water-filling.** The free arms share what the fixed shares (launch, sunset) leave, in
   proportion to ``p_alloc``, each between the account minimum and its cap; what caps free
   flows to the uncapped arms until nothing moves (solved exactly: the filled total is
   piecewise linear in the common scale factor). Arms never best in any draw still take what
   only they can take, so money stays unallocated only when every funded arm is at its cap.
5. **Minimums.** Every funded live arm gets at least ``min_budget_minor`` (Meta refuses less);
   the minimum wins over a share cap. When the minimums of all live arms exceed the budget,
   arms are funded in order of ``p_alloc`` and the rest get 0, with the reason.
6. **Integers.** Shares become minor units by largest-remainder rounding. The sum never
   exceeds ``budget_minor``; it equals it unless every funded arm is at its cap, and the rest
   is reported as ``unallocated_minor``, never forced onto an arm.
7. **CAC ceiling** (optional, off by default). When every live arm's expected CAC (posterior
   mean) is above ``cac_ceiling``, no arm is worth the money: each funded arm is cut to the
   account minimum (it keeps delivering a little, so the posterior can see it recover) and the
   rest is held back, per arm in ``held_back_minor`` and in all in ``Allocation.held_back_minor``
   (part of ``unallocated_minor``), never forced onto the least bad arm.

Sunset days count decisions: the caller passes the stage, sunset day and share of the latest
earlier decision day, so several ticks on one day do not advance a sunset.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aelp2_assets.posteriors import (
    COST_HALF_LIFE_DAYS,
    arm_parameters,
    expected_conversions_per_dollar,
    sample_conversions_per_dollar,
)

STAGES = ("launch", "ramp", "established", "top", "sunset", "inactive")
ALLOCATION_COLUMNS = (
    "arm_id",
    "budget_minor",
    "share",
    "previous_budget_minor",
    "stage",
    "sunset_day",
    "p_alloc",
    "expected_cac",
    "reason",
    "cap_share",
    "cac_p10",
    "held_back_minor",
)

# The assumed elasticity of an arm's conversions to its spend (conversions ~ spend ** 0.7).
# In benchmarks/decision_quality.py the response-curve split beat probability matching on
# cumulative CAC at 30 and 60 days with 0.7 and 0.85 (the simulator's truth) alike, and lost
# with 0.95: assuming returns diminish faster than they do costs less than the reverse. 0.7
# against 0.8 (100 seeds): the same at 30 days, 0.9% and 1.2% lower CAC at 60 and 90 (both 95%
# intervals above 0), the cost shock followed in 91% of seeds instead of 86%; on seeds 101-140,
# held out, lower at every horizon (1.0%, 0.5%, 0.6%).
RESPONSE_EXPONENT = 0.7

# Weight given to arms never best in any draw, so that they can still absorb what the capped
# arms leave (far below any real p_alloc, which is at least 1 / draws).
_TINY_WEIGHT = 1e-12
# Tolerance on shares (floats) when deciding which bound set an arm's share.
_EPS = 1e-12


@dataclass(frozen=True)
class LifecycleRules:
    """The creative lifecycle: shares are fractions of the daily budget."""

    launch_share: float = 0.05  # share of a creative on its first day
    ramp_days: int = 3  # days from launch to the end of the ramp
    ramp_max_share: float = 0.15  # ramp cap reached at day ramp_days
    top_max_share: float = 0.30  # cap of an established creative
    sunset_days: int = 7  # decisions over which an underperformer is phased out
    underperformer_factor: float = 1.5  # CAC p10 above this x portfolio CAC: sunset

    def __post_init__(self) -> None:
        for name in ("launch_share", "ramp_max_share", "top_max_share"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if self.ramp_max_share < self.launch_share:
            raise ValueError("ramp_max_share must not be below launch_share")
        if self.ramp_days < 0:
            raise ValueError(f"ramp_days must not be negative, got {self.ramp_days}")
        if self.sunset_days < 1:
            raise ValueError(f"sunset_days must be at least 1, got {self.sunset_days}")
        if not self.underperformer_factor > 0:
            raise ValueError(f"underperformer_factor must be > 0, got {self.underperformer_factor}")


@dataclass(frozen=True)
class Allocation:
    """One decision: the per-arm table, what no arm could take, and what it was judged by."""

    table: pd.DataFrame
    unallocated_minor: int  # budget_minor less what the arms got, held back included
    held_back_minor: int  # what the CAC ceiling held back (0 when it did not bind)
    portfolio_cac: float  # the typical live arm's CAC the underperformer rule compared with
    draws: int


@dataclass(frozen=True)
class AllocatorSettings:
    """What a decision depends on besides the data: the project's settings, as plain values.

    ``alpha_init``/``beta_init`` are THOMPSON_ALPHA_INIT/THOMPSON_BETA_INIT, ``draws`` is
    MONTE_CARLO_DRAWS, ``budget_minor`` DAILY_BUDGET_CAP in minor units, ``min_budget_minor``
    the account's minimum daily budget, ``live_window_days`` AELP2_LIVE_WINDOW_DAYS,
    ``cac_ceiling`` AELP2_CAC_CEILING (major units per conversion; None: off).
    """

    budget_minor: int
    min_budget_minor: int = 100
    alpha_init: float = 1.0
    beta_init: float = 1.0
    draws: int = 1000
    live_window_days: int = 3
    half_life_days: float = 14.0
    cost_half_life_days: float = COST_HALF_LIFE_DAYS
    rules: LifecycleRules = field(default_factory=LifecycleRules)
    cac_ceiling: float | None = None
    response_exponent: float | None = RESPONSE_EXPONENT  # None: shares by P(best)
    # Options measured by benchmarks/decision_quality.py and off by default: in the simulator
    # they did not lower CAC (README, "Decision quality").
    pooling: bool = False  # empirical-Bayes conversion-rate prior shared by the arms
    fatigue: bool = False  # old spend restated at each arm's current wear


def allocate_from_history(
    history: pd.DataFrame,
    decision_date: dt.date,
    settings: AllocatorSettings,
    rng: np.random.Generator,
    *,
    current_budgets: pd.DataFrame | None = None,
    previous_decisions: pd.DataFrame | None = None,
    new_arms: Sequence[str] = (),
) -> Allocation:
    """One budget decision from a table of daily history: what the ``budget_allocations``
    asset runs, callable from a notebook or a simulator.

    ``history``: one row per day x ad set (x placement, any grain finer than the day) with
    date, adset_id, channel, spend (major units), clicks, conversions and optionally
    impressions (``validated_meta_metrics`` has them all). ``current_budgets``: optional
    arm_id, previous_budget_minor (the ad sets' budgets now). ``previous_decisions``: optional
    earlier rows of ``budget_allocation_history`` (decision_date, arm_id, stage, sunset_day,
    share), which the lifecycle rules continue from. ``new_arms``: ad sets launched but not
    yet delivering; each enters at the launch share on its prior. ``rng``: a seeded
    generator; the same inputs and seed give the same budgets. Returns the ``Allocation``
    (budgets in ``table.budget_minor``: integer minor units, at most
    ``settings.budget_minor`` in all). A history the model cannot read raises, naming the row,
    field and value (``validation.check_history``).
    """
    if isinstance(new_arms, str):
        raise TypeError(f"new_arms is a list of ad set ids, not the text {new_arms!r}")
    arms = arm_parameters(
        history,
        decision_date,
        alpha_init=settings.alpha_init,
        beta_init=settings.beta_init,
        half_life_days=settings.half_life_days,
        cost_half_life_days=settings.cost_half_life_days,
        live_window_days=settings.live_window_days,
        new_arms=new_arms,
        pooling=settings.pooling,
        fatigue=settings.fatigue,
    )
    if arms.empty:
        raise ValueError(
            f"history holds no row dated on or before {decision_date} and there are no new_arms:"
            " no ad set to allocate to"
        )
    if not arms["is_live"].any():
        delivered = arms["last_delivery_date"].dropna()
        last = f"on {max(delivered)}" if len(delivered) else "none: no spend or impressions"
        raise ValueError(
            f"no ad set delivered in the {settings.live_window_days} days to {decision_date} (the"
            f" last delivery in the history: {last}), so none would be funded: is the decision"
            " date right, and the history up to date?"
        )
    arms = arms_for_allocation(arms, decision_date, current_budgets, previous_decisions)
    return allocate_budget(
        arms,
        budget_minor=settings.budget_minor,
        min_budget_minor=settings.min_budget_minor,
        rng=rng,
        draws=settings.draws,
        rules=settings.rules,
        cac_ceiling=settings.cac_ceiling,
        response_exponent=settings.response_exponent,
    )


def arms_for_allocation(
    posteriors: pd.DataFrame,
    decision_date: dt.date,
    current_budgets: pd.DataFrame | None = None,
    previous_decisions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The allocator's input: each arm's posterior ("all" rows), its current budget, and the
    stage it was in at the latest decision before ``decision_date`` (sunset counts decision
    days, not ticks)."""
    decision = pd.Timestamp(decision_date)
    arms = posteriors[posteriors["placement"] == "all"]
    if current_budgets is not None and len(current_budgets):
        arms = arms.merge(
            current_budgets[["arm_id", "previous_budget_minor"]], on="arm_id", how="left"
        )
    previous = pd.DataFrame(
        columns=["arm_id", "previous_stage", "previous_sunset_day", "previous_share"]
    )
    if previous_decisions is not None and len(previous_decisions):
        dates = pd.to_datetime(previous_decisions["decision_date"])
        earlier = previous_decisions[dates < decision]
        if len(earlier):
            latest = earlier[
                pd.to_datetime(earlier["decision_date"]) == dates[dates < decision].max()
            ]
            previous = latest.rename(
                columns={
                    "stage": "previous_stage",
                    "sunset_day": "previous_sunset_day",
                    "share": "previous_share",
                }
            )[previous.columns]
    return arms.merge(previous, on="arm_id", how="left")


def allocate_budget(
    arms: pd.DataFrame,
    *,
    budget_minor: int,
    min_budget_minor: int,
    rng: np.random.Generator,
    draws: int = 1000,
    rules: LifecycleRules = LifecycleRules(),  # noqa: B008 - frozen, so a safe default
    cac_ceiling: float | None = None,
    response_exponent: float | None = RESPONSE_EXPONENT,
) -> Allocation:
    """Split ``budget_minor`` over ``arms`` by Thompson sampling under ``rules``.

    ``arms``: one row per arm with arm_id; click_shape, click_rate, conv_shape, conv_rate and
    expected_cac (the "all" rows of ``posteriors.fit_posteriors``); age_days; is_live; and the
    previous decision's previous_budget_minor, previous_stage, previous_sunset_day and
    previous_share (each may be null or absent). A live arm without an age counts as new.
    Returns an ``Allocation`` whose table has ``ALLOCATION_COLUMNS`` in the order of ``arms``:
    ``share`` is budget_minor over ``budget_minor`` (the cap), ``cap_share`` the most the
    lifecycle rules allow (the account minimum overrides it), ``cac_p10`` the optimistic CAC
    the underperformer rule read, ``held_back_minor`` what the ``cac_ceiling`` (major units
    per conversion; None: off) held back, and ``reason`` the rule or constraint that set the
    figure. The result depends only on the inputs and the state of ``rng``.
    """
    budget_minor, min_budget_minor = int(budget_minor), int(min_budget_minor)
    if budget_minor < 0 or min_budget_minor < 0:
        raise ValueError("budget_minor and min_budget_minor must not be negative")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    if cac_ceiling is not None and not 0 < cac_ceiling < math.inf:
        raise ValueError(f"cac_ceiling must be a finite number above 0 or None, got {cac_ceiling}")

    if response_exponent is not None and not 0 < response_exponent < 1:
        raise ValueError(f"response_exponent must be in (0, 1) or None, got {response_exponent}")

    n = len(arms)
    live = arms["is_live"].astype("boolean").fillna(False).to_numpy(bool)
    n_live = int(live.sum())
    _check_posteriors(arms[live])

    # Thompson sampling and the optimistic CAC of each live arm, from the same draws.
    p_alloc = np.zeros(n)
    cac_p10 = np.full(n, np.nan)
    mean_rate = np.full(n, np.nan)
    portfolio_cac = float("nan")
    if n_live:
        samples = sample_conversions_per_dollar(arms[live], rng, draws)
        if response_exponent is None:
            p_alloc[live] = np.bincount(np.argmax(samples, axis=1), minlength=n_live) / draws
        else:
            p_alloc[live] = _response_curve_split(samples, response_exponent)
        high, middle = np.quantile(samples, [0.9, 0.5], axis=0)
        with np.errstate(divide="ignore"):
            cac_p10[live] = 1.0 / high
            median_cac = 1.0 / middle
        mean_rate[live] = expected_conversions_per_dollar(arms[live])
        age = _column(arms, "age_days").to_numpy(float)[live]
        settled = age >= rules.ramp_days
        portfolio_cac = float(np.median(median_cac[settled] if settled.any() else median_cac))
    underperformer = live & (cac_p10 > rules.underperformer_factor * portfolio_cac)
    if n_live < 2:
        underperformer[:] = False

    plan = _lifecycle(arms, live, underperformer, cac_p10, portfolio_cac, budget_minor, rules)
    shares, funded = _shares(plan, p_alloc, mean_rate, budget_minor, min_budget_minor)
    budgets = _to_minor_units(shares, budget_minor, np.where(funded, min_budget_minor, 0))
    expected_cac = pd.to_numeric(arms["expected_cac"]).to_numpy(float)
    held_back = np.zeros(n, dtype=np.int64)
    if cac_ceiling is not None and n_live and (expected_cac[live] > cac_ceiling).all():
        held_back = budgets - np.minimum(budgets, min_budget_minor)
        for i in np.flatnonzero(budgets):
            plan.reason[i] = (
                f"held back to the account minimum: every live arm's expected CAC is above the"
                f" ceiling {cac_ceiling:.2f} (this one {expected_cac[i]:.2f}); before the"
                f" ceiling: {plan.reason[i]}"
            )
        budgets = budgets - held_back

    sunset_day = pd.array(
        [
            day if stage == "sunset" else pd.NA
            for stage, day in zip(plan.stage, plan.day, strict=True)
        ],
        dtype="Int64",
    )
    table = pd.DataFrame(
        {
            "arm_id": arms["arm_id"].to_numpy(),
            "budget_minor": budgets,
            "share": budgets / budget_minor if budget_minor else np.zeros(n),
            "previous_budget_minor": pd.array(
                _column(arms, "previous_budget_minor").round(), dtype="Int64"
            ),
            "stage": plan.stage,
            "sunset_day": sunset_day,
            "p_alloc": p_alloc,
            "expected_cac": expected_cac,
            "reason": plan.reason,
            "cap_share": plan.cap,
            "cac_p10": cac_p10,
            "held_back_minor": held_back,
        }
    )
    return Allocation(
        table=table,
        unallocated_minor=budget_minor - int(budgets.sum()),
        held_back_minor=int(held_back.sum()),
        portfolio_cac=portfolio_cac,
        draws=draws,
    )


@dataclass
class _Plan:
    """Per arm, what the lifecycle rules say before the budget is split."""

    stage: np.ndarray  # str: launch, ramp, established, sunset, inactive ('top' comes later)
    cap: np.ndarray  # float: the most the rules allow; launch and sunset shares are fixed at it
    fixed: np.ndarray  # bool: launch and sunset arms, whose share is the rule's, not Thompson's
    day: np.ndarray  # int: sunset day (0 outside sunset)
    reason: np.ndarray  # str: the rule in words; _shares rewrites it when a constraint binds


def _lifecycle(
    arms: pd.DataFrame,
    live: np.ndarray,
    underperformer: np.ndarray,
    cac_p10: np.ndarray,
    portfolio_cac: float,
    budget: int,
    rules: LifecycleRules,
) -> _Plan:
    """Stage, cap and sunset day of every arm, from its age and its previous decision."""
    n_live = max(int(live.sum()), 1)
    age = _column(arms, "age_days").to_numpy(float)
    age = np.where(np.isnan(age), 0.0, age)
    previous_stage = _column(arms, "previous_stage").astype(object).to_numpy()
    previous_day = _column(arms, "previous_sunset_day").to_numpy(float)
    previous_share = _column(arms, "previous_share").to_numpy(float)
    if budget:
        # Without a recorded share, the arm's current Meta budget says what it had.
        previous_budget = _column(arms, "previous_budget_minor").to_numpy(float)
        previous_share = np.where(
            np.isnan(previous_share), previous_budget / budget, previous_share
        )
    previous_share = np.clip(previous_share, 0.0, 1.0)

    launch = min(rules.launch_share, 1.0 / n_live)
    ramp_cap = launch + (rules.ramp_max_share - launch) * age / max(rules.ramp_days, 1)

    # Sunset: day d of D takes the previous share x (D - d) / (D - d + 1), which from the
    # share s0 at the start is s0 x (1 - d / D): linear, 0 at day D, and never rising.
    days = rules.sunset_days
    continuing = (previous_stage == "sunset") & ~np.isnan(previous_day)
    day = np.where(continuing, np.minimum(np.nan_to_num(previous_day) + 1, days), 1).astype(int)
    # Failing both, an equal share (at most the top cap) stands in for the share it had.
    start = np.where(
        np.isnan(previous_share), min(1.0 / n_live, rules.top_max_share), previous_share
    )
    sunset_share = start * (days - day) / (days - day + 1)

    is_sunset = live & underperformer
    young = live & ~is_sunset & (age < rules.ramp_days)
    is_launch = young & (age < 1)
    is_ramp = young & ~is_launch
    is_established = live & ~is_sunset & ~young
    choices = [is_sunset, is_launch, is_ramp, is_established]
    stage = np.select(choices, ["sunset", "launch", "ramp", "established"], "inactive")
    cap = np.select(choices, [sunset_share, launch, ramp_cap, rules.top_max_share], 0.0)

    reason = np.full(len(arms), "not live", dtype=object)
    for i in np.flatnonzero(live):
        if is_sunset[i] and day[i] >= days:
            reason[i] = f"sunset day {days} of {days}: phased out"
        elif is_sunset[i]:
            reason[i] = (
                f"sunset day {day[i]} of {days} (CAC p10 {cac_p10[i]:.2f} >"
                f" {rules.underperformer_factor:g} x portfolio CAC {portfolio_cac:.2f})"
            )
        elif is_launch[i]:
            many = f" (1/{n_live} live arms)" if launch < rules.launch_share else ""
            reason[i] = f"launch share {_percent(launch)}{many}"
        elif is_ramp[i]:
            reason[i] = f"ramp cap {_percent(cap[i])} (day {int(age[i])} of {rules.ramp_days})"
        else:
            reason[i] = f"capped at top_max_share {_percent(rules.top_max_share)}"

    return _Plan(
        stage=stage.astype(object),
        cap=cap,
        fixed=is_sunset | is_launch,
        day=np.where(is_sunset, day, 0),
        reason=reason,
    )


def _shares(
    plan: _Plan, p_alloc: np.ndarray, mean_rate: np.ndarray, budget: int, minimum: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shares of the budget under the caps and the account minimum, and which arms are funded.

    Rewrites ``plan.reason`` (and ``plan.stage`` for 'top') where a constraint set the share.
    """
    n = len(plan.stage)
    shares = np.zeros(n)
    floor = minimum / budget if budget else 0.0
    fundable = (plan.stage != "inactive") & (plan.cap > 0)

    # Minimums beyond the budget: fund the arms most likely to be best, drop the rest.
    funded = fundable.copy()
    candidates = int(fundable.sum())
    affordable = budget // minimum if minimum else candidates
    if candidates > affordable:
        order = np.lexsort((np.arange(n), -np.nan_to_num(mean_rate), -p_alloc))
        dropped = [i for i in order if fundable[i]][affordable:]
        funded[dropped] = False
        plan.reason[dropped] = (
            f"not funded: account minimums ({minimum} minor units each) of {candidates} live"
            f" arms exceed the budget; the {affordable} with the largest p_alloc are funded"
        )

    # Launch and sunset shares first, scaled down only if they and the free arms' minimums
    # do not fit in the budget.
    fixed = funded & plan.fixed
    free = funded & ~plan.fixed
    wanted = np.maximum(plan.cap[fixed], floor)
    shares[fixed] = _fill(
        plan.cap[fixed], np.full(len(wanted), floor), wanted, 1.0 - floor * free.sum()
    )

    # Free arms: Thompson shares, water-filled between the minimum and their caps.
    upper = np.maximum(plan.cap[free], floor)
    free_total = 1.0 - shares[fixed].sum()
    shares[free] = _fill(p_alloc[free], np.full(len(upper), floor), upper, free_total)
    # The plain Thompson share, before caps and minimums moved money about.
    thompson = np.zeros(n)
    if p_alloc[free].sum() > 0:
        thompson[free] = p_alloc[free] / p_alloc[free].sum() * free_total

    for i in np.flatnonzero(funded):
        rule = plan.reason[i]
        cap = plan.cap[i]
        if cap < floor - _EPS:
            plan.reason[i] = f"raised to account minimum, above {rule}"
        elif plan.fixed[i]:
            if shares[i] < cap - _EPS:
                plan.reason[i] = (
                    f"{rule}, scaled to {_percent(shares[i])}: launch and sunset shares and"
                    " account minimums exceed the budget"
                )
        elif shares[i] >= cap - _EPS:
            if thompson[i] >= cap - _EPS and plan.stage[i] == "established":
                plan.stage[i] = "top"  # a top performer, held back by the cap
            elif thompson[i] < cap - _EPS:
                plan.reason[i] = f"{rule}, filled with what capped arms left"
        elif floor > 0 and shares[i] <= floor + _EPS:
            plan.reason[i] = "raised to account minimum"
        else:
            left = " and what capped arms left" if shares[i] > thompson[i] + _EPS else ""
            under = f"; under {rule}" if plan.stage[i] == "ramp" else ""
            plan.reason[i] = f"thompson share{left} (p_alloc {p_alloc[i]:.3f}){under}"
    return shares, funded


def _response_curve_split(samples: np.ndarray, exponent: float) -> np.ndarray:
    """Expected best split under a saturating response: each draw's optimum, averaged.

    With conversions ``lambda_a * s_a ** exponent`` for spend ``s_a`` (``exponent`` < 1:
    diminishing returns), marginal conversions per dollar are equal across arms when
    ``s_a`` is proportional to ``lambda_a ** (1 / (1 - exponent))``; the mean of those shares
    over the posterior draws is each arm's weight.
    """
    power = 1.0 / (1.0 - exponent)
    logs = power * np.log(np.maximum(samples, np.finfo(float).tiny))
    weights = np.exp(logs - logs.max(axis=1, keepdims=True))
    return (weights / weights.sum(axis=1, keepdims=True)).mean(axis=0)


def _fill(weights: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: float) -> np.ndarray:
    """Shares ``clip(t * weights, lower, upper)`` summing to ``total`` (or as near as the bounds
    allow): proportional allocation with floors and caps, i.e. water-filling.

    The sum is piecewise linear and non-decreasing in the scale ``t``, with breakpoints where an
    arm meets a bound, so ``t`` is found exactly between two breakpoints.
    """
    if len(weights) == 0:
        return np.zeros(0)
    if upper.sum() <= total:
        return upper.copy()
    if lower.sum() >= total:
        return lower.copy()
    weights = np.maximum(weights, _TINY_WEIGHT)
    points = np.unique(np.concatenate([lower / weights, upper / weights]))
    filled = np.clip(points[:, None] * weights, lower, upper).sum(axis=1)
    j = int(np.searchsorted(filled, total))  # filled[0] is lower.sum() < total: j >= 1
    t0, t1, f0, f1 = points[j - 1], points[j], filled[j - 1], filled[j]
    scale = t0 + (total - f0) * (t1 - t0) / (f1 - f0)
    return np.clip(scale * weights, lower, upper)


def _to_minor_units(shares: np.ndarray, budget: int, lower: np.ndarray) -> np.ndarray:
    """Integer budgets from shares by largest-remainder rounding, each at least ``lower``.

    The total is the whole budget when the shares use all of it, else the whole minor units
    the shares cover; it never exceeds ``budget``.
    """
    n = len(shares)
    if budget == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    targets = shares * budget
    whole = shares.sum() >= 1.0 - 1e-9
    total = budget if whole else int(np.floor(targets.sum() + 1e-6))
    total = min(budget, max(total, int(lower.sum())))

    # The small tolerance keeps float error (e.g. 99.99999999) from losing a whole unit.
    amounts = np.maximum(np.floor(targets + 1e-7).astype(np.int64), lower)
    short = total - int(amounts.sum())
    if short > 0:
        remainder = np.where(targets > 0, targets - amounts, -np.inf)
        order = np.lexsort((np.arange(n), -remainder))
        order = order[np.isfinite(remainder[order])]
        while short > 0 and len(order):
            take = min(short, len(order))
            amounts[order[:take]] += 1
            short -= take
    while short < 0:
        # Minimums pushed the floors past the total: take from the arm most over its target.
        surplus = np.where(amounts > lower, amounts - targets, -np.inf)
        amounts[int(np.argmax(surplus))] -= 1
        short += 1
    return amounts


def _check_posteriors(live_arms: pd.DataFrame) -> None:
    """Live arms need finite, positive posterior parameters to be sampled."""
    for column in ("click_shape", "click_rate", "conv_shape", "conv_rate"):
        values = pd.to_numeric(live_arms[column]).to_numpy(float)
        if not (np.isfinite(values) & (values > 0)).all():
            bad = live_arms.loc[~(np.isfinite(values) & (values > 0)), "arm_id"].tolist()
            raise ValueError(f"live arms {bad[:5]} have no valid {column}")


def _column(arms: pd.DataFrame, name: str) -> pd.Series:
    """An optional input column (all null when absent), numeric where it can be."""
    if name not in arms.columns:
        return pd.Series([np.nan] * len(arms), index=arms.index, dtype=float)
    column = arms[name]
    if name == "previous_stage":
        return column.where(column.notna(), None)
    return pd.to_numeric(column, errors="coerce").astype(float)


def _percent(share: float) -> str:
    """A share as a short percentage: 0.05 -> '5%', 0.0833 -> '8.3%'."""
    return f"{100 * share:.1f}".rstrip("0").rstrip(".") + "%"
