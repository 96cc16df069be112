"""Stratified negative sampling (Paper IV): per stratum (nobs_z_bin × type_bin), ``neg_per_pos`` negatives
per matched positive, of which a fraction ``n2_fraction`` from the N2 (confuser) pool and the rest from N1;
an N2 shortfall is back-filled from N1. Within a stratum and pool, rows are taken in the order of a 64-bit
xxhash of their ``galaxy_id`` with a seed (:func:`sample_hash`), ties broken by ``galaxy_id`` — never Spark
``rand()``, never a 32-bit hash, never a global sort: Spark ranks within (stratum, pool) windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dhs.config.stage6 import SamplingSettings
from dhs.sampling.hashing import hash64_array, stable_hash64

POOLS = ("N1", "N2")


def stratum_key(nobs_z_bin: Any, type_bin: Any) -> np.ndarray:
    """Stratum label ``"<nobs_z_bin>|<type_bin>"`` per row."""
    a = np.asarray(nobs_z_bin).astype(str)
    b = np.asarray(type_bin).astype(str)
    return np.char.add(np.char.add(a, "|"), b).astype(object)


def sample_seed(run_seed: int) -> int:
    """The hash seed of the negative ordering for a run seed."""
    return stable_hash64("stage6-negative-order", int(run_seed))


def sample_hash(galaxy_ids: Sequence[str], run_seed: int) -> np.ndarray:
    """Signed int64 xxhash64 of each ``galaxy_id`` with :func:`sample_seed` (the sampling order)."""
    return hash64_array(list(galaxy_ids), sample_seed(run_seed))


def stratum_quotas(pos_counts: Mapping[str, int], pool_counts: Mapping[tuple[str, str], int],
                   settings: SamplingSettings) -> dict[str, dict[str, int]]:
    """Per stratum with positives: ``n_pos``, ``target`` = round(neg_per_pos · n_pos), ``n2_target`` =
    round(target · n2_fraction), ``n1_target`` = target − n2_target, the available ``n1_avail``/``n2_avail``
    and the quotas ``n2_take`` = min(n2_target, n2_avail), ``n1_take`` = min(n1_target + N2 shortfall,
    n1_avail) and ``backfill`` (N2 shortfall taken from N1)."""
    out: dict[str, dict[str, int]] = {}
    for s in sorted(pos_counts):
        n_pos = int(pos_counts[s])
        if n_pos <= 0:
            continue
        target = round(settings.neg_per_pos * n_pos)
        n2_target = round(target * settings.n2_fraction)
        n1_target = target - n2_target
        n1_avail = int(pool_counts.get((s, "N1"), 0))
        n2_avail = int(pool_counts.get((s, "N2"), 0))
        n2_take = min(n2_target, n2_avail)
        short = n2_target - n2_take
        n1_take = min(n1_target + short, n1_avail)
        out[s] = {"n_pos": n_pos, "target": target, "n1_target": n1_target, "n2_target": n2_target,
                  "n1_avail": n1_avail, "n2_avail": n2_avail, "n1_take": n1_take, "n2_take": n2_take,
                  "backfill": max(0, min(short, n1_avail - n1_target))}
    return out


def select(stratum: Any, pool: Any, order_hash: Any, keys: Any,
           quotas: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """Boolean mask of the rows taken: in each (stratum, pool) the first ``n1_take``/``n2_take`` rows by
    (order_hash, key). The reference implementation of what the Spark stage does with windows."""
    st = np.asarray(stratum).astype(str)
    pl = np.asarray(pool).astype(str)
    h = np.asarray(order_hash, dtype=np.int64)
    k = np.asarray(keys).astype(str)
    take = np.zeros(st.size, dtype=bool)
    order = np.lexsort((k, h, pl, st))
    rank = np.zeros(st.size, dtype=np.int64)
    prev: tuple[str, str] | None = None
    r = 0
    for i in order.tolist():
        g = (st[i], pl[i])
        r = r + 1 if g == prev else 1
        prev = g
        rank[i] = r
    for s, q in quotas.items():
        for p in POOLS:
            sel = (st == s) & (pl == p)
            take |= sel & (rank <= q[f"{p.lower()}_take"])
    return take


def gates(quotas: Mapping[str, Mapping[str, int]], selected: Mapping[tuple[str, str], int],
          settings: SamplingSettings) -> dict[str, Any]:
    """Sampling gates: ``total_reached`` (selected ≥ total_fraction_min · target), ``n1_share_ok``
    (n1_share_min ≤ N1 share ≤ n1_share_max), ``all_strata_represented`` (every stratum with positives got
    ≥ 1 negative), with the numbers behind them and ``passed`` (all three)."""
    target = sum(int(q["target"]) for q in quotas.values())
    n1 = sum(int(v) for (s, p), v in selected.items() if p == "N1" and s in quotas)
    n2 = sum(int(v) for (s, p), v in selected.items() if p == "N2" and s in quotas)
    total = n1 + n2
    share = n1 / total if total else float("nan")
    missing = [s for s in quotas if selected.get((s, "N1"), 0) + selected.get((s, "N2"), 0) == 0]
    g = {
        "target_total": target, "selected_total": total, "selected_n1": n1, "selected_n2": n2,
        "total_reached": bool(total >= settings.total_fraction_min * target) if target else False,
        "n1_share": share,
        "n1_share_ok": bool(np.isfinite(share) and settings.n1_share_min <= share <= settings.n1_share_max),
        "strata_with_positives": len(quotas), "strata_missing_negatives": sorted(missing),
        "all_strata_represented": bool(quotas) and not missing,
    }
    g["passed"] = bool(g["total_reached"] and g["n1_share_ok"] and g["all_strata_represented"])
    return g
