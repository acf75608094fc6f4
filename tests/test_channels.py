"""GA4 channel metrics: the channel grouping, suspect traffic on both sides, the real sample."""

import dagster as dg
import pandas as pd
import pytest

from aelp2_assets.assets.channels import Ga4FileSource, ga4_channel_metrics
from aelp2_assets.channels import channel_metrics, channel_of, read_funnel_csv

SAMPLE = "ga4_obfuscated_sample_daily_channel_funnel/BigQuery_conversion_funnel.csv"


@pytest.mark.parametrize(
    ("source", "medium", "channel"),
    [
        ("(direct)", "(none)", "Direct"),
        ("google", "cpc", "Paid Search"),
        ("google", "organic", "Organic Search"),
        ("facebook", "cpc", "Paid Social"),
        ("instagram", "referral", "Organic Social"),
        ("shop.googlemerchandisestore.com", "referral", "Referral"),
        ("news.example", "display", "Display"),
        ("(data deleted)", "(data deleted)", "Unassigned (redacted)"),
        ("<Other>", "<Other>", "Unassigned (redacted)"),
        ("partner", "weird", "Unassigned"),
    ],
)
def test_source_medium_maps_to_a_channel(source, medium, channel):
    assert channel_of(source, medium) == channel


def _sessions(display_sessions: int, display_conversions: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": ["google", "(direct)", "news.example"],
            "medium": ["organic", "(none)", "display"],
            "sessions": [100_000, 50_000, display_sessions],
            "conversions": [1_000, 500, display_conversions],
        }
    )


def test_display_collapsing_on_large_traffic_is_suspect():
    metrics = channel_metrics(_sessions(150_000, 15)).set_index("channel")  # 0.01% vs 1%
    assert metrics.loc["Display", "suspect_traffic"]
    assert "0.010%" in metrics.loc["Display", "reason"]
    assert not metrics.loc["Organic Search", "suspect_traffic"]


def test_a_healthy_or_small_channel_is_not_suspect():
    healthy = channel_metrics(_sessions(150_000, 150)).set_index("channel")  # 0.1% = 0.1 x 1%
    assert not healthy["suspect_traffic"].any()
    small = channel_metrics(_sessions(9_999, 0)).set_index("channel")
    assert not small["suspect_traffic"].any()
    looser = channel_metrics(_sessions(9_999, 0), min_sessions=5_000).set_index("channel")
    assert looser.loc["Display", "suspect_traffic"]


def test_the_real_ga4_sample_reads_whole_and_raises_no_suspect(shared_data, local_settings):
    path = shared_data / SAMPLE
    if not path.is_file():
        pytest.skip(f"GA4 sample not found: {path}")
    sessions = read_funnel_csv(str(path))
    assert int(sessions["sessions"].sum()) == 354_857  # PROVENANCE.md
    result = dg.materialize(
        [ga4_channel_metrics],
        resources={"settings": local_settings, "ga4_source": Ga4FileSource(path=str(path))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    metrics = result.output_for_node("ga4_channel_metrics")
    assert metrics["sessions"].sum() == 354_857
    assert {"Organic Search", "Direct", "Referral", "Paid Search"} <= set(metrics["channel"])
    assert not metrics["suspect_traffic"].any()


def test_a_missing_ga4_file_names_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="AELP2_GA4_FILE"):
        Ga4FileSource(path=str(tmp_path / "none.csv")).fetch_sessions()
