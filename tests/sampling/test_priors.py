"""Priors: each distribution matches its declared form (KS, 1e5 draws), area-uniform offsets, colours,
resolvability mode, brightness-targeting mix, determinism and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from dhs.config import ConfigError, config_from_dict
from dhs.config.stage4a import Stage4aConfig
from dhs.sampling.hashing import hash64_array, rng_from_seed
from dhs.sampling.manifest import build_manifest
from dhs.sampling.priors import (
    DEFAULT_PRIORS,
    PARAMETERS,
    PriorError,
    draw_priors,
    parse_priors,
    source_offset,
    task_uniforms,
)
from tests.sampling.fake_hosts import fake_parent

N = 100_000


def analytic_cdf(spec):
    """CDF written from the textbook formulas (independent of the scipy objects the sampler uses)."""
    kind = spec["dist"]
    if kind == "uniform":
        a, b = spec["low"], spec["high"]
        return lambda x: np.clip((x - a) / (b - a), 0, 1)
    if kind == "log_uniform":
        a, b = spec["low"], spec["high"]
        return lambda x: np.clip(np.log(np.maximum(x, a) / a) / math.log(b / a), 0, 1)
    if kind == "normal" and "low" not in spec:
        return lambda x: ndtr((x - spec["mean"]) / spec["sigma"])
    if kind in ("normal", "truncnormal"):
        m, s, lo, hi = spec["mean"], spec["sigma"], spec["low"], spec["high"]
        za, zb = ndtr((lo - m) / s), ndtr((hi - m) / s)
        return lambda x: np.clip((ndtr((np.clip(x, lo, hi) - m) / s) - za) / (zb - za), 0, 1)
    if kind == "area_uniform":
        return lambda x: np.clip(x / spec["max"], 0, 1) ** 2
    if kind == "mixture":
        w = np.array([c["weight"] for c in spec["components"]], dtype=float)
        w /= w.sum()
        cdfs = [analytic_cdf({k: v for k, v in c.items() if k != "weight"}) for c in spec["components"]]
        return lambda x: sum(wk * f(x) for wk, f in zip(w, cdfs))
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def seeds():
    return hash64_array([f"task-{i}" for i in range(N)], 99)


@pytest.fixture(scope="module")
def default_draws(seeds):
    return draw_priors(seeds, parse_priors())


@pytest.mark.slow
@pytest.mark.parametrize("name", PARAMETERS)
def test_default_prior_matches_declared_distribution(default_draws, name):
    x = default_draws[name]
    assert x.shape == (N,) and np.isfinite(x).all()
    p = stats.kstest(x, analytic_cdf(DEFAULT_PRIORS[name])).pvalue
    assert p > 0.01, (name, p)


CUSTOM = {
    "theta_e_arcsec": {"dist": "log_uniform", "low": 0.2, "high": 3.0},
    "src_dmag": {"dist": "normal", "mean": 1.5, "sigma": 0.5, "low": 0.0, "high": 3.0},
    "src_reff_arcsec": {"dist": "truncnormal", "mean": 0.2, "sigma": 0.1, "low": 0.05, "high": 0.6},
    "src_gr": {"dist": "normal", "mean": 0.9, "sigma": 0.2},
    "src_offset_frac": {"dist": "area_uniform", "max": 0.8},
    "shear": {"dist": "uniform", "low": 0.01, "high": 0.04},
}


@pytest.mark.slow
def test_custom_priors_match_their_declared_distributions(seeds):
    d = draw_priors(seeds, parse_priors({**CUSTOM, "src_n_sersic": 2.5}))
    for name, spec in CUSTOM.items():
        p = stats.kstest(d[name], analytic_cdf(spec)).pvalue
        assert p > 0.01, (name, p)
    assert np.all(d["src_n_sersic"] == 2.5)
    # a wrong declaration must be rejected by the same test (the KS test has power here)
    assert stats.kstest(d["theta_e_arcsec"], analytic_cdf({"dist": "uniform", "low": 0.2, "high": 3.0})).pvalue < 1e-6


def test_colours_default_to_observed_dr10_arc_colours(default_draws):
    gr, rz = default_draws["src_gr"], default_draws["src_rz"]
    # standard errors: 0.30/sqrt(1e5) ≈ 0.001 on the mean, ≈ 0.0007 on the sigma
    assert gr.mean() == pytest.approx(1.15, abs=0.005) and gr.std() == pytest.approx(0.30, abs=0.004)
    assert rz.mean() == pytest.approx(0.85, abs=0.005) and rz.std() == pytest.approx(0.20, abs=0.003)
    assert abs(np.corrcoef(gr, rz)[0, 1]) < 0.015  # independent slots


def test_source_offsets_are_area_uniform_inside_fraction_of_theta_e(default_draws):
    theta_e = 1.7
    x, y = source_offset(default_draws["src_offset_frac"], default_draws["src_offset_pa_rad"], theta_e)
    r = np.hypot(x, y)
    rmax = 0.5 * theta_e
    assert r.max() <= rmax + 1e-12
    # area-uniform: the enclosed fraction within r is (r/rmax)^2, so (r/rmax)^2 is U(0, 1)
    assert stats.kstest((r / rmax) ** 2, "uniform").pvalue > 0.01
    # equal counts in 16 equal-area cells (4 annuli × 4 quadrants)
    ring = np.minimum((4 * (r / rmax) ** 2).astype(int), 3)
    quad = (np.arctan2(y, x) % (2 * np.pi) // (np.pi / 2)).astype(int)
    counts = np.bincount(ring * 4 + quad, minlength=16)
    assert stats.chisquare(counts).pvalue > 0.01


SEED_SNR_BINS = ((0.8, 2), (2, 8), (8, 20), (20, np.inf))
SEED_SNR_SHARES = [0.40, 0.40, 0.15, 0.05]


def test_brightness_target_mix(default_draws):
    t = default_draws["target_snr"]
    shares = [np.mean((t >= lo) & (t < hi)) for lo, hi in SEED_SNR_BINS]
    assert shares == pytest.approx(SEED_SNR_SHARES, abs=0.01)
    assert t.min() >= 0.8 and t.max() <= 100.0


def test_stratified_target_mix_is_exact_for_small_groups(seeds):
    """Stratified over a group of n tasks, each bin holds its share of n to within one task."""
    pri = parse_priors()
    for n in (7, 48, 500):
        t = draw_priors(seeds[:n], pri, stratify=("target_snr",))["target_snr"]
        counts = [np.sum((t >= lo) & (t < hi)) for lo, hi in SEED_SNR_BINS]
        assert np.all(np.abs(np.array(counts) - n * np.array(SEED_SNR_SHARES)) < 1.0 + 1e-9), (n, counts)
    # other parameters are untouched, and the stratified draw is a function of the group only
    a = draw_priors(seeds[:500], pri, stratify=("target_snr",))
    b = draw_priors(seeds[:500][::-1], pri, stratify=("target_snr",))
    plain = draw_priors(seeds[:500], pri)
    np.testing.assert_array_equal(a["target_snr"], b["target_snr"][::-1])
    np.testing.assert_array_equal(a["src_gr"], plain["src_gr"])
    with pytest.raises(ValueError, match="unknown"):
        draw_priors(seeds[:5], pri, stratify=("target_arc_snr",))


def test_stratified_uniforms_are_uniform_in_distribution(seeds):
    from dhs.sampling.priors import stratified_uniforms

    u = task_uniforms(seeds[:20_000])[:, 0]
    v = np.concatenate([stratified_uniforms(u[i:i + 50], seeds[i:i + 50]) for i in range(0, 20_000, 50)])
    assert stats.kstest(v, "uniform").pvalue > 0.01
    assert v.min() >= 0.0 and v.max() < 1.0


def test_default_theta_e_over_psf_is_95_percent_resolved(default_draws):
    r = default_draws["theta_e_over_psf"]
    assert np.mean(r >= 1.0) == pytest.approx(0.95, abs=0.005)
    assert r.min() >= 0.5 and r.max() <= 2.5


def test_draws_depend_only_on_the_task_seed(seeds):
    pri = parse_priors()
    full = draw_priors(seeds[:2000], pri)
    sub_idx = np.arange(2000)[::-7]  # different batch, different order
    part = draw_priors(seeds[sub_idx], pri)
    for name in PARAMETERS:
        np.testing.assert_array_equal(part[name], full[name][sub_idx])


def test_prior_stream_differs_from_stage4c_stream(seeds):
    u = task_uniforms(seeds[:200])
    v = np.array([rng_from_seed(int(s)).random(2) for s in seeds[:200]])
    assert not np.any(np.isclose(u[:, :2], v))


@pytest.mark.parametrize("spec, needle", [
    ({"theta_e": {"dist": "uniform", "low": 0, "high": 1}}, "unknown parameter"),
    ({"src_gr": {"dist": "gauss", "mean": 1, "sigma": 1}}, "stage4a.priors.src_gr.dist"),
    ({"src_gr": {"dist": "normal", "mean": 1}}, "sigma"),
    ({"src_gr": {"dist": "normal", "mean": 1, "sigma": -1}}, "stage4a.priors.src_gr.sigma"),
    ({"theta_e_arcsec": {"dist": "uniform", "low": 2, "high": 1}}, "low < high"),
    ({"src_reff_arcsec": {"dist": "log_uniform", "low": 0, "high": 1}}, "low"),
    ({"src_reff_arcsec": {"dist": "normal", "mean": 0.2, "sigma": 0.1}}, "stage4a.priors.src_reff_arcsec"),
    ({"lens_e": {"dist": "uniform", "low": 0.0, "high": 1.5}}, "lens_e"),
    ({"target_snr": {"dist": "mixture", "components": [{"dist": "uniform", "low": 1, "high": 2}]}},
     "weight"),
    ({"src_n_sersic": "four"}, "src_n_sersic"),
])
def test_bad_priors_are_errors_naming_the_key(spec, needle):
    with pytest.raises(PriorError, match="stage4a.priors") as exc:
        parse_priors(spec)
    assert needle in str(exc.value)


def test_bad_prior_in_run_config_names_the_key(tmp_path):
    data = {"survey_root": str(tmp_path), "output_root": str(tmp_path),
            "stage4a": {"parameter_source": "priors", "priors": {"src_gr": {"dist": "normal", "mean": 1}}}}
    with pytest.raises(ConfigError) as exc:
        config_from_dict(data, check_inputs=False)
    assert "stage4a.priors" in str(exc.value) and "sigma" in str(exc.value)


def test_psf_ratio_mode_needs_priors():
    with pytest.raises(ValueError, match="psf_ratio"):
        Stage4aConfig(theta_e_mode="psf_ratio")


def _moffat_fwhm_design(psfsize, beta=3.5):
    """DESIGN §3: FWHM = PSFSIZE · 4(β−1)·sqrt(2^(1/β)−1) / (sqrt(2β−1)·2.3548)."""
    return psfsize * 4 * (beta - 1) * math.sqrt(2 ** (1 / beta) - 1) / (math.sqrt(2 * beta - 1)
                                                                        * 2 * math.sqrt(2 * math.log(2)))


@pytest.mark.slow
@pytest.mark.parametrize("ratio_spec", [
    {"dist": "uniform", "low": 0.5, "high": 2.5},
    {"dist": "log_uniform", "low": 0.4, "high": 4.0},
])
def test_resolvability_share_matches_configured_distribution(ratio_spec):
    hosts = fake_parent(40_000, seed=3)
    s = Stage4aConfig(tier="train", parameter_source="priors", theta_e_mode="psf_ratio",
                      priors={"theta_e_over_psf": ratio_spec})
    m = build_manifest(hosts, s, experiment_id="res", seed=5).table
    pos = m.filter(m.column("is_control").to_numpy() == 0)
    theta_e = pos.column("theta_e_arcsec").to_numpy()
    fwhm = _moffat_fwhm_design(pos.column("psfsize_r").to_numpy())
    assert len(theta_e) > 15_000
    np.testing.assert_allclose(pos.column("theta_e_over_psf").to_numpy(), theta_e / fwhm, rtol=1e-12)
    expected = float(analytic_cdf(ratio_spec)(1.0))
    assert np.mean(theta_e / fwhm < 1.0) == pytest.approx(expected, abs=0.01)
