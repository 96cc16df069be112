"""Shortcut audit: AUC vs Mann-Whitney, bootstrap interval, features, flags on paired/unpaired fixtures."""

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from dhs.completeness.audit import bootstrap_auc, flag_level, roc_auc, shortcut_audit, shortcut_features
from tests.completeness.fixture_tables import host_image, ring_image


def test_roc_auc_matches_mann_whitney_and_pairs():
    rng = np.random.default_rng(0)
    p = np.round(rng.normal(0.5, 1, 300), 1)  # rounding creates ties
    q = np.round(rng.normal(0.0, 1, 200), 1)
    u = mannwhitneyu(p, q, alternative="two-sided").statistic
    assert roc_auc(p, q) == pytest.approx(u / (p.size * q.size), rel=1e-12)
    pairs = (p[:, None] > q[None, :]).mean() + 0.5 * (p[:, None] == q[None, :]).mean()
    assert roc_auc(p, q) == pytest.approx(pairs, rel=1e-12)
    assert roc_auc(np.r_[p, np.nan], q) == roc_auc(p, q)
    assert np.isnan(roc_auc([], q))


def test_bootstrap_interval_width_and_determinism():
    rng = np.random.default_rng(1)
    p, q = rng.normal(0.6, 1, 400), rng.normal(0.0, 1, 500)
    auc, lo, hi = bootstrap_auc(p, q, n_boot=2000, seed=42)
    assert (auc, lo, hi) == bootstrap_auc(p, q, n_boot=2000, seed=42)
    assert lo < auc < hi
    # Hanley & McNeil (1982) standard error of the AUC; 95 % width ≈ 2 × 1.96 × SE
    a, n1, n2 = auc, p.size, q.size
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2))
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_weights_equal_explicit_resampling():
    # a bootstrap replicate with multinomial weights equals the AUC of the explicitly resampled data;
    # the weighted (multinomial) bootstrap equals a bootstrap that resamples the data explicitly
    rng = np.random.default_rng(2)
    p, q = rng.normal(1, 1, 50), rng.normal(0, 1, 60)
    _, lo, hi = bootstrap_auc(p, q, n_boot=4000, seed=3, cl=0.6827)
    boots = []
    r2 = np.random.default_rng(9)
    for _ in range(1500):
        boots.append(roc_auc(r2.choice(p, p.size), r2.choice(q, q.size)))
    lo_ref, hi_ref = np.quantile(boots, [0.5 * (1 - 0.6827), 1 - 0.5 * (1 - 0.6827)])
    assert lo == pytest.approx(lo_ref, abs=0.01) and hi == pytest.approx(hi_ref, abs=0.01)


def test_shortcut_features_values():
    size = 64
    host = host_image(size, 10.0, sigma_pix=2.0)
    rng = np.random.default_rng(4)
    st = np.stack([host * 0.5, host, host * 2.0])[None]
    f = shortcut_features(st)
    # core = pixel centres with distance < 4 px: 45 pixels (the 4 at exactly 4 px excluded); a circular
    # Gaussian (sigma 2 px) holds 1 - exp(-A / (2 pi sigma^2)) inside area A = 45 px^2: within 2 %
    n_core = sum(1 for dy in range(-4, 5) for dx in range(-4, 5) if dx * dx + dy * dy < 16)
    assert n_core == 45
    assert f["central_flux_r"][0] == pytest.approx(10.0 * (1 - np.exp(-n_core / (2 * np.pi * 4.0))), rel=0.02)
    assert f["central_flux_g"][0] / f["central_flux_r"][0] == pytest.approx(0.5, rel=1e-9)
    assert f["central_g_minus_r"][0] == pytest.approx(-2.5 * np.log10(0.5), abs=1e-9)
    assert f["total_flux"][0] == pytest.approx(35.0, rel=1e-6)
    assert f["outer_noise_mad_r"][0] == pytest.approx(0.0, abs=1e-6)
    noisy = st + rng.normal(0, 0.05, (4, *st.shape[1:]))
    fn = shortcut_features(noisy)
    # robust sigma of pure Gaussian noise over ~1,400 annulus pixels: within 8 % (≈ 3.5 standard errors)
    np.testing.assert_allclose(fn["outer_noise_mad_r"], 0.05, rtol=0.08)
    # a negative central flux gives a NaN colour, never an exception
    neg = st.copy()
    neg[0, 0] *= -1
    assert np.isnan(shortcut_features(neg)["central_g_minus_r"][0])
    with pytest.raises(ValueError, match="shape"):
        shortcut_features(np.zeros((2, 64, 64)))


def _stamps(hosts, size, rng, ring=None, core=None):
    out = []
    for i, h in enumerate(hosts):
        img = np.stack([host_image(size, h * c) for c in (0.5, 1.0, 1.6)])
        if ring is not None:
            img += np.stack([ring_image(size, ring[i] * c, 9.0) for c in (0.8, 1.0, 1.1)])
        if core is not None:
            img += np.stack([host_image(size, core[i] * c, 1.0) for c in (0.5, 1.0, 1.6)])
        out.append(img + rng.normal(0, 0.03, img.shape))
    return np.stack(out)


def test_audit_flags_central_flux_on_paired_fixture():
    rng = np.random.default_rng(5)
    size, n = 48, 150
    hosts = rng.lognormal(np.log(10), 0.4, n)
    pos = _stamps(hosts, size, rng, ring=np.full(n, 2.0), core=hosts * 0.8)  # extra central flux
    neg = _stamps(hosts, size, rng)  # same hosts, no arc, no extra core
    res = {r["feature"]: r for r in shortcut_audit(shortcut_features(pos), shortcut_features(neg), n_boot=500, seed=1)}
    assert res["central_flux_r"]["flagged"] and res["central_flux_r"]["flag"] == "red"
    assert res["central_flux_r"]["auc"] > 0.75


def test_audit_honest_on_matched_unpaired_fixture():
    rng = np.random.default_rng(6)
    size, n = 48, 200
    pos = _stamps(rng.lognormal(np.log(10), 0.4, n), size, rng, ring=np.full(n, 0.3))  # faint arc at 9 px
    neg = _stamps(rng.lognormal(np.log(10), 0.4, n), size, rng)  # other hosts, same distribution
    fp, fn = shortcut_features(pos), shortcut_features(neg)
    res = {r["feature"]: r for r in shortcut_audit(fp, fn, n_boot=500, seed=1)}
    for name in ("central_flux_g", "central_flux_r", "central_flux_z", "central_g_minus_r"):
        assert not res[name]["flagged"], res[name]
        assert res[name]["auc"] == pytest.approx(roc_auc(fp[name], fn[name]))
        assert res[name]["auc_lo"] < 0.5 + 0.12 and res[name]["auc_hi"] > 0.5 - 0.12
    assert flag_level(0.61) == "yellow" and flag_level(0.8) == "red" and flag_level(0.55) == "ok"
    assert flag_level(float("nan")) == "n/a"
