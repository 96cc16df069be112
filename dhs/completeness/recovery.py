"""Recovery definitions: the arc-SNR/resolution proxy and model-score thresholds.

A recovery definition turns per-task columns into a boolean "recovered" flag and names the columns that
must be present (non-null, finite) for a row to count as valid under it. NULLs never become True.

- Proxy (a stand-in for a real finder, say so wherever it is reported): recovered when
  ``arc_snr >= snr_min`` and ``theta_e_arcsec / psf_fwhm_used_r >= resolution_min``.
- Model score: a user's classifier score per ``task_id``; recovered when ``score >= threshold``. A threshold
  can be given as a score or as a target false-positive rate on valid controls
  (:func:`threshold_for_fpr`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = [
    "RecoveryDefinition",
    "finite_values",
    "fraction_flagged",
    "join_scores",
    "proxy_definition",
    "score_definitions",
    "threshold_for_fpr",
]


@dataclass(frozen=True)
class RecoveryDefinition:
    """One way of deciding that an injection was recovered.

    name : identifier used in column names and tables (e.g. ``"proxy"``, ``"score_ge_0.5"``, ``"fpr_0.01"``).
    kind : ``"proxy"`` or ``"score"``.
    required : columns that must be non-null and finite for a row to be valid under this definition.
    params : numbers that define it (thresholds, target FPR, achieved FPR on controls).
    description : human-readable sentence for the report.
    """

    name: str
    kind: str
    required: tuple[str, ...]
    params: dict = field(default_factory=dict)
    description: str = ""

    def recovered(self, df: pd.DataFrame) -> np.ndarray:
        """Boolean recovered flag per row of ``df`` (False where any input is null or NaN)."""
        if self.kind == "proxy":
            snr = finite_values(df, self.params["snr_column"])
            theta = finite_values(df, "theta_e_arcsec")
            psf = finite_values(df, self.params["psf_column"])
            with np.errstate(invalid="ignore", divide="ignore"):
                res = np.where(psf > 0, theta / psf, np.nan)
                out = (snr >= self.params["snr_min"]) & (res >= self.params["resolution_min"])
            return np.asarray(out, dtype=bool)
        if self.kind == "score":
            s = finite_values(df, "score")
            with np.errstate(invalid="ignore"):
                return np.asarray(s >= self.params["threshold"], dtype=bool)
        raise ValueError(f"unknown recovery kind {self.kind!r} in definition {self.name!r}")


def finite_values(df: pd.DataFrame, column: str) -> np.ndarray:
    """Column as float64 with None/NA → NaN; a clear KeyError if the column is missing."""
    if column not in df.columns:
        raise KeyError(f"column {column!r} is missing (have: {sorted(map(str, df.columns))})")
    return pd.to_numeric(df[column], errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def proxy_definition(
    snr_min: float = 5.0,
    resolution_min: float = 0.8,
    snr_column: str = "arc_snr",
    psf_column: str = "psf_fwhm_used_r",
) -> RecoveryDefinition:
    """The proxy definition: ``snr_column >= snr_min`` and θE / ``psf_column`` >= ``resolution_min``.

    ``arc_snr`` is dimensionless (r-band peak per-pixel SNR), θE and the PSF FWHM are arcsec.
    """
    return RecoveryDefinition(
        name="proxy",
        kind="proxy",
        required=(snr_column, "theta_e_arcsec", psf_column),
        params={"snr_column": snr_column, "psf_column": psf_column, "snr_min": float(snr_min),
                "resolution_min": float(resolution_min)},
        description=(
            f"PROXY (not a lens finder): {snr_column} >= {snr_min:g} and theta_E / {psf_column} >= "
            f"{resolution_min:g}"
        ),
    )


class ScoreCounts(Protocol):
    """What a threshold from a target false-positive rate needs to know about the valid control scores
    (finite values only): implemented over a numpy array (:class:`ArrayScores`) and, in stage 4d, over a
    Spark column, so the scores never have to be held in one place."""

    n: int

    def count_ge(self, threshold: float) -> int:
        """Number of scores >= ``threshold``."""

    def value_at_rank(self, rank: int) -> float:
        """The score at 0-based ``rank`` of the ascending order."""

    def min_above(self, value: float) -> float | None:
        """The smallest score > ``value`` (None if there is none)."""


class ArrayScores:
    """:class:`ScoreCounts` of an in-memory array (NaNs dropped)."""

    def __init__(self, scores: ArrayLike):
        s = np.asarray(scores, dtype=np.float64)
        self.sorted = np.sort(s[np.isfinite(s)])
        self.n = int(self.sorted.size)

    def count_ge(self, threshold: float) -> int:
        return int(self.n - np.searchsorted(self.sorted, threshold, side="left"))

    def value_at_rank(self, rank: int) -> float:
        return float(self.sorted[rank])

    def min_above(self, value: float) -> float | None:
        i = int(np.searchsorted(self.sorted, value, side="right"))
        return float(self.sorted[i]) if i < self.n else None


def _as_counts(scores: ArrayLike | ScoreCounts) -> ScoreCounts:
    return scores if hasattr(scores, "count_ge") else ArrayScores(scores)  # type: ignore[return-value]


def fraction_flagged(scores: ArrayLike | ScoreCounts, threshold: float) -> float:
    """Fraction of finite ``scores`` with score >= threshold (NaN if there are none)."""
    c = _as_counts(scores)
    return c.count_ge(threshold) / c.n if c.n else float("nan")


def threshold_for_fpr(control_scores: ArrayLike | ScoreCounts, target_fpr: float) -> tuple[float, float]:
    """Score threshold at which at most ``target_fpr`` of the valid controls are flagged (score >= t).

    The threshold is the smallest control score value t with fraction(controls >= t) <= target_fpr (the
    convention of ROC curves: thresholds are observed scores). If even the largest control score flags
    more than the target (ties at the top), t is the next float above it and no control is flagged.

    Parameters
    ----------
    control_scores : scores of valid controls (NaN ignored; an array or a :class:`ScoreCounts`); at least
        one finite value required.
    target_fpr : target false-positive rate in [0, 1].

    Returns
    -------
    (threshold, achieved_fpr)
    """
    if not (0.0 <= float(target_fpr) <= 1.0):
        raise ValueError(f"target false-positive rate must be in [0, 1], got {target_fpr!r}")
    c = _as_counts(control_scores)
    n = c.n
    if n == 0:
        raise ValueError("cannot set a threshold from a target false-positive rate: no valid control scores")
    limit = float(target_fpr) + 1e-12
    m = min(n, int(math.floor(limit * n)) + 1)      # the most controls that may be flagged: m / n <= limit
    while m > 0 and not (m / n <= limit):
        m -= 1
    if m >= n:
        t = c.value_at_rank(0)
        return t, c.count_ge(t) / n
    # the (m+1)-th largest score flags too many; the smallest score above it flags at most m
    above = c.min_above(c.value_at_rank(n - 1 - m))
    if above is None:
        return float(np.nextafter(c.value_at_rank(n - 1), np.inf)), 0.0
    return above, c.count_ge(above) / n


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def score_definitions(
    score_thresholds: Sequence[float],
    target_fprs: Sequence[float],
    control_scores: ArrayLike | ScoreCounts | None,
) -> list[RecoveryDefinition]:
    """Recovery definitions for model scores: one per score threshold and one per target FPR.

    ``control_scores`` (the scores of valid controls) are needed only when ``target_fprs`` is non-empty.
    """
    defs: list[RecoveryDefinition] = []
    for t in score_thresholds:
        achieved = fraction_flagged(control_scores, t) if control_scores is not None else float("nan")
        defs.append(RecoveryDefinition(
            name=f"score_ge_{_fmt(t)}", kind="score", required=("score",),
            params={"threshold": float(t), "target_fpr": None, "control_fpr": achieved},
            description=f"model score >= {_fmt(t)}",
        ))
    for f in target_fprs:
        if control_scores is None:
            raise ValueError("target false-positive rates need control scores")
        t, achieved = threshold_for_fpr(control_scores, f)
        defs.append(RecoveryDefinition(
            name=f"fpr_{_fmt(f)}", kind="score", required=("score",),
            params={"threshold": t, "target_fpr": float(f), "control_fpr": achieved},
            description=f"model score >= {_fmt(t)} (target FPR {_fmt(f)} on valid controls; achieved {_fmt(achieved)})",
        ))
    return defs


def join_scores(metrics: pd.DataFrame, scores: pd.DataFrame, source: str = "<scores>") -> pd.DataFrame:
    """Left-join a (``task_id``, ``score``) table onto metrics rows; rows without a score get NaN.

    Raises ValueError naming ``source`` for missing columns or duplicated task ids.
    """
    for col in ("task_id", "score"):
        if col not in scores.columns:
            raise ValueError(f"score table {source}: column {col!r} is missing (have {list(scores.columns)})")
    dup = scores["task_id"].duplicated(keep=False)
    if dup.any():
        first = scores.loc[dup, "task_id"].iloc[0]
        raise ValueError(f"score table {source}: task_id {first!r} appears {int((scores['task_id'] == first).sum())} times")
    s = scores[["task_id", "score"]].copy()
    s["score"] = pd.to_numeric(s["score"], errors="coerce").astype("float64")
    out = metrics.drop(columns=["score"], errors="ignore").merge(s, on="task_id", how="left", validate="m:1")
    return out
