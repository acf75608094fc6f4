"""The alert sensors against a real DuckDB file and a Dagster instance, delivering to fake
Slack and PagerDuty servers on 127.0.0.1: once per condition, cleared when it clears."""

import datetime as dt
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer

from aelp2_assets.definitions import build_definitions
from aelp2_assets.resources.settings import Aelp2Settings
from aelp2_assets.resources.warehouse import DuckDBWarehouse
from aelp2_assets.sensors.alerts import (
    ALERT_HISTORY,
    HOURLY_TABLE,
    data_alerts_sensor,
    run_data_alerts,
    run_failure_alert_sensor,
)
from aelp2_assets.sensors.notify import AlertEvent, AlertNotifier

SLACK_TOKEN = "xoxb-test-secret-token"
ROUTING_KEY = "R0UTINGKEYSECRET0000000000000000"
LOG = logging.getLogger("test_alerts_sensors")


@pytest.fixture
def settings(tmp_path) -> Aelp2Settings:
    return Aelp2Settings.from_env(
        {
            "AELP2_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "AELP2_PARTITION_START_DATE": "2026-01-01",
        }
    )


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key: PagerDuty's client speaks https only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def fake_pagerduty(tmp_path_factory) -> Iterator[tuple[HTTPServer, Path]]:
    """PagerDuty's Events API v2 on https://127.0.0.1, answering as it does."""
    cert_file, key_file = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server, cert_file
    server.clear()
    server.stop()


@pytest.fixture
def fake_services(httpserver: HTTPServer, fake_pagerduty) -> HTTPServer:
    """Slack's chat.postMessage on http://127.0.0.1 and the fake PagerDuty."""
    httpserver.expect_request("/slack/api/chat.postMessage", method="POST").respond_with_json(
        {"ok": True, "channel": "C0ALERTS", "ts": "1700000000.000100"}
    )
    pagerduty_server, _ = fake_pagerduty
    pagerduty_server.clear()
    pagerduty_server.expect_request("/v2/enqueue", method="POST").respond_with_json(
        {"status": "success", "message": "Event processed", "dedup_key": "k"}, status=202
    )
    httpserver.pagerduty = fake_pagerduty  # type: ignore[attr-defined]
    return httpserver


def _notifier(server: HTTPServer) -> AlertNotifier:
    pagerduty_server, cert_file = server.pagerduty  # type: ignore[attr-defined]
    return AlertNotifier(
        slack_token=SLACK_TOKEN,
        slack_channel="#ads-alerts",
        slack_base_url=server.url_for("/slack/api/"),
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_url=pagerduty_server.url_for("/").rstrip("/"),
        pagerduty_ca_file=str(cert_file),
    )


def _requests(server: HTTPServer, path: str) -> list:
    if path.startswith("/v2/"):
        server = server.pagerduty[0]  # type: ignore[attr-defined]
    return [request for request, _ in server.log if request.path == path]


def _now(settings: Aelp2Settings, hour: int) -> dt.datetime:
    local = dt.datetime.combine(dt.date(2026, 3, 2), dt.time(hour, 30))
    return local.replace(tzinfo=ZoneInfo(settings.account_timezone))


def _hourly(day: dt.date, hours: int, spend: float, clicks: int, conversions: int):
    return pd.DataFrame(
        {
            "date": pd.Timestamp(day),
            "hour": range(hours),
            "ad_id": "ad1",
            "spend": spend,
            "impressions": 100_000,
            "clicks": clicks,
            "conversions": conversions,
        }
    )


def _warehouse(settings: Aelp2Settings) -> DuckDBWarehouse:
    return DuckDBWarehouse(database=settings.duckdb_path, dataset=settings.dataset)


def test_runaway_spend_fires_once_reaches_slack_and_pagerduty_and_clears(settings, fake_services):
    warehouse = _warehouse(settings)
    notifier = _notifier(fake_services)
    now = _now(settings, 6)
    # 6 hours at 1,600 an hour = 9,600 against a pace of 7,500: 128%
    warehouse.replace(
        HOURLY_TABLE, _hourly(now.date(), 6, 1_600.0, 1_000, 20), "date", [now.date()]
    )
    with dg.instance_for_test() as instance:
        first = run_data_alerts(settings, warehouse, notifier, instance, LOG, now)
        second = run_data_alerts(settings, warehouse, notifier, instance, LOG, now)
        assert list(first["rule"]) == ["spend_velocity"]
        assert list(first["delivered"]) == ["log,slack,pagerduty"]
        assert second.empty  # no storm: the open alert sends nothing again

        slack = _requests(fake_services, "/slack/api/chat.postMessage")
        assert len(slack) == 1
        assert "spend velocity 128%" in slack[0].get_data(as_text=True).replace("%25", "%")
        assert slack[0].headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
        [page] = _requests(fake_services, "/v2/enqueue")
        body = json.loads(page.get_data())
        assert body["event_action"] == "trigger" and body["routing_key"] == ROUTING_KEY
        assert body["dedup_key"] == f"spend_velocity:account:{now.date()}"

        # spend back on pace: the alert clears, PagerDuty resolves the same incident
        on_pace = _hourly(now.date(), 6, 1_200.0, 1_000, 20)
        warehouse.replace(HOURLY_TABLE, on_pace, "date", [now.date()])
        cleared = run_data_alerts(settings, warehouse, notifier, instance, LOG, now)
        assert list(cleared["state"]) == ["cleared"]
        resolve = json.loads(_requests(fake_services, "/v2/enqueue")[-1].get_data())
        assert resolve["event_action"] == "resolve"
        assert resolve["dedup_key"] == body["dedup_key"]
        assert run_data_alerts(settings, warehouse, notifier, instance, LOG, now).empty

    history = warehouse.read(ALERT_HISTORY)
    assert list(history["state"]) == ["firing", "cleared"]
    assert not history.astype(str).apply(lambda c: c.str.contains(SLACK_TOKEN)).any().any()


def test_broken_tracking_alerts_and_healthy_data_does_not(settings, fake_services):
    warehouse = _warehouse(settings)
    notifier = _notifier(fake_services)
    now = _now(settings, 6)
    with dg.instance_for_test() as instance:
        healthy = _hourly(now.date(), 6, 1_000.0, 1_500, 20)
        warehouse.replace(HOURLY_TABLE, healthy, "date", [now.date()])
        assert run_data_alerts(settings, warehouse, notifier, instance, LOG, now).empty
        broken = _hourly(now.date(), 6, 1_000.0, 1_500, 0)
        warehouse.replace(HOURLY_TABLE, broken, "date", [now.date()])
        fired = run_data_alerts(settings, warehouse, notifier, instance, LOG, now)
    assert list(fired["rule"]) == ["account_cvr"]
    assert "check tracking" in fired["message"].iloc[0]


def test_high_cac_and_a_weak_creative_alert_from_the_trailing_window(settings, fake_services):
    warehouse = _warehouse(settings)
    now = _now(settings, 6)
    days = pd.date_range(now.date() - dt.timedelta(days=6), periods=7)
    trailing = pd.DataFrame(
        {
            "date": list(days) * 2,
            "ad_id": ["good"] * 7 + ["weak"] * 7,
            "spend": 3_100.0,
            "impressions": 100_000,
            "clicks": [1_000] * 7 + [300] * 7,
            "conversions": 10,
        }
    )
    warehouse.replace("validated_meta_metrics", trailing, "date", list(days))
    with dg.instance_for_test() as instance:
        fired = run_data_alerts(settings, warehouse, _notifier(fake_services), instance, LOG, now)
    assert sorted(fired["rule"]) == ["blended_cac", "creative_ctr"]
    assert fired.loc[fired["rule"] == "creative_ctr", "key"].item().startswith("creative_ctr:weak")
    # warnings post to Slack but do not page
    assert len(_requests(fake_services, "/slack/api/chat.postMessage")) == 2
    assert _requests(fake_services, "/v2/enqueue") == []


def test_a_slack_outage_is_logged_and_the_alert_still_recorded(settings, httpserver, caplog):
    httpserver.expect_request("/slack/api/chat.postMessage").respond_with_data("down", status=503)
    notifier = AlertNotifier(
        slack_token=SLACK_TOKEN,
        slack_channel="#ads-alerts",
        slack_base_url=httpserver.url_for("/slack/api"),
    )
    event = AlertEvent("k", "spend_velocity", "firing", "ops", "critical", "runaway")
    with caplog.at_level(logging.WARNING):
        assert notifier.deliver(event, LOG) == "log,slack!"
    assert SLACK_TOKEN not in caplog.text


def test_without_secrets_alerts_go_to_the_log_only(caplog):
    event = AlertEvent("k", "spend_velocity", "firing", "ops", "critical", "runaway")
    with caplog.at_level(logging.ERROR):
        assert AlertNotifier().deliver(event, LOG) == "log"
    assert "runaway" in caplog.text


def test_the_definitions_carry_both_sensors_and_the_notifier_takes_secrets_as_envvars(
    settings,
):
    defs = build_definitions(settings)
    names = {sensor.name for sensor in defs.sensors}
    assert {"data_alerts_sensor", "run_failure_alert_sensor"} <= names
    switched_on = settings.model_copy(
        update={"slack_channel": "#ads-alerts", "pagerduty_alerts": True}
    )
    from aelp2_assets.resources import resources_for

    notifier = resources_for(switched_on)["alert_notifier"]
    assert isinstance(notifier.slack_token, dg.EnvVar)
    assert isinstance(notifier.pagerduty_routing_key, dg.EnvVar)
    assert resources_for(settings)["alert_notifier"].slack_token is None


def test_the_data_sensor_runs_in_dagster(settings, fake_services):
    warehouse = _warehouse(settings)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance,
            resources={
                "settings": settings,
                "warehouse": warehouse,
                "alert_notifier": _notifier(fake_services),
            },
        )
        result = data_alerts_sensor(context)
    assert "0 alerts fired" in str(result.skip_message)


def _sensor_tick(settings: Aelp2Settings, instance: dg.DagsterInstance):
    context = dg.build_sensor_context(
        instance=instance,
        resources={
            "settings": settings,
            "warehouse": _warehouse(settings),
            "alert_notifier": AlertNotifier(),
        },
    )
    return data_alerts_sensor(context)


def test_with_pausing_on_runaway_spend_requests_one_pause_run_and_on_pace_none(settings):
    # the same warehouse, opted in (a copy made by model_copy would not reach the sensor:
    # Dagster rebuilds resources from their configuration)
    opted_in = Aelp2Settings.from_env(
        {
            "AELP2_DUCKDB_PATH": settings.duckdb_path,
            "AELP2_PARTITION_START_DATE": settings.partition_start_date,
            "AELP2_PAUSE_RUNAWAY_CAMPAIGNS": "true",
        }
    )
    warehouse = _warehouse(settings)
    today = settings.account_today()
    with dg.instance_for_test() as instance:
        # 6 hours at 1,400 an hour: 8,400 against a pace of 7,500, 112%: no alert, no pause
        warehouse.replace(HOURLY_TABLE, _hourly(today, 6, 1_400.0, 1_000, 20), "date", [today])
        on_pace = _sensor_tick(opted_in, instance)
        assert isinstance(on_pace, dg.SkipReason)

        # 1,600 an hour: 128%: the alert fires and one pause run is asked for, keyed by the day
        warehouse.replace(HOURLY_TABLE, _hourly(today, 6, 1_600.0, 1_000, 20), "date", [today])
        runaway = _sensor_tick(opted_in, instance)
        [request] = runaway.run_requests
        assert request.run_key == f"campaign_pauses:spend_velocity:account:{today}"
        assert request.tags == {"aelp2/pause_condition": f"spend_velocity:account:{today}"}
        # the same condition on the next tick: the same run key, which Dagster launches once
        assert [r.run_key for r in _sensor_tick(opted_in, instance).run_requests] == [
            request.run_key
        ]
        # off by default: the alert is open, and still no run is asked for
        assert isinstance(_sensor_tick(settings, instance), dg.SkipReason)


@dg.op
def _boom() -> None:
    raise RuntimeError("the source is down")


@dg.job
def _failing_job() -> None:
    _boom()


def test_a_failed_run_alerts_engineering_once(settings, fake_services):
    warehouse = _warehouse(settings)
    notifier = _notifier(fake_services)
    with dg.instance_for_test() as instance:
        result = _failing_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        for _ in range(2):
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert_sensor",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                resources={"warehouse": warehouse, "alert_notifier": notifier},
            ).for_run_failure()
            run_failure_alert_sensor(context)
    history = warehouse.read(ALERT_HISTORY)
    assert list(history["rule"]) == ["failed_run"]
    assert history["audience"].item() == "engineering"
    assert len(_requests(fake_services, "/v2/enqueue")) == 1
