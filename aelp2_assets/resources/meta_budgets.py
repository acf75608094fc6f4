"""Writes to Meta: an ad set's ``daily_budget`` (the push) and a campaign's ``status`` (the
pause of a runaway campaign), each read before and read back after.

``MetaBudgets`` builds on the Meta source's client (``MetaGraphClient``: the SDK without its
crash reporter, the token and account checks, usage pacing, errors scrubbed of secrets). Each
write is tried once, never retried here: a rate limit defers the remaining writes to the next
run, "budget too low" keeps the old budget, any other failure is recorded and the next run
re-plans from what Meta reports then. ``NoBudgetWrites`` is wired when writes are impossible
by configuration (dry run, kill switch): it sends nothing, whatever is asked of it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import dagster as dg
from facebook_business.exceptions import FacebookRequestError
from pydantic import Field

from aelp2_assets.resources import meta_api
from aelp2_assets.resources.meta_api import (
    CALL_ERRORS,
    RATE_LIMIT_CODES,
    RATE_LIMIT_SUBCODES,
    MetaApiError,
    MetaApiSource,
)

T = TypeVar("T")

BUDGET_TOO_LOW = (100, 1885272)  # code, subcode: below the account's minimum daily budget
PAUSED = "PAUSED"  # the campaign status a pause sets


class BudgetWriteError(MetaApiError):
    """A read or write of a budget failed; the message is safe to log."""


class BudgetTooLow(BudgetWriteError):
    """Meta refused the budget as below the minimum: the ad set keeps its old budget."""


class RateLimited(BudgetWriteError):
    """Meta's rate limit: the remaining writes wait for the next run."""


@dataclass(frozen=True)
class AdSetBudget:
    """An ad set's budget as Meta reports it now (minor units; ``None``: no such budget)."""

    adset_id: str
    campaign_id: str
    daily_budget: int | None
    lifetime_budget: int | None
    campaign_daily_budget: int | None = None
    campaign_lifetime_budget: int | None = None

    @property
    def unwritable(self) -> str:
        """Why the push must leave the ad set alone ('' when it may set its daily budget)."""
        if self.campaign_daily_budget or self.campaign_lifetime_budget:
            return "under a campaign budget (CBO): left alone"
        if self.lifetime_budget:
            return "lifetime budget: left alone"
        if not self.daily_budget:
            return "no daily budget: left alone"
        return ""


@dataclass(frozen=True)
class CampaignStatus:
    """A campaign's status as Meta reports it now: ``status`` is the one set (ACTIVE, PAUSED,
    ...), ``effective_status`` what Meta does with it."""

    campaign_id: str
    status: str
    effective_status: str


class BudgetWriter(dg.ConfigurableResource):
    """What the push and the pause ask of Meta; ``writes`` says whether anything can be sent."""

    @property
    def writes(self) -> bool:
        return False

    def read_adset(self, adset_id: str) -> AdSetBudget:
        raise BudgetWriteError("budget writes are off (dry run or kill switch)")

    def set_daily_budget(self, adset_id: str, minor: int) -> None:
        raise BudgetWriteError("budget writes are off (dry run or kill switch)")

    def read_campaign(self, campaign_id: str) -> CampaignStatus:
        raise BudgetWriteError("writes are off (dry run or kill switch)")

    def pause_campaign(self, campaign_id: str) -> None:
        raise BudgetWriteError("writes are off (dry run or kill switch)")


class NoBudgetWrites(BudgetWriter):
    """Wired in dry run and under the kill switch: nothing can reach Meta through it."""


class MetaBudgets(BudgetWriter):
    """Ad set daily budgets through the facebook-business SDK (``ads_management`` needed)."""

    api: MetaApiSource = Field(description="The Meta source's resource: token, account, client.")

    @property
    def writes(self) -> bool:
        return True

    def _once(self, what: str, operation: Callable[[], T]) -> T:
        """``operation`` tried once; Meta's error becomes one of this module's, scrubbed."""
        client = self.api.client()
        try:
            return operation()
        except CALL_ERRORS as e:
            # the source's own classification and scrubbing, kept in one place
            problem = client.classify(what, e)
            if isinstance(e, FacebookRequestError):
                code, subcode = e.api_error_code(), e.api_error_subcode()
                if code in RATE_LIMIT_CODES or subcode in RATE_LIMIT_SUBCODES:
                    problem = RateLimited(str(problem))
                elif (code, subcode) == BUDGET_TOO_LOW:
                    problem = BudgetTooLow(str(problem))
            if not isinstance(problem, BudgetWriteError | meta_api.MetaTokenError):
                problem = BudgetWriteError(str(problem))
        # raised outside the except: no chain carrying the SDK's request context
        raise problem

    def _node(self, object_id: str, fields: str) -> dict:
        client = self.api.client()
        body = client.api.call("GET", (object_id,), params={"fields": fields}).json()
        if not isinstance(body, dict):
            raise BudgetWriteError(f"reading {object_id}: not a Graph API object")
        return body

    def read_adset(self, adset_id: str) -> AdSetBudget:
        """The ad set's daily and lifetime budget, and its campaign's, as Meta reports now."""
        adset = self._once(
            f"reading ad set {adset_id}",
            lambda: self._node(adset_id, "id,campaign_id,daily_budget,lifetime_budget"),
        )
        campaign_id = str(adset.get("campaign_id") or "")
        campaign = (
            self._once(
                f"reading campaign {campaign_id}",
                lambda: self._node(campaign_id, "id,daily_budget,lifetime_budget"),
            )
            if campaign_id
            else {}
        )
        return AdSetBudget(
            adset_id=adset_id,
            campaign_id=campaign_id,
            daily_budget=meta_api.minor_units(adset.get("daily_budget"), "daily_budget"),
            lifetime_budget=meta_api.minor_units(adset.get("lifetime_budget"), "lifetime_budget"),
            campaign_daily_budget=meta_api.minor_units(
                campaign.get("daily_budget"), "daily_budget"
            ),
            campaign_lifetime_budget=meta_api.minor_units(
                campaign.get("lifetime_budget"), "lifetime_budget"
            ),
        )

    def set_daily_budget(self, adset_id: str, minor: int) -> None:
        """``POST /<ad set id>`` with ``daily_budget`` in minor units (an integer)."""
        if not isinstance(minor, int) or isinstance(minor, bool) or minor <= 0:
            raise BudgetWriteError(f"ad set {adset_id}: {minor!r} is not a budget in minor units")
        client = self.api.client()
        self._once(
            f"setting ad set {adset_id} daily_budget {minor}",
            lambda: client.api.call("POST", (adset_id,), params={"daily_budget": str(minor)}),
        )

    def read_campaign(self, campaign_id: str) -> CampaignStatus:
        """The campaign's status and effective status, as Meta reports now."""
        campaign = self._once(
            f"reading campaign {campaign_id}",
            lambda: self._node(campaign_id, "id,status,effective_status"),
        )
        return CampaignStatus(
            campaign_id=campaign_id,
            status=str(campaign.get("status") or ""),
            effective_status=str(campaign.get("effective_status") or ""),
        )

    def pause_campaign(self, campaign_id: str) -> None:
        """``POST /<campaign id>`` with ``status=PAUSED``: the campaign stops delivering."""
        client = self.api.client()
        self._once(
            f"pausing campaign {campaign_id}",
            lambda: client.api.call("POST", (campaign_id,), params={"status": PAUSED}),
        )
