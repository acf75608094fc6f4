"""The Grafana dashboard over ``monitoring_figures``, built with grafanalib (no Dagster import).

Grafana reads the table from BigQuery through Grafana's BigQuery data source plugin
(``grafana-bigquery-datasource``). The committed JSON is generated, never edited by hand:

    python -m aelp2_assets.dashboard            # rewrites dashboards/monitoring_figures.json

Importing it asks for the BigQuery data source (``DS_BIGQUERY``); the ``dataset`` variable
holds the BigQuery dataset (``BIGQUERY_DATASET``, default ``aelp2_prod``).
"""

import io
import sys
from pathlib import Path

from grafanalib import core
from grafanalib._gen import write_dashboard

from aelp2_assets.assets.monitoring import FIGURES_TABLE

DASHBOARD_PATH = Path(__file__).resolve().parents[1] / "dashboards" / "monitoring_figures.json"
PLUGIN = "grafana-bigquery-datasource"
DATASOURCE = {"type": PLUGIN, "uid": "${DS_BIGQUERY}"}
TABLE = "${dataset}." + FIGURES_TABLE
TIME = "hour_start"
# The plugin's query formats: 0 time series, 1 table.
TIME_SERIES_FORMAT = 0
# spend_velocity's alert threshold (AELP2 spend velocity rule, 120% of the cap's pace)
VELOCITY_ALERT = 1.2


def figures_query(*columns: str, latest: bool = False) -> str:
    """BigQuery standard SQL for ``columns`` of the figures by hour, in Grafana's time range."""
    select = ", ".join([f"{TIME} AS time", *columns])
    order = "time DESC LIMIT 1" if latest else "time"
    return f"SELECT {select} FROM {TABLE} WHERE $__timeFilter({TIME}) ORDER BY {order}"


def _target(sql: str, ref: str = "A") -> core.SqlTarget:
    return core.SqlTarget(rawSql=sql, format=TIME_SERIES_FORMAT, refId=ref, datasource=DATASOURCE)


def _series(title: str, description: str, sql: str, x: int, y: int, **options) -> core.TimeSeries:
    return core.TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[_target(sql)],
        gridPos=core.GridPos(h=8, w=12, x=x, y=y),
        **options,
    )


def build_dashboard(dataset: str = "aelp2_prod") -> core.Dashboard:
    """The monitoring dashboard: spend pace and velocity, hourly spend, clicks, conversions,
    CTR and conversion rate, from ``<dataset>.monitoring_figures``."""
    velocity_steps = [
        core.Threshold("green", 0, 0.0),
        core.Threshold("red", 1, VELOCITY_ALERT),
    ]
    panels = [
        core.Stat(
            title="Spend velocity, latest hour",
            description="Cumulative spend over the daily cap's even pace; the alert trips"
            " above 1.2.",
            dataSource=DATASOURCE,
            targets=[_target(figures_query("spend_velocity", latest=True))],
            gridPos=core.GridPos(h=8, w=6, x=0, y=0),
            thresholdType="absolute",
            thresholds=velocity_steps,
            decimals=2,
        ),
        _series(
            "Spend velocity",
            "Cumulative spend / the cap's pace, by account-local hour.",
            figures_query("spend_velocity"),
            6,
            0,
            thresholdType="absolute",
            thresholds=velocity_steps,
            thresholdsStyleMode="line",
        ),
        _series(
            "Cumulative spend against the cap's pace",
            "Spend so far today and the daily cap spread evenly over the hours.",
            figures_query("cumulative_spend", "cap_pace"),
            0,
            8,
        ),
        _series("Spend per hour", "Spend in each hour.", figures_query("spend"), 12, 8),
        _series(
            "Clicks and conversions per hour",
            "Conversions of the configured action type.",
            figures_query("clicks", "conversions"),
            0,
            16,
        ),
        _series(
            "CTR and conversion rate",
            "Clicks per impression and conversions per click, per hour.",
            figures_query("ctr", "cvr"),
            12,
            16,
            unit="percentunit",
        ),
    ]
    return core.Dashboard(
        title="AELP2 monitoring figures",
        description=f"Hourly figures of the Meta account from {FIGURES_TABLE} (AELP2).",
        uid="aelp2-monitoring-figures",
        tags=["aelp2", "meta-ads"],
        timezone="browser",
        time=core.Time("now-2d", "now"),
        refresh="5m",
        inputs=[
            core.DataSourceInput(
                name="DS_BIGQUERY", label="BigQuery", pluginId=PLUGIN, pluginName="BigQuery"
            )
        ],
        templating=core.Templating(
            [
                core.Template(
                    name="dataset",
                    label="BigQuery dataset",
                    query=dataset,
                    default=dataset,
                    type="constant",
                )
            ]
        ),
        panels=panels,
    ).auto_panel_ids()


def dashboard_json(dataset: str = "aelp2_prod") -> str:
    """The dashboard as the JSON Grafana imports (keys sorted, so diffs stay small)."""
    stream = io.StringIO()
    write_dashboard(build_dashboard(dataset), stream)
    return stream.getvalue()


def main(argv: list[str]) -> None:
    """Write the dashboard JSON to ``argv[0]`` (default ``DASHBOARD_PATH``)."""
    path = Path(argv[0]) if argv else DASHBOARD_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dashboard_json())


if __name__ == "__main__":
    main(sys.argv[1:])
