"""Shared fixtures: settings for a throwaway warehouse, and the real data in ../shared/data."""

from pathlib import Path

import pytest

from aelp2_assets.resources.settings import Aelp2Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip, saying why."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found: {SHARED_DATA} (../shared beside the repository)")
    return SHARED_DATA


@pytest.fixture
def local_settings(tmp_path: Path) -> Aelp2Settings:
    """The embedded default (demo source, DuckDB) with its warehouse in a temporary folder."""
    return Aelp2Settings.from_env(
        {
            "AELP2_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "AELP2_PARTITION_START_DATE": "2026-01-01",
        }
    )
