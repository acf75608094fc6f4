"""Model accuracy: a backtest of the model by replay on the stored validated history.

Computations in ``aelp2_assets.backtest`` (no Dagster import); the replay is described there.
The asset's one row is stored as the ``model_accuracy`` table, whose ``baseline_cac`` and
``model_cac`` the ``cost_and_return`` report reads."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from aelp2_assets import backtest
from aelp2_assets.assets.metadata import markdown_preview
from aelp2_assets.assets.model import decision_seed
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import InsightsSource
from aelp2_assets.resources.warehouse import WarehouseResource

VALIDATED = "validated_meta_metrics"


class ReplayWindow(dg.Config):
    decision_days: int = Field(14, ge=1, description="Decision days replayed, the latest last.")
    horizon_days: int = Field(
        7, ge=1, description="Days after each decision day whose realised outcomes judge it."
    )
    n_winners: int = Field(
        3, ge=1, description="Winners: the top arms by realised conversions per dollar."
    )
    min_spend: float = Field(
        10.0, ge=0, description="Realised spend over the window for an arm to be judged."
    )


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


@dg.asset(
    deps=[VALIDATED],
    group_name="evaluation",
    kinds={"python", "duckdb"},
    owners=["team:data-eng"],
)
def model_accuracy(
    context: dg.AssetExecutionContext,
    config: ReplayWindow,
    settings: Aelp2Settings,
    insights_source: InsightsSource,
    warehouse: WarehouseResource,
) -> pd.DataFrame:
    """One row: the model replayed on the last ``decision_days`` (14) decision days of stored
    validated history, each judged on the following ``horizon_days`` (7): precision@5/@10,
    recall@5 and F1@5 of winner identification beside a random ranking and the ceiling, and
    CAC, ROAS, CVR and spend efficiency of the model's allocation shares against equal
    allocation (``baseline_*``) and the logged spend (``logged_*``). A replay on logged
    outcomes at the spend that actually happened: no counterfactual delivery. A figure the
    data cannot support is stored empty and its note says why."""
    decision = insights_source.decision_date(settings.account_today())
    replay_settings = backtest.ReplaySettings(
        decision_days=config.decision_days,
        horizon_days=config.horizon_days,
        n_winners=config.n_winners,
        min_spend=config.min_spend,
        alpha_init=settings.thompson_alpha_init,
        beta_init=settings.thompson_beta_init,
        live_window_days=settings.live_window_days,
        history_days=settings.history_days,
        budget_minor=settings.daily_budget_cap_minor,
        draws=settings.monte_carlo_draws,
    )
    span = settings.history_days + config.decision_days + config.horizon_days
    history = warehouse.read(VALIDATED, "date", decision - dt.timedelta(days=span), decision)
    seed = decision_seed(decision, settings, "model_accuracy")
    row, figures, days = backtest.model_accuracy(
        history, replay_settings, np.random.default_rng(seed)
    )
    frame = pd.DataFrame([{"computed_for": pd.Timestamp(decision), "seed": str(seed), **row}])
    context.log.info(
        f"replayed {row['decision_days']} decision days from {len(history)} validated rows"
        f" up to {decision}; seed {seed}"
    )
    by_figure = figures.set_index("figure")
    context.add_output_metadata(
        {
            "dagster/row_count": 1,
            "decision_days": row["decision_days"],
            "max_eligible_arms": row["max_eligible_arms"],
            "precision_at_5": _number(row["precision_at_5"]),
            "recall_at_5": _number(row["recall_at_5"]),
            "f1_at_5": _number(row["f1_at_5"]),
            "model_cac": _number(row["model_cac"]),
            "baseline_cac": _number(row["baseline_cac"]),
            "cac_saving_share": _number(row["cac_saving_share"]),
            "cac_note": str(by_figure.loc["CAC", "note"]),
            "precision_at_10_note": str(by_figure.loc["precision@10", "note"]),
            "method": dg.MetadataValue.md(backtest.__doc__ or ""),
            "caveat": backtest.REPLAY_NOTE,
            "figures": markdown_preview(figures, len(figures)),
            "days": markdown_preview(days, 20) if len(days) else "no decision day replayed",
        }
    )
    return frame
