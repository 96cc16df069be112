"""Continuous priors for injection parameters, drawn from per-task seeded generators.

Each parameter has a named distribution written in YAML as a mapping with a ``dist`` key (or a bare number,
meaning ``fixed``)::

    theta_e_arcsec:   {dist: uniform, low: 0.3, high: 2.5}           # arcsec
    src_reff_arcsec:  {dist: log_uniform, low: 0.05, high: 0.5}      # arcsec
    src_gr:           {dist: normal, mean: 1.15, sigma: 0.30}        # mag
    lens_e:           {dist: truncnormal, mean: 0.15, sigma: 0.1, low: 0.0, high: 0.5}
    src_n_sersic:     1.0                                            # fixed
    src_offset_frac:  {dist: area_uniform, max: 0.5}                 # r/θE, area-uniform disc
    target_snr:                                                      # peak r-band arc_snr by default
      dist: mixture
      components:
        - {weight: 0.4, dist: log_uniform, low: 0.8, high: 2.0}
        - ...

``normal`` accepts optional ``low``/``high`` bounds (it then is a truncated normal, same as ``truncnormal``).
``area_uniform`` has density 2x/max² on [0, max]: a point drawn uniformly in area inside a disc of radius
``max`` (in units of θE for the source offset) has that radial distribution.

Random numbers: every task gets its own generator (PCG64 from ``SeedSequence([task_seed, STREAM])``, a
stream distinct from the one 4c derives from the same ``task_seed``) and draws a fixed block of uniforms;
parameter ``PARAMETERS[i]`` uses uniforms ``2i`` and ``2i+1`` by inverse-CDF transform. The draws of a
task therefore depend only on its ``task_seed``, never on which other tasks share its partition, and adding
a parameter at the end of :data:`PARAMETERS` leaves all earlier draws unchanged.

Stratified parameters (``draw_priors(..., stratify=...)``; stage 4a stratifies ``target_snr`` within each
stratification cell): the first uniform of the parameter is replaced by (rank + u) / n, rank being the
task's place among the n tasks drawn together in ``task_seed`` order. Each task's value is still uniform
in distribution, but a mixture's component fractions are met to within one task per cell instead of
binomial scatter; the draw then depends on which tasks share the cell (never on partitioning).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from dhs.survey.photometry import psfsize_to_moffat_fwhm

PARAMETERS: tuple[str, ...] = (
    "theta_e_arcsec",      # SIE Einstein radius (arcsec), used when theta_e_mode = absolute
    "theta_e_over_psf",    # θE / host r-band Moffat FWHM, used when theta_e_mode = psf_ratio
    "src_dmag",            # source r mag − host r mag (mag), src_mag_mode = relative
    "src_mag_r",           # source r mag (AB), src_mag_mode = absolute
    "src_reff_arcsec",     # Sersic half-light radius (arcsec)
    "src_e",               # source ellipticity modulus |e| = (1−q)/(1+q)
    "src_pa_rad",          # source position angle (rad); e1 = |e| cos 2φ, e2 = |e| sin 2φ
    "shear",               # external shear modulus |γ|
    "shear_pa_rad",        # shear angle (rad); γ1 = |γ| cos 2φ, γ2 = |γ| sin 2φ
    "lens_e",              # lens (SIE) ellipticity modulus |e|
    "lens_pa_rad",         # lens position angle (rad)
    "src_offset_frac",     # source-plane offset radius / θE
    "src_offset_pa_rad",   # source offset direction (rad, from +x toward +y)
    "src_n_sersic",        # Sersic index
    "src_gr",              # source g − r colour (mag)
    "src_rz",              # source r − z colour (mag)
    "target_snr",          # brightness targeting: target r-band arc SNR (stage4a.target_snr_metric)
)
"""Prior parameters, in the fixed order of their random-number slots (append only)."""

STREAM = 0x4A4A
"""Second SeedSequence word: stage 4a's draws use a stream distinct from 4c's ``rng_from_seed(task_seed)``."""

SLOTS_PER_PARAMETER = 2

DEFAULT_PRIORS: dict[str, Any] = {
    "theta_e_arcsec": {"dist": "uniform", "low": 0.3, "high": 2.5},
    # θE / host r-band Moffat FWHM (theta_e_mode: psf_ratio): 95 % resolved (1–2.5), 5 % marginal (0.5–1).
    "theta_e_over_psf": {
        "dist": "mixture",
        "components": [
            {"weight": 0.95, "dist": "uniform", "low": 1.0, "high": 2.5},
            {"weight": 0.05, "dist": "uniform", "low": 0.5, "high": 1.0},
        ],
    },
    "src_dmag": {"dist": "uniform", "low": 0.5, "high": 3.0},
    "src_mag_r": {"dist": "uniform", "low": 23.0, "high": 26.0},
    "src_reff_arcsec": {"dist": "log_uniform", "low": 0.05, "high": 0.5},
    "src_e": {"dist": "uniform", "low": 0.0, "high": 0.5},
    "src_pa_rad": {"dist": "uniform", "low": 0.0, "high": math.pi},
    "shear": {"dist": "uniform", "low": 0.0, "high": 0.08},
    "shear_pa_rad": {"dist": "uniform", "low": 0.0, "high": math.pi},
    "lens_e": {"dist": "truncnormal", "mean": 0.15, "sigma": 0.10, "low": 0.0, "high": 0.5},
    "lens_pa_rad": {"dist": "uniform", "low": 0.0, "high": math.pi},
    "src_offset_frac": {"dist": "area_uniform", "max": 0.5},
    "src_offset_pa_rad": {"dist": "uniform", "low": 0.0, "high": 2.0 * math.pi},
    "src_n_sersic": {"dist": "truncnormal", "mean": 1.0, "sigma": 0.5, "low": 0.5, "high": 4.0},
    # Observed colours of real DR10 lensed arcs.
    "src_gr": {"dist": "normal", "mean": 1.15, "sigma": 0.30},
    "src_rz": {"dist": "normal", "mean": 0.85, "sigma": 0.20},
    # The seed's target mix on the peak r-band arc_snr: 40 % in 0.8–2, 40 % in 2–8, 15 % in 8–20,
    # 5 % above 20 (capped at 100), log-uniform within each bin.
    "target_snr": {
        "dist": "mixture",
        "components": [
            {"weight": 0.40, "dist": "log_uniform", "low": 0.8, "high": 2.0},
            {"weight": 0.40, "dist": "log_uniform", "low": 2.0, "high": 8.0},
            {"weight": 0.15, "dist": "log_uniform", "low": 8.0, "high": 20.0},
            {"weight": 0.05, "dist": "log_uniform", "low": 20.0, "high": 100.0},
        ],
    },
}
"""Default priors (units as in :data:`PARAMETERS`)."""

# Physical range of each parameter: (low, high, low inclusive).
_RANGE: dict[str, tuple[float, float, bool]] = {
    "theta_e_arcsec": (0.0, math.inf, False),
    "theta_e_over_psf": (0.0, math.inf, False),
    "src_reff_arcsec": (0.0, math.inf, False),
    "src_e": (0.0, 1.0, True),
    "lens_e": (0.0, 1.0, True),
    "shear": (0.0, 1.0, True),
    "src_offset_frac": (0.0, math.inf, True),
    "src_n_sersic": (0.0, math.inf, False),
    "target_snr": (0.0, math.inf, False),
}

_KINDS = ("uniform", "log_uniform", "normal", "truncnormal", "fixed", "area_uniform", "mixture")
_PARAMS = {
    "uniform": ({"low", "high"}, set()),
    "log_uniform": ({"low", "high"}, set()),
    "normal": ({"mean", "sigma"}, {"low", "high"}),
    "truncnormal": ({"mean", "sigma", "low", "high"}, set()),
    "fixed": ({"value"}, set()),
    "area_uniform": ({"max"}, set()),
    "mixture": ({"components"}, set()),
}


class PriorError(ValueError):
    """An invalid prior specification; the message names the key."""


@lru_cache(maxsize=256)
def _frozen_dist(kind: str, items: tuple[tuple[str, float], ...]) -> Any:
    """A frozen scipy distribution for (kind, params); cached because freezing one costs milliseconds."""
    p = dict(items)
    if kind == "uniform":
        return stats.uniform(loc=p["low"], scale=p["high"] - p["low"])
    if kind == "log_uniform":
        return stats.loguniform(p["low"], p["high"])
    if kind == "normal" and "low" not in p and "high" not in p:
        return stats.norm(loc=p["mean"], scale=p["sigma"])
    if kind in ("normal", "truncnormal"):
        a = (p.get("low", -math.inf) - p["mean"]) / p["sigma"]
        b = (p.get("high", math.inf) - p["mean"]) / p["sigma"]
        return stats.truncnorm(a, b, loc=p["mean"], scale=p["sigma"])
    if kind == "area_uniform":
        return stats.powerlaw(2.0, loc=0.0, scale=p["max"])
    raise AssertionError(kind)


@dataclass(frozen=True)
class Distribution:
    """A one-dimensional distribution with an inverse CDF (``ppf``) and a CDF.

    ``kind`` is one of uniform, log_uniform, normal, truncnormal, fixed, area_uniform, mixture; ``params``
    holds its numbers; ``components``/``weights`` are set for mixtures.
    """

    kind: str
    params: dict[str, float] = field(default_factory=dict)
    components: tuple[Distribution, ...] = ()
    weights: tuple[float, ...] = ()

    def _frozen(self) -> Any:
        return _frozen_dist(self.kind, tuple(sorted(self.params.items())))

    def ppf(self, u1: np.ndarray, u2: np.ndarray | None = None) -> np.ndarray:
        """Values at quantiles ``u1`` in [0, 1); mixtures pick the component with ``u1`` and use ``u2``."""
        u1 = np.asarray(u1, dtype=np.float64)
        if self.kind == "fixed":
            return np.full(u1.shape, self.params["value"], dtype=np.float64)
        if self.kind == "mixture":
            if u2 is None:
                raise ValueError("a mixture needs two uniforms per draw")
            cum = np.cumsum(self.weights)
            idx = np.minimum(np.searchsorted(cum / cum[-1], u1, side="right"), len(self.components) - 1)
            out = np.empty(u1.shape, dtype=np.float64)
            for k, comp in enumerate(self.components):
                sel = idx == k
                if sel.any():
                    out[sel] = comp.ppf(np.asarray(u2)[sel])
            return out
        return np.asarray(self._frozen().ppf(u1), dtype=np.float64)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Cumulative distribution function at ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "fixed":
            return (x >= self.params["value"]).astype(np.float64)
        if self.kind == "mixture":
            w = np.asarray(self.weights) / np.sum(self.weights)
            return sum(wk * c.cdf(x) for wk, c in zip(w, self.components))
        return np.asarray(self._frozen().cdf(x), dtype=np.float64)

    def support(self) -> tuple[float, float]:
        """Smallest and largest possible values."""
        p = self.params
        if self.kind == "fixed":
            return (p["value"], p["value"])
        if self.kind == "area_uniform":
            return (0.0, p["max"])
        if self.kind == "mixture":
            sup = [c.support() for c in self.components]
            return (min(s[0] for s in sup), max(s[1] for s in sup))
        return (p.get("low", -math.inf), p.get("high", math.inf))

    def as_dict(self) -> dict[str, Any]:
        """The YAML/JSON form of this distribution."""
        if self.kind == "mixture":
            return {"dist": "mixture", "components": [
                {"weight": w, **c.as_dict()} for w, c in zip(self.weights, self.components)]}
        return {"dist": self.kind, **self.params}


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise PriorError(f"{key}: expected a finite number (got {value!r})")
    return float(value)


def parse_distribution(spec: Any, key: str) -> Distribution:
    """Validate one distribution spec (mapping with ``dist`` or a bare number) and build it.

    Errors name ``key`` (e.g. ``stage4a.priors.src_gr.sigma``) and what was expected.
    """
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Distribution("fixed", {"value": _number(spec, key)})
    if isinstance(spec, Distribution):
        return spec
    if not isinstance(spec, Mapping):
        raise PriorError(f"{key}: expected a number or a mapping with 'dist' (got {spec!r})")
    kind = spec.get("dist")
    if kind not in _KINDS:
        raise PriorError(f"{key}.dist: expected one of {list(_KINDS)} (got {kind!r})")
    required, optional = _PARAMS[kind]
    given = set(spec) - {"dist"}
    if given - required - optional:
        raise PriorError(f"{key}: unknown key(s) {sorted(given - required - optional)} for dist {kind!r}; "
                         f"expected {sorted(required | optional)}")
    if required - given:
        raise PriorError(f"{key}: dist {kind!r} needs key(s) {sorted(required - given)}")
    if kind == "mixture":
        comps_raw = spec["components"]
        if not isinstance(comps_raw, list) or not comps_raw:
            raise PriorError(f"{key}.components: expected a non-empty list")
        comps, weights = [], []
        for i, c in enumerate(comps_raw):
            ck = f"{key}.components[{i}]"
            if not isinstance(c, Mapping) or "weight" not in c:
                raise PriorError(f"{ck}: expected a mapping with 'weight' and 'dist'")
            w = _number(c["weight"], f"{ck}.weight")
            if w <= 0:
                raise PriorError(f"{ck}.weight: expected > 0 (got {w})")
            sub = parse_distribution({k: v for k, v in c.items() if k != "weight"}, ck)
            if sub.kind == "mixture":
                raise PriorError(f"{ck}: nested mixtures are not supported")
            comps.append(sub)
            weights.append(w)
        return Distribution("mixture", {}, tuple(comps), tuple(weights))
    p = {k: _number(spec[k], f"{key}.{k}") for k in given}
    if "low" in p and "high" in p and not p["low"] < p["high"]:
        raise PriorError(f"{key}: expected low < high (got low={p['low']}, high={p['high']})")
    if kind == "log_uniform" and p["low"] <= 0:
        raise PriorError(f"{key}.low: log_uniform needs low > 0 (got {p['low']})")
    if "sigma" in p and p["sigma"] <= 0:
        raise PriorError(f"{key}.sigma: expected > 0 (got {p['sigma']})")
    if kind == "area_uniform" and p["max"] <= 0:
        raise PriorError(f"{key}.max: expected > 0 (got {p['max']})")
    return Distribution(kind, p)


@dataclass(frozen=True)
class Priors:
    """One distribution per parameter in :data:`PARAMETERS`."""

    dists: dict[str, Distribution]

    def __getitem__(self, name: str) -> Distribution:
        return self.dists[name]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for ``_stage_config.json``)."""
        return {k: self.dists[k].as_dict() for k in PARAMETERS}


def parse_priors(overrides: Mapping[str, Any] | None = None, key: str = "stage4a.priors") -> Priors:
    """Defaults (:data:`DEFAULT_PRIORS`) updated with the user's ``priors`` block, validated.

    A parameter name not in :data:`PARAMETERS`, a bad distribution, or a distribution whose support leaves
    the parameter's physical range (e.g. a negative half-light radius) is a :class:`PriorError` naming the key.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(PARAMETERS)
    if unknown:
        raise PriorError(f"{key}: unknown parameter(s) {sorted(unknown)}; expected some of {list(PARAMETERS)}")
    dists = {}
    for name in PARAMETERS:
        k = f"{key}.{name}"
        d = parse_distribution(overrides.get(name, DEFAULT_PRIORS[name]), k)
        if name in _RANGE:
            lo, hi, incl = _RANGE[name]
            s_lo, s_hi = d.support()
            if s_lo < lo or (s_lo == lo and not incl) or s_hi > hi:
                raise PriorError(f"{k}: support [{s_lo}, {s_hi}] leaves the allowed range "
                                 f"{'[' if incl else '('}{lo}, {hi}]; add or tighten low/high bounds")
        dists[name] = d
    return Priors(dists)


def task_uniforms(task_seeds: np.ndarray, n_parameters: int = len(PARAMETERS)) -> np.ndarray:
    """Uniforms in [0, 1), shape (n_tasks, SLOTS_PER_PARAMETER · n_parameters), one generator per task.

    Row i comes from PCG64(SeedSequence([uint64(task_seeds[i]), STREAM])), so it depends on that seed only.
    """
    seeds = np.asarray(task_seeds, dtype=np.int64).view(np.uint64)
    k = SLOTS_PER_PARAMETER * n_parameters
    out = np.empty((seeds.size, k), dtype=np.float64)
    for i, s in enumerate(seeds.tolist()):
        out[i] = np.random.Generator(np.random.PCG64(np.random.SeedSequence([s, STREAM]))).random(k)
    return out


def stratified_uniforms(u: np.ndarray, task_seeds: np.ndarray) -> np.ndarray:
    """(rank + u) / n with rank = each task's place in unsigned ``task_seed`` order (ties by position).

    Values stay in [0, 1) and each is uniform in distribution, but exactly one falls in each of the n
    equal-width strata, so the fraction below any q is within 1/n of q.
    """
    u = np.asarray(u, dtype=np.float64)
    n = u.size
    if n == 0:
        return u.copy()
    order = np.argsort(np.asarray(task_seeds, dtype=np.int64).view(np.uint64), kind="stable")
    rank = np.empty(n, dtype=np.float64)
    rank[order] = np.arange(n, dtype=np.float64)
    return np.minimum((rank + u) / n, np.nextafter(1.0, 0.0))


def draw_priors(task_seeds: np.ndarray, priors: Priors, stratify: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Draw every parameter of :data:`PARAMETERS` for each task; returns name → float64 array.

    Parameters named in ``stratify`` use :func:`stratified_uniforms` over the tasks of this call for their
    first uniform (the one that picks a mixture component or the quantile of a simple distribution).
    """
    unknown = set(stratify) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"draw_priors: cannot stratify unknown parameter(s) {sorted(unknown)}")
    u = task_uniforms(task_seeds)
    out = {}
    for i, name in enumerate(PARAMETERS):
        u1 = u[:, SLOTS_PER_PARAMETER * i]
        if name in stratify:
            u1 = stratified_uniforms(u1, task_seeds)
        out[name] = priors[name].ppf(u1, u[:, SLOTS_PER_PARAMETER * i + 1])
    return out


def polar_components(modulus: np.ndarray, angle_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spin-2 components (m cos 2φ, m sin 2φ): lenstronomy (e1, e2) from |e| and PA, or (γ1, γ2) from |γ|."""
    m = np.asarray(modulus, dtype=np.float64)
    a = np.asarray(angle_rad, dtype=np.float64)
    return m * np.cos(2.0 * a), m * np.sin(2.0 * a)


def source_offset(frac: np.ndarray, angle_rad: np.ndarray, theta_e_arcsec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane offset (x, y) in arcsec from the lens centre: radius frac·θE in direction ``angle_rad``."""
    r = np.asarray(frac, dtype=np.float64) * np.asarray(theta_e_arcsec, dtype=np.float64)
    a = np.asarray(angle_rad, dtype=np.float64)
    return r * np.cos(a), r * np.sin(a)


def moffat_fwhm_r(psfsize_r: np.ndarray, beta: float = 3.5) -> np.ndarray:
    """Host r-band Moffat FWHM (arcsec) from the catalogue PSFSIZE_R (arcsec, NEA Gaussian FWHM)."""
    return np.asarray(psfsize_to_moffat_fwhm(np.asarray(psfsize_r, dtype=np.float64), beta=beta), dtype=np.float64)
