"""A smoke test against the real Meta Marketing API: runs only with credentials.

Set META_ACCESS_TOKEN (ads_read on the account) and META_AD_ACCOUNT_ID, plus
AELP2_ACCOUNT_TIMEZONE / AELP2_ACCOUNT_CURRENCY when the account is not America/Los_Angeles /
USD (and META_APP_ID with META_APP_SECRET to check the token's expiry with the app token). It
reads yesterday's insights and the account's objects, and writes nothing.
"""

import datetime as dt
import os

import pytest

from aelp2_assets.resources.meta_api import MetaApiSource
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import ENTITY_COLUMNS
from aelp2_assets.tables import RAW_KEY

pytestmark = pytest.mark.skipif(
    not (os.environ.get("META_ACCESS_TOKEN") and os.environ.get("META_AD_ACCOUNT_ID")),
    reason="live Meta smoke test: set META_ACCESS_TOKEN and META_AD_ACCOUNT_ID to run it",
)


@pytest.fixture(scope="module")
def settings() -> Aelp2Settings:
    return Aelp2Settings.from_env()


@pytest.fixture(scope="module")
def live_source(settings) -> MetaApiSource:
    return MetaApiSource.from_settings(
        settings,
        access_token=os.environ["META_ACCESS_TOKEN"],
        app_secret=os.environ.get("META_APP_SECRET") if settings.meta_app_id else None,
    )


def test_live_meta_yesterday_arrives_in_the_insights_shape(live_source, settings):
    yesterday = settings.account_today() - dt.timedelta(days=1)

    rows = live_source.fetch_insights(yesterday, yesterday)

    keys = [tuple(row.get(column) for column in RAW_KEY) for row in rows]
    assert len(keys) == len(set(keys))
    for row in rows:
        assert row["date_start"] == row["date_stop"] == yesterday.isoformat()
        assert isinstance(row["spend"], str) and isinstance(row["impressions"], str)


def test_live_meta_entities_carry_the_account_and_integer_budgets(live_source, settings):
    entities = live_source.fetch_entities(settings.account_today())

    assert list(entities.columns) == list(ENTITY_COLUMNS)
    assert str(entities["daily_budget"].dtype) == "Int64"
    assert entities["min_daily_budget"].notna().all()
