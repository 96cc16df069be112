"""Counts of a stage's row outcomes from small grouped tables (pure Python; used by stages 4c and 6).

A stage whose every input row becomes one output row (with ``cutout_ok`` 1/0 and an ``error`` reason) groups
its written output by a few columns in one Spark job; these functions turn those groups into the counts of
``_stage_config.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def reason_kind(error: str | None) -> str:
    """The kind of an error reason: the text before the first ':' (e.g. ``read_error``)."""
    return "" if error is None else error.split(":", 1)[0]


def sum_by(groups: Iterable[Mapping[str, Any]], key: str) -> dict[Any, int]:
    """Sum of ``count`` over the groups per value of ``key`` (first-seen order)."""
    out: dict[Any, int] = {}
    for g in groups:
        out[g[key]] = out.get(g[key], 0) + int(g["count"])
    return out


def outcome_counts(groups: list[Mapping[str, Any]]) -> dict[str, Any]:
    """``rows_out``, ``ok`` (``cutout_ok`` = 1), ``failed``, ``failures_by_kind`` ({:func:`reason_kind`: n})
    and ``failures_by_reason`` ({error: n}, sorted) of groups with ``count``, ``cutout_ok`` and ``error``."""
    rows_out = int(sum(g["count"] for g in groups))
    failed = [g for g in groups if g["error"] is not None]
    by_kind: dict[str, int] = {}
    for g in failed:
        k = reason_kind(g["error"])
        by_kind[k] = by_kind.get(k, 0) + int(g["count"])
    n_ok = int(sum(g["count"] for g in groups if g["cutout_ok"] == 1))
    return {"rows_out": rows_out, "ok": n_ok, "failed": rows_out - n_ok, "failures_by_kind": by_kind,
            "failures_by_reason": dict(sorted(sum_by(failed, "error").items()))}
