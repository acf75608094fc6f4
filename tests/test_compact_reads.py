"""Arrow-backed text reads (``DuckDBWarehouse.read(compact_text=True)``) change memory, not
results: the model fitted on history read either way is the same, draw for draw."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from aelp2_assets.assets.ingest import raw_frame
from aelp2_assets.forecast import forecast_cac, recent_calibration
from aelp2_assets.posteriors import fit_posteriors
from aelp2_assets.resources.sources import DemoSource
from aelp2_assets.resources.warehouse import DuckDBWarehouse
from aelp2_assets.tables import TEXT
from aelp2_assets.validation import validate_insights

PURCHASE = "offsite_conversion.fb_pixel_purchase"
START, DECISION = dt.date(2025, 1, 1), dt.date(2025, 2, 14)


@pytest.fixture(scope="module")
def histories(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated demo history stored in DuckDB, read as objects and as Arrow-backed text."""
    source = DemoSource(
        seed=11,
        creatives=10,
        start_date=START.isoformat(),
        daily_budget=30000,
        currency="USD",
        timezone="America/Los_Angeles",
    )
    raw = raw_frame(source.fetch_insight_table(START, DECISION), dt.datetime.now(dt.UTC))
    result = validate_insights(raw, PURCHASE)
    assert result.rejects.empty
    warehouse = DuckDBWarehouse(
        database=str(tmp_path_factory.mktemp("compact") / "w.duckdb"), dataset="aelp2_prod"
    )
    warehouse.append("validated_meta_metrics", result.valid)
    read = [
        warehouse.read("validated_meta_metrics", "date", START, DECISION, compact_text=compact)
        for compact in (False, True)
    ]
    return read[0], read[1]


def test_text_columns_are_arrow_backed_and_hold_the_same_values(histories):
    objects, compact = histories

    assert (compact["adset_id"].dtype, objects["adset_id"].dtype) == (TEXT, np.dtype(object))
    pd.testing.assert_frame_equal(compact.astype(objects.dtypes.to_dict()), objects)


def test_posteriors_and_forecast_are_the_same_on_either_read(histories):
    tables = []
    for history in histories:
        posteriors = fit_posteriors(
            history,
            DECISION,
            alpha_init=1.0,
            beta_init=1.0,
            placement_tracking=True,
            rng=np.random.default_rng(5),
        )
        arms = posteriors.loc[posteriors["placement"] == "all", "arm_id"]
        forecast = forecast_cac(
            posteriors,
            dict.fromkeys(arms, 3000.0),
            rng=np.random.default_rng(6),
            calibration=recent_calibration(posteriors, history, DECISION),
        )
        tables.append((posteriors, forecast.table))

    (posteriors, forecast), (compact_posteriors, compact_forecast) = tables
    assert len(posteriors) > 10 and len(forecast) > 30
    pd.testing.assert_frame_equal(compact_posteriors, posteriors)
    pd.testing.assert_frame_equal(compact_forecast, forecast)
