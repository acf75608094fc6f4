"""Act: the change set of ad set budgets, recorded in an append-only audit table.

This version is a dry run only: it computes and records what a push would change and sends
nothing (the guarded live push is its own piece of work).
"""

import datetime as dt

import dagster as dg
import pandas as pd

from aelp2_assets.assets.metadata import markdown_preview
from aelp2_assets.money import to_major_units
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse

AUDIT_TABLE = "pushed_budgets"


def change_set(allocations: pd.DataFrame) -> pd.DataFrame:
    """The funded ad sets whose planned budget differs from their current one (an unknown
    current budget counts as different). An ad set planned at zero is not a budget change:
    stopping one is a pause, which this project does not send."""
    before = allocations["previous_budget_minor"].astype("Int64")
    changed = before.ne(allocations["budget_minor"]).fillna(True)
    return allocations[changed & (allocations["budget_minor"] > 0)]


@dg.asset(
    group_name="act",
    kinds={"python", "duckdb"},
    owners=["team:ads-ops"],
)
def pushed_budgets(
    context: dg.AssetExecutionContext,
    settings: Aelp2Settings,
    warehouse: DuckDBWarehouse,
    budget_allocations: pd.DataFrame,
) -> dg.MaterializeResult:
    """Append-only audit of every budget change: run id, time, ad set, budget before,
    requested and read back, status and the reason (the rule that set it). Dry run: the
    change set is recorded with status 'dry_run' and nothing is sent to Meta."""
    changes = change_set(budget_allocations)
    audit = pd.DataFrame(
        {
            "run_id": context.run.run_id,
            "recorded_at": pd.Timestamp(dt.datetime.now(dt.UTC)).tz_localize(None),
            "decision_date": changes["decision_date"],
            "adset_id": changes["arm_id"],
            "before_minor": changes["previous_budget_minor"].astype("Int64"),
            "requested_minor": changes["budget_minor"].astype("Int64"),
            "read_back_minor": pd.array([pd.NA] * len(changes), dtype="Int64"),
            "status": "dry_run",
            "reason": changes["reason"],
        }
    )
    warehouse.append(AUDIT_TABLE, audit)

    currency = settings.account_currency
    before = to_major_units(int(audit["before_minor"].fillna(0).sum()), currency)
    after = to_major_units(int(audit["requested_minor"].sum()), currency)
    context.log.info(
        f"dry run: {len(audit)} ad set budgets would change ({before:,.2f} -> {after:,.2f}"
        f" {currency}); nothing sent"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(audit),
            "mode": "dry_run",
            "changed_ad_sets": len(audit),
            "total_before": before,
            "total_after": after,
            "preview": markdown_preview(audit, 15),
        }
    )
