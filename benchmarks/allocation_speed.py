"""How long one allocation takes: 40 live arms, 1,000 Thompson draws (target: well under 1 s).

Run: ``python benchmarks/allocation_speed.py [--arms 40] [--draws 1000] [--repeats 50]``.
Prints the median and the slowest of the timed runs (after one warm-up run).
"""

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from aelp2_assets.allocation import allocate_budget


def portfolio(n_arms: int, rng: np.random.Generator) -> pd.DataFrame:
    """A mixed portfolio: posteriors of varied strength, ages from launch to old, some history."""
    clicks = rng.integers(0, 50_000, n_arms).astype(float)
    clicks_per_dollar = rng.uniform(0.3, 2.0, n_arms)
    conversions = rng.binomial(clicks.astype(int), rng.uniform(0.002, 0.03, n_arms))
    stages = rng.choice(np.array(["established", "sunset", None], dtype=object), n_arms)
    return pd.DataFrame(
        {
            "arm_id": [f"adset_{i}" for i in range(n_arms)],
            "click_shape": 5.0 + clicks,
            "click_rate": (5.0 + clicks) / clicks_per_dollar,
            "conv_shape": 1.0 + conversions,
            "conv_rate": 2.0 + clicks,
            "expected_cac": (2.0 + clicks) / np.maximum(conversions, 1) / clicks_per_dollar,
            "age_days": rng.integers(0, 60, n_arms),
            "is_live": rng.random(n_arms) < 0.9,
            "previous_budget_minor": pd.array(rng.integers(100, 300_000, n_arms), dtype="Int64"),
            "previous_stage": stages,
            "previous_sunset_day": pd.array(
                [int(rng.integers(1, 7)) if s == "sunset" else None for s in stages], dtype="Int64"
            ),
            "previous_share": rng.uniform(0.0, 0.1, n_arms),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", type=int, default=40)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    arms = portfolio(args.arms, np.random.default_rng(2024))

    def run(seed: int) -> None:
        allocate_budget(
            arms,
            budget_minor=3_000_000,
            min_budget_minor=100,
            rng=np.random.default_rng(seed),
            draws=args.draws,
        )

    run(0)  # warm-up: imports, first-call allocations
    timings = []
    for seed in range(1, args.repeats + 1):
        start = time.perf_counter()
        run(seed)
        timings.append(time.perf_counter() - start)

    print(
        f"allocate_budget: {args.arms} arms, {args.draws} draws, {args.repeats} runs:"
        f" median {statistics.median(timings) * 1000:.1f} ms,"
        f" slowest {max(timings) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
