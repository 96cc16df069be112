"""Per-band PSF for an injection (docs/conventions.md).

For each band the PSFSIZE (arcsec, FWHM of the Gaussian with the PSF's noise-equivalent area) is taken,
in order of preference, from

* 0 — the coadd ``psfsize-<band>`` map at the host pixel,
* 1 — the host's catalogue (or brick-summary) PSFSIZE,
* 2 — the r-band value chosen by the same rule (the fallback for a band with no usable value).

A value that is NaN, infinite or ≤ 0 is never used.  The chosen PSFSIZE is converted to the FWHM of the
Moffat(β) with the same noise-equivalent area (:func:`dhs.survey.photometry.psfsize_to_moffat_fwhm`);
both numbers are returned so that they can be recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dhs.survey.photometry import psfsize_to_moffat_fwhm

PSF_FROM_MAP = 0
PSF_FROM_CATALOGUE = 1
PSF_FROM_R_BAND = 2


class PsfUnavailable(ValueError):
    """Neither the map nor the catalogue gives a usable r-band PSFSIZE (no fallback exists)."""


@dataclass(frozen=True)
class PsfChoice:
    """The PSF applied per band.

    psfsize : (nb,) PSFSIZE used, arcsec (NEA-equivalent Gaussian FWHM).
    fwhm : (nb,) Moffat FWHM applied, arcsec.
    source : (nb,) int, 0 map at the host pixel, 1 catalogue/brick value, 2 r-band fallback.
    """

    psfsize: np.ndarray
    fwhm: np.ndarray
    source: np.ndarray


def _usable(v: float | None) -> bool:
    return v is not None and bool(np.isfinite(v)) and v > 0.0


def choose_psf(map_psfsize: Sequence[float | None], catalogue_psfsize: Sequence[float | None],
               bands: Sequence[str] = ("g", "r", "z"), beta: float = 3.5,
               fallback_band: str = "r") -> PsfChoice:
    """Choose the PSFSIZE per band and convert it to a Moffat FWHM.

    Parameters
    ----------
    map_psfsize : per band, the psfsize map value at the host pixel (arcsec; NaN/None/≤0 = unusable).
    catalogue_psfsize : per band, the catalogue or brick-summary PSFSIZE (arcsec; NaN/None/≤0 = unusable).
    bands : band names in the order of the two sequences.
    beta : Moffat index of the injected PSF.
    fallback_band : the band whose chosen value replaces a band with neither source (r).

    Raises
    ------
    PsfUnavailable if a band has no usable value and the fallback band has none either.
    """
    bands = tuple(bands)
    if len(map_psfsize) != len(bands) or len(catalogue_psfsize) != len(bands):
        raise ValueError(f"choose_psf: need one map and one catalogue value per band {bands}, got "
                         f"{len(map_psfsize)} and {len(catalogue_psfsize)}")
    chosen: list[float] = [np.nan] * len(bands)
    source: list[int] = [-1] * len(bands)
    for i in range(len(bands)):
        m = None if map_psfsize[i] is None else float(map_psfsize[i])
        c = None if catalogue_psfsize[i] is None else float(catalogue_psfsize[i])
        if _usable(m):
            chosen[i], source[i] = m, PSF_FROM_MAP
        elif _usable(c):
            chosen[i], source[i] = c, PSF_FROM_CATALOGUE
    if any(s < 0 for s in source):
        if fallback_band not in bands:
            raise PsfUnavailable(f"no usable PSFSIZE for bands {[b for b, s in zip(bands, source) if s < 0]} "
                                 f"and fallback band {fallback_band!r} is not among {bands}")
        j = bands.index(fallback_band)
        if source[j] < 0:
            raise PsfUnavailable(f"no usable PSFSIZE in band {fallback_band} (map and catalogue both "
                                 f"NaN/≤0), so no fallback for bands "
                                 f"{[b for b, s in zip(bands, source) if s < 0]}")
        for i in range(len(bands)):
            if source[i] < 0:
                chosen[i], source[i] = chosen[j], PSF_FROM_R_BAND
    psfsize = np.asarray(chosen, dtype=np.float64)
    fwhm = np.asarray(psfsize_to_moffat_fwhm(psfsize, beta), dtype=np.float64)
    return PsfChoice(psfsize=psfsize, fwhm=fwhm, source=np.asarray(source, dtype=np.int32))
