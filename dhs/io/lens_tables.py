"""Known-lens tables: a user table (CSV, TSV, whitespace with a ``#`` header, FITS) or ``lenscat``.

One reader for every stage that needs known lenses (stage 4a's exclusion of hosts near a known lens, stage 6's
positives). Error messages name the file, the row and column, and the configuration key that set them
(``keys``: stage 6's by default).

Positions are read as float64 degrees (never float32: 1e-7 relative error in RA is 0.13″ at RA 360°).
Grades and references are kept as strings ("" when the table has no such column). Every lens gets a stable
``lens_id``: the table's name column when it has one, else ``<file name>:<row>``; duplicate ids are made
unique by appending ``#<k>`` in row order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RA_NAMES = ("ra", "ra_deg", "raj2000", "ra_j2000", "radeg", "alpha")
DEC_NAMES = ("dec", "dec_deg", "dej2000", "decj2000", "dec_j2000", "decdeg", "delta")
GRADE_NAMES = ("grade", "grading", "grade_final", "quality")
REF_NAMES = ("reference", "ref", "references", "bibcode", "source_paper")
NAME_NAMES = ("name", "lens_id", "id", "lens_name", "object")


class LensTableError(ValueError):
    """A known-lens table cannot be used; the message names the file, row and column."""


@dataclass(frozen=True)
class LensTableKeys:
    """Configuration keys named in error messages: the table path, the column overrides (None when the stage
    has none), the lenscat switch."""

    catalog: str = "stage6.lens_catalog"
    columns: str | None = "stage6.lens_columns"
    lenscat: str = "stage6.use_lenscat"


STAGE6_KEYS = LensTableKeys()


@dataclass(frozen=True)
class LensTable:
    """Known lenses: ``ra``/``dec`` (deg, float64), ``grade``, ``reference``, ``lens_id`` (str arrays);
    ``source``: where the table came from; ``columns``: the columns used (role → name or None)."""

    ra: np.ndarray
    dec: np.ndarray
    grade: np.ndarray
    reference: np.ndarray
    lens_id: np.ndarray
    source: str
    columns: dict[str, str | None]

    def __len__(self) -> int:
        return int(self.ra.size)


def _find(names: Sequence[str], wanted: str | None, candidates: Sequence[str], src: str, role: str,
          required: bool, keys: LensTableKeys) -> str | None:
    lower = {n.lower(): n for n in names}
    if wanted is not None:
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise LensTableError(f"{src}: column {wanted!r} ({keys.columns}.{role}) not found; "
                             f"columns are {list(names)}")
    for c in candidates:
        if c in lower:
            return lower[c]
    if required:
        hint = f" or set {keys.columns}.{role}" if keys.columns else ""
        raise LensTableError(f"{src}: no {role} column; expected one of {list(candidates)} (case-insensitive)"
                             f"{hint}; columns are {list(names)}")
    return None


def _as_str(col: object, n: int) -> np.ndarray:
    if col is None:
        return np.full(n, "", dtype=object)
    vals = np.asarray(col)
    if np.ma.isMaskedArray(col):
        vals = np.ma.filled(col.astype(str), "")  # type: ignore[union-attr]
    out = np.empty(n, dtype=object)
    for i, v in enumerate(vals.tolist()):
        s = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        out[i] = "" if s in ("--", "nan", "None") else s.strip()
    return out


def _float64(col: object, src: str, name: str) -> np.ndarray:
    if np.ma.isMaskedArray(col):
        col = np.ma.filled(col.astype(np.float64), np.nan)  # type: ignore[union-attr]
    try:
        return np.asarray(col, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LensTableError(f"{src}: column {name!r} is not numeric degrees: {exc}") from exc


def lens_table_from_columns(table: object, source: str, ra: str | None = None, dec: str | None = None,
                            grade: str | None = None, reference: str | None = None,
                            name: str | None = None, keys: LensTableKeys = STAGE6_KEYS) -> LensTable:
    """Build a :class:`LensTable` from any table with ``colnames`` and column access (astropy Table).

    Column arguments name the columns; None picks the first usual name present. RA/Dec must be finite
    degrees with −90 ≤ Dec ≤ 90 (RA wrapped to [0, 360)); a bad row raises naming the row and column.
    """
    names = list(table.colnames)  # type: ignore[attr-defined]
    ra_c = _find(names, ra, RA_NAMES, source, "ra", True, keys)
    dec_c = _find(names, dec, DEC_NAMES, source, "dec", True, keys)
    gr_c = _find(names, grade, GRADE_NAMES, source, "grade", False, keys)
    ref_c = _find(names, reference, REF_NAMES, source, "reference", False, keys)
    nm_c = _find(names, name, NAME_NAMES, source, "name", False, keys)
    ra_v = _float64(table[ra_c], source, ra_c)  # type: ignore[index]
    dec_v = _float64(table[dec_c], source, dec_c)  # type: ignore[index]
    n = ra_v.size
    for arr, col in ((ra_v, ra_c), (dec_v, dec_c)):
        bad = ~np.isfinite(arr)
        if col == dec_c:
            bad |= np.abs(np.where(np.isfinite(arr), arr, 0.0)) > 90.0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LensTableError(f"{source}: row {i}: column {col!r} = {arr[i]!r} is not a valid position in "
                                 "degrees" + (" (|Dec| must be ≤ 90)" if col == dec_c else ""))
    base = os.path.basename(source)
    if nm_c is not None:
        ids = _as_str(table[nm_c], n)  # type: ignore[index]
        ids = np.array([v if v else f"{base}:{i}" for i, v in enumerate(ids.tolist())], dtype=object)
    else:
        ids = np.array([f"{base}:{i}" for i in range(n)], dtype=object)
    seen: dict[str, int] = {}
    for i, v in enumerate(ids.tolist()):
        k = seen.get(v, 0)
        seen[v] = k + 1
        if k:
            ids[i] = f"{v}#{k}"
    return LensTable(
        ra=np.mod(ra_v, 360.0), dec=dec_v,
        grade=_as_str(table[gr_c] if gr_c else None, n),  # type: ignore[index]
        reference=_as_str(table[ref_c] if ref_c else None, n),  # type: ignore[index]
        lens_id=ids, source=source,
        columns={"ra": ra_c, "dec": dec_c, "grade": gr_c, "reference": ref_c, "name": nm_c},
    )


def _format_of(path: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    low = path.lower()
    if low.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
        return "fits"
    if low.endswith(".csv"):
        return "csv"
    if low.endswith((".tsv", ".tab")):
        return "tsv"
    return "whitespace"


def read_lens_table(path: str | os.PathLike[str], fmt: str = "auto", ra: str | None = None,
                    dec: str | None = None, grade: str | None = None, reference: str | None = None,
                    name: str | None = None, keys: LensTableKeys = STAGE6_KEYS) -> LensTable:
    """Read a known-lens table from a local file.

    ``fmt``: "auto" (from the extension: .fits/.fit[.gz] → FITS HDU1, .csv → comma, .tsv/.tab → tab,
    otherwise whitespace with a ``#``-prefixed header line as in SLACS tables), or one of "csv", "tsv",
    "fits", "whitespace". Column arguments and ``keys`` as in :func:`lens_table_from_columns`.
    """
    from astropy.io import ascii as ascii_io
    from astropy.table import Table

    p = str(path)
    if not os.path.isfile(p):
        raise LensTableError(f"known-lens table not found: {p} ({keys.catalog})")
    kind = _format_of(p, fmt)
    try:
        if kind == "fits":
            t = Table.read(p, hdu=1)
        elif kind == "csv":
            t = ascii_io.read(p, format="csv", guess=False)
        elif kind == "tsv":
            t = ascii_io.read(p, format="tab", guess=False)
        else:
            with open(p) as fh:
                first = fh.readline()
            if first.startswith("#"):
                t = ascii_io.read(p, format="no_header", names=first.lstrip("#").split(), comment="#",
                                  guess=False)
            else:
                t = ascii_io.read(p, format="basic", guess=False)
    except Exception as exc:  # astropy raises several types for unreadable tables
        raise LensTableError(f"{p}: cannot read known-lens table as {kind}: {exc}") from exc
    return lens_table_from_columns(t, p, ra=ra, dec=dec, grade=grade, reference=reference, name=name, keys=keys)


def read_lens_table_any(path: str, fmt: str = "auto", s3: object = None, **columns: str | None) -> LensTable:
    """:func:`read_lens_table` for a local path or an ``s3://`` object (fetched to a temporary file with the
    same suffix; ``source`` stays the s3:// address). ``columns``: the column arguments of
    :func:`read_lens_table`."""
    from dhs.io.paths import is_s3, read_bytes

    if not is_s3(path):
        return read_lens_table(path, fmt, **columns)
    import tempfile

    suffix = "".join(os.path.basename(path).partition(".")[1:]) or ".tbl"
    with tempfile.TemporaryDirectory() as d:
        local = os.path.join(d, "lenses" + (suffix if suffix.startswith(".") else "." + suffix))
        with open(local, "wb") as fh:
            fh.write(read_bytes(path, s3))
        t = read_lens_table(local, fmt, **columns)
    return LensTable(t.ra, t.dec, t.grade, t.reference, t.lens_id, path, t.columns)


def lenscat_available() -> bool:
    """True when the optional ``lenscat`` package can be imported."""
    try:
        import lenscat  # noqa: F401
    except ImportError:
        return False
    return True


def lenscat_table(ra: str | None = None, dec: str | None = None, grade: str | None = None,
                  reference: str | None = None, name: str | None = None,
                  keys: LensTableKeys = STAGE6_KEYS) -> LensTable:
    """The community catalogue shipped by the optional PyPI package ``lenscat`` (``lenscat.catalog``; no
    network access). Raises :class:`LensTableError` when the package is not installed."""
    try:
        import lenscat
    except ImportError as exc:
        raise LensTableError(f"{keys.lenscat}: the package 'lenscat' is not installed (pip install lenscat); "
                             f"or give a table in {keys.catalog}") from exc
    return lens_table_from_columns(lenscat.catalog, "lenscat.catalog", ra=ra, dec=dec, grade=grade,
                                   reference=reference, name=name, keys=keys)

