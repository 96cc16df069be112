"""Deterministic use of a COSMOS bank for one injection task (stage 4c, ``source_mode: cosmos``).

Everything random comes from the task's ``task_seed`` through xxhash64 (``dhs.sampling.hashing``), each
draw with its own salt, so the choices are independent of each other and of partitioning:

* template index: ``xxhash64(task_seed, "cosmos_index") mod N`` (uniform over the bank), unless the manifest
  fixes ``cosmos_index >= 0``;
* rotation angle: uniform in [0, 2π) radians, counter-clockwise (dhs.core convention);
* flip: mirror x (template columns reversed) with probability 1/2 when ``allow_flip``;
* size scale: ``target_hlr / template_hlr`` when the manifest asks for a half-light radius, else 1;
* colours: the template's own g−r, r−z (from the catalogue) or the manifest's, per ``colours``.

Per-band total fluxes (nanomaggies) follow from the source r magnitude: f_r = 10^(−0.4 (m_r − 22.5)),
f_g = f_r · 10^(−0.4 (g−r)), f_z = f_r · 10^(+0.4 (r−z)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dhs.cosmos.bank import CosmosBank
from dhs.sampling.hashing import unit_uniform, unsigned_hash64

ColourPolicy = Literal["template", "manifest"]


def choose_template(bank: CosmosBank | int, task_seed: int, *, salt: str = "cosmos_index") -> int:
    """Template index in [0, N) chosen uniformly from ``task_seed`` (``bank`` may be the bank or N)."""
    n = bank if isinstance(bank, (int, np.integer)) else bank.n
    n = int(n)
    if n < 1:
        raise ValueError("cannot choose a COSMOS template from an empty bank")
    return int(unsigned_hash64(int(task_seed), salt) % n)


def template_orientation(task_seed: int, allow_flip: bool = True) -> tuple[float, bool]:
    """(rotation angle in radians, counter-clockwise, in [0, 2π); whether to mirror x) from ``task_seed``."""
    angle = 2.0 * math.pi * unit_uniform(int(task_seed), "cosmos_angle")
    flip = bool(allow_flip and unit_uniform(int(task_seed), "cosmos_flip") < 0.5)
    return angle, flip


def size_scale(template_hlr_arcsec: float, target_hlr_arcsec: float | None) -> float:
    """Size factor that gives the template the target half-light radius (1 when no valid target)."""
    if target_hlr_arcsec is None or not np.isfinite(target_hlr_arcsec) or target_hlr_arcsec <= 0:
        return 1.0
    if not template_hlr_arcsec > 0:
        raise ValueError(f"template half-light radius must be > 0 arcsec, got {template_hlr_arcsec}")
    return float(target_hlr_arcsec) / float(template_hlr_arcsec)


def band_fluxes(mag_r: float, gr: float, rz: float) -> tuple[float, float, float]:
    """Total (g, r, z) fluxes in nanomaggies for an r magnitude (AB) and colours g−r, r−z."""
    vals = (mag_r, gr, rz)
    if not all(v is not None and np.isfinite(v) for v in vals):
        raise ValueError(f"band_fluxes needs finite mag_r, g-r, r-z, got {vals}")
    f_r = 10.0 ** (-0.4 * (float(mag_r) - 22.5))
    return f_r * 10.0 ** (-0.4 * float(gr)), f_r, f_r * 10.0 ** (0.4 * float(rz))


def _finite(v: Any) -> bool:
    return v is not None and bool(np.isfinite(v))


def resolve_colours(bank: CosmosBank, index: int, manifest_gr: float | None, manifest_rz: float | None,
                    colours: ColourPolicy = "template") -> tuple[float, float, str]:
    """(g−r, r−z, source) with source "template" or "manifest".

    ``colours="template"`` uses the template's catalogue colours when both are finite and falls back to the
    manifest's; ``"manifest"`` uses the manifest's and falls back to the template's. ValueError when
    neither is available.
    """
    t_gr, t_rz = bank.colours(index)
    options = [("template", t_gr, t_rz), ("manifest", manifest_gr, manifest_rz)]
    if colours == "manifest":
        options.reverse()
    elif colours != "template":
        raise ValueError(f"colours must be 'template' or 'manifest', got {colours!r}")
    for name, gr, rz in options:
        if _finite(gr) and _finite(rz):
            return float(gr), float(rz), name
    raise ValueError(f"no colours for COSMOS template {index}: template ({t_gr}, {t_rz}), "
                     f"manifest ({manifest_gr}, {manifest_rz})")


@dataclass(frozen=True, eq=False)
class CosmosChoice:
    """Everything stage 4c needs to render one COSMOS source and record it.

    ``template`` is the (possibly mirrored) unit-flux float32 image, ``pixscale`` its arcsec/pixel;
    ``angle_rad``/``scale`` are passed to ``InterpolatedSource``; ``fluxes`` = total (g, r, z) nanomaggies.
    """

    index: int
    template: np.ndarray
    pixscale: float
    angle_rad: float
    flip: bool
    scale: float
    hlr_template_arcsec: float
    gr: float
    rz: float
    colour_source: str
    mag_r: float
    fluxes: tuple[float, float, float]

    @property
    def hlr_arcsec(self) -> float:
        """Half-light radius of the source as rendered (unlensed), arcsec."""
        return self.scale * self.hlr_template_arcsec

    def source(self, x: float = 0.0, y: float = 0.0, flux: float | None = None) -> Any:
        """A ``dhs.core.InterpolatedSource`` at source-plane (x, y) arcsec with ``flux`` (default: r flux)."""
        from dhs.core import InterpolatedSource

        return InterpolatedSource(self.template, self.pixscale, self.fluxes[1] if flux is None else flux,
                                  x=x, y=y, angle=self.angle_rad, scale=self.scale)

    def record(self) -> dict[str, Any]:
        """Output columns: cosmos_index, src_gr_used, src_rz_used, src_mag_r_used and the draw."""
        return {
            "cosmos_index": self.index,
            "src_gr_used": self.gr,
            "src_rz_used": self.rz,
            "src_mag_r_used": self.mag_r,
            "src_colour_source": self.colour_source,
            "cosmos_angle_rad": self.angle_rad,
            "cosmos_flip": int(self.flip),
            "cosmos_scale": self.scale,
            "src_hlr_used_arcsec": self.hlr_arcsec,
        }


def choose_cosmos_source(
    bank: CosmosBank,
    task_seed: int,
    mag_r: float,
    *,
    cosmos_index: int | None = -1,
    target_hlr_arcsec: float | None = None,
    allow_flip: bool = True,
    colours: ColourPolicy = "template",
    manifest_gr: float | None = None,
    manifest_rz: float | None = None,
) -> CosmosChoice:
    """Choose and prepare the COSMOS source of one task (see the module docstring for the rules).

    ``cosmos_index`` < 0 or None → chosen from ``task_seed``; otherwise used as is (IndexError if out of
    range). ``mag_r`` is the source's unlensed r magnitude (AB).
    """
    idx = choose_template(bank, task_seed) if cosmos_index is None or int(cosmos_index) < 0 else int(cosmos_index)
    img = bank.template(idx)
    angle, flip = template_orientation(task_seed, allow_flip)
    if flip:
        img = np.ascontiguousarray(img[:, ::-1])
    hlr = bank.hlr(idx)
    scale = size_scale(hlr, target_hlr_arcsec)
    gr, rz, src = resolve_colours(bank, idx, manifest_gr, manifest_rz, colours)
    return CosmosChoice(index=idx, template=img, pixscale=bank.pixscale, angle_rad=angle, flip=flip,
                        scale=scale, hlr_template_arcsec=hlr, gr=gr, rz=rz, colour_source=src,
                        mag_r=float(mag_r), fluxes=band_fluxes(mag_r, gr, rz))
