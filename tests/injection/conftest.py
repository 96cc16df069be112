"""Fixtures for the stage 4c per-task tests: a tiny coadd brick and its store."""

from __future__ import annotations

import pytest

from tests.injection import tiny_sky


@pytest.fixture(scope="module")
def brick(tmp_path_factory):
    """(survey root, WCS) of a tiny brick; the g psfsize map has a zero hole around pixel (40, 120)."""
    root = tmp_path_factory.mktemp("tiny") / "sky"
    wcs = tiny_sky.write_brick(root, psf_hole_g=(slice(110, 130), slice(30, 50)))
    return str(root), wcs


@pytest.fixture(scope="module")
def store(brick):
    from dhs.survey.coadd import CoaddStore

    return CoaddStore(brick[0])


@pytest.fixture()
def settings():
    from dhs.config.stage4c import Stage4cConfig

    return Stage4cConfig(keep_arrays=["arc", "invvar", "maskbits"])
