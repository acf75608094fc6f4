"""One switch for environments: the complete set of resources for the settings in force.

``AELP2_ENV`` picks the defaults (local: DuckDB + demo; prod: BigQuery + Meta API) and
``AELP2_SOURCE`` / ``AELP2_WAREHOUSE`` override each. Assets never read the environment; they
receive these resources under the same keys whatever was chosen.
"""

from pathlib import Path

import dagster as dg

from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import DemoSource, FileSource
from aelp2_assets.resources.warehouse import DuckDBIOManager, DuckDBWarehouse


def _insights_source(settings: Aelp2Settings) -> dg.ConfigurableResource:
    if settings.source_name == "demo":
        return DemoSource(
            seed=settings.demo_seed,
            creatives=settings.demo_creatives,
            start_date=settings.partition_start_date,
            daily_budget=settings.daily_budget_cap,
            currency=settings.account_currency,
            timezone=settings.account_timezone,
        )
    if settings.source_name == "file":
        if not settings.source_file:
            raise ValueError("AELP2_SOURCE=file needs AELP2_SOURCE_FILE, the export to read")
        return FileSource(
            path=settings.source_file,
            purchase_action_type=settings.conversion_action_type,
            currency=settings.account_currency,
            timezone=settings.account_timezone,
        )
    # The Meta Marketing API source is its own piece of work (issue 3).
    raise ValueError("AELP2_SOURCE=meta: the Meta Marketing API source is not built yet")


def resources_for(settings: Aelp2Settings) -> dict[str, object]:
    """The resources of every asset: settings, insights source, warehouse and IO manager."""
    if settings.warehouse_name != "duckdb":
        # BigQuery arrives with the production work (issue 7).
        raise ValueError("AELP2_WAREHOUSE=bigquery: the BigQuery warehouse is not built yet")
    Path(settings.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "settings": settings,
        "insights_source": _insights_source(settings),
        "warehouse": DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset),
        "io_manager": DuckDBIOManager(database=settings.duckdb_path, schema=settings.dataset),
    }
