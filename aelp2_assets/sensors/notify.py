"""Where alerts go: the log always; Slack and PagerDuty when their secrets are set.

Slack through the vendor's ``slack_sdk`` Web API client and PagerDuty through its own
``pagerduty`` Events API v2 client, both with a settable base URL (tests point them at fake
servers on 127.0.0.1). Dagster's Slack and PagerDuty integrations do not let the endpoint be
set, hence the vendors' clients. A delivery that fails is logged and recorded, never raised:
the alert is still recorded in the history and the log.
"""

import dataclasses
import logging
import ssl

import dagster as dg
import pagerduty
from pydantic import Field
from slack_sdk import WebClient


@dataclasses.dataclass(frozen=True)
class AlertEvent:
    """An alert starting (``firing``) or ending (``cleared``)."""

    key: str
    rule: str
    state: str
    audience: str
    severity: str
    message: str


class AlertNotifier(dg.ConfigurableResource):
    """Delivers alert events; Slack when a token and channel are set, PagerDuty (critical
    alerts only) when a routing key is set."""

    slack_token: str | None = Field(None, description="SLACK_BOT_TOKEN (EnvVar), or none.")
    slack_channel: str = Field("", description="AELP2_SLACK_CHANNEL.")
    slack_base_url: str = Field("https://slack.com/api/", description="AELP2_SLACK_BASE_URL.")
    pagerduty_routing_key: str | None = Field(
        None, description="PAGERDUTY_ROUTING_KEY (EnvVar), or none."
    )
    pagerduty_url: str = Field("https://events.pagerduty.com", description="AELP2_PAGERDUTY_URL.")
    pagerduty_ca_file: str | None = Field(
        None, description="A CA bundle to trust for PagerDuty (a TLS proxy, or a test server)."
    )

    def _scrubbed(self, text: str) -> str:
        for secret in (self.slack_token, self.pagerduty_routing_key):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _slack(self, event: AlertEvent) -> None:
        base_url = (
            self.slack_base_url if self.slack_base_url.endswith("/") else self.slack_base_url + "/"
        )
        client = WebClient(token=self.slack_token, base_url=base_url, timeout=10)
        mark = ":rotating_light:" if event.state == "firing" else ":white_check_mark:"
        client.chat_postMessage(
            channel=self.slack_channel,
            text=f"{mark} [{event.audience}/{event.severity}] {event.state}: {event.message}",
        )

    def _pagerduty(self, event: AlertEvent) -> None:
        # The client accepts https endpoints only; extra keywords go to its httpx2 client.
        tls = {"verify": ssl.create_default_context(cafile=self.pagerduty_ca_file)}
        client = pagerduty.EventsApiV2Client(
            self.pagerduty_routing_key,
            base_url=self.pagerduty_url.rstrip("/"),
            **(tls if self.pagerduty_ca_file else {}),
        )
        if event.state == "firing":
            client.trigger(
                summary=event.message[:1024],
                source="aelp2-assets",
                dedup_key=event.key,
                severity="critical",
                custom_details={"rule": event.rule, "audience": event.audience},
            )
        else:
            client.resolve(event.key)

    def deliver(self, event: AlertEvent, log: logging.Logger | dg.DagsterLogManager) -> str:
        """Send ``event`` everywhere configured; returns where it went, e.g. ``log,slack``
        (``slack!`` when Slack failed)."""
        line = f"alert {event.state}: [{event.audience}/{event.severity}] {event.message}"
        if event.severity == "critical" and event.state == "firing":
            log.error(line)
        elif event.severity == "info":
            log.info(line)
        else:
            log.warning(line)
        delivered = ["log"]
        targets = []
        if self.slack_token and self.slack_channel:
            targets.append(("slack", self._slack))
        if self.pagerduty_routing_key and event.severity == "critical":
            targets.append(("pagerduty", self._pagerduty))
        for name, send in targets:
            try:
                send(event)
                delivered.append(name)
            except Exception as error:  # a failed delivery must not lose the alert
                log.warning(
                    f"alert {event.key}: {name} delivery failed:"
                    f" {type(error).__name__}: {self._scrubbed(str(error))[:300]}"
                )
                delivered.append(f"{name}!")
        return ",".join(delivered)
