"""Source-plane surface-brightness models: elliptical Sersic and interpolated images.

Every source is a surface brightness in nanomaggies per arcsec^2, normalised analytically from its
unlensed total flux (nanomaggies), so that integrating the lensed image over the image plane gives
``flux * magnification``.  Positions are arcsec in the source plane, relative to the lens centre
(x along stamp columns, y along rows).

- dhs.core.sersic: SersicSource (lenstronomy SERSIC_ELLIPSE, exact b_n), sersic_b_n,
  sersic_enclosed_fraction; the exact integration of the cells at its centre is dhs.core.sersic_centre.
- dhs.core.interpolated: InterpolatedSource (a template image, e.g. an HST COSMOS galaxy); its
  anti-aliasing pre-filter levels are dhs.core.template_levels.
- dhs.core.source_profile: SourceProfile, the protocol the renderer needs of any source.

This module gathers them under one name.
"""

from .interpolated import InterpolatedSource
from .sersic import SersicSource, sersic_b_n, sersic_enclosed_fraction
from .source_profile import SourceProfile

__all__ = ["InterpolatedSource", "SersicSource", "SourceProfile", "sersic_b_n", "sersic_enclosed_fraction"]
