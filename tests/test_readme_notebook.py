"""The README's notebook call of the allocator runs as written after the demo command."""

import re
from pathlib import Path

from aelp2_assets.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _notebook_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (example,) = [block for block in blocks if "allocate_from_history(" in block]
    return example


def test_the_readme_allocator_example_runs_after_the_demo(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the demo writes data/aelp2.duckdb here, as for a user
    for variable in ("AELP2_DUCKDB_PATH", "AELP2_SOURCE", "BIGQUERY_DATASET"):
        monkeypatch.delenv(variable, raising=False)
    main(["--days", "14"])

    namespace: dict = {}
    exec(_notebook_example(), namespace)  # noqa: S102 - the README's own code

    table = namespace["allocation"].table.set_index("arm_id")
    assert 0 < table["budget_minor"].sum() <= 3_000_000
    assert table.loc["120201000000000042", "stage"] == "launch"
    assert table.loc["120201000000000042", "share"] == 0.05
    assert len(namespace["earlier"]) > 0  # the lifecycle went on from the demo's decisions
