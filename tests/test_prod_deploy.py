"""The production deployment files: the instance configuration loads with Dagster's own
loaders (and runs on a real Postgres 15 when its binaries are installed, as .ci/run does), the
image installs the pinned versions, and the services call commands that exist.

Docker cannot run here: the Dockerfile and compose file are checked as text against the
project's own pins and Dagster's command-line interfaces.
"""

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD")


def _pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line}: every dependency is pinned exactly"
        pins[requirement.name.lower()] = specifier.version
    return pins


def test_prod_instance_config_validates_with_dagsters_loader():
    config, instance_class = dagster_instance_config(str(DEPLOY), "dagster.prod.yaml")
    assert instance_class is None
    assert set(config["storage"]) == {"postgres"}
    database = config["storage"]["postgres"]["postgres_db"]
    assert {key: value["env"] for key, value in database.items()} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USERNAME",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"] == {"granularity": "op", "default_limit": 1}
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] >= 1
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert config["run_monitoring"]["enabled"]


def test_the_local_instance_config_still_loads():
    config, _ = dagster_instance_config(str(DEPLOY), "dagster.yaml")
    assert config["concurrency"]["pools"]["default_limit"] == 1


@pytest.fixture(scope="module")
def postgres():
    """A throwaway Postgres 15 cluster on 127.0.0.1 (a free port), run as the postgres user
    when the tests run as root; skipped, saying why, when Postgres 15 is not installed."""
    if not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"Postgres 15 not installed ({PG_BIN}): apt-get install postgresql-15")
    # not under pytest's own folders: those are private to root, and postgres must reach it
    folder = Path(tempfile.mkdtemp(prefix="aelp2-postgres-"))
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if run_as:
        shutil.chown(folder, "postgres")
    data = folder / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(
        [*run_as, PG_BIN / "initdb", "-D", data, "-U", "dagster", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}"
    subprocess.run(
        [
            *run_as,
            PG_BIN / "pg_ctl",
            "-D",
            data,
            "-o",
            options,
            "-l",
            folder / "log",
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USERNAME": "dagster",
            "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
            "DAGSTER_PG_DB": "postgres",
        }
    finally:
        subprocess.run([*run_as, PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "stop"], check=False)
        shutil.rmtree(folder, ignore_errors=True)


@dg.asset(pool="meta_budget_push")
def pooled_step() -> int:
    return 1


def test_prod_instance_runs_on_a_real_postgres(postgres, tmp_path, monkeypatch):
    for name, value in postgres.items():
        monkeypatch.setenv(name, value)
    shutil.copy(DEPLOY / "dagster.prod.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 4
        assert {"key": "dagster/schedule_name", "value": "refresh_schedule", "limit": 1} in (
            queue.tag_concurrency_limits
        )
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2

        result = dg.materialize([pooled_step], instance=instance)
        assert result.success
        (record,) = instance.get_run_records(dg.RunsFilter(run_ids=[result.run_id]))
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert instance.event_log_storage.get_pool_limits()[0].name == "meta_budget_push"
        assert instance.event_log_storage.get_concurrency_info("meta_budget_push").slot_count == 1


def _docker_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(maxsplit=1)) for line in lines if line and not line.startswith("#")]


def test_the_image_installs_the_projects_pinned_versions_on_its_python():
    instructions = _docker_instructions()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (base,) = [argument for keyword, argument in instructions if keyword == "FROM"]
    version = re.fullmatch(r"python:(\d+\.\d+(?:\.\d+)?)-slim.*", base).group(1)
    release = f"{version}.0" if version.count(".") == 1 else version
    assert SpecifierSet(project["requires-python"]).contains(release), base
    installs = [
        argument
        for keyword, argument in instructions
        if keyword == "RUN" and "pip install" in argument
    ]
    assert installs == ["pip install --no-cache-dir ."], "the image installs the project itself"
    copied = [argument.split()[0] for keyword, argument in instructions if keyword == "COPY"]
    assert {"pyproject.toml", "aelp2_assets", "deploy/dagster.prod.yaml"} <= set(copied)
    pins = _pins()
    assert pins["dagster-postgres"] == pins["dagster-gcp"] == pins["dagster-gcp-pandas"]
    assert pins["dagster"] == pins["dagster-webserver"] == "1.13.27"
    # what the image installs is what this environment was tested with
    from importlib.metadata import version as installed

    for name in ("dagster", "dagster-postgres", "dagster-gcp", "dagster-gcp-pandas", "pandas"):
        assert installed(name) == pins[name], name


def test_the_services_run_dagsters_own_commands_with_the_prod_files():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "code", "webserver", "daemon"} <= set(services)
    workspace = yaml.safe_load((DEPLOY / "workspace.prod.yaml").read_text())
    (server,) = workspace["load_from"]
    assert server["grpc_server"]["host"] == "code"
    code = services["code"]["command"]
    assert code[code.index("--port") + 1] == str(server["grpc_server"]["port"])
    for name in ("code", "webserver", "daemon"):
        command = services[name]["command"]
        options = [part for part in command if part.startswith("--")]
        program = list(itertools.takewhile(lambda part: not part.startswith("-"), command))
        # the program as installed beside this interpreter (the image installs it the same way)
        executable = shutil.which(program[0], path=str(Path(sys.executable).parent))
        assert executable, program[0]
        help_text = subprocess.run(
            [executable, *program[1:], "--help"], capture_output=True, text=True, check=True
        ).stdout
        for option in options:
            assert option in help_text, (name, option)
    for name in ("webserver", "daemon"):
        assert set(services[name]["environment"]) >= set(PG_ENV), name
    example = (DEPLOY / "aelp2.env.example").read_text()
    for variable in (*PG_ENV, "AELP2_ENV", "GOOGLE_CLOUD_PROJECT", "META_ACCESS_TOKEN"):
        assert re.search(rf"^{variable}=", example, re.MULTILINE), variable
