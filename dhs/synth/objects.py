"""Synthetic objects of one brick: classes, positions, fluxes and shapes (the truth the images are drawn
from and the sweep reports).

Classes (``kind``):

- ``lrg``: LRG-like DEV/SER galaxies, z < 20.2, r − z > 0.9, z − W1 > 1.75 — they pass the v2…v5 LRG
  cuts of issue #4 with margins (some also pass v1), ≥ 40 px from every coadd edge;
- ``lrg_edge``: the same population deliberately placed 2–14 px from an edge (cutouts fall off the image);
- ``faint_red``: DEV/SER galaxies with 20.55 < z < 21.3, 0.5 < r − z < 1.0, 0.9 < z − W1 < 1.5 (pass v4/v5 only
  for the brighter ones, v5 only for the rest);
- ``blue``: EXP/REX star-forming galaxies;
- ``star``: PSF stars; ``red_star``: PSF objects with LRG-like colours (must never enter an LRG sample);
- ``bright_star`` (G ≈ 13, BRIGHT/SATUR/WISE masks) and ``medium_star`` (G ≈ 15, MEDIUM/WISE masks).

Magnitudes are observed AB magnitudes (not extinction-corrected), as the cuts use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dhs.sampling.hashing import rng_from_seed, stable_hash64
from dhs.survey.photometry import mag_to_flux

REFERENCE_SIZE = 480           # coadd side the default counts are for (pixels)
LRG_EDGE_MARGIN = 40           # inner LRG hosts lie ≥ this many pixels from every edge
_INNER_PAD = 44                # placement margin for inner hosts (pixels), a little more than the margin

#: Objects per brick at the reference coadd size; scaled with the usable area for other sizes.
BASE_COUNTS = {"lrg": 38, "faint_red": 8, "blue": 30, "star": 10}
FIXED_COUNTS = {"lrg_edge": 3, "red_star": 2, "bright_star": 1, "medium_star": 2}


@dataclass
class BrickObjects:
    """Per-object truth of one brick (arrays of equal length ``n``).

    ``x``, ``y``: 0-based pixel position on the synthetic coadd (column, row); ``kind``: class;
    ``type``: Tractor TYPE; ``mag``: AB magnitudes per band name (g, r, i, z, w1, w2, w3, w4);
    ``flux``: float32 fluxes in nanomaggies per band (what the sweep holds and the images show);
    ``shape_r`` (arcsec), ``e1``, ``e2``, ``sersic``; ``mask_radius``: BRIGHT/MEDIUM mask radius (pixels,
    0 for ordinary objects).
    """

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray
    type: np.ndarray
    flux: dict[str, np.ndarray]
    shape_r: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    sersic: np.ndarray
    mask_radius: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.x)


def scaled_counts(size: int) -> dict[str, int]:
    """Object counts per class for a coadd of ``size`` pixels (area-scaled from the 480-pixel default)."""
    if size < 2 * _INNER_PAD + 20:
        raise ValueError(f"coadd_size must be ≥ {2 * _INNER_PAD + 20} pixels, got {size}")
    scale = ((size - 2 * _INNER_PAD) / (REFERENCE_SIZE - 2 * _INNER_PAD)) ** 2
    counts = {k: max(1, int(np.rint(v * scale))) for k, v in BASE_COUNTS.items()}
    counts.update(FIXED_COUNTS)
    return counts


class _Placer:
    """Rejection sampler of positions keeping minimum separations (pixels)."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng = rng
        self.size = size
        self.x: list[float] = []
        self.y: list[float] = []
        self.excl: list[float] = []   # radius around each placed object that others avoid
        self.is_lrg: list[bool] = []

    def place(self, lo: float, hi: float, min_sep: float, excl: float, lrg: bool = False,
              lrg_sep: float = 0.0, edge: bool = False, tries: int = 4000) -> tuple[float, float] | None:
        for _ in range(tries):
            if edge:
                d = self.rng.uniform(2.0, 14.0)
                along = self.rng.uniform(LRG_EDGE_MARGIN, self.size - 1 - LRG_EDGE_MARGIN)
                side = int(self.rng.integers(4))
                far = self.size - 1 - d
                x, y = [(d, along), (far, along), (along, d), (along, far)][side]
            else:
                x, y = self.rng.uniform(lo, hi, size=2)
            ok = True
            for px, py, ex, pl in zip(self.x, self.y, self.excl, self.is_lrg):
                sep = max(min_sep, ex, lrg_sep if (lrg and pl) else 0.0)
                if (x - px) ** 2 + (y - py) ** 2 < sep * sep:
                    ok = False
                    break
            if ok:
                self.x.append(float(x))
                self.y.append(float(y))
                self.excl.append(excl)
                self.is_lrg.append(lrg)
                return float(x), float(y)
        return None


def _colours(rng: np.random.Generator, kind: str) -> tuple[str, float, dict[str, float], tuple[float, ...]]:
    """(TYPE, Sersic n, AB magnitudes, (shape_r, e1, e2)) of one object of class ``kind``."""
    u = rng.uniform
    if kind in ("lrg", "lrg_edge", "faint_red"):
        is_dev = u() < 0.55
        typ = "DEV" if is_dev else "SER"
        n = 4.0 if is_dev else float(np.round(u(2.5, 5.5), 2))
        if kind == "faint_red":
            z, rz, zw1 = u(20.55, 21.3), u(0.5, 1.0), u(0.9, 1.5)
            gr = u(0.8, 1.6)
            re = float(np.clip(rng.lognormal(np.log(0.6), 0.3), 0.3, 1.2))
        else:
            z, rz, zw1 = u(17.8, 20.2), u(0.9, 1.7), u(1.75, 2.5)
            gr = u(1.2, 2.0)
            re = float(np.clip(rng.lognormal(np.log(0.9), 0.3), 0.4, 1.6))
        emag, ang = u(0.0, 0.4), u(0.0, np.pi)
        shape = (re, emag * np.cos(2 * ang), emag * np.sin(2 * ang))
        w12 = u(-0.7, -0.3)
    elif kind == "blue":
        is_exp = u() < 0.6
        typ = "EXP" if is_exp else "REX"
        n = 1.0
        r = u(19.5, 23.0)
        gr, rz, zw1 = u(0.2, 0.8), u(0.1, 0.7), u(-0.6, 0.7)
        z = r - rz
        if is_exp:
            re = float(np.clip(rng.lognormal(np.log(0.8), 0.35), 0.3, 2.0))
            emag, ang = u(0.0, 0.6), u(0.0, np.pi)
            shape = (re, emag * np.cos(2 * ang), emag * np.sin(2 * ang))
        else:
            shape = (u(0.25, 0.8), 0.0, 0.0)
        w12 = u(-0.5, 0.3)
    else:
        typ, n, shape = "PSF", 0.0, (0.0, 0.0, 0.0)
        w12 = u(-0.9, -0.5)
        if kind == "red_star":
            z, rz, zw1, gr = u(18.5, 20.0), u(0.9, 1.4), u(1.8, 2.2), 1.4
        elif kind == "bright_star":
            r = u(12.8, 13.6)
            gr, rz, zw1 = u(0.4, 0.8), u(0.1, 0.4), u(-0.8, -0.4)
            z = r - rz
        elif kind == "medium_star":
            r = u(14.5, 16.0)
            gr, rz, zw1 = u(0.4, 1.0), u(0.1, 0.6), u(-0.9, -0.4)
            z = r - rz
        else:
            r = u(17.0, 22.5)
            gr, rz, zw1 = u(0.3, 1.4), u(0.0, 0.9), u(-1.2, -0.2)
            z = r - rz
    r = z + rz
    g = r + gr
    i = r - 0.55 * rz
    w1 = z - zw1
    w2 = w1 - w12
    mags = {"g": g, "r": r, "i": i, "z": z, "w1": w1, "w2": w2, "w3": w2 - u(-0.5, 1.0),
            "w4": w2 - u(-0.5, 1.5)}
    return typ, n, mags, shape


def bright_mask_radius(mag_r: float) -> float:
    """Synthetic BRIGHT/MEDIUM mask radius in pixels for a star of r magnitude ``mag_r``: 40 px at
    r = 13, shrinking by 10^(−0.1 Δm) (a scaled-down version of the DR10 radius–magnitude relation)."""
    return float(40.0 * 10.0 ** (-0.1 * (mag_r - 13.0)))


def make_objects(brickname: str, seed: int, size: int) -> BrickObjects:
    """Draw the objects of a brick deterministically from (seed, brickname) for a ``size``² coadd."""
    rng = rng_from_seed(stable_hash64("dhs.synth.objects", seed, brickname))
    counts = scaled_counts(size)
    placer = _Placer(rng, size)
    rows: list[tuple] = []

    def add(kind: str, xy: tuple[float, float] | None, mask_r: float = 0.0) -> None:
        if xy is None:
            if kind in ("lrg", "lrg_edge"):
                raise RuntimeError(f"brick {brickname}: could not place an LRG-like host on a {size}-pixel "
                                   "coadd; use a larger coadd_size")
            return
        typ, n, mags, shape = _colours(rng, kind)
        rows.append((kind, xy, typ, n, mags, shape, mask_r))

    lo, hi = 6.0, size - 7.0
    # (kind, distance from the image edge in pixels, minimum separation in pixels)
    for kind, edge, sep in (("bright_star", 40, 30.0), ("medium_star", 20, 20.0)):
        for _ in range(counts[kind]):
            # the star's magnitude sets its mask radius; draw it first with the same generator as _colours
            xy = placer.place(float(edge), size - edge - 1.0, sep, excl=0.0)
            if xy is not None:
                typ, n, mags, shape = _colours(rng, kind)
                rad = bright_mask_radius(mags["r"])
                placer.excl[-1] = 0.6 * rad
                rows.append((kind, xy, typ, n, mags, shape, rad))
    for _ in range(counts["lrg"]):
        add("lrg", placer.place(_INNER_PAD, size - 1 - _INNER_PAD, 12.0, 12.0, lrg=True, lrg_sep=24.0))
    for _ in range(counts["lrg_edge"]):
        add("lrg_edge", placer.place(0, 0, 12.0, 12.0, lrg=True, lrg_sep=24.0, edge=True))
    for kind in ("faint_red", "blue", "star", "red_star"):
        for _ in range(counts[kind]):
            add(kind, placer.place(lo, hi, 12.0, 12.0))

    bands = ("g", "r", "i", "z", "w1", "w2", "w3", "w4")
    return BrickObjects(
        x=np.array([r[1][0] for r in rows]),
        y=np.array([r[1][1] for r in rows]),
        kind=np.array([r[0] for r in rows]),
        type=np.array([r[2] for r in rows]),
        flux={b: mag_to_flux(np.array([r[4][b] for r in rows])).astype(np.float32) for b in bands},
        shape_r=np.array([r[5][0] for r in rows], dtype=np.float32),
        e1=np.array([r[5][1] for r in rows], dtype=np.float32),
        e2=np.array([r[5][2] for r in rows], dtype=np.float32),
        sersic=np.array([r[3] for r in rows], dtype=np.float32),
        mask_radius=np.array([r[6] for r in rows]),
    )
