"""Settings: defaults, the environment switch, and clear errors for bad values at load."""

import pytest

from aelp2_assets.resources import resources_for
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import DemoSource, FileSource


def test_defaults_are_the_documented_ones():
    settings = Aelp2Settings.from_env({})
    assert settings.source_name == "demo"
    assert settings.warehouse_name == "duckdb"
    assert settings.dataset == "aelp2_prod"
    assert settings.placement_tracking is True
    assert settings.monte_carlo_draws == 1000
    assert (settings.thompson_alpha_init, settings.thompson_beta_init) == (1.0, 1.0)
    assert settings.daily_budget_cap == 30000
    assert settings.daily_budget_cap_minor == 3_000_000
    assert settings.convergence_threshold == 0.01
    assert settings.update_frequency_hours == 4
    assert not any(
        [
            settings.enable_recsim,
            settings.enable_auctiongym,
            settings.enable_deep_rl,
            settings.research_mode,
        ]
    )
    assert settings.conversion_action_type == "offsite_conversion.fb_pixel_purchase"


def test_values_are_read_from_their_variables():
    settings = Aelp2Settings.from_env(
        {
            "META_PLACEMENT_TRACKING": "false",
            "DAILY_BUDGET_CAP": "1234",
            "AELP2_ACCOUNT_CURRENCY": "jpy",
            "ENABLE_DEEP_RL": "TRUE",
            "AELP2_ENV": "prod",
            "AELP2_WAREHOUSE": "duckdb",
        }
    )
    assert settings.placement_tracking is False
    assert settings.enable_deep_rl is True
    assert settings.account_currency == "JPY"
    # yen have no minor unit: 1,234 yen is 1,234 minor units (1234.5 is refused: see below)
    assert settings.daily_budget_cap_minor == 1234
    assert settings.source_name == "meta"
    assert settings.warehouse_name == "duckdb"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MONTE_CARLO_DRAWS", "many"),
        ("MONTE_CARLO_DRAWS", "10"),
        ("THOMPSON_ALPHA_INIT", "0"),
        ("DAILY_BUDGET_CAP", "-5"),
        ("DAILY_BUDGET_CAP", "inf"),
        ("DAILY_BUDGET_CAP", "0.001"),
        ("DAILY_BUDGET_CAP", "1e+17"),
        ("DAILY_BUDGET_CAP", "30000.005"),
        ("BIGQUERY_DATASET", "bad;name"),
        ("CONVERGENCE_THRESHOLD", "1.5"),
        ("UPDATE_FREQUENCY_HOURS", "5"),
        ("META_PLACEMENT_TRACKING", "maybe"),
        ("RESEARCH_MODE", "2"),
        ("AELP2_ACCOUNT_TIMEZONE", "Mars/Olympus"),
        ("AELP2_ACCOUNT_CURRENCY", "XYZ"),
        ("AELP2_ENV", "staging"),
        ("AELP2_SOURCE", "csv"),
        ("AELP2_PARTITION_START_DATE", "01/02/2024"),
        ("AELP2_DEMO_CREATIVES", "30"),
    ],
)
def test_bad_value_names_variable_and_value(variable, value):
    with pytest.raises(ValueError) as error:
        Aelp2Settings.from_env({variable: value})
    assert variable in str(error.value)
    assert repr(value) in str(error.value)


def test_switch_picks_the_source(tmp_path):
    demo = resources_for(Aelp2Settings.from_env({"AELP2_DUCKDB_PATH": str(tmp_path / "a.db")}))
    assert isinstance(demo["insights_source"], DemoSource)
    export = tmp_path / "export.jsonl"
    export.write_text("")
    file = resources_for(
        Aelp2Settings.from_env(
            {
                "AELP2_SOURCE": "file",
                "AELP2_SOURCE_FILE": str(export),
                "AELP2_DUCKDB_PATH": str(tmp_path / "b.db"),
            }
        )
    )
    assert isinstance(file["insights_source"], FileSource)


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"AELP2_SOURCE": "file"}, "AELP2_SOURCE_FILE"),
        ({"AELP2_SOURCE": "meta"}, "AELP2_SOURCE=meta needs META_AD_ACCOUNT_ID"),
        ({"AELP2_ENV": "prod"}, "AELP2_SOURCE=meta needs META_AD_ACCOUNT_ID"),
    ],
)
def test_unavailable_choices_fail_clearly_at_load(tmp_path, environment, message):
    settings = Aelp2Settings.from_env({**environment, "AELP2_DUCKDB_PATH": str(tmp_path / "w")})
    with pytest.raises(ValueError, match=message):
        resources_for(settings)


@pytest.mark.parametrize("variable", ["AELP2_HISTORY_DAYS", "AELP2_LIVE_WINDOW_DAYS"])
def test_windows_are_at_least_a_day(variable):
    with pytest.raises(ValueError, match=variable):
        Aelp2Settings.from_env({variable: "0"})


def test_the_cap_is_whole_minor_units_of_the_account_currency():
    with pytest.raises(
        ValueError, match=r"DAILY_BUDGET_CAP='1234.5': finer than one minor unit of JPY"
    ):
        Aelp2Settings.from_env({"DAILY_BUDGET_CAP": "1234.5", "AELP2_ACCOUNT_CURRENCY": "JPY"})
    dollars = Aelp2Settings.from_env({"DAILY_BUDGET_CAP": "1234.5"})
    assert dollars.daily_budget_cap_minor == 123_450
