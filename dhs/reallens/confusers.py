"""N2 confusers: negatives that look lens-like (rings, edge-on discs, blue clumpy galaxies, large galaxies).

Rules (``stage6.n2_rules``) are tried in order and the first that matches names the row's category; rows
no rule matches are N1. A rule is an AND of the conditions it sets (inclusive bounds): TYPE in ``type_in``,
flux_r ≥ ``flux_r_min`` (nMgy), SERSIC ≥ ``sersic_min``, ellipticity ≥ ``ellipticity_min``, SHAPE_R ≥
``shape_r_min`` (arcsec), g − r ≤ ``g_minus_r_max``, mag_r ≤ ``mag_r_max``. A NaN value fails its
condition (so a row with no r flux is never blue_clumpy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dhs.config.stage6 import N2Rule

N1, N2 = "N1", "N2"

_COLUMN_OF = {"flux_r_min": "flux_r", "sersic_min": "sersic", "ellipticity_min": "ellipticity",
              "shape_r_min": "shape_r", "g_minus_r_max": "g_minus_r", "mag_r_max": "mag_r"}


def rule_matches(rule: N2Rule, cols: Mapping[str, Any]) -> np.ndarray:
    """True where every condition set in ``rule`` holds (``cols`` needs the columns the rule reads:
    type, flux_r, sersic, ellipticity, shape_r, g_minus_r, mag_r)."""
    n = int(np.asarray(cols["type"]).size)
    ok = np.ones(n, dtype=bool)
    if rule.type_in is not None:
        t = np.char.upper(np.char.strip(np.asarray(cols["type"]).astype(str)))
        ok &= np.isin(t, [s.upper() for s in rule.type_in])
    with np.errstate(invalid="ignore"):
        for field, col in _COLUMN_OF.items():
            bound = getattr(rule, field)
            if bound is None:
                continue
            if col not in cols:
                raise KeyError(f"N2 rule {rule.category!r} ({field}) needs column {col!r}; have {sorted(cols)}")
            v = np.asarray(cols[col], dtype=np.float64)
            ok &= (v >= bound) if field.endswith("_min") else (v <= bound)
    return ok


def classify(cols: Mapping[str, Any], rules: Sequence[N2Rule]) -> tuple[np.ndarray, np.ndarray]:
    """``(pool, category)`` per row: pool "N2" with the category of the first matching enabled rule, or
    pool "N1" with category "" when none matches."""
    n = int(np.asarray(cols["type"]).size)
    category = np.full(n, "", dtype=object)
    open_ = np.ones(n, dtype=bool)
    for rule in rules:
        if not rule.enabled:
            continue
        hit = open_ & rule_matches(rule, cols)
        category[hit] = rule.category
        open_ &= ~hit
    pool = np.where(open_, N1, N2).astype(object)
    return pool, category


def shares(pool: np.ndarray, category: np.ndarray) -> dict[str, Any]:
    """Counts and shares of N1, N2 and each N2 category of per-row arrays."""
    counts: dict[tuple[str, str], int] = {}
    for p, c in zip(np.asarray(pool).tolist(), np.asarray(category).tolist()):
        counts[(p, c)] = counts.get((p, c), 0) + 1
    return shares_from_counts(counts)


def shares_from_counts(counts: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    """Counts and shares of N1, N2 and each N2 category from row counts per (pool, category)."""
    n = int(sum(counts.values()))
    n2 = int(sum(v for (p, _), v in counts.items() if p == N2))
    cats: dict[str, int] = {}
    for (p, c), v in counts.items():
        if p == N2:
            cats[c] = cats.get(c, 0) + int(v)
    return {"n": n, "n1": n - n2, "n2": n2, "n2_share": (n2 / n) if n else float("nan"),
            "categories": dict(sorted(cats.items())),
            "category_shares": {k: v / n for k, v in sorted(cats.items())} if n else {}}
