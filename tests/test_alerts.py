"""The alert rules on both sides of each threshold, and firing once, clearing when it clears."""

import datetime as dt

import pandas as pd
import pytest

from aelp2_assets import alert_rules
from aelp2_assets.alert_rules import AlertThresholds, Finding
from aelp2_assets.resources.settings import Aelp2Settings

DAY = dt.date(2026, 3, 2)
DEFAULTS = AlertThresholds()


def test_defaults_are_the_issues():
    assert DEFAULTS.spend_velocity_ratio == 1.2
    assert DEFAULTS.target_cac == 150.0
    assert DEFAULTS.cac_ratio == 2.0
    assert DEFAULTS.cvr_floor == 0.001
    assert DEFAULTS.cvr_window_hours == 2
    assert DEFAULTS.cvr_min_clicks == 2000
    assert DEFAULTS.ctr_floor == 0.005
    assert DEFAULTS.failed_materialization_ratio == 0.01


def test_spend_velocity_alerts_above_120_percent_of_the_caps_pace():
    # 6 hours of a 30,000 cap: the pace is 7,500; 120% of it is 9,000
    assert alert_rules.spend_velocity(9_000.0, 30_000.0, 6, DAY) == []
    [finding] = alert_rules.spend_velocity(9_100.0, 30_000.0, 6, DAY)
    assert finding.rule == "spend_velocity" and finding.severity == "critical"
    assert finding.value == pytest.approx(9_100 / 7_500)
    assert finding.key == f"spend_velocity:account:{DAY}"


def test_spend_velocity_threshold_is_configurable_and_not_judged_in_the_first_hour():
    tighter = AlertThresholds(spend_velocity_ratio=1.05)
    assert alert_rules.spend_velocity(8_000.0, 30_000.0, 6, DAY, tighter)
    assert alert_rules.spend_velocity(8_000.0, 30_000.0, 6, DAY) == []
    assert alert_rules.spend_velocity(5_000.0, 30_000.0, 0, DAY) == []


def test_runaway_campaigns_are_those_ahead_of_their_own_budgets_pace():
    # 6 hours: each pace is a quarter of the campaign's daily budget
    spend = pd.DataFrame(
        {
            "campaign_id": ["cbo", "split", "split", "lifetime", "unknown", "slow"],
            "adset_id": ["c1", "s1", "s2", "l1", "u1", "w1"],
            "spend": [31.0, 3.0, 3.0, 50.0, 50.0, 1.0],
        }
    )
    nan = float("nan")
    budgets = pd.DataFrame(
        {
            "level": ["campaign"] * 4 + ["adset"] * 6,
            "object_id": ["cbo", "split", "lifetime", "slow", "c1", "s1", "s2", "s3", "l1", "w1"],
            "campaign_id": ["cbo", "split", "lifetime", "slow"]
            + ["cbo", "split", "split", "split", "lifetime", "slow"],
            # the CBO campaign's own budget; "split" sums its two ad sets that spent (s3 did
            # not); "lifetime" spent on an ad set without a daily budget
            "daily_budget": [100.0, nan, nan, nan, nan, 10.0, 10.0, 500.0, nan, 20.0],
        }
    )
    judged = alert_rules.runaway_campaigns(spend, budgets, 6)
    by_id = judged.set_index("campaign_id")
    assert by_id.loc["cbo", "pace"] == 25.0 and by_id.loc["cbo", "runaway"]  # 124%
    assert by_id.loc["split", "pace"] == 5.0 and not by_id.loc["split", "runaway"]  # 120%
    assert not by_id.loc["slow", "runaway"]  # 20%
    assert not by_id.loc["lifetime", "runaway"] and "l1" in by_id.loc["lifetime", "note"]
    assert not by_id.loc["unknown", "runaway"]
    assert list(judged["campaign_id"])[:2] == ["cbo", "split"]  # largest excess first
    tighter = AlertThresholds(spend_velocity_ratio=1.1)
    runaway = alert_rules.runaway_campaigns(spend, budgets, 6, tighter)
    assert list(runaway.loc[runaway["runaway"], "campaign_id"]) == ["cbo", "split"]


def test_blended_cac_alerts_above_twice_the_target_on_enough_conversions():
    assert alert_rules.blended_cac(300.0 * 40, 40, DAY) == []  # exactly 200%: holds
    [finding] = alert_rules.blended_cac(301.0 * 40, 40, DAY)
    assert "review targeting" in finding.message
    assert finding.threshold == 300.0
    # the same CAC on too few conversions is not judged
    assert alert_rules.blended_cac(400.0 * 29, 29, DAY) == []
    assert alert_rules.blended_cac(0.0, 0, DAY) == []


def test_blended_cac_target_and_ratio_are_configurable():
    thresholds = AlertThresholds(target_cac=100.0, cac_ratio=1.5, cac_min_conversions=5)
    assert alert_rules.blended_cac(151.0 * 10, 10, DAY, thresholds)
    assert alert_rules.blended_cac(149.0 * 10, 10, DAY, thresholds) == []


def _hours(clicks: list[int], conversions: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"hour": range(len(clicks)), "clicks": clicks, "conversions": conversions})


def test_cvr_window_leaves_out_the_attribution_delay():
    assert list(alert_rules.cvr_window(10)) == [8, 9]
    assert list(alert_rules.cvr_window(10, AlertThresholds(attribution_delay_hours=0))) == [9, 10]
    assert list(alert_rules.cvr_window(0)) == []


def test_account_cvr_alerts_below_the_floor_on_enough_clicks():
    # hours 8 and 9 are judged (hour 10 is still being attributed): 2,000 clicks
    low = _hours([1_000] * 11, [5] * 8 + [0, 1, 0])
    [finding] = alert_rules.account_cvr(low, DAY)
    assert finding.value == pytest.approx(1 / 2_000)
    assert "check tracking" in finding.message
    healthy = _hours([1_000] * 11, [5] * 8 + [1, 1, 0])  # exactly 0.1%: holds
    assert alert_rules.account_cvr(healthy, DAY) == []


def test_account_cvr_is_not_judged_on_too_few_clicks_nor_on_the_latest_hour():
    thin = _hours([999] * 11, [0] * 11)
    assert alert_rules.account_cvr(thin, DAY) == []
    # a latest hour without conversions yet is attribution delay, not broken tracking
    late = _hours([1_000] * 11, [5] * 10 + [0])
    assert alert_rules.account_cvr(late, DAY) == []
    assert alert_rules.account_cvr(_hours([], []), DAY) == []


def test_creative_ctr_alerts_each_creative_below_the_floor_on_enough_impressions():
    frame = pd.DataFrame(
        {
            "ad_id": ["a", "a", "b", "c", "d"],
            "impressions": [5_000, 5_000, 10_000, 9_999, 20_000],
            "clicks": [20, 29, 50, 0, 99],
        }
    )
    findings = alert_rules.creative_ctr(frame, DAY)
    # a: 0.49% on 10,000 (alerts); b: exactly 0.5% (holds); c: too few impressions; d: 0.495%
    assert [f.key for f in findings] == [f"creative_ctr:a:{DAY}", f"creative_ctr:d:{DAY}"]
    assert all("creative review" in f.message for f in findings)
    assert alert_rules.creative_ctr(frame, DAY, AlertThresholds(ctr_floor=0.004)) == []


def test_failed_materializations_alert_above_one_percent():
    assert alert_rules.failed_materializations(1, 99, DAY) == []  # exactly 1%
    [finding] = alert_rules.failed_materializations(2, 98, DAY)
    assert finding.audience == "engineering"
    assert alert_rules.failed_materializations(0, 0, DAY) == []
    looser = AlertThresholds(failed_materialization_ratio=0.02)
    assert alert_rules.failed_materializations(2, 98, DAY, looser) == []


def test_failed_run_is_one_alert_per_run():
    finding = alert_rules.failed_run("abc", "main_job", "boom")
    assert finding.key == "failed_run:abc" and finding.audience == "engineering"


def _finding(key: str) -> Finding:
    return Finding("spend_velocity", key, "ops", "critical", key, 1.3, 1.2)


def test_reconcile_fires_once_and_clears_when_the_condition_clears():
    fire, clear = alert_rules.reconcile(set(), [_finding("x")])
    assert [f.key for f in fire] == ["x"] and clear == []
    fire, clear = alert_rules.reconcile({"x"}, [_finding("x")])
    assert fire == [] and clear == []
    fire, clear = alert_rules.reconcile({"x"}, [])
    assert fire == [] and clear == ["x"]


def test_open_alerts_read_the_latest_state_of_each_key():
    history = pd.DataFrame(
        {
            "recorded_at": pd.to_datetime(
                ["2026-03-02 01:00", "2026-03-02 02:00", "2026-03-02 03:00"]
            ),
            "key": ["x", "x", "y"],
            "rule": ["spend_velocity", "spend_velocity", "failed_run"],
            "state": ["firing", "cleared", "firing"],
        }
    )
    assert set(alert_rules.open_alerts(history)) == {"y"}
    assert alert_rules.open_alerts(history, {"spend_velocity"}) == {}
    assert alert_rules.open_alerts(pd.DataFrame()) == {}


def test_thresholds_come_from_the_settings():
    from aelp2_assets.sensors.alerts import thresholds_from

    settings = Aelp2Settings.from_env(
        {"AELP2_ALERT_TARGET_CAC": "90", "AELP2_ALERT_CVR_FLOOR_PCT": "0.2"}
    )
    thresholds = thresholds_from(settings)
    assert thresholds.target_cac == 90.0 and thresholds.cvr_floor == pytest.approx(0.002)
    assert thresholds_from(Aelp2Settings.from_env({})) == DEFAULTS


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AELP2_ALERT_SPEND_VELOCITY_PCT", "0"),
        ("AELP2_ALERT_TARGET_CAC", "-1"),
        ("AELP2_ALERT_CVR_FLOOR_PCT", "100"),
        ("AELP2_ALERT_CVR_MIN_CLICKS", "0"),
        ("AELP2_ALERT_ATTRIBUTION_DELAY_HOURS", "24"),
        ("AELP2_SLACK_BASE_URL", "slack.com"),
        ("AELP2_SLACK_CHANNEL", "two words"),
        ("AELP2_PIPELINE_MONTHLY_COST", "-5"),
    ],
)
def test_bad_alert_settings_fail_naming_the_variable(variable, value):
    with pytest.raises(ValueError, match=variable):
        Aelp2Settings.from_env({variable: value})
