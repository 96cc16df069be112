"""Derived columns of catalogue rows: magnitudes, colours, ellipticity, strata bins, HEALPix and splits.

Magnitudes are AB, 22.5 − 2.5 log10(flux/nMgy), NaN for flux ≤ 0 (:func:`dhs.survey.photometry.flux_to_mag`);
colours are differences of those (NaN propagates). The split of a row is a function of its HEALPix pixel
only (nested scheme, ``nside``): u = xxhash64("hpx<nside>:<pixel>", seed) mapped to [0, 1) and compared with
the cumulative split fractions, so every object in a pixel — positive or negative — gets the same split
(the splits are disjoint on the sky) and the answer is the same in every process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dhs.sampling.hashing import unit_uniform_array
from dhs.sampling.splits import block_keys, check_fractions, healpix_block
from dhs.survey.photometry import flux_to_mag

#: (lowest, highest or None, label) of the nobs_z strata.
NOBS_Z_BINS: tuple[tuple[int, int | None, str], ...] = ((1, 2, "1-2"), (3, 5, "3-5"), (6, 10, "6-10"),
                                                        (11, None, "11+"))
NOBS_Z_NONE = "0"
KNOWN_TYPES = ("PSF", "REX", "EXP", "DEV", "SER")


def nobs_z_bin(nobs_z: Any) -> np.ndarray:
    """Stratum label of NOBS_Z: "1-2", "3-5", "6-10", "11+" ("0" for no z exposure)."""
    n = np.asarray(nobs_z, dtype=np.int64)
    out = np.full(n.shape, NOBS_Z_NONE, dtype=object)
    for lo, hi, label in NOBS_Z_BINS:
        sel = (n >= lo) if hi is None else ((n >= lo) & (n <= hi))
        out[sel] = label
    return out


def type_bin(types: Any) -> np.ndarray:
    """Stratum label of TYPE: the upper-case Tractor type, "OTHER" for anything else (COMP, DUP, …)."""
    t = np.char.upper(np.char.strip(np.asarray(types).astype(str)))
    return np.where(np.isin(t, KNOWN_TYPES), t, "OTHER").astype(object)


def ellipticity(e1: Any, e2: Any, definition: str = "e_modulus") -> np.ndarray:
    """Ellipticity from Tractor SHAPE_E1/E2: ``e_modulus`` |e| = sqrt(e1² + e2²) = (1 − q)/(1 + q), or
    ``one_minus_q`` 1 − q = 2|e|/(1 + |e|) (q = axis ratio b/a). NaN in → NaN out."""
    e = np.hypot(np.asarray(e1, dtype=np.float64), np.asarray(e2, dtype=np.float64))
    if definition == "e_modulus":
        return e
    if definition == "one_minus_q":
        return 2.0 * e / (1.0 + e)
    raise ValueError(f"ellipticity definition must be 'e_modulus' or 'one_minus_q', got {definition!r}")


def magnitudes(cols: Mapping[str, Any], bands: tuple[str, ...] = ("g", "r", "z", "w1")) -> dict[str, np.ndarray]:
    """``mag_<band>`` for the bands whose ``flux_<band>`` is present, plus colours ``g_minus_r``,
    ``r_minus_z``, ``z_minus_w1`` when both magnitudes exist."""
    out = {f"mag_{b}": flux_to_mag(cols[f"flux_{b}"]) for b in bands if f"flux_{b}" in cols}
    for a, b in (("g", "r"), ("r", "z"), ("z", "w1")):
        if f"mag_{a}" in out and f"mag_{b}" in out:
            out[f"{a}_minus_{b}"] = out[f"mag_{a}"] - out[f"mag_{b}"]
    return out


def healpix_index(ra_deg: Any, dec_deg: Any, nside: int) -> np.ndarray:
    """Nested HEALPix pixel (int64) of each position (deg) at ``nside`` (astropy-healpix)."""
    return healpix_block(np.asarray(ra_deg, dtype=np.float64), np.asarray(dec_deg, dtype=np.float64), nside,
                         order="nested")


def hash_split(pixels: Any, nside: int, seed: int, fractions: Mapping[str, float]) -> np.ndarray:
    """Split name of each HEALPix pixel from xxhash64("hpx<nside>:<pixel>", seed) (module docstring).

    ``fractions`` (e.g. train 0.70, val 0.15, test 0.15) are taken in sorted-name order (:func:`check_fractions`): the pixel goes to
    the first split whose cumulative fraction exceeds u ∈ [0, 1).
    """
    fr = check_fractions(fractions)
    pix = np.asarray(pixels, dtype=np.int64)
    if pix.size == 0:
        return np.zeros(0, dtype=object)
    uniq, inv = np.unique(pix, return_inverse=True)
    uu = unit_uniform_array(block_keys(uniq, nside), seed)
    edges = np.cumsum(list(fr.values()))
    edges[-1] = 1.0 + 1e-12
    idx = np.searchsorted(edges, uu, side="right")
    names = np.array(list(fr), dtype=object)
    return names[idx][inv.reshape(pix.shape)]


def derive(cols: Mapping[str, Any], nside: int, seed: int, fractions: Mapping[str, float],
           ellipticity_definition: str = "e_modulus") -> dict[str, np.ndarray]:
    """All derived columns of a block of sweep rows: magnitudes and colours, ``ellipticity`` (when
    SHAPE_E1/E2 are present), ``nobs_z_bin``, ``type_bin``, ``healpix`` and ``region_split``."""
    out = magnitudes(cols)
    if "shape_e1" in cols and "shape_e2" in cols:
        out["ellipticity"] = ellipticity(cols["shape_e1"], cols["shape_e2"], ellipticity_definition)
    out["nobs_z_bin"] = nobs_z_bin(cols["nobs_z"])
    out["type_bin"] = type_bin(cols["type"])
    pix = healpix_index(cols["ra"], cols["dec"], nside)
    out["healpix"] = pix
    out["region_split"] = hash_split(pix, nside, seed, fractions)
    return out
