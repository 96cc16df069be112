"""The source protocols (dhs.core.source_profile): both source classes satisfy SourceProfile, the batched
Sersic rows satisfy RefinableProfile, and objects missing part of the interface are rejected."""

import numpy as np
import pytest

from dhs.core import InterpolatedSource, SersicSource, SIELens, SourceProfile, render_lensed_batch
from dhs.core.sersic_batch import SersicBatch
from dhs.core.source_profile import RefinableProfile


def _sources():
    yy, xx = np.mgrid[:9, :9] - 4.0
    return [SersicSource(1.0, 0.3, 2.0, 0.1, 0.0, 0.2, -0.1),
            InterpolatedSource(np.exp(-(xx**2 + yy**2) / 8.0), 0.05, 1.0, x=0.1)]


@pytest.mark.parametrize("source", _sources(), ids=["sersic", "interpolated"])
def test_both_source_classes_satisfy_the_protocol(source):
    assert isinstance(source, SourceProfile)
    assert isinstance(source.with_flux(2.0), SourceProfile)
    # the renderer's flags are plain values of the documented types
    assert isinstance(source.wants_cell_size, bool)
    assert isinstance(source.smooth_below_refinement, bool)
    assert isinstance(source.non_negative, bool)
    assert isinstance(source.band_limited, bool)
    assert source.min_scale > 0 and source.extent_radius() > 0


def test_every_protocol_member_is_declared_on_both_classes():
    """A static check: each member of SourceProfile is an attribute, property or method of both classes
    (dataclass fields without defaults appear in the class's fields)."""
    import dataclasses
    import typing

    members = set(typing.get_type_hints(SourceProfile)) | {
        name for name in dir(SourceProfile) if not name.startswith("_") and callable(getattr(SourceProfile, name))
    } | {"min_scale", "band_limited"}
    assert {"surface_brightness", "evaluate", "needs_refinement", "integrate_centre_cells", "with_flux",
            "extent_radius", "band_limited_grid_flux", "flux", "x", "y", "wants_cell_size"} <= members
    for cls in (SersicSource, InterpolatedSource):
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = {m for m in members if not hasattr(cls, m) and m not in fields}
        assert not missing, (cls.__name__, missing)


def test_sersic_rows_of_a_batch_satisfy_the_quadrature_protocol_only():
    rows = SersicBatch.from_sources([_sources()[0]])
    assert isinstance(rows, RefinableProfile)
    assert not isinstance(rows, SourceProfile)  # (no single flux, position or with_flux)


def test_sersic_is_never_band_limited_and_templates_have_no_centre_cells():
    sersic, tpl = _sources()
    x1 = np.linspace(-1, 1, 8, dtype=np.float32)
    assert sersic.band_limited is False
    assert sersic.band_limited_grid_flux(SIELens(1.0), x1, x1, 0.25) is None
    means = np.arange(5.0)
    bx = np.zeros((5, 4))
    tpl.integrate_centre_cells(bx, bx, 0.01, means)
    np.testing.assert_array_equal(means, np.arange(5.0))


def test_an_object_without_the_interface_is_not_a_source():
    class Partial:
        flux, x, y = 1.0, 0.0, 0.0

        def surface_brightness(self, bx, by, core_radius=0.0):
            return np.zeros_like(bx)

        def with_flux(self, flux):
            return self

    assert not isinstance(Partial(), SourceProfile)
    with pytest.raises(ValueError, match=r"row 0: sources\[0\] must be a SersicSource or InterpolatedSource"):
        render_lensed_batch([SIELens(1.0)], [Partial()], [[1.0]], [[1.0]], size=16)
