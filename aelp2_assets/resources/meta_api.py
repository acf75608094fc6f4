"""The Meta Marketing API source: insights and the account's objects through facebook-business.

``MetaApiSource`` has the verbs of every insights source (``sources.py``); ``MetaGraphClient``
underneath does the talking. What it guards against, each where it is handled:

- **Grain.** Insights at level ad, one row per account-local day (``time_increment`` 1), the
  placement breakdowns requested together, action breakdown ``action_type`` only, ads in every
  delivery state (archived and deleted ones included, so history is complete).
- **Size.** One day is read synchronously; a longer range through an async report job, polled
  within a bounded wait and read only once it says "Job Completed". "Please reduce the amount of
  data" halves the range down to single days, then the page size, and still returns each row
  once (a failed attempt's rows are dropped, never merged with its retry's).
- **Pages.** Pagination stops when there is no ``next`` page and when a cursor repeats.
- **Limits and errors.** Meta's usage headers are read after every response and calls slow down
  before the limit; transient errors are retried by tenacity with exponential backoff, waiting
  at least what Meta's ``estimated_time_to_regain_access`` says; permanent errors (an invalid
  token, a missing permission, a bad parameter) fail at once with a clear message.
- **Secrets.** Errors are rebuilt from their safe parts and scrubbed of the token, app secret
  and proof; urllib3's request log lines are scrubbed too. Nothing calls Meta before a verb runs.
"""

import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar

import dagster as dg
import pandas as pd
import requests
from facebook_business.adobjects.ad import Ad
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.adobjects.adset import AdSet
from facebook_business.adobjects.adsinsights import AdsInsights
from facebook_business.adobjects.campaign import Campaign
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from pydantic import Field, PrivateAttr
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.sources import InsightsSource, with_account
from aelp2_assets.tables import OBJECT_COLUMNS, RAW_KEY

T = TypeVar("T")

# What the insights request asks for. The placement breakdowns go together: Meta rejects some
# partial combinations (platform_position without publisher_platform).
INSIGHTS_FIELDS = (
    AdsInsights.Field.account_id,
    AdsInsights.Field.account_currency,
    AdsInsights.Field.campaign_id,
    AdsInsights.Field.campaign_name,
    AdsInsights.Field.adset_id,
    AdsInsights.Field.adset_name,
    AdsInsights.Field.ad_id,
    AdsInsights.Field.ad_name,
    AdsInsights.Field.spend,
    AdsInsights.Field.impressions,
    AdsInsights.Field.clicks,
    AdsInsights.Field.actions,
    AdsInsights.Field.action_values,
    AdsInsights.Field.date_start,
    AdsInsights.Field.date_stop,
)
BREAKDOWNS = (
    AdsInsights.Breakdowns.publisher_platform,
    AdsInsights.Breakdowns.platform_position,
    AdsInsights.Breakdowns.impression_device,
)
ACTION_BREAKDOWNS = (AdsInsights.ActionBreakdowns.action_type,)


def _states(effective_status: type, deleted: bool) -> tuple[str, ...]:
    values = (v for k, v in vars(effective_status).items() if not k.startswith("_"))
    return tuple(sorted(v for v in values if deleted or v != "DELETED"))


# Every delivery state of an ad. Deleted ads keep tracking for 28 days after their last delivery
# and the account's insights edge only returns them when the filter names DELETED.
AD_STATES = _states(Ad.EffectiveStatus, deleted=True)
# The object edges refuse DELETED (Meta never lists deleted objects as edges) and list archived
# objects only when asked; each edge accepts its own object's states.
EDGE_STATES = {
    "campaigns": _states(Campaign.EffectiveStatus, deleted=False),
    "adsets": _states(AdSet.EffectiveStatus, deleted=False),
    "ads": _states(Ad.EffectiveStatus, deleted=False),
}

ASYNC_COMPLETED = "Job Completed"
ASYNC_GAVE_UP = ("Job Failed", "Job Skipped")

# Error families, from Meta's error reference and the shapes in
# ../shared/data/meta_insights_api_examples/graph_api_error_and_status_shapes.json.
TOKEN_CODE = 190  # invalid or expired token, whatever the subcode
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
RATE_LIMIT_SUBCODES = frozenset({2446079, 1487742, 1504022})
TRANSIENT_CODES = frozenset({1, 2, 104, 960, 2601})
PERMISSION_CODES = frozenset({10, 200, *range(201, 300)})
UNKNOWN_SUBCODE = 99  # code 1 subcode 99: retried; if it persists, the request is made smaller
UNSUPPORTED_GET_SUBCODE = 33  # code 100 subcode 33 while polling a report: a known race
TOO_MUCH_DATA = "reduce the amount of data"

SMALLEST_PAGE = 25  # the page size below which "reduce the amount of data" is given up on
MAX_PAGES = 10_000  # a runaway pagination guard; real pulls need a few dozen pages


class MetaApiError(RuntimeError):
    """A Meta call that failed for good; its text never holds a secret."""


class MetaTokenError(MetaApiError):
    """Meta refused the access token (code 190): it must be re-issued."""


class MetaAccountMismatch(MetaApiError):
    """The ad account's currency or time zone differs from the settings."""


class _Transient(Exception):
    """A failure worth retrying; ``regain_seconds`` is Meta's own estimate of the wait."""

    def __init__(self, message: str, regain_seconds: float = 0.0, unknown: bool = False):
        super().__init__(message)
        self.regain_seconds = regain_seconds
        self.unknown = unknown


class _TooMuchData(Exception):
    """Meta asks for a smaller request."""


class _UnreadableResponse(Exception):
    """An HTTP error whose body is not the Graph API's JSON (a proxy's error page)."""

    def __init__(self, status: int, headers: Mapping[str, str]):
        super().__init__(
            f"HTTP {status} without a Graph API error body"
            if status
            else "a response the SDK could not read"
        )
        self.status = status
        self.headers = headers


# What one SDK call may raise; ``MetaGraphClient.classify`` turns each into this module's errors.
CALL_ERRORS = (FacebookRequestError, requests.RequestException, _UnreadableResponse)


class Clock(Protocol):
    """What the source waits by: tests replace ``clock`` below so no test sleeps."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# The clock every client is built with (module-level so a whole-graph test can replace it).
clock: Clock = SystemClock()


def _log() -> logging.Logger:
    return dg.get_dagster_logger()


# Secrets in text.

_SECRET_PARAMS = re.compile(
    r"((?:access_token|appsecret_proof|input_token|client_secret)=)[^&\s'\"]+", re.IGNORECASE
)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without the given secrets and without the values of secret query parameters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _SECRET_PARAMS.sub(r"\1[redacted]", text)


class _ScrubQueryStrings(logging.Filter):
    """urllib3 logs each request's URL at DEBUG, query string (and so the token) included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _scrub_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _ScrubQueryStrings) for f in logger.filters):
        logger.addFilter(_ScrubQueryStrings())


# Usage headers.


@dataclass(frozen=True)
class Usage:
    """The highest usage Meta reported in one response's headers."""

    percent: float = 0.0  # share of the rolling limit used, 0-100
    header: str = ""  # which header reported it
    reset_seconds: float | None = None  # x-ad-account-usage reset_time_duration, when highest
    regain_seconds: float = 0.0  # estimated_time_to_regain_access (minutes in the header)


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def read_usage(headers: Mapping[str, str] | None) -> Usage:
    """Meta's four usage headers, compared case-insensitively, as one ``Usage``.

    ``x-app-usage`` and ``x-business-use-case-usage`` give call count, CPU time and total time
    as percentages (the BUC header per business, as a list of use cases, with the minutes until
    access is regained); ``x-ad-account-usage`` the account's utilisation and the seconds until
    it resets; ``x-fb-ads-insights-throttle`` the insights utilisation of app and account.
    """
    lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
    readings: list[tuple[float, str, float | None]] = []
    regain_minutes = 0.0

    app = _json_header(lowered, "x-app-usage")
    if isinstance(app, dict):
        shares = (app.get(k) for k in ("call_count", "total_time", "total_cputime"))
        readings.append((max(_number(v) for v in shares), "x-app-usage", None))

    account = _json_header(lowered, "x-ad-account-usage")
    if isinstance(account, dict):
        reset = account.get("reset_time_duration")
        readings.append(
            (
                _number(account.get("acc_id_util_pct")),
                "x-ad-account-usage",
                _number(reset) if reset is not None else None,
            )
        )

    business = _json_header(lowered, "x-business-use-case-usage")
    if isinstance(business, dict):
        for cases in business.values():
            for case in cases if isinstance(cases, list) else [cases]:
                if not isinstance(case, dict):
                    continue
                shares = (case.get(k) for k in ("call_count", "total_time", "total_cputime"))
                share = max(_number(v) for v in shares)
                readings.append((share, "x-business-use-case-usage", None))
                regain_minutes = max(
                    regain_minutes, _number(case.get("estimated_time_to_regain_access"))
                )

    throttle = _json_header(lowered, "x-fb-ads-insights-throttle")
    if isinstance(throttle, dict):
        shares = (throttle.get(k) for k in ("app_id_util_pct", "acc_id_util_pct"))
        readings.append((max(_number(v) for v in shares), "x-fb-ads-insights-throttle", None))

    percent, header, reset = max(readings, key=lambda r: r[0], default=(0.0, "", None))
    return Usage(percent, header, reset, regain_minutes * 60)


def pause_before_next_call(
    usage: Usage, slowdown_pct: float, pause_seconds: float, max_wait: float
) -> float:
    """Seconds to wait before the next call: what Meta says it needs to regain access, else a
    pause growing from nothing at the slowdown threshold to the full reset time (or
    ``pause_seconds`` when Meta names none) at 100% usage; never more than ``max_wait``."""
    if usage.regain_seconds > 0:
        return min(usage.regain_seconds, max_wait)
    if usage.percent < slowdown_pct:
        return 0.0
    full = usage.reset_seconds if usage.reset_seconds else pause_seconds
    share = 1.0 if slowdown_pct >= 100 else (usage.percent - slowdown_pct) / (100 - slowdown_pct)
    return min(full * min(share, 1.0), max_wait)


class _PacedApi(FacebookAdsApi):
    """The SDK's API object, pointed at ``graph_url``, pausing before Meta's limits.

    Every SDK call passes through ``call``, so the usage headers of every response are read
    here. An HTTP error with a non-JSON body (a proxy's 502 page) would be taken by the SDK for a
    success; it is raised here instead.
    """

    graph_url: str = "https://graph.facebook.com"
    on_headers: Callable[[Mapping[str, str]], None] | None = None

    def call(
        self,
        method,
        path,
        params=None,
        headers=None,
        files=None,
        url_override=None,
        api_version=None,
    ):
        try:
            response = super().call(
                method,
                path,
                params=params,
                headers=headers,
                files=files,
                url_override=url_override or self.graph_url,
                api_version=api_version,
            )
        except (TypeError, AttributeError, KeyError):
            # The SDK's error parser trips over some non-JSON error bodies; the request is
            # treated like any other failed call without a readable body.
            raise _UnreadableResponse(0, {}) from None
        if response.status() >= 400:
            raise _UnreadableResponse(response.status(), response.headers())
        if self.on_headers is not None:
            self.on_headers(response.headers())
        return response


@dataclass(frozen=True)
class MetaApiConfig:
    """Everything the client needs apart from the secrets (see ``MetaApiSource``)."""

    ad_account_id: str
    api_version: str
    graph_url: str
    app_id: str
    connect_timeout_seconds: float
    read_timeout_seconds: float
    page_limit: int
    max_attempts: int
    retry_base_seconds: float
    retry_max_wait_seconds: float
    usage_slowdown_pct: float
    usage_pause_seconds: float
    async_poll_seconds: float
    async_max_wait_seconds: float
    async_max_jobs: int
    token_expiry_warning_days: int
    currency: str
    timezone: str


class MetaGraphClient:
    """One ad account through the facebook-business SDK (plain Python, no Dagster state)."""

    def __init__(
        self,
        config: MetaApiConfig,
        access_token: str,
        app_secret: str | None = None,
        wait_clock: Clock | None = None,
    ):
        self.config = config
        self.clock = wait_clock or clock
        self._token = access_token
        self._app_secret = app_secret or None
        proof = (
            hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()
            if app_secret
            else ""
        )
        app_token = f"{config.app_id}|{app_secret}" if config.app_id and app_secret else ""
        self._secrets = tuple(s for s in (access_token, app_secret, proof, app_token) if s)
        _scrub_urllib3_logs()
        # crash_log=False: by default the SDK installs a sys.excepthook that posts tracebacks of
        # SDK errors to Meta (facebook_business/crashreporter.py). It stays off.
        self.api: _PacedApi = _PacedApi.init(
            app_id=config.app_id or None,
            app_secret=self._app_secret,
            access_token=access_token,
            api_version=config.api_version,
            timeout=(config.connect_timeout_seconds, config.read_timeout_seconds),
            crash_log=False,
        )
        self.api.graph_url = config.graph_url
        self.api.on_headers = self._pace
        self._account: dict | None = None

    # Errors and retries.

    def _safe(self, text: object) -> str:
        return scrub(str(text), self._secrets)

    def _describe(self, error: FacebookRequestError) -> str:
        body = error.body() if isinstance(error.body(), dict) else {}
        details = body.get("error") if isinstance(body.get("error"), dict) else {}
        parts = [f"HTTP {error.http_status()}", f"code {error.api_error_code()}"]
        if error.api_error_subcode() is not None:
            parts.append(f"subcode {error.api_error_subcode()}")
        text = ", ".join(parts)
        if error.api_error_type():
            text += f" ({error.api_error_type()})"
        text += f": {error.api_error_message() or 'no message'}"
        for key in ("error_user_title", "error_user_msg"):
            if details.get(key):
                text += f"; {details[key]}"
        if details.get("fbtrace_id"):
            text += f" (fbtrace_id {details['fbtrace_id']})"
        return self._safe(text)

    def classify(self, what: str, error: Exception, polling: bool = False) -> Exception:
        """The exception ``error`` (one of ``CALL_ERRORS``) becomes: transient, too much data,
        or final (``MetaTokenError``, ``MetaApiError``), its text scrubbed of secrets."""
        if isinstance(error, _UnreadableResponse):
            regain = read_usage(error.headers).regain_seconds
            if error.status == 0 or error.status >= 500:
                return _Transient(f"{what}: {error}", regain)
            return MetaApiError(f"{what}: {error}")
        if isinstance(error, requests.RequestException):
            # str(error) may hold the URL with its query string: only the kind is kept.
            return _Transient(f"{what}: {type(error).__name__} talking to {self.config.graph_url}")
        assert isinstance(error, FacebookRequestError)
        code, subcode = error.api_error_code(), error.api_error_subcode()
        message = str(error.api_error_message() or "")
        described = f"{what}: {self._describe(error)}"
        if code == TOKEN_CODE:
            return MetaTokenError(
                f"{described}. Meta rejected the access token: it must be re-issued. Create a"
                " new token with ads_read on the ad account (a system user token does not"
                " expire) and set META_ACCESS_TOKEN."
            )
        if code == 1 and TOO_MUCH_DATA in message.lower():
            return _TooMuchData(described)
        headers = error.http_headers() or {}
        regain = read_usage(headers).regain_seconds
        if code in RATE_LIMIT_CODES or subcode in RATE_LIMIT_SUBCODES:
            return _Transient(described, regain)
        if code == 1 and subcode == UNKNOWN_SUBCODE:
            return _Transient(described, regain, unknown=True)
        if polling and code == 100 and subcode == UNSUPPORTED_GET_SUBCODE:
            return _Transient(described, regain)
        if code in TRANSIENT_CODES or error.api_transient_error():
            return _Transient(described, regain)
        if code is None:
            # No Graph error object: Meta's "Service Unavailable" answered with HTTP 200, or
            # an error page the SDK parsed as text.
            return _Transient(described, regain)
        if code in PERMISSION_CODES:
            return MetaApiError(
                f"{described}. The token lacks a permission Meta requires: reading insights"
                " and objects needs ads_read on the ad account (pushing budgets later needs"
                " ads_management)."
            )
        if (error.http_status() or 0) >= 500 and code != 100:
            return _Transient(described, regain)
        return MetaApiError(described)

    def _retry_wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        backoff = self.config.retry_base_seconds * 2 ** (state.attempt_number - 1)
        backoff = min(backoff, self.config.retry_max_wait_seconds)
        return max(backoff, getattr(error, "regain_seconds", 0.0))

    def _stop(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        too_long = getattr(error, "regain_seconds", 0.0) > self.config.retry_max_wait_seconds
        return too_long or state.attempt_number >= self.config.max_attempts

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        _log().warning(
            f"Meta call failed (attempt {state.attempt_number} of {self.config.max_attempts}),"
            f" retrying in {state.upcoming_sleep:.0f} s: {error}"
        )

    def call(self, what: str, operation: Callable[[], T], polling: bool = False) -> T:
        """``operation`` (one SDK call), retried on transient errors by tenacity.

        Raises ``_TooMuchData`` when Meta asks for a smaller request (also when code 1 subcode
        99 persists through every attempt), ``MetaTokenError`` on code 190, and
        ``MetaApiError`` otherwise; each is raised outside the ``except`` that caught the SDK's
        error, so no exception chain carries the SDK's request context.
        """

        def attempt() -> T:
            try:
                return operation()
            except CALL_ERRORS as e:
                problem = self.classify(what, e, polling)
            raise problem

        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=self._stop,
            wait=self._retry_wait,
            sleep=self.clock.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as error:
            last = error
        if last.unknown:
            raise _TooMuchData(f"{last} (persisted through {self.config.max_attempts} attempts)")
        if last.regain_seconds > self.config.retry_max_wait_seconds:
            raise MetaApiError(
                f"{last}. Meta asks to wait {last.regain_seconds / 60:.0f} min before calling"
                f" again, more than META_RETRY_MAX_WAIT_SECONDS"
                f" ({self.config.retry_max_wait_seconds:.0f} s); the next run will try again."
            )
        raise MetaApiError(f"{last} (gave up after {self.config.max_attempts} attempts)")

    def _pace(self, headers: Mapping[str, str]) -> None:
        usage = read_usage(headers)
        wait = pause_before_next_call(
            usage,
            self.config.usage_slowdown_pct,
            self.config.usage_pause_seconds,
            self.config.retry_max_wait_seconds,
        )
        if wait > 0:
            _log().warning(
                f"Meta usage at {usage.percent:.0f}% ({usage.header or 'access regain time'});"
                f" pausing {wait:.0f} s before the next call"
            )
            self.clock.sleep(wait)

    # Reading.

    def _get(self, path: tuple[str, ...], params: dict) -> dict:
        body = self.api.call("GET", path, params=params).json()
        if not isinstance(body, dict):
            raise _UnreadableResponse(0, {})
        return body

    def pages(self, what: str, path: tuple[str, ...], params: dict) -> list[dict]:
        """Every row of a paginated edge. Stops when a page has no ``next``, and when Meta
        hands back a cursor it gave before (the SDK's own cursor would loop on that, and
        would also stop early at an empty page that still has a ``next``)."""
        rows: list[dict] = []
        after: str | None = None
        seen: set[str] = set()
        for page in range(1, MAX_PAGES + 1):
            page_params = {**params, **({"after": after} if after else {})}
            body = self.call(f"{what}, page {page}", lambda p=page_params: self._get(path, p))
            data = body.get("data")
            if not isinstance(data, list):
                raise MetaApiError(f"{what}, page {page}: the response holds no data list")
            rows.extend(data)
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
            next_after = cursors.get("after")
            if not paging.get("next") or not next_after:
                return rows
            if next_after in seen:
                _log().warning(
                    f"{what}: page {page} repeats an earlier cursor; pagination stops there"
                )
                return rows
            seen.add(next_after)
            after = next_after
        raise MetaApiError(f"{what}: more than {MAX_PAGES} pages; pagination stopped")

    def account(self) -> dict:
        """The ad account's currency, time zone and minimum daily budget (read once)."""
        if self._account is None:
            fields = [
                AdAccount.Field.id,
                AdAccount.Field.account_id,
                AdAccount.Field.currency,
                AdAccount.Field.timezone_name,
                AdAccount.Field.min_daily_budget,
            ]
            node = AdAccount(fbid=self.config.ad_account_id, api=self.api)
            self._account = self.call(
                f"reading ad account {self.config.ad_account_id}",
                lambda: node.api_get(fields=fields).export_all_data(),
            )
        return self._account

    def check_account(self) -> None:
        """The account's time zone and currency must be the settings': partitions are its local
        days and budgets its minor units. A mismatch fails before anything is fetched."""
        account = self.account()
        problems = []
        if account.get("timezone_name") != self.config.timezone:
            problems.append(
                f"time zone {account.get('timezone_name')!r} but AELP2_ACCOUNT_TIMEZONE is"
                f" {self.config.timezone!r} (partitions would be the wrong days)"
            )
        if str(account.get("currency", "")).upper() != self.config.currency:
            problems.append(
                f"currency {account.get('currency')!r} but AELP2_ACCOUNT_CURRENCY is"
                f" {self.config.currency!r} (budgets would be in the wrong units)"
            )
        if problems:
            raise MetaAccountMismatch(
                f"ad account {self.config.ad_account_id} reports " + "; and ".join(problems)
            )

    def check_token(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """Warn when the token expires within ``token_expiry_warning_days``; its expiry.

        Meta's ``debug_token`` answers with ``expires_at`` (0: never) and
        ``data_access_expires_at``. A system user token cannot inspect itself: with META_APP_ID
        and META_APP_SECRET set the app access token asks (with its own appsecret_proof). When
        Meta will not say, that is a warning, not a failure; code 190 fails the run.
        """
        now = now or dt.datetime.now(dt.UTC)
        params: dict[str, str] = {"input_token": self._token}
        if self.config.app_id and self._app_secret:
            app_token = f"{self.config.app_id}|{self._app_secret}"
            params["access_token"] = app_token
            params["appsecret_proof"] = hmac.new(
                self._app_secret.encode(), app_token.encode(), hashlib.sha256
            ).hexdigest()
        what = "checking the access token"
        try:
            body = self.call(what, lambda: self._get(("debug_token",), params))
        except MetaTokenError:
            raise
        except (MetaApiError, _TooMuchData) as error:
            _log().warning(
                f"could not read the access token's expiry ({error}); set META_APP_ID and"
                " META_APP_SECRET so the check can use the app access token"
            )
            return None
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        if not data:
            _log().warning(f"{what}: Meta did not say when the access token expires")
            return None
        if data.get("is_valid") is False:
            raise MetaTokenError(
                "checking the access token: Meta says it is not valid. It must be re-issued:"
                " create a new token with ads_read on the ad account and set META_ACCESS_TOKEN."
            )
        ends = [
            dt.datetime.fromtimestamp(int(data[key]), dt.UTC)
            for key in ("expires_at", "data_access_expires_at")
            if str(data.get(key, "0")).isdigit() and int(data.get(key, 0)) > 0
        ]
        if not ends:
            _log().info("the access token does not expire")
            return None
        expiry = min(ends)
        left = expiry - now
        if left <= dt.timedelta(days=self.config.token_expiry_warning_days):
            _log().warning(
                f"the Meta access token expires on {expiry:%Y-%m-%d %H:%M} UTC, in"
                f" {max(left.total_seconds(), 0) / 86400:.1f} days: re-issue it and set"
                " META_ACCESS_TOKEN before then"
            )
        else:
            _log().info(f"the Meta access token is valid until {expiry:%Y-%m-%d} UTC")
        return expiry

    # Insights.

    def insights_params(self, start: dt.date, end: dt.date) -> dict:
        """The insights request for the account-local days ``start..end`` (Meta reads
        ``time_range`` in the ad account's time zone)."""
        return {
            "level": AdsInsights.Level.ad,
            "time_increment": "1",
            "time_range": {"since": start.isoformat(), "until": end.isoformat()},
            "breakdowns": list(BREAKDOWNS),
            "action_breakdowns": list(ACTION_BREAKDOWNS),
            "filtering": [
                {"field": "ad.effective_status", "operator": "IN", "value": list(AD_STATES)}
            ],
            "fields": list(INSIGHTS_FIELDS),
        }

    def insights(self, start: dt.date, end: dt.date) -> list[dict]:
        """Every insights row of the days ``start..end``, once each (unique on ``RAW_KEY``)."""
        rows = self._insights_range(start, end, self.config.page_limit)
        return unique_rows([insights_row(row) for row in rows])

    def _insights_range(self, start: dt.date, end: dt.date, limit: int) -> list[dict]:
        try:
            return self._fetch(start, end, limit)
        except _TooMuchData as error:
            reason = str(error)
        if start < end:
            middle = start + (end - start) // 2
            _log().info(f"Meta asked for less data ({reason}); splitting {start}..{end} in two")
            return self._insights_range(start, middle, limit) + self._insights_range(
                middle + dt.timedelta(days=1), end, limit
            )
        if limit > SMALLEST_PAGE:
            smaller = max(SMALLEST_PAGE, limit // 2)
            _log().info(f"Meta asked for less data ({reason}); {start} again, pages of {smaller}")
            return self._insights_range(start, end, smaller)
        raise MetaApiError(
            f"{reason}: still too much for one day at {SMALLEST_PAGE} rows a page; fewer fields"
            " or breakdowns would be needed"
        )

    def _fetch(self, start: dt.date, end: dt.date, limit: int) -> list[dict]:
        params = self.insights_params(start, end)
        if start == end:
            sync = {**params, "fields": ",".join(INSIGHTS_FIELDS), "limit": limit}
            return self.pages(f"insights {start}", (self.config.ad_account_id, "insights"), sync)
        return self._fetch_async(start, end, params, limit)

    def _fetch_async(self, start: dt.date, end: dt.date, params: dict, limit: int) -> list[dict]:
        """A report job for ``start..end``: created, polled within the bounded wait, read once
        completed; a failed or skipped job is created again up to ``async_max_jobs`` times."""
        what = f"insights report {start}..{end}"
        account = AdAccount(fbid=self.config.ad_account_id, api=self.api)
        last = ""
        for job in range(1, self.config.async_max_jobs + 1):
            run = self.call(
                f"creating {what}", lambda: account.get_insights(params=dict(params), is_async=True)
            )
            run_id = str(run.get(AdReportRun.Field.id) or "")
            if not run_id.isdigit():
                raise MetaApiError(f"creating {what}: Meta answered without a report run id")
            status = self._wait_for_report(what, run_id)
            if status.get(AdReportRun.Field.async_status) == ASYNC_COMPLETED:
                return self.pages(f"{what} (run {run_id})", (run_id, "insights"), {"limit": limit})
            last = _report_problem(status)
            _log().warning(f"{what}: run {run_id} ended with {last} (job {job})")
        raise MetaApiError(
            f"{what}: {self.config.async_max_jobs} report jobs failed; the last ended with {last}"
        )

    def _status_fields(self) -> list[str]:
        fields = [AdReportRun.Field.async_status, AdReportRun.Field.async_percent_completion]
        if int(self.config.api_version[1:].split(".")[0]) >= 25:
            # A failed job says why from Graph API v25.0 on.
            fields += [
                AdReportRun.Field.error_code,
                AdReportRun.Field.error_subcode,
                AdReportRun.Field.error_message,
                AdReportRun.Field.error_user_title,
                AdReportRun.Field.error_user_msg,
            ]
        return fields

    def _wait_for_report(self, what: str, run_id: str) -> dict:
        """The report's status once it completed, failed or was skipped. Its percentage alone
        proves nothing (it can read 100 while the job still runs)."""
        began = self.clock.monotonic()
        fields = self._status_fields()
        while True:
            node = AdReportRun(fbid=run_id, api=self.api)
            status = self.call(
                f"polling {what} (run {run_id})",
                lambda n=node: n.api_get(fields=fields).export_all_data(),
                polling=True,
            )
            state = status.get(AdReportRun.Field.async_status)
            if state == ASYNC_COMPLETED or state in ASYNC_GAVE_UP:
                return status
            waited = self.clock.monotonic() - began
            if waited + self.config.async_poll_seconds > self.config.async_max_wait_seconds:
                raise MetaApiError(
                    f"{what}: run {run_id} did not complete within"
                    f" META_ASYNC_MAX_WAIT_SECONDS ({self.config.async_max_wait_seconds:.0f} s);"
                    f" last status {state!r} at"
                    f" {status.get(AdReportRun.Field.async_percent_completion)}%"
                )
            self.clock.sleep(self.config.async_poll_seconds)

    # The account's objects.

    def _edge(self, edge: str, fields: tuple[str, ...]) -> list[dict]:
        params = {
            "fields": ",".join(fields),
            "effective_status": list(EDGE_STATES[edge]),
            "limit": self.config.page_limit,
        }
        return self.pages(edge, (self.config.ad_account_id, edge), params)

    def entities(self) -> pd.DataFrame:
        """Campaigns, ad sets and ads in every state Meta lists (deleted ones are never listed),
        with the account's currency, time zone and minimum daily budget on each row."""
        account = self.account()
        objects = ("id", "name", "status", "effective_status")
        budgets = ("daily_budget", "lifetime_budget")
        campaigns = self._edge("campaigns", (*objects, *budgets))
        adsets = self._edge("adsets", (*objects, "campaign_id", *budgets))
        ads = self._edge("ads", (*objects, "campaign_id", "adset_id", "creative"))
        records = [
            _entity("campaign", c, campaign_id=c.get("id"), adset_id=None) for c in campaigns
        ]
        records += [
            _entity("adset", a, campaign_id=a.get("campaign_id"), adset_id=a.get("id"))
            for a in adsets
        ]
        records += [
            _entity(
                "ad",
                a,
                campaign_id=a.get("campaign_id"),
                adset_id=a.get("adset_id"),
                creative_id=(a.get("creative") or {}).get("id"),
            )
            for a in ads
        ]
        frame = pd.DataFrame.from_records(records, columns=list(OBJECT_COLUMNS))
        minimum = minor_units(account.get("min_daily_budget"), "min_daily_budget")
        return with_account(
            frame,
            str(account.get("currency", "")).upper(),
            str(account.get("timezone_name", "")),
            pd.NA if minimum is None else minimum,
        )


def _report_problem(status: Mapping[str, Any]) -> str:
    state = status.get(AdReportRun.Field.async_status)
    text = f"{state!r}"
    if status.get(AdReportRun.Field.error_code) is not None:
        text += f" (error {status.get(AdReportRun.Field.error_code)}"
        if status.get(AdReportRun.Field.error_subcode) is not None:
            text += f"/{status.get(AdReportRun.Field.error_subcode)}"
        text += f": {status.get(AdReportRun.Field.error_message) or ''}"
        if status.get(AdReportRun.Field.error_user_msg):
            text += f" {status.get(AdReportRun.Field.error_user_msg)}"
        text += ")"
    return text


def minor_units(value: Any, field: str) -> int | None:
    """A budget as Meta states it (a string of minor units) as an integer; ``None`` when unset.
    Meta reports an unset budget as "0" (an ad set on a daily budget has lifetime_budget "0")."""
    text = "" if value is None else str(value).strip()
    try:
        amount = Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount != amount.to_integral_value():
        raise MetaApiError(f"{field} {text!r} is not a whole number of minor units")
    return int(amount) or None


def _entity(level: str, raw: dict, **ids: Any) -> dict:
    return {
        "level": level,
        "object_id": raw.get("id"),
        "name": raw.get("name"),
        # effective_status: what Meta does with the object (a paused campaign's ad sets read
        # CAMPAIGN_PAUSED), archived included
        "status": raw.get("effective_status") or raw.get("status"),
        "daily_budget": minor_units(raw.get("daily_budget"), "daily_budget"),
        "lifetime_budget": minor_units(raw.get("lifetime_budget"), "lifetime_budget"),
        "creative_id": None,
        **ids,
    }


def _text(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [_text(item) for item in value]
    if isinstance(value, dict):
        return {key: _text(item) for key, item in value.items()}
    return value


def insights_row(raw: dict) -> dict:
    """An insights row as every source returns it: Meta's keys, numbers as strings, ``actions``
    left out when Meta left it out."""
    return {key: _text(value) for key, value in raw.items()}


def unique_rows(rows: list[dict]) -> list[dict]:
    """``rows`` without exact duplicates (overlapping pages) and unique on ``RAW_KEY``: when
    two rows share a key but differ (Meta restated the day between two pages), the later one,
    read last, is kept, and a warning says so."""
    kept: dict[object, dict] = {}
    exact = conflicting = 0
    for position, row in enumerate(rows):
        key_values = tuple(row.get(column) for column in RAW_KEY)
        key: object = key_values if all(v is not None for v in key_values) else position
        if key in kept:
            if kept[key] == row:
                exact += 1
                continue
            conflicting += 1
            del kept[key]
        kept[key] = row
    if exact or conflicting:
        _log().warning(
            f"dropped {exact} duplicate rows and {conflicting} older versions of rows that"
            " Meta returned twice across pages"
        )
    return list(kept.values())


class MetaApiSource(InsightsSource):
    """The Meta Marketing API, one ad account, through the facebook-business SDK.

    The token and app secret arrive only through ``dg.EnvVar`` (``resources_for``). Nothing
    is called when definitions load; each run checks the token's expiry and the account's time
    zone and currency before it fetches anything.
    """

    access_token: str = Field(description="META_ACCESS_TOKEN (through dg.EnvVar only).")
    app_secret: str | None = Field(
        None, description="META_APP_SECRET (through dg.EnvVar only), when META_APP_ID is set."
    )
    app_id: str = Field("", description="META_APP_ID: the app that issued the token.")
    ad_account_id: str = Field(description="META_AD_ACCOUNT_ID, 'act_<id>'.")
    api_version: str = Field(description="META_API_VERSION.")
    graph_url: str = Field(description="META_GRAPH_URL.")
    connect_timeout_seconds: float = Field(description="META_CONNECT_TIMEOUT_SECONDS.")
    read_timeout_seconds: float = Field(description="META_READ_TIMEOUT_SECONDS.")
    page_limit: int = Field(description="META_PAGE_LIMIT.")
    max_attempts: int = Field(description="META_MAX_ATTEMPTS.")
    retry_base_seconds: float = Field(description="META_RETRY_BASE_SECONDS.")
    retry_max_wait_seconds: float = Field(description="META_RETRY_MAX_WAIT_SECONDS.")
    usage_slowdown_pct: float = Field(description="META_USAGE_SLOWDOWN_PCT.")
    usage_pause_seconds: float = Field(description="META_USAGE_PAUSE_SECONDS.")
    async_poll_seconds: float = Field(description="META_ASYNC_POLL_SECONDS.")
    async_max_wait_seconds: float = Field(description="META_ASYNC_MAX_WAIT_SECONDS.")
    async_max_jobs: int = Field(description="META_ASYNC_MAX_JOBS.")
    token_expiry_warning_days: int = Field(description="META_TOKEN_EXPIRY_WARNING_DAYS.")
    currency: str = Field(description="AELP2_ACCOUNT_CURRENCY, checked against the account.")
    timezone: str = Field(description="AELP2_ACCOUNT_TIMEZONE, checked against the account.")

    _client: MetaGraphClient | None = PrivateAttr(None)

    @classmethod
    def from_settings(
        cls, settings: Aelp2Settings, access_token: str, app_secret: str | None = None
    ) -> "MetaApiSource":
        """The source for ``settings``; pass the secrets as ``dg.EnvVar`` in definitions."""
        return cls(
            access_token=access_token,
            app_secret=app_secret,
            app_id=settings.meta_app_id,
            ad_account_id=settings.meta_ad_account_id,
            api_version=settings.meta_api_version,
            graph_url=settings.meta_graph_url,
            connect_timeout_seconds=settings.meta_connect_timeout_seconds,
            read_timeout_seconds=settings.meta_read_timeout_seconds,
            page_limit=settings.meta_page_limit,
            max_attempts=settings.meta_max_attempts,
            retry_base_seconds=settings.meta_retry_base_seconds,
            retry_max_wait_seconds=settings.meta_retry_max_wait_seconds,
            usage_slowdown_pct=settings.meta_usage_slowdown_pct,
            usage_pause_seconds=settings.meta_usage_pause_seconds,
            async_poll_seconds=settings.meta_async_poll_seconds,
            async_max_wait_seconds=settings.meta_async_max_wait_seconds,
            async_max_jobs=settings.meta_async_max_jobs,
            token_expiry_warning_days=settings.meta_token_expiry_warning_days,
            currency=settings.account_currency,
            timezone=settings.account_timezone,
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A fresh client for each run, so each run checks the token and the account again."""
        self._client = None

    def client(self) -> MetaGraphClient:
        """The client, built at first use: the token's expiry is checked (a warning when it is
        near) and the account's time zone and currency compared with the settings."""
        if self._client is None:
            config = MetaApiConfig(
                **{name: getattr(self, name) for name in MetaApiConfig.__dataclass_fields__}
            )
            client = MetaGraphClient(config, self.access_token, self.app_secret)
            client.check_token()
            client.check_account()
            self._client = client
        return self._client

    def fetch_insights(self, start: dt.date, end: dt.date) -> list[dict]:
        """Insights rows of the account-local days ``start..end``, unique on day, ad and
        placement; raises before returning anything when a call fails for good."""
        rows = self.client().insights(start, end)
        _log().info(f"Meta returned {len(rows)} insights rows for {start}..{end}")
        return rows

    def fetch_entities(self, as_of: dt.date) -> pd.DataFrame:
        """The account's campaigns, ad sets and ads as they are now (Meta keeps no history of
        them, so ``as_of`` is the account's today)."""
        return self.client().entities()

    def decision_date(self, today: dt.date) -> dt.date:
        """The account's today."""
        return today
