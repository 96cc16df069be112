"""Which bricks the synthetic sky covers, and the observing conditions of each.

Bricks are real 0.25° Legacy Surveys bricks near the equator, in groups of adjacent bricks (pairs along
RA, pairs along Dec, single bricks, an L-shaped triple) spread over two or three widely separated sky
areas, so that stage 3 finds several regions of adjacent bricks and can fill all three splits. The brick
list depends only on ``n_bricks`` (not on the seed); the conditions and objects depend on the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dhs.sampling.hashing import rng_from_seed, stable_hash64
from dhs.survey.bricks import Brick, brick_at
from dhs.survey.photometry import mag5_to_psfdepth_ivar, psfsize_to_moffat_fwhm

BANDS = ("g", "r", "z")
MOFFAT_BETA = 3.5

#: Group anchors (RA, Dec of a point inside the first brick, deg) and shapes, in the order used.
#: Areas: A around RA 150–157 (Dec 0–3), B around RA 31–39 (Dec −4…−1), C around RA 215–219.
_GROUPS: tuple[tuple[float, float, str], ...] = (
    (150.10, 0.10, "ra_pair"),
    (35.10, -3.10, "dec_pair"),
    (156.10, 1.60, "single"),
    (38.60, -1.60, "single"),
    (152.60, 2.60, "l_triple"),
    (31.60, -4.10, "ra_pair"),
    (215.10, 1.10, "ra_pair"),
    (218.10, 3.10, "single"),
)

#: Ranges (uniform) of the per-brick observing conditions, DR10-south-like. PSFSIZE: arcsec (FWHM of the
#: Gaussian of equal NEA); depth: 5σ point-source AB magnitude; EBV: mag. All pass stage 3's default
#: quality cuts (EBV ≤ 0.12, PSFSIZE_R ≤ 1.6″, 5σ r depth ≥ 23.6).
PSFSIZE_RANGE = {"g": (1.25, 1.75), "r": (1.10, 1.45), "z": (1.00, 1.40)}
DEPTH5_RANGE = {"g": (24.6, 25.0), "r": (24.0, 24.5), "z": (23.1, 23.5)}
EBV_RANGE = (0.02, 0.09)
NEXP_RANGE = (2, 6)


def _group_bricks(ra: float, dec: float, shape: str) -> list[Brick]:
    b0 = brick_at(ra, dec)
    width = b0.ra2 - b0.ra1
    if shape == "single":
        return [b0]
    east = brick_at(b0.ra + width, b0.dec)
    north = brick_at(b0.ra, b0.dec + (b0.dec2 - b0.dec1))
    if shape == "ra_pair":
        return [b0, east]
    if shape == "dec_pair":
        return [b0, north]
    if shape == "l_triple":
        return [b0, east, north]
    raise ValueError(f"unknown brick group shape {shape!r}")


def plan_bricks(n_bricks: int) -> list[tuple[Brick, int]]:
    """The first ``n_bricks`` bricks of the synthetic sky with their group number.

    Groups are taken in the order of :data:`_GROUPS` (the last one possibly cut short); beyond them,
    further pairs are placed along the equator from RA 160° in steps of 3°.
    """
    if n_bricks < 1:
        raise ValueError(f"n_bricks must be ≥ 1, got {n_bricks}")
    out: list[tuple[Brick, int]] = []
    g = 0
    while len(out) < n_bricks:
        if g < len(_GROUPS):
            ra, dec, shape = _GROUPS[g]
        else:
            ra, dec, shape = 160.1 + 3.0 * (g - len(_GROUPS)), 0.6, "ra_pair"
        for b in _group_bricks(ra, dec, shape):
            if len(out) < n_bricks:
                out.append((b, g))
        g += 1
    names = [b.brickname for b, _ in out]
    if len(set(names)) != len(names):
        raise RuntimeError(f"synthetic brick plan repeats a brick: {names}")
    return out


@dataclass(frozen=True)
class Conditions:
    """Observing conditions of one synthetic brick (constant over the brick).

    ``psfsize``: PSFSIZE per band (arcsec, Gaussian-NEA FWHM); ``moffat_fwhm``: FWHM of the Moffat(β=3.5)
    PSF the images are drawn with (arcsec); ``depth5``: 5σ PSF depth (AB mag) at the mean invvar;
    ``pix_invvar``: mean pixel inverse variance (nanomaggy⁻²); ``nexp``: exposures per band; ``ebv``.
    """

    psfsize: dict[str, float]
    moffat_fwhm: dict[str, float]
    depth5: dict[str, float]
    pix_invvar: dict[str, float]
    nexp: dict[str, int]
    ebv: float


def psf_nea_pix(psfsize_arcsec: float, pixscale: float = 0.262) -> float:
    """Noise-equivalent area (pixels) of a PSF whose PSFSIZE is ``psfsize_arcsec``: 4πσ² of the Gaussian
    with that FWHM, which by definition of PSFSIZE is also the NEA of the Moffat drawn here."""
    sigma_pix = psfsize_arcsec / (2.0 * np.sqrt(2.0 * np.log(2.0))) / pixscale
    return float(4.0 * np.pi * sigma_pix**2)


def brick_conditions(brickname: str, seed: int) -> Conditions:
    """Deterministic conditions of a brick for a run seed.

    The pixel inverse variance follows from the depth: PSFDEPTH = pix_invvar / NEA_pix, so
    pix_invvar = PSFDEPTH · NEA_pix with PSFDEPTH = (5 / f5)², f5 the 5σ flux.
    """
    rng = rng_from_seed(stable_hash64("dhs.synth.conditions", seed, brickname))
    psfsize, fwhm, depth5, ivar, nexp = {}, {}, {}, {}, {}
    for b in BANDS:
        psfsize[b] = float(np.float32(rng.uniform(*PSFSIZE_RANGE[b])))
        fwhm[b] = float(psfsize_to_moffat_fwhm(psfsize[b], MOFFAT_BETA))
        depth5[b] = float(rng.uniform(*DEPTH5_RANGE[b]))
        ivar[b] = float(mag5_to_psfdepth_ivar(depth5[b])) * psf_nea_pix(psfsize[b])
        nexp[b] = int(rng.integers(NEXP_RANGE[0], NEXP_RANGE[1] + 1))
    ebv = float(np.float32(rng.uniform(*EBV_RANGE)))
    return Conditions(psfsize, fwhm, depth5, ivar, nexp, ebv)
