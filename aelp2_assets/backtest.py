"""Model accuracy by replay on stored history (no Dagster import).

The replay, for each of the last ``decision_days`` decision days ``d`` whose following
``horizon_days`` are all in the stored history:

1. Fit the posterior (``fit_posteriors``, as ``creative_posteriors`` does) on the rows dated
   ``d - history_days .. d``, and allocate on it (``arms_for_allocation`` + ``allocate_budget``, as
   ``budget_allocations`` does: Thompson shares under the lifecycle rules). The lifecycle goes
   on from the previous replayed day's allocation, as ``budget_allocations`` goes on from its
   previous decisions (a sunset ad set is phased down day by day); the first day starts afresh.
2. Take the arms' realised outcomes over days ``d+1 .. d+horizon_days``. The eligible arms are
   those live at ``d`` with at least ``min_spend`` of realised spend in that window.
3. Winners: the top ``n_winners`` eligible arms by realised conversions per dollar. The model's
   ranking: the eligible arms by posterior expected CAC at ``d`` (ties by median CAC).
   Precision@5/@10, recall@5 and F1@5 (of precision@5 and recall@5), each beside a random
   ranking's expectation and the best any ranking can reach (``evaluation``), averaged over
   the days that can measure them: more than ``k`` eligible arms (a ``k`` that ranks every
   arm measures nothing) and winners that are determined, i.e. at least ``n_winners``
   eligible arms converted (else the last winners are ties at 0 conversions). With no such
   day the figure is "not estimable" and says why.
4. Money figures: each eligible arm's realised per-dollar rates (conversions, purchase value,
   clicks) are re-weighted by the model's allocation shares (renormalised over the eligible
   arms) and, for the baseline, by equal shares, at the window's realised total spend. CAC,
   ROAS and CVR pooled over the days with at least 2 eligible arms, spend efficiency (the
   share of spend on the window's winners) over the days with more eligible arms than
   ``n_winners`` (with fewer, every arm is a winner); "logged" is what the account's actual
   spend got.

This is a replay on logged outcomes at the spend that actually happened: no counterfactual
delivery. Re-weighting assumes an arm's conversions per dollar would have stayed what was
logged at a different spend (no diminishing returns, no auction response), so it flatters
shifting money to arms that happened to convert cheaply at small spend. The figures measure
ranking quality on this account's history, not a guaranteed saving.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aelp2_assets.allocation import allocate_budget, arms_for_allocation
from aelp2_assets.evaluation import f1, precision_recall_at_k
from aelp2_assets.posteriors import fit_posteriors

REPLAY_NOTE = (
    "replay on logged outcomes at the spend that actually happened (no counterfactual"
    " delivery): each arm's realised per-dollar outcomes re-weighted by the model's allocation"
    " shares and by equal shares, assuming constant returns to spend"
)
RANKING_KS = (5, 10)
RECALL_K = 5


@dataclass(frozen=True)
class ReplaySettings:
    decision_days: int = 14
    horizon_days: int = 7
    n_winners: int = 3
    min_spend: float = 10.0  # realised spend over the window for an arm to be judged
    alpha_init: float = 1.0
    beta_init: float = 1.0
    live_window_days: int = 3
    history_days: int = 90  # days up to d the posterior is fitted on, as AELP2_HISTORY_DAYS
    budget_minor: int = 3_000_000
    min_budget_minor: int = 100
    draws: int = 1000


def _daily(history: pd.DataFrame) -> pd.DataFrame:
    frame = history.copy()
    frame["date"] = pd.to_datetime(frame["date"]).dt.normalize()
    if "conversion_value" not in frame.columns:
        frame["conversion_value"] = np.nan
    return frame


def decision_days(history: pd.DataFrame, settings: ReplaySettings) -> list[dt.date]:
    """The last ``decision_days`` days ``d`` with history on or before ``d`` and all of
    ``d+1 .. d+horizon_days`` inside the stored history."""
    if history.empty:
        return []
    dates = pd.to_datetime(history["date"])
    first, last = dates.min().date(), dates.max().date()
    end = last - dt.timedelta(days=settings.horizon_days)
    days = [end - dt.timedelta(days=back) for back in range(settings.decision_days)]
    return sorted(day for day in days if day >= first)


def realised_outcomes(frame: pd.DataFrame, decision: dt.date, horizon_days: int) -> pd.DataFrame:
    """Per arm over ``decision+1 .. decision+horizon_days``: spend, conversions, value, clicks."""
    start = pd.Timestamp(decision) + pd.Timedelta(days=1)
    end = pd.Timestamp(decision) + pd.Timedelta(days=horizon_days)
    window = frame[(frame["date"] >= start) & (frame["date"] <= end)]
    return window.groupby("adset_id")[["spend", "conversions", "conversion_value", "clicks"]].sum(
        min_count=1
    )


def weighted_outcomes(outcomes: pd.DataFrame, shares: pd.Series) -> dict[str, float]:
    """What ``outcomes``' total spend would have bought split by ``shares`` (summing to 1), at
    each arm's realised per-dollar rates: spend, conversions, value, clicks."""
    spend = float(outcomes["spend"].sum())
    weights = shares.reindex(outcomes.index).fillna(0.0) * spend / outcomes["spend"]
    return {
        "spend": spend,
        "conversions": float((weights * outcomes["conversions"].fillna(0)).sum()),
        "value": float((weights * outcomes["conversion_value"]).sum(min_count=1)),
        "clicks": float((weights * outcomes["clicks"].fillna(0)).sum()),
    }


def replay_day(
    history: pd.DataFrame,
    decision: dt.date,
    settings: ReplaySettings,
    rng: np.random.Generator,
    previous_decisions: pd.DataFrame | None = None,
) -> tuple[dict | None, pd.DataFrame | None]:
    """One decision day of the replay (see the module docstring): its row (None without
    eligible arms) and its allocation table with decision_date (None without history), which
    the next day's lifecycle goes on from as ``previous_decisions``."""
    frame = _daily(history)
    since = pd.Timestamp(decision) - pd.Timedelta(days=settings.history_days)
    past = frame[(frame["date"] <= pd.Timestamp(decision)) & (frame["date"] >= since)]
    if past.empty:
        return None, None
    posteriors = fit_posteriors(
        past,
        decision,
        alpha_init=settings.alpha_init,
        beta_init=settings.beta_init,
        placement_tracking=False,
        live_window_days=settings.live_window_days,
        rng=rng,
    )
    allocation = allocate_budget(
        arms_for_allocation(posteriors, decision, previous_decisions=previous_decisions),
        budget_minor=settings.budget_minor,
        min_budget_minor=settings.min_budget_minor,
        rng=rng,
        draws=settings.draws,
    ).table.assign(decision_date=pd.Timestamp(decision))
    arms = posteriors[(posteriors["placement"] == "all") & posteriors["is_live"]]
    outcomes = realised_outcomes(frame, decision, settings.horizon_days)
    outcomes = outcomes[outcomes["spend"] >= max(settings.min_spend, 1e-9)]
    outcomes = outcomes[outcomes.index.isin(arms["arm_id"])]
    if outcomes.empty:
        return None, allocation
    eligible = outcomes.index.tolist()
    converting = int((outcomes["conversions"].fillna(0) > 0).sum())

    per_dollar = (outcomes["conversions"].fillna(0) / outcomes["spend"]).sort_index()
    winners = per_dollar.sort_values(ascending=False, kind="stable").index[: settings.n_winners]
    ranked = (
        arms[arms["arm_id"].isin(eligible)]
        .sort_values(["expected_cac", "cac_p50", "arm_id"], kind="stable")["arm_id"]
        .tolist()
    )

    model_shares = allocation.set_index("arm_id")["share"].reindex(eligible).fillna(0.0)
    if model_shares.sum() > 0:
        model_shares = model_shares / model_shares.sum()
    else:  # the model funded none of the arms that then spent: it could not be told apart
        model_shares = pd.Series(1.0 / len(eligible), index=eligible)
    equal_shares = pd.Series(1.0 / len(eligible), index=eligible)
    logged_shares = outcomes["spend"] / outcomes["spend"].sum()

    row: dict = {
        "decision_date": pd.Timestamp(decision),
        "eligible_arms": len(eligible),
        "converting_arms": converting,
    }
    for k in sorted({*RANKING_KS, RECALL_K}):
        # k must leave an arm out, and fewer converting arms than winners leave ties at 0
        if len(eligible) <= k or converting < settings.n_winners:
            continue
        score = precision_recall_at_k(ranked, list(winners), k, len(eligible))
        row[f"precision_at_{k}"] = score.precision
        row[f"random_precision_at_{k}"] = score.random_precision
        row[f"ceiling_precision_at_{k}"] = score.ceiling_precision
        row[f"recall_at_{k}"] = score.recall
        row[f"random_recall_at_{k}"] = score.random_recall
        row[f"ceiling_recall_at_{k}"] = score.ceiling_recall
    for name, shares in (("model", model_shares), ("equal", equal_shares),
                         ("logged", logged_shares)):  # fmt: skip
        bought = weighted_outcomes(outcomes, shares)
        row[f"{name}_spend"] = bought["spend"]
        row[f"{name}_conversions"] = bought["conversions"]
        row[f"{name}_value"] = bought["value"]
        row[f"{name}_clicks"] = bought["clicks"]
        row[f"{name}_winner_share"] = float(shares.reindex(winners).fillna(0).sum())
    return row, allocation


def replay(
    history: pd.DataFrame, settings: ReplaySettings, rng: np.random.Generator
) -> pd.DataFrame:
    """One row per decision day of the replay (``replay_day``), in date order; each day's
    lifecycle goes on from the previous replayed day's allocation."""
    rows, previous = [], None
    for day in decision_days(history, settings):
        row, allocation = replay_day(history, day, settings, rng, previous)
        previous = allocation if allocation is not None else previous
        rows.append(row)
    return pd.DataFrame([row for row in rows if row is not None])


def _arms(n: int) -> str:
    return f"{n} arm{'' if n == 1 else 's'}"


def _not_ranked(days: pd.DataFrame, k: int, n_winners: int) -> str:
    """Why no decision day measures a ranking at ``k`` (see ``replay_day``)."""
    if days.empty:
        return "not estimable: no decision day to replay"
    wide = days[days["eligible_arms"] > k]
    if wide.empty:
        most = int(days["eligible_arms"].max())
        return f"not estimable: needs more than {k} eligible arms; at most {most}"
    most = int(wide["converting_arms"].max())
    return (
        f"not estimable: the winners tie at 0 conversions (needs {_arms(n_winners)} with"
        f" conversions; at most {most})"
    )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 and np.isfinite(numerator) else float("nan")


def summarize(days: pd.DataFrame, settings: ReplaySettings) -> tuple[dict, pd.DataFrame]:
    """The accuracy row (numbers; nan where not estimable) and a readable figures table:
    figure, model, baseline (random ranking or equal allocation), ceiling, logged, note."""
    nan = float("nan")
    row: dict = {
        "decision_days": len(days),
        "first_decision": days["decision_date"].min() if len(days) else pd.NaT,
        "last_decision": days["decision_date"].max() if len(days) else pd.NaT,
        "horizon_days": settings.horizon_days,
        "n_winners": settings.n_winners,
        "max_eligible_arms": int(days["eligible_arms"].max()) if len(days) else 0,
    }
    figures: list[dict] = []
    most = row["max_eligible_arms"]
    only = f"not estimable: only {_arms(most)}"

    def ranking(figure: str, column: str, k: int) -> None:
        if column not in days.columns or days[column].isna().all():
            note = _not_ranked(days, k, settings.n_winners)
            row[column] = row[f"random_{column}"] = row[f"ceiling_{column}"] = nan
            figures.append({"figure": figure, "model": nan, "baseline": nan, "ceiling": nan,
                            "logged": nan, "note": note})  # fmt: skip
            return
        used = days[column].notna()
        for prefix in ("", "random_", "ceiling_"):
            row[f"{prefix}{column}"] = float(days.loc[used, f"{prefix}{column}"].mean())
        figures.append({
            "figure": figure, "model": row[column], "baseline": row[f"random_{column}"],
            "ceiling": row[f"ceiling_{column}"], "logged": nan,
            "note": f"mean over {int(used.sum())} days; baseline = random ranking",
        })  # fmt: skip

    for k in RANKING_KS:
        ranking(f"precision@{k}", f"precision_at_{k}", k)
    ranking(f"recall@{RECALL_K}", f"recall_at_{RECALL_K}", RECALL_K)
    p, r = f"precision_at_{RECALL_K}", f"recall_at_{RECALL_K}"
    if np.isnan(row[p]) or np.isnan(row[r]):
        row["f1_at_5"] = row["random_f1_at_5"] = row["ceiling_f1_at_5"] = nan
        figures.append({"figure": "F1@5", "model": nan, "baseline": nan, "ceiling": nan,
                        "logged": nan, "note": figures[0]["note"]})  # fmt: skip
    else:
        row["f1_at_5"] = f1(row[p], row[r])
        row["random_f1_at_5"] = f1(row[f"random_{p}"], row[f"random_{r}"])
        row["ceiling_f1_at_5"] = f1(row[f"ceiling_{p}"], row[f"ceiling_{r}"])
        figures.append({
            "figure": "F1@5", "model": row["f1_at_5"], "baseline": row["random_f1_at_5"],
            "ceiling": row["ceiling_f1_at_5"], "logged": nan,
            "note": "F1 of the mean precision@5 and recall@5",
        })  # fmt: skip

    compared = days[days["eligible_arms"] >= 2] if len(days) else days
    totals = {
        name: {part: float(compared[f"{name}_{part}"].sum(min_count=1)) if len(compared) else nan
               for part in ("spend", "conversions", "value", "clicks")}
        for name in ("model", "equal", "logged")
    }  # fmt: skip
    why = None
    if days.empty:
        why = "not estimable: no decision day to replay"
    elif compared.empty:
        why = f"{only} (needs 2 to compare allocations)"
    elif not totals["logged"]["conversions"] > 0:
        why = "not estimable: no conversions in the replayed windows"
    money = {
        "cac": (lambda t: _ratio(t["spend"], t["conversions"]), "spend / conversions"),
        "roas": (lambda t: _ratio(t["value"], t["spend"]), "purchase value / spend"),
        "cvr": (lambda t: _ratio(t["conversions"], t["clicks"]), "conversions / clicks"),
    }
    for name, (compute, what) in money.items():
        values = {who: (nan if why else compute(totals[who])) for who in totals}
        note = why
        if not why and not np.isfinite(values["model"]):
            note = f"not estimable: {what} has no data (nothing recorded)"
        row[f"model_{name}"], row[f"baseline_{name}"] = values["model"], values["equal"]
        row[f"logged_{name}"] = values["logged"]
        figures.append({
            "figure": name.upper(), "model": values["model"], "baseline": values["equal"],
            "ceiling": nan, "logged": values["logged"],
            "note": note or f"{what}, pooled; baseline = equal allocation",
        })  # fmt: skip
    judged = compared[compared["eligible_arms"] > settings.n_winners] if len(days) else days
    if not why and judged.empty:  # every arm a winner: any allocation puts all on winners
        why = (
            f"not estimable: needs more eligible arms than the {settings.n_winners} winners;"
            f" at most {most}"
        )
    if why:
        efficiency = {who: nan for who in totals}
    else:
        efficiency = {
            who: float((judged[f"{who}_winner_share"] * judged[f"{who}_spend"]).sum()
                       / judged[f"{who}_spend"].sum())
            for who in totals
        }  # fmt: skip
    row["model_spend_efficiency"] = efficiency["model"]
    row["baseline_spend_efficiency"] = efficiency["equal"]
    row["logged_spend_efficiency"] = efficiency["logged"]
    figures.append({
        "figure": "spend efficiency", "model": efficiency["model"],
        "baseline": efficiency["equal"], "ceiling": 1.0 if not why else nan,
        "logged": efficiency["logged"],
        "note": why or "share of spend on the window's winners; baseline = equal allocation",
    })  # fmt: skip
    row["cac_saving_share"] = (
        1 - row["model_cac"] / row["baseline_cac"]
        if np.isfinite(row["model_cac"]) and np.isfinite(row["baseline_cac"])
        else nan
    )
    row["method"] = REPLAY_NOTE
    return row, pd.DataFrame(figures)


def model_accuracy(
    history: pd.DataFrame, settings: ReplaySettings, rng: np.random.Generator
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The replay of ``history`` (validated rows) and its summary: (row, figures, days)."""
    days = replay(history, settings, rng)
    row, figures = summarize(days, settings)
    return row, figures, days
