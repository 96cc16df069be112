"""What the renderer needs of a source: the protocols SourceProfile and RefinableProfile.

A source is a surface brightness in the source plane, in nanomaggies per arcsec^2, at positions (bx, by) in
arcsec from the lens centre (x along stamp columns, y along rows).  dhs.core.render renders any object that
satisfies SourceProfile; dhs.core.sersic.SersicSource and dhs.core.interpolated.InterpolatedSource do, and
so could a user's own model.  RefinableProfile is the part the adaptive quadrature (dhs.core.refinement)
uses; dhs.core.sersic_batch.SersicBatch (many unit-flux Sersics, one per row) satisfies it too.

Both protocols are ``runtime_checkable``: ``isinstance(obj, SourceProfile)`` checks that every member
exists (not their signatures).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["RefinableProfile", "SourceProfile", "finite_field", "replace_flux"]


@runtime_checkable
class RefinableProfile(Protocol):
    """A surface brightness the adaptive quadrature can integrate over image-plane cells.

    Attributes:
        wants_cell_size: True when ``evaluate`` uses ``cell`` (the source-plane size of the area each ray
            stands for, arcsec) as an anti-aliasing pre-filter width; its values are then means over that
            area, not point samples, and the renderer applies no Laplacian correction to them.
        smooth_below_refinement: True when the light has no structure below the refined cells, so the
            renderer follows the sub-cell moments of its light one refinement step only.
        non_negative: True when the surface brightness is >= 0 everywhere (so are its images: the
            transform's round-off below zero is clipped).
    """

    wants_cell_size: bool
    smooth_below_refinement: bool
    non_negative: bool

    def surface_brightness(self, bx: np.ndarray, by: np.ndarray, core_radius: float = 0.0) -> np.ndarray:
        """Surface brightness (nanomaggies/arcsec^2) at source-plane positions bx, by (arcsec).

        ``core_radius`` (arcsec): a cusp may be replaced by its mean inside that radius (flux kept)."""
        ...

    def evaluate(
        self, bx: np.ndarray, by: np.ndarray, h: Any, tol: float, core_radius: float = 0.0, area: Any = None,
        cell: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(surface brightness, needs_refinement flags) in one pass.

        ``h``: source-plane side of each position's cell (arcsec, scalar or per position); ``tol``: relative
        error per cell that asks for refinement; ``area``: the cell's image-plane area (arcsec^2, default
        h^2); ``cell``: anti-aliasing size (arcsec) for sources with ``wants_cell_size``."""
        ...

    def needs_refinement(self, bx: np.ndarray, by: np.ndarray, h: Any, tol: float = 0.02, area: Any = None
                         ) -> np.ndarray:
        """Boolean mask of positions whose cells of source-plane side ``h`` (arcsec) are too coarse."""
        ...

    def integrate_centre_cells(self, bx: np.ndarray, by: np.ndarray, h: float, means: np.ndarray) -> None:
        """Overwrite, in place, the means (nanomaggies/arcsec^2) of cells of side ``h`` (arcsec, image plane)
        that the 2x2 Gauss-Legendre rule (source-plane rays ``bx``, ``by``: (n, 4), arcsec) cannot
        integrate, e.g. at a singular centre; a source without singular points leaves them as they are."""
        ...


@runtime_checkable
class SourceProfile(RefinableProfile, Protocol):
    """A source the renderer can render (dhs.core.render, dhs.core.batch, dhs.core.metrics).

    Attributes:
        flux: total unlensed flux, nanomaggies.
        x, y: source-plane position of the centre, arcsec from the lens centre.
        min_scale: smallest length (arcsec) on which the profile changes, for sampling decisions.
        band_limited: True when the lensed cell fluxes come from ``band_limited_grid_flux`` (smooth
            templates, dhs.core.template_render) rather than from the adaptive quadrature.
    """

    flux: float
    x: float
    y: float

    @property
    def min_scale(self) -> float: ...

    @property
    def band_limited(self) -> bool: ...

    def extent_radius(self, frac: float = 0.999) -> float:
        """Radius (arcsec) from the centre holding ``frac`` of the light along any direction."""
        ...

    def with_flux(self, flux: float) -> SourceProfile:
        """Copy with a different total flux (nanomaggies), same shape."""
        ...

    def band_limited_grid_flux(
        self, lens: Any, x1: np.ndarray, y1: np.ndarray, h: float, skip: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Lensed flux (nanomaggies) of the cells of side h (arcsec) on the grid x1 x y1 (arcsec from the
        lens centre) without adaptive refinement, or None when the renderer must refine adaptively."""
        ...


def finite_field(name: str, cls: str, value: Any) -> float:
    """``value`` as a finite float, or ValueError naming the field ``cls.name``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{cls}.{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{cls}.{name} must be finite, got {value!r}")
    return out


def replace_flux(source: Any, flux: Any) -> Any:
    """Shallow copy of a frozen source dataclass with total flux ``flux`` (nanomaggies, >= 0), sharing the
    shape's arrays and caches; ValueError naming the class otherwise."""
    name = type(source).__name__
    flux = finite_field("flux", name, flux)
    if flux < 0:
        raise ValueError(f"{name}.flux must be >= 0 nanomaggies, got {flux}")
    new = copy.copy(source)
    object.__setattr__(new, "flux", flux)
    return new
