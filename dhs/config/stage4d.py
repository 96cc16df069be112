"""Configuration of stage 4d (the `stage4d:` section of a run YAML): selection function and report."""

from __future__ import annotations

import os
from itertools import pairwise
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dhs.config.base import StrictModel


class BinSpec(StrictModel):
    """One binned dimension: a regular ``width`` (bin = floor(value / width), labelled by its lower edge,
    in the unit of the value) or explicit increasing ``edges`` (open-ended first and last bins)."""

    width: float | None = Field(default=None, gt=0.0)
    edges: list[float] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> BinSpec:
        if (self.width is None) == (self.edges is None):
            raise ValueError("give exactly one of width or edges")
        if self.edges is not None:
            e = self.edges
            if not e or any(b <= a for a, b in pairwise(e)):
                raise ValueError(f"edges must be a non-empty strictly increasing list, got {e}")
        return self


class AuditSettings(StrictModel):
    """Shortcut audit: ROC AUC of trivial features between valid injections and valid controls."""

    enabled: bool = True
    n_per_class: int = Field(default=2000, ge=10, le=1_000_000)
    """At most this many stamps per class: those with the smallest xxhash64 of the run seed and task_id."""
    n_boot: int = Field(default=1000, ge=50, le=100_000)
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    auc_limit: float = Field(default=0.6, ge=0.5, le=1.0)
    """Flag (yellow) a feature when the lower bound of max(AUC, 1 − AUC) exceeds this."""
    auc_red: float = Field(default=0.75, ge=0.5, le=1.0)
    """Red flag above this lower bound."""
    core_radius_pix: float = Field(default=4.0, gt=0.0)
    annulus_inner_frac: float = Field(default=0.75, gt=0.0, lt=1.0)
    """Outer annulus for the noise feature: from this fraction of the half-size to the stamp edge."""
    mask_radius_pix: float | None = Field(default=None, gt=0.0)
    """Radius (pixels) of the host core removed for the centre-masked features; None = ``core_radius_pix``."""
    null_audit: bool = True
    """Compare null injections (``lens_model = "NULL"``, stage4a.null_fraction) with their matched controls
    on every audit feature; their AUCs should be ≈ 0.5 (else the pipeline itself leaks the label)."""


class GallerySettings(StrictModel):
    """Lupton asinh RGB gallery of injections across θE with their matched controls."""

    enabled: bool = True
    n_theta: int = Field(default=6, ge=1, le=30)
    """Number of θE columns (spread over the θE values present)."""
    per_theta: int = Field(default=2, ge=1, le=10)
    """Injection/control pairs per θE column."""
    stretch: float = Field(default=0.5, gt=0.0)
    """``make_lupton_rgb`` linear stretch (nanomaggies)."""
    q: float = Field(default=8.0, gt=0.0)
    """``make_lupton_rgb`` asinh softening parameter."""
    band_scales: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0])
    """Multipliers applied to z, r, g (the R, G, B channels) before the stretch."""


class Stage4dConfig(StrictModel):
    """Settings of stage 4d. Every field has a default, so `stage4d: {}` is valid.

    Recovery (a) proxy: ``snr_column >= snr_min`` and θE / ``psf_column`` >= ``resolution_min`` — a PROXY for
    a lens finder; (b) model scores from ``scores_path`` (Parquet with ``task_id``, ``score``), recovered when
    score >= threshold, thresholds given as scores and as target false-positive rates on valid controls.
    """

    snr_column: Literal["arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "arc_snr_opt"] = "arc_snr"
    """r-band SNR of the recovery proxy (stage 4c columns): peak per pixel (``arc_snr``), the seed's integrated
    ``arc_snr_sum`` (all good pixels), its footprint variant, or the matched filter ``arc_snr_opt``."""
    snr_min: float = 5.0
    resolution_min: float = Field(default=0.8, ge=0.0)
    psf_column: Literal["psf_fwhm_used_r", "psfsize_r"] = "psf_fwhm_used_r"
    """PSF size (arcsec) dividing θE on the ``resolution`` axis, in the proxy's resolution cut and for the PSF
    bins: ``psf_fwhm_used_r`` (Moffat FWHM applied in 4c) or ``psfsize_r`` (catalogue PSFSIZE, the seed's
    axis). Both explicit axes (``resolution_moffat``, ``resolution_psfsize``) are always reported too."""
    scores_path: str | None = None
    """Parquet file or folder of (task_id, score) from a user's classifier (local or s3://)."""
    score_thresholds: list[float] = Field(default_factory=lambda: [0.5])
    target_fprs: list[float] = Field(default_factory=lambda: [0.01, 0.05])
    max_bad_pixel_frac: float = Field(default=0.2, ge=0.0, le=1.0)
    """"clean" selection: bad_pixel_frac ≤ this (0.2 = stage 4c's ``clean`` flag) ..."""
    max_wise_brightmask_frac: float = Field(default=0.2, ge=0.0, le=1.0)
    """... and, added by stage 4d, wise_brightmask_frac ≤ this."""
    confidence_levels: list[float] = Field(default_factory=lambda: [0.68, 0.95])
    theta_e_bins: BinSpec = Field(default_factory=lambda: BinSpec(width=0.05))
    """θE bins (arcsec)."""
    resolution_bins: BinSpec = Field(default_factory=lambda: BinSpec(edges=[0.4, 0.6, 0.8, 1.0]))
    """θE / PSF FWHM bins (dimensionless)."""
    psf_bins: BinSpec = Field(default_factory=lambda: BinSpec(width=0.1))
    """PSF FWHM bins (arcsec, of ``psf_column``)."""
    depth_bins: BinSpec = Field(default_factory=lambda: BinSpec(width=0.25))
    """r-band 5σ point-source depth bins (AB mag)."""
    src_mag_bins: BinSpec = Field(default_factory=lambda: BinSpec(width=0.5))
    """Source r magnitude bins (AB mag; ``src_mag_r_used`` from 4c, else ``src_mag_r``)."""
    bad_pixel_frac_bins: BinSpec = Field(default_factory=lambda: BinSpec(edges=[0.01, 0.05, 0.1, 0.2]))
    """``bad_pixel_frac`` bins (fraction of stamp pixels; the seed's clean cut is 0.2)."""
    wise_brightmask_frac_bins: BinSpec = Field(default_factory=lambda: BinSpec(edges=[0.01, 0.05, 0.1, 0.2]))
    """``wise_brightmask_frac`` bins (fraction of stamp pixels)."""
    target_snr_bins: BinSpec = Field(default_factory=lambda: BinSpec(edges=[0.8, 2.0, 8.0, 20.0]))
    """Bins of the stage 4a target SNR ``target_snr`` (brightness targeting; default: the seed's target-mix
    edges). With explicit edges the report also tabulates the achieved mix of the measured SNR."""
    snr_hist_width_dex: float = Field(default=0.1, gt=0.0)
    """Bin width of the arc-SNR distributions in the report (dex)."""
    region_column: str = "region_id"
    """Region key; when absent from the 4c metrics it is joined from phase3 parent via galaxy_id."""
    region_min_count: int = Field(default=20, ge=1)
    """Minimum valid injections per region and bin for the region mean/std."""
    audit: AuditSettings = Field(default_factory=AuditSettings)
    gallery: GallerySettings = Field(default_factory=GallerySettings)
    report: bool = True

    @field_validator("score_thresholds")
    @classmethod
    def _finite(cls, v: list[float]) -> list[float]:
        import math

        if any(not math.isfinite(x) for x in v):
            raise ValueError(f"score thresholds must be finite numbers, got {v}")
        return v

    @field_validator("target_fprs")
    @classmethod
    def _fpr_range(cls, v: list[float]) -> list[float]:
        if any(not (0.0 <= x <= 1.0) for x in v):
            raise ValueError(f"target false-positive rates must be in [0, 1], got {v}")
        return v

    @field_validator("confidence_levels")
    @classmethod
    def _cl_range(cls, v: list[float]) -> list[float]:
        if not v or any(not (0.0 < x < 1.0) for x in v):
            raise ValueError(f"confidence levels must be in (0, 1), e.g. [0.68, 0.95]; got {v}")
        return v

    def check_inputs(self, cfg: Any) -> list[str]:
        """Problems with input paths that can be checked before Spark starts (local paths only)."""
        p = self.scores_path
        if p and "://" not in p and not os.path.exists(p):
            return [(f"stage4d.scores_path: file not found (got {p!r}; expected a Parquet file or folder "
                     "with columns task_id, score)")]
        return []
