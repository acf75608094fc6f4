"""Both ways of serving the project load it: `dagster` with workspace.yaml, and `dg`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        [str(BIN / "dg"), "check", "defs"],
    ],
    ids=["dagster-workspace", "dg"],
)
def test_the_project_loads(command, tmp_path):
    environment = {
        **os.environ,
        "AELP2_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
        "DAGSTER_HOME": str(tmp_path),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_bad_setting_stops_loading_with_its_name(tmp_path):
    environment = {**os.environ, "MONTE_CARLO_DRAWS": "lots", "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "MONTE_CARLO_DRAWS='lots'" in done.stdout + done.stderr
