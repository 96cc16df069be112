"""Configuration of stage 4a (the `stage4a:` section of a run YAML): the injection manifest."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dhs.config.base import StrictModel

TIER_CONTROL_FRACTION: dict[str, float] = {"debug": 0.25, "grid": 0.1, "train": 0.5}
"""Default control fraction (controls / all rows) per tier."""

TIER_HOSTS_PER_CELL: dict[str, int | None] = {"debug": 1, "grid": 20, "train": None}
"""Default hosts per (split, PSF bin, depth bin) cell per tier; None = every eligible host."""


class KnownLensSettings(StrictModel):
    """Drop hosts within ``radius_arcsec`` of a known lens (user catalogue and/or the `lenscat` package)."""

    enabled: bool = False
    catalog: str | None = None
    """CSV/TSV/whitespace/FITS table with RA/Dec columns in degrees (local path)."""
    use_lenscat: bool = False
    """Also use ``lenscat.catalog`` (needs the optional PyPI package `lenscat`; no network)."""
    radius_arcsec: float = Field(default=10.0, gt=0.0, le=3600.0)

    @model_validator(mode="after")
    def _needs_a_catalogue(self) -> KnownLensSettings:
        if self.enabled and not self.catalog and not self.use_lenscat:
            raise ValueError("known_lenses.enabled needs known_lenses.catalog or known_lenses.use_lenscat: true")
        return self


SNR_METRIC_NAMES = ("arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "arc_snr_opt")
"""Stage 4c r-band SNR columns that brightness targeting can aim at (all linear in the source flux)."""


class ResolvedSettings(StrictModel):
    """What "resolved" means for stage 4a, and how many injections must be resolved.

    An injection is resolved when θE / (host r-band Moffat FWHM from PSFSIZE_R) ≥ ``theta_e_over_psf_min``.
    Stage 4a reports the resolved share (``_stage_config.json`` counts ``resolved_fraction``); stage 4d
    reports it against the FWHM 4c applied (``psf_fwhm_used_r``).
    """

    theta_e_over_psf_min: float = Field(default=1.0, gt=0.0)
    min_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    """Required share of resolved injections, checked on the θE/PSF prior when the config is loaded
    (needs ``theta_e_mode: psf_ratio``); None = report only."""


class Stage4aConfig(StrictModel):
    """Settings of stage 4a. Every field has a default, so `stage4a: {}` is valid.

    Tiers: ``debug`` and ``grid`` give every sampled host every grid config × ``replicates``
    (rows = hosts × configs × replicates, plus controls); ``train`` gives each host one config (or one
    prior draw) per replicate. Hosts are sampled per (split, PSF bin, depth bin) cell in xxhash64 order.
    """

    tier: Literal["debug", "grid", "train"] = "debug"
    parameter_source: Literal["grid", "priors"] = "grid"
    """``grid``: θE, dmag, reff, e, shear from the named grid; ``priors``: every parameter from the priors."""
    grid: str = "grid_small"
    """Grid name (``dhs/grids/<name>.yaml``) or path to a user grid YAML."""
    grids_dir: str | None = None
    """Extra folder searched first for ``<grid>.yaml``."""
    replicates: int = Field(default=1, ge=1, le=10_000)
    n_hosts_per_cell: int | None = Field(default=None, ge=1)
    """Injection hosts per (split, PSF bin, depth bin) cell; None = tier default (debug 1, grid 20,
    train all). Controls come from the cell's other hosts."""
    psf_bins: int = Field(default=4, ge=1, le=100)
    depth_bins: int = Field(default=4, ge=1, le=100)
    host_flag: str | None = None
    """Boolean parent column selecting hosts; None = ``is_lrg_<variant>``."""
    selection_set: str | None = None
    """Only the hosts of this stage 3 selection set (a parent row's ``selection_sets`` lists the sets it is a
    host of: its region is in the set and it passes the set's LRG variant). None = every ``host_flag`` row."""
    selection_sets: list[str] | Literal["all"] | None = None
    """Build the manifest once per listed selection set, as the seed system did (a galaxy in two sets gets
    rows in both, told apart by ``selection_set_id`` and the task_id); ``all`` = every set stage 3 made.
    None = one manifest over ``selection_set`` (or every host: ``selection_set_id = "all"``)."""
    null_fraction: float = Field(default=0.0, ge=0.0, le=0.5)
    """Share of the non-control rows made null injections (``lens_model = "NULL"``: parameters drawn as for
    an injection, source flux 0) for stage 4d's null-injection audit; never counted in completeness."""
    control_mode: Literal["unpaired", "paired"] = "unpaired"
    control_fraction: float | None = Field(default=None, ge=0.0, lt=1.0)
    """Controls / all rows; None = tier default (debug 0.25, grid 0.1, train 0.5)."""
    max_rows: int = Field(default=5_000_000, ge=1)
    """Guardrail: refuse to build a manifest with more rows than this."""
    theta_e_mode: Literal["absolute", "psf_ratio"] = "absolute"
    """``psf_ratio``: θE = theta_e_over_psf × host r-band Moffat FWHM (priors only)."""
    src_mag_mode: Literal["relative", "absolute"] = "relative"
    """``relative``: src_mag_r = host mag_r + src_dmag; ``absolute``: src_mag_r drawn (priors only)."""
    brightness_targeting: bool = False
    """Draw ``target_snr`` from ``priors.target_snr`` (default: the seed's mix 0.8–2: 40 %, 2–8: 40 %,
    8–20: 15 %, > 20: 5 %, stratified within each cell); 4c scales the source flux so that the r-band
    ``target_snr_metric`` equals it (src_mag_r / src_dmag are then nominal; 4c records src_mag_r_used)."""
    target_snr_metric: Literal["arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "arc_snr_opt"] = "arc_snr"
    """Which stage 4c r-band SNR the targeting aims at: the peak per-pixel ``arc_snr`` (the seed's
    targeting quantity), the seed's integrated ``arc_snr_sum``, its footprint variant or the matched filter."""
    resolved: ResolvedSettings = Field(default_factory=ResolvedSettings)
    source_mode: Literal["sersic", "cosmos"] = "sersic"
    cosmos_match_reff: bool = True
    """COSMOS sources: ask 4c to scale templates to src_reff_arcsec (``src_hlr_target_arcsec``)."""
    psf_beta: float = Field(default=3.5, gt=1.0, le=20.0)
    """Moffat β used to turn PSFSIZE into a Moffat FWHM for θE/PSF."""
    stamp_size: int = Field(default=64, ge=16, le=512)
    priors: dict[str, Any] = Field(default_factory=dict)
    """Per-parameter distributions overriding ``dhs.sampling.priors.DEFAULT_PRIORS``."""
    known_lenses: KnownLensSettings = Field(default_factory=KnownLensSettings)

    @field_validator("priors")
    @classmethod
    def _valid_priors(cls, v: dict[str, Any]) -> dict[str, Any]:
        from dhs.sampling.priors import PriorError, parse_priors

        try:
            parse_priors(v, key="priors")
        except PriorError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Stage4aConfig:
        if self.selection_set is not None and self.selection_sets is not None:
            raise ValueError("give selection_set (one set) or selection_sets (several), not both")
        if isinstance(self.selection_sets, list):
            if not self.selection_sets:
                raise ValueError("selection_sets: empty list (use null for every host, or 'all')")
            dup = sorted({x for x in self.selection_sets if self.selection_sets.count(x) > 1})
            if dup:
                raise ValueError(f"selection_sets: duplicates {dup}")
        if self.parameter_source == "grid":
            if self.theta_e_mode == "psf_ratio":
                raise ValueError("theta_e_mode: psf_ratio needs parameter_source: priors (grid θE are absolute)")
            if self.src_mag_mode == "absolute":
                raise ValueError("src_mag_mode: absolute needs parameter_source: priors (grid gives src_dmag)")
        if self.resolved.min_fraction is not None:
            self._check_resolved_share()
        return self

    def _check_resolved_share(self) -> None:
        """The θE/PSF prior must give at least ``resolved.min_fraction`` of resolved injections."""
        from dhs.sampling.priors import parse_priors

        r = self.resolved
        if self.parameter_source != "priors" or self.theta_e_mode != "psf_ratio":
            raise ValueError("resolved.min_fraction needs parameter_source: priors and theta_e_mode: psf_ratio "
                             "(with absolute θE the share depends on the hosts' PSF; stage 4a reports it as "
                             "resolved_fraction)")
        share = float(1.0 - parse_priors(self.priors)["theta_e_over_psf"].cdf(r.theta_e_over_psf_min))
        if share < r.min_fraction:
            raise ValueError(f"resolved.min_fraction = {r.min_fraction:g}: the priors.theta_e_over_psf prior gives "
                             f"only {share:.3f} of injections with θE / PSF FWHM ≥ {r.theta_e_over_psf_min:g}")

    def effective_control_fraction(self) -> float:
        """The control fraction in force (configured or the tier default)."""
        return TIER_CONTROL_FRACTION[self.tier] if self.control_fraction is None else self.control_fraction

    def requested_selection_sets(self) -> list[str] | Literal["all"] | None:
        """The selection set ids to build (a list, ``"all"``) or None (no region selection)."""
        if self.selection_sets is not None:
            return self.selection_sets
        return [self.selection_set] if self.selection_set else None

    def effective_hosts_per_cell(self) -> int | None:
        """Hosts per stratification cell in force (configured or the tier default)."""
        return TIER_HOSTS_PER_CELL[self.tier] if self.n_hosts_per_cell is None else self.n_hosts_per_cell

    def check_inputs(self, cfg: Any) -> list[str]:
        """Input problems found before Spark starts (grid file, known-lens catalogue)."""
        from dhs.sampling.grids import GridError, load_grid

        problems = []
        if self.parameter_source == "grid":
            try:
                load_grid(self.grid, self.grids_dir)
            except GridError as exc:
                problems.append(f"stage4a.grid: {exc}")
        kl = self.known_lenses
        if kl.enabled and kl.catalog and "://" not in kl.catalog and not os.path.isfile(kl.catalog):
            problems.append(f"stage4a.known_lenses.catalog: file not found (got {kl.catalog!r})")
        return problems
