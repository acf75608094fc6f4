"""A seeded simulator of a Meta ad account (no Dagster import).

The demo source draws its history from it, and a decision-quality benchmark steps it day by
day to compare allocation policies against the truth. One arm is one creative: one ad in its
own ad set, identified by the ad set id. Each day every live arm spends its budget over the
placements of ``aelp2_assets.placements.PLACEMENT_PROFILES`` and the simulator returns the rows
Meta's Insights API would (level ad, one day, broken down by publisher platform, platform
position and impression device; every value a string).

The model, for arm ``c`` on placement ``p`` on day ``d``:

- **Spend.** Meta under-delivers a little: the arm spends ``budget * (1 - 0.03 * Beta(2, 5))``
  (0-3% short, 0.9% on average). The arm's spend splits over placements by a fixed mix drawn
  once per creative, ``Dirichlet(40 * DEFAULT_MIX)``: each creative leans its own way around
  the default mix, but a creative's mix does not move with its budget.
- **Impressions, diminishing returns.** Expected impressions are
  ``1000 / CPM_p * r_p ** 0.15 * s ** 0.85`` for a cell spend ``s``, where ``r_p`` is the
  reference cell spend (``reference_daily_spend * DEFAULT_MIX[p]``). That is the effective CPM
  ``CPM_p * (s / r_p) ** 0.15``: it equals the measured CPM at the reference spend and rises
  with spend, so doubling a budget buys ``2 ** 0.85 = 1.80`` times the impressions and the
  conversions. A daily auction factor ``LogNormal(mean 1, sigma 0.1)`` per cell and Poisson
  counting give the realised impressions. A cost shock multiplies the arm's CPM from a day on.
- **Clicks, creative effect, fatigue.** ``CTR = CTR_p * m_ctr(c) * F * 2 ** (-W / H(c))``,
  clicks ``Poisson(impressions * CTR)``. ``m_ctr ~ LogNormal(mean 1, sigma 0.30)``; ``W`` is
  the creative's cumulative spend (wear) at the start of the day and ``H(c)`` its half-life
  spend, ``LogNormal`` around 40 days of the reference spend (sigma 0.3). The team pauses a
  creative once its CTR has halved (``W >= H``). ``F = 2 ln 2 = 1.386`` is the inverse of the
  mean fatigue over such a life, so the account-wide CTR matches the measured CTR_p (the
  measured figures already include worn creatives).
- **Conversions, overdispersion.** ``Poisson(impressions * CTR * CVR_p * m_cvr(c) * g)`` with
  ``m_cvr ~ LogNormal(mean 1, sigma 0.35)`` and a daily rate factor ``g ~ Gamma(20, 1/20)``
  per arm (mean 1, 22% day-to-day spread: a negative binomial overall). Conversions are drawn
  on expected clicks, not realised ones, so a row may show a conversion without a click, as
  Meta's view-through attribution does. Each order is worth ``Gamma(4, AOV / 4)``
  (``AOV`` = 60 US dollars).
- **Creatives come and go.** ``n_creatives`` creatives start, worn uniformly along their
  lives so the account is in steady state from day one (their wear before the first day is
  not in the rows). Each morning fatigued creatives are paused, and so are creatives a policy
  has given no budget for ``PAUSE_AFTER_ZERO_DAYS`` (3) days in a row (the team pauses what
  the allocator phased out, freeing its slot), ``Poisson(launch_rate)`` new
  ones launch while fewer than 12 are live, and more launch whenever fewer than 8 remain.

All randomness comes from generators derived from ``seed``: creative ``k``'s parameters from
its own stream, and each day's noise and lifecycle draws from that day's streams. So the same
seed gives the same history, and policies stepped on the same seed meet the same creatives
in the same order.
"""

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aelp2_assets.money import minor_unit_offset, to_major_units, to_minor_units
from aelp2_assets.placements import PLACEMENT_PROFILES, PlacementProfile, channel_of
from aelp2_assets.tables import OBJECT_COLUMNS

PURCHASE_ALIASES = ("offsite_conversion.fb_pixel_purchase", "purchase", "omni_purchase")
DEFAULT_ACCOUNT_ID = "100000000000001"
CAMPAIGN_ID = "120200000000000001"
CAMPAIGN_NAME = "AELP2 simulated prospecting"

MIN_LIVE = 8
MAX_LIVE = 12
NEW_ARM_SHARE = 0.05

# Share of a creative's spend per placement, in the order of PLACEMENT_PROFILES: mobile feed
# carries most of a typical prospecting budget, desktop feed the least.
DEFAULT_MIX = {"feed_desktop": 0.10, "feed_mobile": 0.45, "stories": 0.25, "reels": 0.20}
MIX_CONCENTRATION = 40.0
SPEND_EXPONENT = 0.85
AUCTION_SIGMA = 0.10
CTR_SIGMA = 0.30
CVR_SIGMA = 0.35
HALF_LIFE_DAYS = 40.0
HALF_LIFE_SIGMA = 0.30
RETIRE_AT_FATIGUE = 0.5
PAUSE_AFTER_ZERO_DAYS = 3
DISPERSION_SHAPE = 20.0
UNDER_DELIVERY = 0.03
AVERAGE_ORDER_VALUE_USD = 60.0
ORDER_VALUE_SHAPE = 4.0

# Mean of 2 ** -x over a life x in [0, log2(1 / RETIRE_AT_FATIGUE)], inverted.
FRESH_CTR_BOOST = math.log(1 / RETIRE_AT_FATIGUE) / (1 - RETIRE_AT_FATIGUE)

_CREATIVE_STREAM = 1
_LIFECYCLE_STREAM = 2
_NOISE_STREAM = 3
_COUNT_STREAM = 4

_PLACEMENT_NAMES = tuple(profile.name for profile in PLACEMENT_PROFILES)
_CPM = np.array([profile.cpm for profile in PLACEMENT_PROFILES])
_CTR = np.array([profile.ctr for profile in PLACEMENT_PROFILES])
_CVR = np.array([profile.cvr for profile in PLACEMENT_PROFILES])
_MIX = np.array([DEFAULT_MIX[name] for name in _PLACEMENT_NAMES])


@dataclass
class _Creative:
    """One arm's hidden truth and running state."""

    index: int
    ctr_multiplier: float
    cvr_multiplier: float
    half_life_spend: float
    mix: np.ndarray
    launch_day: int
    wear: float
    retire_day: int | None = None
    first_delivery_day: int | None = None
    last_budget: float = 0.0
    zero_budget_days: int = 0
    wear_at_open: list[float] = field(default_factory=list)
    shocks: list[tuple[int, float]] = field(default_factory=list)

    @property
    def adset_id(self) -> str:
        return str(120201000000000001 + self.index)

    @property
    def ad_id(self) -> str:
        return str(120202000000000001 + self.index)

    @property
    def creative_id(self) -> str:
        return str(120203000000000001 + self.index)

    @property
    def name(self) -> str:
        return f"Creative {self.index + 1:03d}"

    def cost_multiplier(self, day: int) -> float:
        return math.prod(multiplier for start, multiplier in self.shocks if start <= day)

    def wear_on(self, day: int) -> float:
        """Cumulative spend (with pre-history wear) at the start of ``day``."""
        offset = day - self.launch_day
        if 0 <= offset < len(self.wear_at_open):
            return self.wear_at_open[offset]
        return self.wear_at_open[0] if offset < 0 and self.wear_at_open else self.wear


@dataclass(frozen=True)
class ArmTruth:
    """The hidden parameters of one arm, for oracles and tests."""

    adset_id: str
    ctr_multiplier: float
    cvr_multiplier: float
    fatigue_half_life_spend: float
    placement_mix: dict[str, float]
    launch_date: dt.date
    retire_date: dt.date | None


@dataclass
class SimulatedHistory:
    """A simulated account run under the baseline policy from ``start`` to ``end``.

    ``rows`` are the Insights rows of every day; ``entities`` the account's objects as of
    ``end`` (see ``Simulator.entities``); ``budgets`` the baseline budgets per day (major
    units); ``simulator`` the stepped simulator, for its true parameters.
    """

    rows: list[dict]
    entities: pd.DataFrame
    budgets: dict[dt.date, dict[str, float]]
    simulator: "Simulator"


def _stream(seed: int, *key: int) -> np.random.Generator:
    """A generator derived from ``seed`` for one purpose (and one day or creative)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


class Simulator:
    """A Meta ad account of 8-12 live creatives, stepped one day at a time.

    Step days in order with ``step``; ``live_arms`` tells which ad sets run on a day, and the
    ``true_*`` and ``expected_conversions`` methods reveal the truth an oracle would know.
    Money is in major units of ``currency``; ``currency_per_usd`` converts the measured US
    dollar CPMs and order values (1.0 for USD).
    """

    def __init__(
        self,
        seed: int,
        start: dt.date,
        n_creatives: int = 10,
        currency: str = "USD",
        account_id: str = DEFAULT_ACCOUNT_ID,
        *,
        reference_daily_spend: float = 3_000.0,
        currency_per_usd: float = 1.0,
        launch_rate: float | None = None,
    ) -> None:
        if not MIN_LIVE <= n_creatives <= MAX_LIVE:
            raise ValueError(f"n_creatives must be {MIN_LIVE}-{MAX_LIVE}, got {n_creatives}")
        if not account_id.isdigit():
            raise ValueError(f"account_id must be digits, got {account_id!r}")
        if reference_daily_spend <= 0 or currency_per_usd <= 0:
            raise ValueError("reference_daily_spend and currency_per_usd must be positive")

        self.seed = seed
        self.start = start
        self.n_creatives = n_creatives
        self.currency = currency.upper()
        self.account_id = account_id
        self.reference_daily_spend = reference_daily_spend
        self._offset = minor_unit_offset(self.currency)
        self._decimals = 2 if self._offset == 100 else 0
        self._cpm = _CPM * currency_per_usd
        self._order_value = AVERAGE_ORDER_VALUE_USD * currency_per_usd
        # Spend of the reference daily budget expected per placement, for the CPM curve.
        self._reference_cell = reference_daily_spend * _MIX
        self._half_life_median = HALF_LIFE_DAYS * reference_daily_spend
        mean_life = self._half_life_median * math.exp(HALF_LIFE_SIGMA**2 / 2)
        mean_life *= math.log2(1 / RETIRE_AT_FATIGUE)
        # Launch as fast as creatives wear out at the reference spend.
        self.launch_rate = (
            n_creatives * reference_daily_spend / mean_life if launch_rate is None else launch_rate
        )
        self._creatives: list[_Creative] = []
        self._by_adset: dict[str, _Creative] = {}
        self._opened = 0
        self._stepped = 0

    # Days and the lifecycle.

    @property
    def next_day(self) -> dt.date:
        """The first day not yet stepped."""
        return self.start + dt.timedelta(days=self._stepped)

    def _index(self, day: dt.date) -> int:
        """Days since the start (0 on the first day)."""
        index = (day - self.start).days
        if index < 0:
            raise ValueError(f"{day} is before the simulation's start {self.start}")
        return index

    def _launch(self, day: int, initial: bool) -> None:
        """Create the next creative from its own stream, live from ``day``."""
        index = len(self._creatives)
        rng = _stream(self.seed, _CREATIVE_STREAM, index)
        ctr = rng.lognormal(-(CTR_SIGMA**2) / 2, CTR_SIGMA)
        cvr = rng.lognormal(-(CVR_SIGMA**2) / 2, CVR_SIGMA)
        half_life = self._half_life_median * rng.lognormal(0.0, HALF_LIFE_SIGMA)
        mix = rng.dirichlet(MIX_CONCENTRATION * _MIX)
        worn = rng.uniform()
        wear = worn * half_life * math.log2(1 / RETIRE_AT_FATIGUE) if initial else 0.0
        creative = _Creative(index, ctr, cvr, half_life, mix, day, wear)
        self._creatives.append(creative)
        self._by_adset[creative.adset_id] = creative

    def _live(self, day: int) -> list[_Creative]:
        """Creatives launched by ``day`` and not paused on or before it."""
        return [
            c
            for c in self._creatives
            if c.launch_day <= day and (c.retire_day is None or c.retire_day > day)
        ]

    def _open(self, day: int) -> None:
        """Pause worn creatives and launch new ones at the start of ``day``."""
        if day == 0:
            for _ in range(self.n_creatives):
                self._launch(0, initial=True)
        else:
            for creative in self._live(day):
                worn = self._fatigue(creative, creative.wear) <= RETIRE_AT_FATIGUE
                if worn or creative.zero_budget_days >= PAUSE_AFTER_ZERO_DAYS:
                    creative.retire_day = day
            live = len(self._live(day))
            arrivals = int(_stream(self.seed, _LIFECYCLE_STREAM, day).poisson(self.launch_rate))
            launches = max(min(arrivals, MAX_LIVE - live), MIN_LIVE - live)
            for _ in range(launches):
                self._launch(day, initial=False)

        for creative in self._live(day):
            creative.wear_at_open.append(creative.wear)
        self._opened = day + 1

    def _ensure_open(self, day: int) -> None:
        """Open ``day`` if it is the next one; refuse days further ahead."""
        if day < self._opened:
            return
        if day == self._opened == self._stepped:
            self._open(day)
            return
        raise ValueError(
            f"days must be stepped in order: {self.start + dt.timedelta(days=day)} is after"
            f" the next day {self.next_day}"
        )

    def arms(self) -> list[str]:
        """Every ad set launched so far, live or paused, oldest first."""
        return [c.adset_id for c in self._creatives]

    def live_arms(self, day: dt.date) -> list[str]:
        """Ad set ids live on ``day`` (any day up to the next one to step), oldest first."""
        index = self._index(day)
        self._ensure_open(index)
        return [c.adset_id for c in self._live(index)]

    def is_new(self, arm: str, day: dt.date) -> bool:
        """Whether ``arm`` launched on ``day`` after the first day (the first day's are not)."""
        creative = self._creative(arm)
        return creative.launch_day == self._index(day) > 0

    def shock(self, arm: str, day: dt.date, cost_multiplier: float) -> None:
        """Multiply ``arm``'s CPM by ``cost_multiplier`` from ``day`` on (a sudden cost change).

        Its cost per conversion rises by the same factor. ``day`` must not be stepped yet.
        """
        if cost_multiplier <= 0:
            raise ValueError(f"cost_multiplier must be positive, got {cost_multiplier}")
        index = self._index(day)
        if index < self._stepped:
            raise ValueError(f"{day} is already stepped; the next day is {self.next_day}")
        self._creative(arm).shocks.append((index, cost_multiplier))

    # The truth.

    def _creative(self, arm: str) -> _Creative:
        """The creative behind ad set ``arm``."""
        try:
            return self._by_adset[arm]
        except KeyError:
            raise ValueError(f"unknown arm {arm!r}") from None

    @staticmethod
    def _fatigue(creative: _Creative, wear: float) -> float:
        """The share of its fresh CTR a creative keeps after spending ``wear``."""
        return 2.0 ** (-wear / creative.half_life_spend)

    def truth(self, arm: str) -> ArmTruth:
        """The hidden parameters of ``arm``."""
        c = self._creative(arm)
        retired = None if c.retire_day is None else self.start + dt.timedelta(c.retire_day)
        return ArmTruth(
            adset_id=c.adset_id,
            ctr_multiplier=c.ctr_multiplier,
            cvr_multiplier=c.cvr_multiplier,
            fatigue_half_life_spend=c.half_life_spend,
            placement_mix=dict(zip(_PLACEMENT_NAMES, c.mix.tolist(), strict=True)),
            launch_date=self.start + dt.timedelta(c.launch_day),
            retire_date=retired,
        )

    def fatigue(self, arm: str, day: dt.date) -> float:
        """The share of its fresh CTR ``arm`` keeps on ``day`` (future days: today's wear)."""
        creative = self._creative(arm)
        return self._fatigue(creative, creative.wear_on(self._index(day)))

    def true_ctr(self, arm: str, day: dt.date) -> dict[str, float]:
        """Expected click-through rate of ``arm`` per placement on ``day``."""
        creative = self._creative(arm)
        ctr = _CTR * FRESH_CTR_BOOST * creative.ctr_multiplier * self.fatigue(arm, day)
        return dict(zip(_PLACEMENT_NAMES, ctr.tolist(), strict=True))

    def true_cvr(self, arm: str) -> dict[str, float]:
        """Expected conversions per click of ``arm`` per placement."""
        cvr = _CVR * self._creative(arm).cvr_multiplier
        return dict(zip(_PLACEMENT_NAMES, cvr.tolist(), strict=True))

    def _impressions(self, cell_spend: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Expected impressions of cells (arms x placements) under the CPM curve."""
        scale = 1000.0 / (self._cpm * cost[:, None]) * self._reference_cell ** (1 - SPEND_EXPONENT)
        return scale * cell_spend**SPEND_EXPONENT

    def expected_conversions(self, arm: str, day: dt.date, spend: float) -> float:
        """Expected conversions of ``arm`` on ``day`` if it spends ``spend`` (major units).

        ``spend`` is what the arm actually spends, after any under-delivery of its budget.
        """
        if spend < 0:
            raise ValueError(f"spend must not be negative, got {spend}")
        creative = self._creative(arm)
        index = self._index(day)
        cost = np.array([creative.cost_multiplier(index)])
        impressions = self._impressions(spend * creative.mix[None, :], cost)[0]
        ctr = np.array(list(self.true_ctr(arm, day).values()))
        cvr = np.array(list(self.true_cvr(arm).values()))
        return float((impressions * ctr * cvr).sum())

    def true_conversions_per_dollar(self, arm: str, day: dt.date, spend: float) -> float:
        """Expected conversions per unit of currency of ``arm`` on ``day`` at ``spend``."""
        if spend <= 0:
            raise ValueError(f"spend must be positive, got {spend}")
        return self.expected_conversions(arm, day, spend) / spend

    # Stepping.

    def step(self, day: dt.date, budgets: Mapping[str, float]) -> list[dict]:
        """Spend each arm's daily budget (major units) on ``day`` and return the day's rows.

        Live arms missing from ``budgets`` spend nothing; paused arms do not deliver, as on
        Meta. Rows of cells without impressions are not emitted.
        """
        index = self._index(day)
        if index != self._stepped:
            raise ValueError(f"days must be stepped in order: got {day}, next is {self.next_day}")
        for arm, budget in budgets.items():
            self._creative(arm)
            if not math.isfinite(budget) or budget < 0:
                raise ValueError(f"budget of {arm} must be finite and >= 0, got {budget}")
        self._ensure_open(index)

        live = self._live(index)
        for creative in live:
            creative.last_budget = float(budgets.get(creative.adset_id, 0.0))
            funded = creative.last_budget > 0
            creative.zero_budget_days = 0 if funded else creative.zero_budget_days + 1
        rows = self._deliver(index, day, live)
        self._stepped = index + 1
        return rows

    def _deliver(self, index: int, day: dt.date, live: list[_Creative]) -> list[dict]:
        """Draw the day's delivery of the live creatives' budgets and build its rows."""
        n = len(live)
        budget = np.array([c.last_budget for c in live])
        mix = np.array([c.mix for c in live])
        cost = np.array([c.cost_multiplier(index) for c in live])
        fatigue = np.array([self._fatigue(c, c.wear) for c in live])
        ctr_mult = np.array([c.ctr_multiplier for c in live])
        cvr_mult = np.array([c.cvr_multiplier for c in live])

        # Continuous noise first, counts from their own stream, so the same day of two runs
        # shares the continuous draws even when their Poisson means differ.
        noise = _stream(self.seed, _NOISE_STREAM, index)
        delivered = budget * (1 - UNDER_DELIVERY * noise.beta(2.0, 5.0, n))
        auction = noise.lognormal(-(AUCTION_SIGMA**2) / 2, AUCTION_SIGMA, (n, len(_CPM)))
        daily_rate = noise.gamma(DISPERSION_SHAPE, 1 / DISPERSION_SHAPE, n)

        cell_spend = delivered[:, None] * mix
        counts = _stream(self.seed, _COUNT_STREAM, index)
        impressions = counts.poisson(self._impressions(cell_spend, cost) * auction)
        ctr = _CTR * FRESH_CTR_BOOST * (ctr_mult * fatigue)[:, None]
        clicks = counts.poisson(impressions * ctr)
        rate = impressions * ctr * _CVR * (cvr_mult * daily_rate)[:, None]
        conversions = counts.poisson(rate)
        value = counts.gamma(conversions * ORDER_VALUE_SHAPE, self._order_value / ORDER_VALUE_SHAPE)

        # Meta bills impressions: a cell without one spends nothing. Flooring to the minor
        # unit keeps the day's spend within the budget.
        spend = np.where(impressions > 0, np.floor(cell_spend * self._offset) / self._offset, 0.0)
        for i, creative in enumerate(live):
            creative.wear += float(spend[i].sum())
            if creative.first_delivery_day is None and impressions[i].any():
                creative.first_delivery_day = index

        rows = []
        iso = day.isoformat()
        for i, p in zip(*np.nonzero(impressions), strict=True):
            rows.append(
                self._row(
                    iso,
                    live[i],
                    PLACEMENT_PROFILES[p],
                    spend[i, p],
                    int(impressions[i, p]),
                    int(clicks[i, p]),
                    int(conversions[i, p]),
                    float(value[i, p]),
                )
            )
        return rows

    def _row(
        self,
        iso: str,
        creative: _Creative,
        placement: PlacementProfile,
        spend: float,
        impressions: int,
        clicks: int,
        conversions: int,
        value: float,
    ) -> dict:
        """One Insights row: every value a string, actions listed as Meta lists them."""
        row = {
            "date_start": iso,
            "date_stop": iso,
            "account_id": self.account_id,
            "account_currency": self.currency,
            "campaign_id": CAMPAIGN_ID,
            "campaign_name": CAMPAIGN_NAME,
            "adset_id": creative.adset_id,
            "adset_name": f"{creative.name} ad set",
            "ad_id": creative.ad_id,
            "ad_name": creative.name,
            "publisher_platform": placement.publisher_platform,
            "platform_position": placement.platform_position,
            "impression_device": placement.impression_device,
            "spend": f"{spend:.{self._decimals}f}",
            "impressions": str(impressions),
            "clicks": str(clicks),
        }
        # Like Meta, zero-valued actions are left out, and so are empty lists.
        actions, values = [], []
        if conversions:
            count, amount = str(conversions), f"{value:.{self._decimals}f}"
            actions = [{"action_type": alias, "value": count} for alias in PURCHASE_ALIASES]
            values = [{"action_type": alias, "value": amount} for alias in PURCHASE_ALIASES]
        if clicks:
            actions.append({"action_type": "link_click", "value": str(clicks)})
        if actions:
            row["actions"] = actions
        if values:
            row["action_values"] = values
        return row

    # The account's objects.

    def entities(self) -> pd.DataFrame:
        """Campaign, ad sets and ads as of the last stepped day.

        Columns: level, object_id, campaign_id, adset_id, name, status ('ACTIVE', or 'PAUSED'
        once retired), daily_budget (Int64 minor units; ad sets only: the budget of the
        arm's last stepped day, which Meta keeps on a paused ad set), lifetime_budget (Int64,
        always NA), creative_id (ads only), first_delivery_date (date or None).
        """
        if self._stepped == 0:
            raise ValueError("no day has been stepped yet")
        last = self._stepped - 1
        launched = [c for c in self._creatives if c.launch_day <= last]

        def delivered(day: int | None) -> dt.date | None:
            return None if day is None else self.start + dt.timedelta(days=day)

        firsts = [c.first_delivery_day for c in launched if c.first_delivery_day is not None]
        records = [
            {
                "level": "campaign",
                "object_id": CAMPAIGN_ID,
                "campaign_id": CAMPAIGN_ID,
                "adset_id": None,
                "name": CAMPAIGN_NAME,
                "status": "ACTIVE",
                "daily_budget": pd.NA,
                "creative_id": None,
                "first_delivery_date": delivered(min(firsts, default=None)),
            }
        ]
        for c in launched:
            status = "PAUSED" if c.retire_day is not None and c.retire_day <= last else "ACTIVE"
            common = {
                "campaign_id": CAMPAIGN_ID,
                "adset_id": c.adset_id,
                "status": status,
                "first_delivery_date": delivered(c.first_delivery_day),
            }
            budget = to_minor_units(round(c.last_budget, self._decimals), self.currency)
            records.append(
                {
                    "level": "adset",
                    "object_id": c.adset_id,
                    "name": f"{c.name} ad set",
                    "daily_budget": budget,
                    "creative_id": None,
                    **common,
                }
            )
            records.append(
                {
                    "level": "ad",
                    "object_id": c.ad_id,
                    "name": c.name,
                    "daily_budget": pd.NA,
                    "creative_id": c.creative_id,
                    **common,
                }
            )

        frame = pd.DataFrame.from_records(records)
        frame["daily_budget"] = frame["daily_budget"].astype("Int64")
        frame["lifetime_budget"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
        return frame[[*OBJECT_COLUMNS, "first_delivery_date"]]


def baseline_budgets(simulator: Simulator, day: dt.date, daily_budget: float) -> dict[str, float]:
    """The equal-split policy: a new arm gets 5% of ``daily_budget``, the rest share equally.

    Budgets are split in minor units (leftover units go one each to the oldest arms), so they
    sum to ``daily_budget`` exactly; returned in major units. An arm is new on its launch day
    only; the first day's arms are not new.
    """
    currency = simulator.currency
    live = simulator.live_arms(day)
    new = [arm for arm in live if simulator.is_new(arm, day)]
    established = [arm for arm in live if arm not in new] or live
    new = [arm for arm in new if arm not in established]

    total = to_minor_units(daily_budget, currency)
    new_each = to_minor_units(daily_budget * NEW_ARM_SHARE, currency)
    rest = max(total - new_each * len(new), 0)
    share, remainder = divmod(rest, len(established))
    budgets = {arm: new_each for arm in new}
    for rank, arm in enumerate(established):
        budgets[arm] = share + (1 if rank < remainder else 0)
    return {arm: to_major_units(minor, currency) for arm, minor in budgets.items()}


def simulate_history(
    seed: int,
    start: dt.date,
    end: dt.date,
    n_creatives: int = 10,
    daily_budget: float = 30_000.0,
    currency: str = "USD",
    account_id: str = DEFAULT_ACCOUNT_ID,
    *,
    currency_per_usd: float = 1.0,
    shocks: Sequence[tuple[str, dt.date, float]] = (),
) -> SimulatedHistory:
    """Run the baseline policy (``baseline_budgets``) from ``start`` to ``end`` inclusive.

    The reference spend of the CPM curve and the creatives' wear is the equal share
    ``daily_budget / n_creatives``, so histories at any budget look alike. ``shocks`` are
    ``(adset_id, day, cost_multiplier)``: from ``day``, or from the ad set's launch if it
    launches later; a shock whose ad set never launches by ``end`` is an error.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if daily_budget <= 0:
        raise ValueError(f"daily_budget must be positive, got {daily_budget}")

    simulator = Simulator(
        seed,
        start,
        n_creatives,
        currency,
        account_id,
        reference_daily_spend=daily_budget / n_creatives,
        currency_per_usd=currency_per_usd,
    )
    pending = list(shocks)
    rows: list[dict] = []
    budgets: dict[dt.date, dict[str, float]] = {}
    day = start
    while day <= end:
        budgets[day] = baseline_budgets(simulator, day, daily_budget)
        known = set(simulator.arms())
        due = [shock for shock in pending if shock[1] <= day and shock[0] in known]
        for arm, _, multiplier in due:
            simulator.shock(arm, day, multiplier)
        pending = [shock for shock in pending if shock not in due]
        rows.extend(simulator.step(day, budgets[day]))
        day += dt.timedelta(days=1)
    if pending:
        raise ValueError(f"shocked ad sets never launched by {end}: {[s[0] for s in pending]}")
    return SimulatedHistory(rows, simulator.entities(), budgets, simulator)


def history_frame(rows: Sequence[dict], action_type: str = PURCHASE_ALIASES[0]) -> pd.DataFrame:
    """Insights rows as the typed daily history the model reads (a subset of
    ``validated_meta_metrics``): date, adset_id, channel, spend, impressions, clicks,
    conversions (the one ``action_type``), for driving the allocator from the simulator
    without the warehouse. Validation is skipped: the simulator's rows are well formed."""

    def conversions(row: dict) -> int:
        for action in row.get("actions", ()):
            if action["action_type"] == action_type:
                return int(action["value"])
        return 0

    return pd.DataFrame(
        {
            "date": pd.to_datetime([row["date_start"] for row in rows]),
            "adset_id": [row["adset_id"] for row in rows],
            "channel": [channel_of(row["platform_position"]) for row in rows],
            "spend": np.array([float(row["spend"]) for row in rows]),
            "impressions": np.array([int(row["impressions"]) for row in rows], dtype=np.int64),
            "clicks": np.array([int(row["clicks"]) for row in rows], dtype=np.int64),
            "conversions": np.array([conversions(row) for row in rows], dtype=np.int64),
        }
    )
