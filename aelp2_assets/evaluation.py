"""Decision-quality metrics (no Dagster import): winner identification, forecast calibration.

Used by the decision-quality benchmark and the ``model_accuracy`` asset. Every function takes
plain arrays or sequences and returns plain numbers, so a notebook can call them too.

- ``precision_recall_at_k``: of the ``k`` arms a policy ranks highest, the share that are true
  winners (precision) and the share of the winners found (recall), each with the figure a
  random ranking gets on average and the best any ranking can get (with 10 arms and 3 winners,
  precision@10 cannot exceed 30%).
- ``band_covers``: whether a realised value lies in a p10-p90 band.
- ``crps_from_samples``: the continuous ranked probability score of a forecast given as draws,
  ``E|X - y| - E|X - X'| / 2``; lower is better, in the units of the forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RankingScore:
    """Precision and recall at k of one ranking, with their random baseline and ceiling."""

    k: int
    precision: float
    recall: float
    random_precision: float
    random_recall: float
    ceiling_precision: float
    ceiling_recall: float


def precision_recall_at_k(
    ranked: Sequence[str], winners: Sequence[str], k: int, n_candidates: int | None = None
) -> RankingScore:
    """Precision@k and recall@k of ``ranked`` (best first) against the set ``winners``.

    ``n_candidates`` is how many arms could have been ranked (default ``len(ranked)``); the
    random baseline is the expectation under a uniformly random order of them: precision
    ``|W| / n``, recall ``min(k, n) / n``. The ceiling is ``min(k, |W|) / k`` and
    ``min(k, |W|) / |W|``. With no winners recall is undefined (nan).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = len(ranked) if n_candidates is None else n_candidates
    if n < 1:
        raise ValueError("there must be at least one candidate")
    winner_set = set(winners)
    top = list(ranked)[:k]
    hits = sum(1 for arm in top if arm in winner_set)
    n_winners = len(winner_set)
    k_eff = min(k, n)
    nan = float("nan")
    return RankingScore(
        k=k,
        precision=hits / k,
        recall=hits / n_winners if n_winners else nan,
        random_precision=n_winners / n * k_eff / k,
        random_recall=k_eff / n if n_winners else nan,
        ceiling_precision=min(k, n_winners) / k,
        ceiling_recall=min(k, n_winners) / n_winners if n_winners else nan,
    )


def f1(precision: float, recall: float) -> float:
    """The harmonic mean of precision and recall (0 when both are 0, nan when either is)."""
    if np.isnan(precision) or np.isnan(recall):
        return float("nan")
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def band_covers(p10: float, p90: float, realised: float) -> bool:
    """Whether ``realised`` lies in the closed band [p10, p90]."""
    return bool(p10 <= realised <= p90)


def crps_from_samples(samples: np.ndarray, realised: float) -> float:
    """CRPS of the empirical distribution of ``samples`` at the realised value.

    Computed exactly for the draws in O(n log n): ``E|X - X'|`` from the sorted draws.
    Non-finite draws (a CAC at zero conversions) are dropped; nan when none are left.
    """
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0 or not np.isfinite(realised):
        return float("nan")
    first = np.abs(x - realised).mean()
    # sum over pairs |xi - xj| = 2 * sum_i (2i - n + 1) x_(i) for sorted x (i from 0).
    weights = 2 * np.arange(n) - n + 1
    pairs = 2.0 * float((weights * x).sum()) / (n * n)
    return float(first - pairs / 2)
