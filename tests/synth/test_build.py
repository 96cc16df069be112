"""build_sky: determinism, seeds, small skies, refusal to overwrite foreign folders, bad arguments."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
from astropy.io import fits

from dhs.synth import build_sky
from dhs.synth.plan import plan_bricks


def _digests(root: str) -> dict[str, str]:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def small_skies(tmp_path_factory):
    base = tmp_path_factory.mktemp("small")
    a = build_sky(str(base / "a"), n_bricks=2, seed=7, coadd_size=160)
    b = build_sky(str(base / "b"), n_bricks=2, seed=7, coadd_size=160)
    c = build_sky(str(base / "c"), n_bricks=2, seed=8, coadd_size=160)
    return a, b, c


def test_same_seed_gives_byte_identical_files(small_skies):
    a, b, _ = small_skies
    da, db = _digests(a.survey_root), _digests(b.survey_root)
    assert len(da) == 2 * (3 * 3 + 1) + len(a.sweep_paths) + 2
    assert da == db
    assert {k: v for k, v in vars(a).items() if "path" not in k and k != "survey_root"} == \
        {k: v for k, v in vars(b).items() if "path" not in k and k != "survey_root"}


def test_other_seed_changes_objects_not_bricks(small_skies):
    a, _, c = small_skies
    assert a.bricknames == c.bricknames
    ia = fits.getdata(os.path.join(a.survey_root, "coadd", "150", "1501p000",
                                   "legacysurvey-1501p000-image-r.fits.fz"), 1)
    ic = fits.getdata(os.path.join(c.survey_root, "coadd", "150", "1501p000",
                                   "legacysurvey-1501p000-image-r.fits.fz"), 1)
    assert ia.shape == ic.shape == (160, 160)
    assert not np.array_equal(ia, ic)


def test_small_sky_is_complete_and_recorded(small_skies):
    a, _, _ = small_skies
    rows = sum(len(fits.getdata(p, 1)) for p in a.sweep_paths)
    assert rows == a.n_objects
    assert a.n_lrg_inner >= 2 and a.n_lrg_like >= a.n_lrg_inner
    with open(a.manifest_path) as fh:
        rec = json.load(fh)
    assert rec["bricknames"] == list(a.bricknames) and rec["n_objects"] == a.n_objects


def test_rebuild_replaces_a_sky_but_never_a_foreign_folder(tmp_path):
    sky = build_sky(str(tmp_path / "sky"), n_bricks=1, seed=3, coadd_size=120)
    again = build_sky(str(tmp_path / "sky"), n_bricks=1, seed=3, coadd_size=120)
    assert _digests(sky.survey_root) == _digests(again.survey_root)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic sky"):
        build_sky(str(foreign), n_bricks=1, coadd_size=120)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert not [p for p in os.listdir(tmp_path) if "_tmp-synth" in p]


@pytest.mark.parametrize("kwargs, match", [
    ({"n_bricks": 0}, "n_bricks"),
    ({"coadd_size": 64}, "coadd_size"),
    ({"coadd_size": 200.5}, "coadd_size"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_sky(str(tmp_path / "x"), **kwargs)
    assert not os.path.exists(tmp_path / "x")


def test_brick_plan_is_real_and_grouped():
    plan = plan_bricks(12)
    names = [b.brickname for b, _ in plan]
    assert len(set(names)) == 12
    assert [g for _, g in plan][:6] == [0, 0, 1, 1, 2, 3]
    assert all(abs(b.dec) < 5 for b, _ in plan)
