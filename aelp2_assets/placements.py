"""Placements and the channels the forecast reports by (no Dagster import).

A placement is Meta's (publisher_platform, platform_position, impression_device) breakdown;
a channel is the coarse grouping operators read: Feed, Stories, Reels, Marketplace, other.
"""

from dataclasses import dataclass

CHANNELS = ("Feed", "Stories", "Reels", "Marketplace", "other")

# platform_position values as Meta's Insights API returns them (and Ads Manager's placement
# labels, lower-cased with underscores for spaces), by channel.
_POSITION_CHANNEL = {
    "feed": "Feed",
    "facebook_feed": "Feed",
    "instagram_feed": "Feed",
    "facebook_stories": "Stories",
    "instagram_stories": "Stories",
    "story": "Stories",
    "stories": "Stories",
    "facebook_reels": "Reels",
    "instagram_reels": "Reels",
    "facebook_reels_overlay": "Reels",
    "reels": "Reels",
    "marketplace": "Marketplace",
    "facebook_marketplace": "Marketplace",
}


def channel_of(platform_position: str) -> str:
    """The reporting channel of one of Meta's platform positions ('other' when unknown)."""
    return _POSITION_CHANNEL.get(platform_position.strip().lower().replace(" ", "_"), "other")


@dataclass(frozen=True)
class PlacementProfile:
    """Measured cost and funnel rates of one placement (DESIGN.md, 146 campaigns)."""

    name: str
    publisher_platform: str
    platform_position: str
    impression_device: str
    cpm: float  # dollars per 1,000 impressions
    ctr: float  # clicks per impression
    cvr: float  # conversions per click


PLACEMENT_PROFILES = (
    PlacementProfile("feed_desktop", "facebook", "feed", "desktop", 14.87, 0.0135, 0.0068),
    PlacementProfile("feed_mobile", "facebook", "feed", "mobile_app", 18.54, 0.0117, 0.0068),
    PlacementProfile(
        "stories", "instagram", "instagram_stories", "mobile_app", 8.29, 0.0079, 0.0018
    ),
    PlacementProfile("reels", "instagram", "instagram_reels", "mobile_app", 5.02, 0.0105, 0.0012),
)
