"""Per-band total (unlensed) source fluxes from the source r magnitude and colours.

AB magnitudes on the nanomaggy scale: flux = 10^(−0.4·(m − 22.5)) nanomaggies.  With g−r and r−z colours,
m_g = m_r + (g−r) and m_z = m_r − (r−z).  Explicit per-band magnitudes, when given, win over colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dhs.survey.photometry import mag_to_flux


@dataclass(frozen=True)
class SourceFluxes:
    """Unlensed total source flux per band (g, r, z), nanomaggies, and the magnitudes/colours used."""

    flux: np.ndarray        # (3,) float64 nanomaggies, order g, r, z
    mag_r: float
    gr: float
    rz: float

    def scaled(self, factor: float) -> SourceFluxes:
        """The same colours with every flux multiplied by ``factor`` (> 0); mag_r moves by −2.5·log10(f)."""
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"flux scale factor must be finite and > 0, got {factor}")
        return SourceFluxes(flux=self.flux * factor, mag_r=self.mag_r - 2.5 * float(np.log10(factor)),
                            gr=self.gr, rz=self.rz)


def _finite(v: float | None) -> bool:
    return v is not None and bool(np.isfinite(float(v)))


def band_fluxes(mag_r: float, gr: float | None, rz: float | None, mag_g: float | None = None,
                mag_z: float | None = None) -> SourceFluxes:
    """Fluxes (nanomaggies) in g, r, z.

    Parameters
    ----------
    mag_r : source r-band AB magnitude (finite; +inf means zero flux in every band).
    gr, rz : colours g−r and r−z (AB mag); used where ``mag_g`` / ``mag_z`` are not given.
    mag_g, mag_z : explicit g and z magnitudes (None/NaN = derive from the colours).

    Raises
    ------
    ValueError naming the missing quantity when a band cannot be computed.
    """
    if mag_r is not None and float(mag_r) == np.inf:
        return SourceFluxes(flux=np.zeros(3), mag_r=np.inf, gr=float(gr) if _finite(gr) else np.nan,
                            rz=float(rz) if _finite(rz) else np.nan)
    if not _finite(mag_r):
        raise ValueError(f"src_mag_r is not a finite magnitude (got {mag_r!r})")
    mr = float(mag_r)
    if _finite(mag_g):
        mg = float(mag_g)
    elif _finite(gr):
        mg = mr + float(gr)
    else:
        raise ValueError("neither src_mag_g nor the colour src_gr is given")
    if _finite(mag_z):
        mz = float(mag_z)
    elif _finite(rz):
        mz = mr - float(rz)
    else:
        raise ValueError("neither src_mag_z nor the colour src_rz is given")
    flux = np.asarray(mag_to_flux(np.array([mg, mr, mz])), dtype=np.float64)
    return SourceFluxes(flux=flux, mag_r=mr, gr=mg - mr, rz=mr - mz)
