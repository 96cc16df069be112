"""LRG (luminous red galaxy) selections on Legacy Surveys sweep columns.

Each named variant is *data*: a tuple of cut expressions such as ``"mag_z < 20.0"`` or
``"mag_r - mag_z > 0.5"``. Every variant also carries the implicit cut ``type != PSF`` (point sources
never enter an LRG selection).

Conventions (docs/conventions.md):

* magnitudes are raw (not extinction-corrected) AB magnitudes computed in float64 from nanomaggy
  fluxes, ``mag = 22.5 - 2.5 log10(flux)``; a flux ≤ 0 or NaN gives a NaN magnitude;
* every cut is strict where written strict, and NaN fails every cut (``NaN < x``, ``NaN > x`` and a
  NaN colour are all False);
* a magnitude term ``mag_<band>`` is computed from ``flux_<band>`` when that column is present, otherwise
  read from a ``mag_<band>`` column (the float64 magnitudes stored in the parent table), so flags
  recomputed from a stored parent table are identical to the flags it carries.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dhs.survey.photometry import flux_to_mag

__all__ = [
    "LRG_VARIANTS",
    "Cut",
    "LRGVariant",
    "evaluate_cuts",
    "lrg_flags",
    "make_variant",
    "parse_cut",
    "resolve_variants",
    "type_equals",
    "type_is_psf",
    "variant_columns",
]

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}

_TERM = r"[a-z][a-z0-9_]*"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CUT_RE = re.compile(
    rf"^\s*(?P<lhs>{_TERM})\s*(?:-\s*(?P<rhs>{_TERM})\s*)?(?P<op><=|>=|<|>)\s*(?P<val>{_NUM})\s*$"
)
_TYPE_CUT_RE = re.compile(r"^\s*type\s*!=\s*(?P<val>[A-Za-z]+)\s*$")


@dataclass(frozen=True)
class Cut:
    """One cut: ``lhs [- rhs] op value``; or, if ``op == "!="``, ``type != value`` (string).

    ``lhs``/``rhs`` are column names (lower case) or ``mag_<band>`` magnitude terms (AB mag).
    """

    expr: str
    lhs: str
    rhs: str | None
    op: str
    value: float | str

    def columns(self, available: Sequence[str] | None = None) -> tuple[str, ...]:
        """Input columns this cut needs (a ``mag_<band>`` term needs ``flux_<band>``, or ``mag_<band>``
        when only that is ``available``)."""
        out: list[str] = []
        for term in (self.lhs, self.rhs):
            if term is None:
                continue
            out.append(_term_column(term, available))
        return tuple(out)


def _term_column(term: str, available: Sequence[str] | None) -> str:
    if term.startswith("mag_"):
        flux_col = "flux_" + term[4:]
        if available is not None and flux_col not in available and term in available:
            return term
        return flux_col
    return term


def parse_cut(expr: str) -> Cut:
    """Parse a cut expression.

    Accepted forms: ``"<term> <op> <number>"``, ``"<term> - <term> <op> <number>"`` with ``op`` one of
    ``< <= > >=``, and ``"type != <TYPE>"``. Terms are lower-case column names or ``mag_<band>``.
    Raises ``ValueError`` naming the expression if it does not parse.
    """
    if not isinstance(expr, str):
        raise TypeError(f"LRG cut must be a string like 'mag_z < 20.0', got {expr!r}")
    m = _TYPE_CUT_RE.match(expr)
    if m:
        return Cut(expr=expr.strip(), lhs="type", rhs=None, op="!=", value=m.group("val").upper())
    m = _CUT_RE.match(expr)
    if not m:
        raise ValueError(
            f"cannot parse LRG cut {expr!r}: expected '<column> <op> <number>', "
            "'<column> - <column> <op> <number>' (op one of < <= > >=) or 'type != <TYPE>'"
        )
    return Cut(
        expr=" ".join(expr.split()),
        lhs=m.group("lhs"),
        rhs=m.group("rhs"),
        op=m.group("op"),
        value=float(m.group("val")),
    )


NOT_PSF = "type != PSF"


@dataclass(frozen=True)
class LRGVariant:
    """A named LRG selection: the conjunction of its cuts (``type != PSF`` always included first)."""

    name: str
    cuts: tuple[Cut, ...]

    def columns(self, available: Sequence[str] | None = None) -> tuple[str, ...]:
        """Distinct input columns the variant needs, in first-use order."""
        seen: dict[str, None] = {}
        for c in self.cuts:
            for col in c.columns(available):
                seen.setdefault(col, None)
        return tuple(seen)


_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def make_variant(name: str, cuts: Sequence[str], reject_psf: bool = True) -> LRGVariant:
    """Build a variant from cut expressions; ``type != PSF`` is prepended unless given or
    ``reject_psf`` is False (only for catalogues without TYPE, e.g. target lists; never for built-ins)."""
    if not _NAME_RE.match(name):
        raise ValueError(f"LRG variant name {name!r} must match {_NAME_RE.pattern} (it becomes a column name)")
    parsed = [parse_cut(c) for c in cuts]
    if reject_psf and not any(c.op == "!=" and c.lhs == "type" and c.value == "PSF" for c in parsed):
        parsed.insert(0, parse_cut(NOT_PSF))
    return LRGVariant(name=name, cuts=tuple(parsed))


#: Built-in variants as cut expressions (AB mag, raw, float64 from nanomaggies).
LRG_VARIANT_CUTS: dict[str, tuple[str, ...]] = {
    "v1_pure_massive": ("mag_z < 20.0", "mag_r - mag_z > 0.5", "mag_z - mag_w1 > 1.6"),
    "v2_baseline_dr10": ("mag_z < 20.4", "mag_r - mag_z > 0.4", "mag_z - mag_w1 > 1.6"),
    "v3_color_relaxed": ("mag_z < 20.4", "mag_r - mag_z > 0.4", "mag_z - mag_w1 > 0.8"),
    "v4_mag_relaxed": ("mag_z < 21.0", "mag_r - mag_z > 0.4", "mag_z - mag_w1 > 0.8"),
    "v5_very_relaxed": ("mag_z < 21.5", "mag_r - mag_z > 0.3", "mag_z - mag_w1 > 0.8"),
    "seed_phase3": (
        "mag_r > 17.0",
        "mag_r < 21.0",
        "mag_g - mag_r > 0.5",
        "mag_r - mag_z > 0.2",
        "nobs_g >= 1",
        "nobs_r >= 1",
        "nobs_z >= 1",
        "fracmasked_g < 0.3",
        "dec < 32.0",
    ),
}

#: Built-in variants, by name.
LRG_VARIANTS: dict[str, LRGVariant] = {n: make_variant(n, c) for n, c in LRG_VARIANT_CUTS.items()}


def resolve_variants(
    variants: Sequence[str | LRGVariant] | Mapping[str, Sequence[str]] | None,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> list[LRGVariant]:
    """Turn names / objects / ``{name: [cuts]}`` into :class:`LRGVariant` objects.

    ``extra`` holds user-defined variants (``{name: [cut expressions]}``) that names may refer to.
    Unknown names raise ``KeyError`` listing the known ones.
    """
    if variants is None:
        variants = list(LRG_VARIANTS)
    known = dict(LRG_VARIANTS)
    for n, cuts in (extra or {}).items():
        known[n] = make_variant(n, cuts)
    if isinstance(variants, Mapping):
        return [make_variant(n, c) for n, c in variants.items()]
    out: list[LRGVariant] = []
    for v in variants:
        if isinstance(v, LRGVariant):
            out.append(v)
        elif v in known:
            out.append(known[v])
        else:
            raise KeyError(f"unknown LRG variant {v!r}; known variants: {sorted(known)}")
    return out


def variant_columns(variants: Sequence[str | LRGVariant] | None = None) -> list[str]:
    """Union of the input columns the given variants need (default: all built-ins)."""
    seen: dict[str, None] = {}
    for v in resolve_variants(variants):
        for c in v.columns():
            seen.setdefault(c, None)
    return list(seen)


def type_equals(types: object, value: str) -> np.ndarray:
    """Boolean array: TYPE equals ``value`` after decoding bytes, stripping blanks and upper-casing.

    Missing (None) types compare unequal to everything."""
    arr = np.asarray(types)
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "ascii", errors="replace")
    if arr.dtype.kind == "O":
        arr = np.array(
            ["" if t is None else (t.decode("ascii", "replace") if isinstance(t, bytes) else str(t)) for t in arr],
            dtype=str,
        )
    arr = arr.astype(str)
    return np.char.upper(np.char.strip(arr)) == value.strip().upper()


def type_is_psf(types: object) -> np.ndarray:
    """Boolean array: TYPE is ``PSF`` (bytes or str, blanks and case ignored)."""
    return type_equals(types, "PSF")


class _Columns:
    """Lazy float64 access to input columns and magnitude terms, computed once each."""

    def __init__(self, columns: Mapping[str, object]):
        self._cols = columns
        self._cache: dict[str, np.ndarray] = {}
        lengths = {k: len(np.asarray(v)) for k, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"LRG input columns have different lengths: {lengths}")
        self.n = next(iter(lengths.values())) if lengths else 0

    def names(self) -> list[str]:
        return list(self._cols)

    def raw(self, name: str, variant: str, expr: str) -> object:
        if name not in self._cols:
            raise KeyError(
                f"LRG variant {variant!r} cut {expr!r} needs column {name!r}, which is missing "
                f"(columns given: {sorted(self._cols)})"
            )
        return self._cols[name]

    def term(self, term: str, variant: str, expr: str) -> np.ndarray:
        if term in self._cache:
            return self._cache[term]
        col = _term_column(term, self.names())
        values = self.raw(col, variant, expr)
        if term.startswith("mag_") and col.startswith("flux_"):
            out = flux_to_mag(np.asarray(values, dtype=np.float64))
        else:
            out = np.asarray(values, dtype=np.float64)
        self._cache[term] = out
        return out


def _cut_pass(cut: Cut, cols: _Columns, variant: str) -> np.ndarray:
    if cut.op == "!=":
        return ~type_equals(cols.raw(cut.lhs, variant, cut.expr), str(cut.value))
    x = cols.term(cut.lhs, variant, cut.expr)
    if cut.rhs is not None:
        x = x - cols.term(cut.rhs, variant, cut.expr)
    with np.errstate(invalid="ignore"):
        return _OPS[cut.op](x, float(cut.value))  # NaN compares False: fails every cut


def evaluate_cuts(
    columns: Mapping[str, object], variants: Sequence[str | LRGVariant] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]]]:
    """Evaluate variants and count failures.

    Returns ``(flags, fail_counts)``: ``flags["is_lrg_<name>"]`` boolean arrays and
    ``fail_counts[name][cut_expr]`` = number of rows failing that cut (each cut counted independently).
    """
    cols = _Columns(columns)
    flags: dict[str, np.ndarray] = {}
    counts: dict[str, dict[str, int]] = {}
    for v in resolve_variants(variants):
        ok = np.ones(cols.n, dtype=bool)
        counts[v.name] = {}
        for cut in v.cuts:
            p = np.asarray(_cut_pass(cut, cols, v.name), dtype=bool)
            counts[v.name][cut.expr] = int(cols.n - np.count_nonzero(p))
            ok &= p
        flags[f"is_lrg_{v.name}"] = ok
    return flags, counts


def lrg_flags(
    columns: Mapping[str, object], variants: Sequence[str | LRGVariant] | None = None
) -> dict[str, np.ndarray]:
    """LRG flags for the named variants.

    ``columns`` maps lower-case sweep column names (``type``, ``flux_g``, ``flux_r``, ``flux_z``,
    ``flux_w1`` in nanomaggies, ``nobs_*``, ``fracmasked_g``, ``dec`` in deg, …) to equal-length arrays.
    Returns ``{"is_lrg_<variant>": bool array}``. With ``variants=None`` every built-in variant whose
    columns are all present is evaluated; naming a variant whose columns are absent raises ``KeyError``
    naming the missing column.
    """
    if variants is None:
        present = set(columns)
        variants = [v for v in LRG_VARIANTS.values() if set(v.columns(list(present))) <= present]
    return evaluate_cuts(columns, variants)[0]
