"""A small deterministic synthetic COSMOS-like bank, for the demo and CI where no HST data is at hand.

Each galaxy is an inclined exponential disk plus a few compact Gaussian star-forming clumps, drawn
noise-free with 4×4 sub-pixel integration, light centroid exactly at the template centre, unit total flux.
The bank has the same layout and metadata columns as a real one (``source_catalog = "synthetic"``);
``snr`` is NaN (noise-free) and colours are drawn from plausible star-forming ranges.
"""

from __future__ import annotations

import math
import os

import numpy as np

from dhs.cosmos.bank import write_bank
from dhs.cosmos.builder import clumpiness, edge_flux_fraction, half_light_radius
from dhs.sampling.hashing import rng_from_seed

_SUB = 4
_EXP_B1 = 1.678347  # exponential profile: r_half = 1.678347 scale lengths


def _galaxy(rng: np.random.Generator, size: int, pixscale: float) -> np.ndarray:
    """One noise-free galaxy image (arbitrary normalisation) with its light centroid at the centre."""
    hlr = rng.uniform(0.10, 0.30)
    q = rng.uniform(0.4, 1.0)
    pa = rng.uniform(0.0, math.pi)
    n_clump = int(rng.integers(0, 5))
    clump_frac = rng.uniform(0.03, 0.10, n_clump)
    radius = hlr * np.sqrt(rng.uniform(0.05, 1.5, n_clump))
    phi = rng.uniform(0.0, 2 * math.pi, n_clump)
    cx, cy = radius * np.cos(phi), radius * np.sin(phi)
    csig = rng.uniform(0.025, 0.06, n_clump)
    disk_frac = 1.0 - clump_frac.sum()
    # shift everything so that the flux-weighted centre (disk at 0, clumps at (cx, cy)) is at the origin
    x0 = float((clump_frac * cx).sum())
    y0 = float((clump_frac * cy).sum())
    h = pixscale / _SUB
    ax = (np.arange(size * _SUB) - (size * _SUB - 1) / 2.0) * h
    xx, yy = np.meshgrid(ax + x0, ax + y0)
    c, s = math.cos(pa), math.sin(pa)
    xr = c * xx + s * yy
    yr = -s * xx + c * yy
    rd = hlr / _EXP_B1 / math.sqrt(q)  # scale length along the major axis (circularised hlr = hlr)
    ell = np.hypot(xr, yr / q) / rd
    img = disk_frac * np.exp(-ell) / (2 * math.pi * rd * rd * q)
    for f, x, y, sg in zip(clump_frac, cx, cy, csig, strict=True):
        img += f * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sg**2) / (2 * math.pi * sg * sg)
    img *= h * h
    return img.reshape(size, _SUB, size, _SUB).sum(axis=(1, 3))


def write_synthetic_bank(path: str | os.PathLike[str], n: int = 24, stamp_size: int = 96,
                         pixscale: float = 0.03, seed: int = 0) -> str:
    """Write a deterministic synthetic bank of ``n`` templates (stamp_size² pixels of pixscale arcsec)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = rng_from_seed(seed)
    images = np.stack([_galaxy(rng, stamp_size, pixscale) for _ in range(n)])
    contained = images.sum(axis=(1, 2))
    images = images / contained[:, None, None]
    hlr = np.array([half_light_radius(t, pixscale) for t in images])
    gr = rng.uniform(0.2, 1.1, n)
    rz = rng.uniform(0.1, 0.9, n)
    mag_i = rng.uniform(22.0, 25.0, n)
    mag_r = mag_i + rng.uniform(0.1, 0.5, n)
    meta = {
        "catalog_index": np.arange(n, dtype=np.int64),
        "ident": np.arange(n, dtype=np.int64),
        "hlr_arcsec": hlr,
        "mag_f814w": mag_i,
        "photo_z": rng.uniform(0.5, 3.0, n),
        "mag_g": mag_r + gr,
        "mag_r": mag_r,
        "mag_z": mag_r - rz,
        "color_gr": gr,
        "color_rz": rz,
        "clumpiness": np.array([clumpiness(t, h / pixscale) for t, h in zip(images, hlr, strict=True)]),
        "snr": np.full(n, np.nan),
        "edge_flux_frac": np.array([edge_flux_fraction(t, 3) for t in images]),
        "stamp_flux_frac": contained,
        "footprint_npix": np.full(n, stamp_size * stamp_size, dtype=np.int64),
        "sky_level": np.zeros(n),
        "recentre_dx_arcsec": np.zeros(n),
        "recentre_dy_arcsec": np.zeros(n),
    }
    attrs = {"pixscale_arcsec": pixscale, "source_catalog": "synthetic", "colour_source": "synthetic",
             "build_params": {"n": n, "stamp_size": stamp_size, "pixscale": pixscale, "seed": seed,
                              "model": "exponential disk + Gaussian clumps"}}
    write_bank(path, images, meta, attrs, require_columns=True)
    return os.fspath(path)
