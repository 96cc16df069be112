"""Configuration of stage 3 (the ``stage3:`` section of a run YAML): parent sample, regions, splits."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from dhs.config.base import StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from dhs.config import RunConfig

BUILTIN_VARIANTS = (
    "v1_pure_massive",
    "v2_baseline_dr10",
    "v3_color_relaxed",
    "v4_mag_relaxed",
    "v5_very_relaxed",
    "seed_phase3",
)


class QualityConfig(StrictModel):
    """Per-brick quality cuts (inclusive; a NaN value fails)."""

    ebv_max: float = Field(default=0.12, ge=0, description="max SFD E(B-V), mag")
    psfsize_r_max: float = Field(default=1.6, gt=0, description="max r PSFSIZE, arcsec")
    psfdepth_r_mag5_min: float = Field(default=23.6, description="min r 5-sigma PSF depth, AB mag")
    min_n_gal: int = Field(default=0, ge=0, description="min catalogue galaxies (non-PSF rows) per brick")


class RankingConfig(StrictModel):
    """Constants of the region scores (see dhs.sampling.ranking)."""

    area_alpha: float = Field(default=0.5, ge=0)
    psf_ref_arcsec: float = Field(default=1.25, gt=0)
    psf_scale_arcsec: float = Field(default=0.25, gt=0)
    depth_ref_mag: float = 23.8
    depth_scale_mag: float = Field(default=0.25, gt=0)
    ebv_coeff: float = Field(default=4.0, ge=0)


class SelectionSetConfig(StrictModel):
    """One selection set of regions, chosen per split. Id: ``topk_<score>_k<K>`` or
    ``strat_<score>_q<n_bins>_n<N>`` unless ``id`` is given."""

    kind: Literal["topk", "stratified"]
    score: Literal["density", "n_lrg", "area_weighted", "psf_weighted"] = "density"
    k: int = Field(default=100, ge=1)
    n: int = Field(default=100, ge=1)
    n_bins: int = Field(default=5, ge=1, le=100)
    weights: list[float] = Field(default_factory=list)
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]+$")

    @model_validator(mode="after")
    def _weights(self) -> SelectionSetConfig:
        if self.weights and len(self.weights) != self.n_bins:
            raise ValueError(f"weights has {len(self.weights)} entries but n_bins is {self.n_bins}")
        if any(w < 0 for w in self.weights) or (self.weights and sum(self.weights) <= 0):
            raise ValueError("weights must be ≥ 0 with a positive sum")
        return self


def _default_sets() -> list[SelectionSetConfig]:
    return [SelectionSetConfig(kind="topk", score="density", k=100),
            SelectionSetConfig(kind="stratified", score="density", n=100, n_bins=5)]


SEED_RANKING_MODES: tuple[str, ...] = ("density", "n_lrg", "area_weighted", "psf_weighted")
"""The four region ranking modes (scores); × three LRG variants they made the seed system's 12 selection sets."""


def seed_selection_sets(k: int = 100) -> list[SelectionSetConfig]:
    """One top-``k`` set per ranking mode (``selection_sets: seed``); with ``selection_set_variants`` listing
    three variants this builds the seed's 4 × 3 = 12 sets."""
    return [SelectionSetConfig(kind="topk", score=m, k=k) for m in SEED_RANKING_MODES]


def spec_set_id(s: SelectionSetConfig) -> str:
    """The id of a selection-set spec before any variant suffix."""
    return s.id or (f"topk_{s.score}_k{s.k}" if s.kind == "topk" else f"strat_{s.score}_q{s.n_bins}_n{s.n}")


def variant_set_id(spec_id: str, variant: str) -> str:
    """``<spec id>__<variant>``: the id of a selection set built for one LRG variant."""
    return f"{spec_id}__{variant}"


class Stage3Config(StrictModel):
    """Settings of stage 3. Every field has a default, so ``stage3: {}`` is valid.

    Inputs: ``sweeps`` is a glob, a list of paths/globs (local or s3://), or None for the DR10 sweep glob
    under ``survey_root``; ``sweep_index`` is a text file listing one sweep path per line (used instead
    of ``sweeps`` when set). ``brick_summary`` defaults to ``<survey_root>/survey-bricks-dr10-south.fits.gz``
    (FITS, Parquet or CSV with brickname, ebv, psfsize_r and psfdepth_r in the unit
    ``brick_psfdepth_unit``: ``mag5`` = 5σ AB mag, ``ivar`` = nanomaggy⁻²).
    """

    sweeps: str | list[str] | None = None
    sweep_index: str | None = None
    allow_missing_sweeps: bool = False
    read_chunk_rows: int | None = Field(default=None, ge=1000)
    brick_summary: str | None = None
    brick_psfdepth_unit: Literal["mag5", "ivar"] = "mag5"
    variants: list[str] = Field(default_factory=lambda: list(BUILTIN_VARIANTS), min_length=1)
    custom_variants: dict[str, list[str]] = Field(default_factory=dict)
    parent_rule: Literal["any", "variant"] = "any"
    quality: QualityConfig = Field(default_factory=QualityConfig)
    region_max_bricks: int = Field(default=64, ge=1)
    region_max_area_deg2: float | None = Field(default=None, gt=0)
    healpix_nside: int = Field(default=32, ge=1, le=8192)
    split_fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.70, "val": 0.15, "test": 0.15})
    ranking: RankingConfig = Field(default_factory=RankingConfig)
    selection_sets: list[SelectionSetConfig] = Field(default_factory=_default_sets)
    """Region selection sets (ranking mode = score, top-K or stratified), or ``seed``: top-100 by each of the
    four ranking modes (density, n_lrg, area_weighted, psf_weighted)."""
    selection_set_variants: list[str] | None = None
    """LRG variants each selection set is built for (the LRG counts behind the scores and the hosts of the
    set); ids become ``<spec id>__<variant>``. The seed system built 4 ranking modes × 3 variants = 12 sets.
    None = the run's variant only, ids without suffix."""
    output_partitions: int | None = Field(default=None, ge=1)

    @field_validator("selection_sets", mode="before")
    @classmethod
    def _seed_sets(cls, v: object) -> object:
        if isinstance(v, str):
            if v != "seed":
                raise ValueError(f"a list of selection sets or 'seed', got {v!r}")
            return seed_selection_sets()
        return v

    @field_validator("healpix_nside")
    @classmethod
    def _pow2(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError(f"must be a power of 2 (HEALPix nested order), got {v}")
        return v

    @field_validator("split_fractions")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(not (x > 0) for x in v.values()) or not math.isclose(sum(v.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"fractions must be > 0 and sum to 1, got {v}")
        return v

    @field_validator("custom_variants")
    @classmethod
    def _custom(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from dhs.sampling.lrg import make_variant

        for name, cuts in v.items():
            if name in BUILTIN_VARIANTS:
                raise ValueError(f"{name!r} is a built-in variant; choose another name")
            make_variant(name, cuts)  # ValueError naming the cut
        return v

    @model_validator(mode="after")
    def _known_variants(self) -> Stage3Config:
        known = set(BUILTIN_VARIANTS) | set(self.custom_variants)
        unknown = [v for v in self.variants if v not in known]
        if unknown:
            raise ValueError(f"variants: unknown {unknown}; known: {sorted(known)}")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants: duplicates in {self.variants}")
        if self.selection_set_variants is not None:
            bad = [v for v in self.selection_set_variants if v not in self.variants]
            if bad or not self.selection_set_variants:
                raise ValueError(f"selection_set_variants: {bad or 'empty list'}; each must be one of stage3.variants "
                                 f"{self.variants} (their is_lrg_<variant> flags are in the parent table)")
            if len(set(self.selection_set_variants)) != len(self.selection_set_variants):
                raise ValueError(f"selection_set_variants: duplicates in {self.selection_set_variants}")
        ids = [spec_set_id(s) for s in self.selection_sets]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"selection_sets: duplicate ids {dup}; give each set a distinct 'id'")
        return self

    def selection_set_plan(self, run_variant: str) -> list[tuple[str, SelectionSetConfig, str]]:
        """Every selection set as (id, spec, LRG variant): each spec × each of ``selection_set_variants``
        (ids ``<spec id>__<variant>``), or each spec for ``run_variant`` (plain ids) when that is None."""
        if self.selection_set_variants is None:
            return [(spec_set_id(s), s, run_variant) for s in self.selection_sets]
        return [(variant_set_id(spec_set_id(s), v), s, v) for v in self.selection_set_variants
                for s in self.selection_sets]

    def check_inputs(self, cfg: RunConfig) -> list[str]:
        """Problems with inputs that can be checked before Spark starts (messages name the key)."""
        problems = []
        if cfg.variant not in self.variants:
            problems.append(
                f"variant: {cfg.variant!r} is not among stage3.variants {self.variants} (it names the output folder "
                "and the is_lrg_<variant> flag later stages use)"
            )
        if self.sweep_index and not self.sweep_index.startswith("s3://") and not os.path.isfile(self.sweep_index):
            problems.append(f"stage3.sweep_index: file does not exist (got {self.sweep_index!r})")
        if (self.brick_summary and not self.brick_summary.startswith("s3://")
                and not os.path.isfile(self.brick_summary)):
            problems.append(f"stage3.brick_summary: file does not exist (got {self.brick_summary!r})")
        return problems
