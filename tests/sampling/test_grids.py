"""Named injection grids: sizes, product order, config_ids, user grids and errors."""

from __future__ import annotations

import itertools
import re

import pytest

from dhs.sampling.grids import AXES, BUILTIN_GRIDS, GridError, config_id, grid_from_dict, load_grid

SEED_SOTA = ([0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
             [0.1, 0.2, 0.3, 0.5], [0.2, 0.4, 0.6], [0.0, 0.05, 0.1])
"""The seed system's sota grid (θE 0.5 → 2.5 step 0.25, Δmag 0.5 → 3.0 step 0.5, ...), as its documents list it."""

# Every named grid's values, written out (grid_small and the sota grids are the seed's; the rest dhs's).
EXPECTED = {
    "grid_small": ([0.3, 0.6, 1.0], [1.0, 2.0], [0.08, 0.15], [0.0, 0.3], [0.0, 0.03]),
    "grid_medium": ([0.25, 0.35, 0.5, 0.8, 1.2], [0.5, 1.0, 1.5, 2.0], [0.05, 0.10, 0.20], [0.0, 0.2, 0.4],
                    [0.0, 0.03]),
    "grid_full": ([0.2, 0.25, 0.3, 0.4, 0.6, 0.8, 1.2, 1.6], [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5],
                  [0.04, 0.06, 0.08, 0.12, 0.18, 0.25], [0.0, 0.2, 0.4], [0.0, 0.02, 0.04]),
    "grid_wide": ([0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5], [0.5, 1.0, 1.5, 2.0], [0.06, 0.10, 0.15, 0.20],
                  [0.0, 0.2, 0.4], [0.0, 0.02, 0.04]),
    "grid_sota": SEED_SOTA,
    "v4_sota": SEED_SOTA,
}
SIZES = {"grid_small": 48, "grid_medium": 360, "grid_full": 3024, "grid_wide": 1008, "grid_sota": 1944,
         "v4_sota": 1944}
ID_RE = re.compile(r"^te([0-9.]+)_dm(-?[0-9.]+)_re([0-9.]+)_e([0-9.]+)_sh([0-9.]+)$")


@pytest.mark.parametrize("name", sorted(SIZES))
def test_builtin_grid_sizes_and_values(name):
    g = load_grid(name)
    assert g.name == name
    assert g.size == SIZES[name] == len(g.configs())
    for axis, values in zip(AXES, EXPECTED[name]):
        assert list(g.axes[axis]) == pytest.approx(values, abs=1e-12)


def test_builtin_list_matches_files():
    from dhs.sampling.grids import packaged_grids_dir

    assert set(BUILTIN_GRIDS) == set(SIZES)
    assert {p.stem for p in packaged_grids_dir().glob("*.yaml")} == set(SIZES)


def test_grid_sota_is_the_seed_sota_grid():
    """Same name, same values as the seed: 9 θE (1.75 and 2.25 included) × 6 Δmag × 4 × 3 × 3."""
    assert load_grid("grid_sota").config_ids() == load_grid("v4_sota").config_ids()
    assert 1.75 in load_grid("grid_sota").axes["theta_e_arcsec"]
    assert 2.25 in load_grid("grid_sota").axes["theta_e_arcsec"]


@pytest.mark.parametrize("name", sorted(SIZES))
def test_product_order_and_ids_name_their_values(name):
    g = load_grid(name)
    expected_order = list(itertools.product(*EXPECTED[name]))  # θE slowest, shear fastest
    ids = g.config_ids()
    assert len(set(ids)) == len(ids)
    for cfg, values in zip(g.configs(), expected_order):
        assert (cfg.theta_e_arcsec, cfg.src_dmag, cfg.src_reff_arcsec, cfg.src_e, cfg.shear) == pytest.approx(values)
        m = ID_RE.match(cfg.config_id)
        assert m, cfg.config_id
        assert tuple(float(x) for x in m.groups()) == pytest.approx(values, abs=1e-12)


def test_config_id_exact_strings():
    g = load_grid("grid_small")
    ids = g.config_ids()
    assert ids[0] == "te0.30_dm1.00_re0.080_e0.00_sh0.000"
    assert ids[1] == "te0.30_dm1.00_re0.080_e0.00_sh0.030"
    assert ids[2] == "te0.30_dm1.00_re0.080_e0.30_sh0.000"
    assert ids[-1] == "te1.00_dm2.00_re0.150_e0.30_sh0.030"
    assert load_grid("grid_full").config_ids()[0] == "te0.20_dm0.25_re0.040_e0.00_sh0.000"
    # stable: the same values always give the same id, whatever grid they come from
    assert config_id(0.5, 0.5, 0.1, 0.2, 0.0) == load_grid("v4_sota").config_ids()[0]
    assert config_id(1.0, 1.0, 0.1, 0.2, 0.02) == "te1.00_dm1.00_re0.100_e0.20_sh0.020"


def test_config_id_keeps_extra_digits_so_ids_stay_distinct():
    assert config_id(0.125, 1.0, 0.0125, 0.0, 0.0) == "te0.125_dm1.00_re0.0125_e0.00_sh0.000"
    assert config_id(0.12, 1.0, 0.01, 0.0, 0.0) != config_id(0.125, 1.0, 0.01, 0.0, 0.0)


def test_user_grid_yaml_with_range(tmp_path):
    p = tmp_path / "my_grid.yaml"
    p.write_text("name: my_grid\ntheta_e_arcsec: {start: 0.4, stop: 1.0, step: 0.2}\nsrc_dmag: [1.5]\n"
                 "src_reff_arcsec: [0.1, 0.2]\nsrc_e: [0.1]\nshear: [0.0, 0.05]\n")
    g = load_grid(str(p))
    assert list(g.axes["theta_e_arcsec"]) == [0.4, 0.6, 0.8, 1.0]
    assert g.size == 4 * 1 * 2 * 1 * 2
    # and by name from a grids_dir
    g2 = load_grid("my_grid", grids_dir=tmp_path)
    assert g2.config_ids() == g.config_ids()


@pytest.mark.parametrize("body, needle", [
    ("name: x\ntheta_e_arcsec: [1]\nsrc_dmag: [1]\nsrc_reff_arcsec: [0.1]\nsrc_e: [0]\n", "shear"),
    ("name: x\ntheta_e_arcsec: [1]\nsrc_dmag: [1]\nsrc_reff_arcsec: [0.1]\nsrc_e: [0]\nshear: [0]\nfoo: 1\n", "foo"),
    ("name: x\ntheta_e_arcsec: [-1]\nsrc_dmag: [1]\nsrc_reff_arcsec: [0.1]\nsrc_e: [0]\nshear: [0]\n",
     "theta_e_arcsec[0]"),
    ("name: x\ntheta_e_arcsec: [1, 1]\nsrc_dmag: [1]\nsrc_reff_arcsec: [0.1]\nsrc_e: [0]\nshear: [0]\n", "duplicate"),
    ("name: x\ntheta_e_arcsec: [1]\nsrc_dmag: [a]\nsrc_reff_arcsec: [0.1]\nsrc_e: [0]\nshear: [0]\n", "src_dmag[0]"),
    ("name: x\ntheta_e_arcsec: [1]\nsrc_dmag: [1]\nsrc_reff_arcsec: [0.1]\nsrc_e: [1.2]\nshear: [0]\n", "src_e[0]"),
    (("name: x\ntheta_e_arcsec: {start: 1, stop: 0, step: 0.1}\nsrc_dmag: [1]\nsrc_reff_arcsec: [0.1]\n"
      "src_e: [0]\nshear: [0]\n"), "theta_e_arcsec"),
])
def test_bad_grid_errors_name_file_and_key(tmp_path, body, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    with pytest.raises(GridError) as exc:
        load_grid(str(p))
    assert str(p) in str(exc.value) and needle in str(exc.value)


def test_unknown_grid_name_lists_search_dirs():
    with pytest.raises(GridError, match="grid_nope"):
        load_grid("grid_nope")


def test_grid_from_dict_roundtrip():
    g = grid_from_dict({"name": "t", "theta_e_arcsec": [1.0], "src_dmag": [1.0, 2.0], "src_reff_arcsec": [0.1],
                        "src_e": [0.0], "shear": [0.0]})
    d = g.as_dict()
    assert d["size"] == 2 and d["src_dmag"] == [1.0, 2.0]
