"""The report computations on data that trips them and data that does not."""

import math

import numpy as np
import pandas as pd
import pytest

from aelp2_assets.reports import (
    cost_and_return,
    cost_chart,
    creative_rankings,
    drivers_chart,
    launch_trajectories,
    rankings_chart,
    summarize_launches,
    trajectories_chart,
    trajectories_figure,
    variance_shares,
)

END = pd.Timestamp("2026-03-30")
PNG = b"\x89PNG"


def _rows(ad: str, days: range, spend: float, conversions: float, **extra) -> list[dict]:
    return [
        {
            "date": END - pd.Timedelta(days=day),
            "campaign_id": extra.get("campaign_id", "c1"),
            "adset_id": ad,
            "ad_id": ad,
            "ad_name": f"creative {ad}",
            "publisher_platform": extra.get("platform", "facebook"),
            "platform_position": "feed",
            "impression_device": "mobile_app",
            "spend": spend,
            "conversions": conversions,
            "conversion_value": extra.get("value", 0.0),
        }
        for day in days
    ]


def test_rankings_order_by_cac_and_read_the_weeks_trend():
    rows = [
        # a: CAC 50 in the week before, 100 in the last week: worsening
        *_rows("a", range(0, 7), 100.0, 1.0),
        *_rows("a", range(7, 14), 100.0, 2.0),
        # b: CAC 25 throughout: steady, best
        *_rows("b", range(0, 14), 100.0, 4.0),
        # c: spends but never converts: ranked last
        *_rows("c", range(0, 14), 50.0, 0.0),
        # d: launched 3 days ago: new
        *_rows("d", range(0, 3), 100.0, 1.0),
        # f: spent and converted two and three weeks ago, nothing since: stopped
        *_rows("f", range(15, 20), 100.0, 1.0),
        # e: outside the 30 days: not ranked
        *_rows("e", range(31, 40), 100.0, 5.0),
    ]
    ranked = creative_rankings(pd.DataFrame(rows), END).set_index("ad_id")
    assert ranked.index.tolist() == ["b", "a", "f", "d", "c"]  # f and d tie at 100: spend
    assert ranked.loc["f", "trend"] == "stopped"
    assert ranked.loc["b", "cac"] == 25.0 and ranked.loc["b", "trend"] == "steady"
    assert ranked.loc["a", "trend"] == "worsening"
    assert ranked.loc["a", "cac_change"] == pytest.approx(1.0)
    assert ranked.loc["d", "trend"] == "new"
    assert pd.isna(ranked.loc["c", "cac"]) and ranked.loc["c", "trend"] == "no conversions"
    assert ranked["spend_share"].sum() == pytest.approx(1.0)
    assert ranked.loc["c", "conversion_share"] == 0
    assert rankings_chart(ranked.reset_index()).startswith(PNG)


def test_a_creative_getting_cheaper_is_improving():
    rows = [*_rows("a", range(0, 7), 100.0, 4.0), *_rows("a", range(7, 14), 100.0, 2.0)]
    ranked = creative_rankings(pd.DataFrame(rows), END)
    assert ranked["trend"].tolist() == ["improving"]


def test_rankings_of_no_spend_are_empty():
    assert creative_rankings(pd.DataFrame(_rows("a", range(40, 45), 10.0, 1.0)), END).empty


def _launch_rows() -> pd.DataFrame:
    rows = [
        # old: delivering from the data's first day (day 59 back): launch unknown
        *_rows("old", range(0, 60), 100.0, 1.0, campaign_id="old", value=150.0),
        # winner: launched 40 days ago, revenue 60 then 200 a day on 100 of spend
        *_rows("w", range(33, 41), 100.0, 1.0, campaign_id="winner", value=60.0),
        *_rows("w", range(0, 33), 100.0, 1.0, campaign_id="winner", value=200.0),
        # loser: launched 30 days ago, ROAS 0.5 for ever
        *_rows("l", range(0, 31), 100.0, 1.0, campaign_id="loser", value=50.0),
        # young: launched 5 days ago, not yet breaking even: too young to judge
        *_rows("y", range(0, 5), 100.0, 0.0, campaign_id="young", value=0.0),
    ]
    return pd.DataFrame(rows)


def test_launch_trajectories_find_the_breakeven_day_and_the_share_within_14_days():
    trajectory, summary = launch_trajectories(_launch_rows())
    summary = summary.set_index("campaign_id")
    assert summary.loc["old", "censored"]
    # days 0-7: 60 on 100 a day (480 on 800); then 200 on 100: day 10 is 1,080 on 1,100,
    # day 11 is 1,280 on 1,200
    assert summary.loc["winner", "breakeven_day"] == 11
    winner = trajectory[trajectory["campaign_id"] == "winner"].set_index("day_since_launch")
    assert winner.loc[10, "roas"] < 1 <= winner.loc[11, "roas"]
    assert summary.loc["winner", "positive_within_14d"]
    assert pd.isna(summary.loc["loser", "breakeven_day"])
    assert not summary.loc["loser", "positive_within_14d"]

    launches = summarize_launches(summary.reset_index())
    assert launches.censored == 1
    assert launches.launches == 3  # winner, loser, young
    assert launches.judged == 2  # young is not yet 14 days old
    assert launches.share_positive_within_horizon == 0.5
    # winner breaks even, loser and young never have: the median is "not reached"
    assert launches.median_breakeven_day is None
    assert trajectories_chart(trajectory).startswith(PNG)
    lines = trajectories_figure(trajectory).axes[0].get_lines()
    assert {line.get_label() for line in lines} >= {"winner", "loser", "young", "old"}


def test_a_trajectories_chart_without_launches_says_why() -> None:
    empty = pd.DataFrame(columns=["adset_id", "day_since_launch", "roas"])
    axes = trajectories_figure(empty, "adset_id", launched_before=3).axes[0]
    texts = [text.get_text() for text in axes.texts]
    assert texts == [
        "No ad set launched inside the window\n"
        "(3 delivering from its first day, launched before it)"
    ]
    assert trajectories_chart(empty, "adset_id", 3).startswith(PNG)


def test_every_launch_breaking_even_gives_a_median_day():
    rows = [
        *_rows("a", range(0, 20), 100.0, 1.0, campaign_id="a", value=150.0),  # day 0
        *_rows("b", range(0, 20), 100.0, 0.0, campaign_id="b", value=0.0),
        *_rows("b", range(0, 16), 0.0, 0.0, campaign_id="b", value=500.0),  # day 4
        *_rows("z", range(20, 25), 10.0, 0.0, campaign_id="z"),  # the data's first day
    ]
    _, summary = launch_trajectories(pd.DataFrame(rows))
    launches = summarize_launches(summary)
    breakeven = summary.set_index("campaign_id")["breakeven_day"]
    assert breakeven[["a", "b"]].tolist() == [0, 4] and pd.isna(breakeven["z"])
    assert launches.share_positive_within_horizon == 1.0
    assert launches.median_breakeven_day == 2.0


def test_a_launch_that_never_breaks_even_within_14_days_is_counted_negative():
    rows = [
        *_rows("z", range(40, 41), 1.0, 0.0, campaign_id="z"),  # marks the data's first day
        *_rows("a", range(0, 30), 100.0, 1.0, campaign_id="a", value=90.0),
    ]
    launches = summarize_launches(launch_trajectories(pd.DataFrame(rows))[1])
    assert launches.share_positive_within_horizon == 0.0
    assert launches.median_breakeven_day is None


def _cells(creative_effect: float, placement_effect: float, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for a, ad in enumerate("abcdef"):
        for p, platform in enumerate(["facebook", "instagram", "audience_network"]):
            for day in range(20):
                rate = 0.02 + creative_effect * a + placement_effect * p
                rows.append(
                    {
                        "date": END - pd.Timedelta(days=day),
                        "ad_id": ad,
                        "publisher_platform": platform,
                        "platform_position": "feed",
                        "impression_device": "mobile_app",
                        "spend": 100.0,
                        "conversions": max(rate * 100 + rng.normal(0, 0.1), 0),
                    }
                )
    return pd.DataFrame(rows)


def test_variance_is_put_on_the_creative_when_only_the_creative_matters():
    shares = variance_shares(_cells(0.004, 0.0)).set_index("factor")
    assert shares.loc["creative", "share"] > 0.9
    assert shares.loc["placement", "share"] < 0.05 and shares.loc["timing", "share"] < 0.05
    assert shares["share"].sum() == pytest.approx(1.0)
    assert drivers_chart(shares.reset_index()).startswith(PNG)


def test_variance_is_put_on_the_placement_when_only_the_placement_matters():
    shares = variance_shares(_cells(0.0, 0.01)).set_index("factor")
    assert shares.loc["placement", "share"] > 0.9
    assert shares.loc["creative", "share"] < 0.05
    assert shares.loc["placement", "share_entered_first"] >= shares.loc["placement", "share"]


def test_cost_and_return_is_not_measurable_without_a_backtest():
    result = cost_and_return(1_500.0, 900_000.0)
    assert result.status.startswith("not measurable yet")
    assert result.monthly_saving is None and result.return_on_cost is None
    assert result.cost_share_of_spend == pytest.approx(1_500 / 900_000)
    assert cost_chart(result).startswith(PNG)
    assert cost_and_return(1_500.0, 900_000.0, 150.0, math.nan).monthly_saving is None


def test_cost_and_return_prices_a_measured_saving_both_ways():
    covered = cost_and_return(1_500.0, 900_000.0, baseline_cac=150.0, model_cac=120.0)
    assert covered.cac_saving_share == pytest.approx(0.2)
    assert covered.monthly_saving == pytest.approx(900_000 / 120 * 30)  # 225,000
    assert covered.return_on_cost == pytest.approx(150.0)
    assert covered.status == "the saving covers the pipeline's cost"
    small = cost_and_return(1_500.0, 9_000.0, baseline_cac=150.0, model_cac=149.0)
    assert small.status == "the saving does not cover the pipeline's cost"
    worse = cost_and_return(1_500.0, 900_000.0, baseline_cac=150.0, model_cac=160.0)
    assert worse.monthly_saving < 0 and worse.status.startswith("no saving")
