"""Channels from Meta's platform positions and from Ads Manager's placement labels."""

import pytest

from aelp2_assets.placements import channel_of


@pytest.mark.parametrize(
    ("position", "channel"),
    [
        ("feed", "Feed"),
        ("instagram_feed", "Feed"),
        ("Facebook Feed", "Feed"),
        ("instagram_stories", "Stories"),
        ("Instagram Stories", "Stories"),
        ("Stories", "Stories"),
        ("facebook_reels", "Reels"),
        ("Instagram Reels", "Reels"),
        ("marketplace", "Marketplace"),
        ("Facebook Marketplace", "Marketplace"),
        ("an_classic", "other"),
        ("unknown", "other"),
    ],
)
def test_channel_of(position, channel):
    assert channel_of(position) == channel
