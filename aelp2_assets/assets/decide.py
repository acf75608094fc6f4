"""Decide: tomorrow's daily budget per ad set, by Thompson sampling under the lifecycle rules."""

import dagster as dg
import numpy as np
import pandas as pd

from aelp2_assets.allocation import allocate_budget, arms_for_allocation
from aelp2_assets.assets.metadata import markdown_preview
from aelp2_assets.assets.model import decision_date_of, decision_seed
from aelp2_assets.money import to_major_units
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import WarehouseResource

HISTORY_TABLE = "budget_allocation_history"


@dg.asset(
    group_name="decide",
    kinds={"python", "numpy", "duckdb"},
    owners=["team:ads-ops"],
)
def budget_allocations(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    warehouse: WarehouseResource,
    creative_posteriors: pd.DataFrame,
    meta_ad_entities: pd.DataFrame,
) -> pd.DataFrame:
    """One row per ad set: the new daily budget in integer minor units, the previous budget,
    share of DAILY_BUDGET_CAP, lifecycle stage, the probability it was allocated by, what
    AELP2_CAC_CEILING held back, and the rule or constraint that set the figure. Every
    decision is also kept, by decision date, in ``budget_allocation_history`` (for the
    lifecycle and for off-policy evaluation)."""
    decision = decision_date_of(creative_posteriors)
    history = warehouse.read(HISTORY_TABLE)
    budgets = meta_ad_entities.loc[
        meta_ad_entities["level"] == "adset", ["object_id", "daily_budget"]
    ].rename(columns={"object_id": "arm_id", "daily_budget": "previous_budget_minor"})
    arms = arms_for_allocation(creative_posteriors, decision, budgets, history)
    minimum = int(meta_ad_entities["min_daily_budget"].dropna().max())
    seed = decision_seed(decision, settings, "allocation")
    allocation = allocate_budget(
        arms,
        budget_minor=settings.daily_budget_cap_minor,
        min_budget_minor=minimum,
        rng=np.random.default_rng(seed),
        draws=settings.monte_carlo_draws,
        cac_ceiling=settings.cac_ceiling or None,
    )
    table = allocation.table.assign(decision_date=pd.Timestamp(decision), seed=str(seed))
    warehouse.replace(HISTORY_TABLE, table, "decision_date", [pd.Timestamp(decision)])

    allocated = int(table["budget_minor"].sum())
    currency = settings.account_currency
    context.log.info(
        f"allocated {to_major_units(allocated, currency):,.2f} {currency} of"
        f" {settings.daily_budget_cap:,.2f} across {int((table['budget_minor'] > 0).sum())}"
        f" ad sets for {decision}; unallocated {allocation.unallocated_minor} minor, of which"
        f" {allocation.held_back_minor} held back by AELP2_CAC_CEILING; seed {seed}"
    )
    context.add_output_metadata(
        {
            "dagster/row_count": len(table),
            "decision_date": str(decision),
            "seed": str(seed),
            "allocated": to_major_units(allocated, currency),
            "unallocated": to_major_units(allocation.unallocated_minor, currency),
            "held_back_by_cac_ceiling": to_major_units(allocation.held_back_minor, currency),
            "funded_ad_sets": int((table["budget_minor"] > 0).sum()),
            "preview": markdown_preview(table.sort_values("budget_minor", ascending=False), 15),
        }
    )
    return table
