"""Configuration of stage 6 (the `stage6:` section of a run YAML): real-lens training sets (Paper IV parity).

Every field has a default, so ``stage6: {}`` is valid. Stage 6 needs a known-lens catalogue: either
``lens_catalog`` (a CSV/TSV/whitespace/FITS file) or ``use_lenscat: true`` with the PyPI package ``lenscat``
installed; with neither, running stage 6 is an error that says so (the other stages are unaffected).
Angles are arcsec unless named ``_deg``; fluxes nanomaggies; magnitudes AB.

Pool rules come from a named preset (``pool_preset``), and any key set in the YAML overrides the preset:

- ``revised`` (default): the seed system's later revision — TYPE ∈ {SER, DEV, REX}, z < 20 (a missing z
  magnitude fails), no known lens within 11″, five N2 rules in four categories (ring, edge-on, blue clumpy,
  large galaxy).
- ``first_documented``: the seed system's first documented version — TYPE ∈ {SER, DEV, REX, EXP}, z < 21 (a
  missing z magnitude passes), 10″ exclusion, three N2 rules (ring = DEV with flux_r ≥ 10 nMgy; edge-on = EXP
  with shape_r ≥ 2″; blue clumpy = g − r ≤ 0.4 and r ≤ 19).

Both share the footprint (−18° < Dec < +32°), ≥ 3 exposures in g, r and z, the excluded maskbits
{1, 5, 6, 7, 11, 12, 13}, the nobs_z strata 1–2 / 3–5 / 6–10 / 11+, N1 : N2 = 85 : 15, HEALPix nside 128 split
70/15/15 and 101-pixel cutouts. In both, positives pass the same footprint/quality filters as the negatives
(``positive_filters``), so every stratum that holds positives can hold negatives. The first documented
version stratified by a nobs_z 1–2 bin that, under its own ≥ 3-exposure rule, could hold positives but never
negatives. docs/stage6.md lists every difference and why, where known.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Literal

from pydantic import Field, model_validator

from dhs.config.base import StrictModel

TYPE_NAMES = ("PSF", "REX", "EXP", "DEV", "SER", "COMP", "DUP")


class LensColumns(StrictModel):
    """Column names of the lens catalogue; None = first of the usual names found (case-insensitive)."""

    ra: str | None = None
    dec: str | None = None
    grade: str | None = None
    reference: str | None = None
    name: str | None = None


class FootprintFilter(StrictModel):
    """Keep dec_min_deg < Dec < dec_max_deg (strict; DECaLS-like footprint of Paper IV)."""

    enabled: bool = True
    dec_min_deg: float = Field(default=-18.0, ge=-90.0, le=90.0)
    dec_max_deg: float = Field(default=32.0, ge=-90.0, le=90.0)

    @model_validator(mode="after")
    def _order(self) -> FootprintFilter:
        if not self.dec_min_deg < self.dec_max_deg:
            raise ValueError(f"dec_min_deg ({self.dec_min_deg}) must be < dec_max_deg ({self.dec_max_deg})")
        return self


class TypeFilter(StrictModel):
    """Keep Tractor TYPE in ``allowed`` (add "EXP" to include exponential discs)."""

    enabled: bool = True
    allowed: list[Literal["PSF", "REX", "EXP", "DEV", "SER", "COMP", "DUP"]] = Field(
        default_factory=lambda: ["SER", "DEV", "REX"], min_length=1)


class NobsFilter(StrictModel):
    """Keep NOBS_<band> ≥ ``min`` in every band of ``bands``."""

    enabled: bool = True
    min: int = Field(default=3, ge=0)
    bands: list[Literal["g", "r", "z"]] = Field(default_factory=lambda: ["g", "r", "z"], min_length=1)


class MagFilter(StrictModel):
    """Keep mag_<band> < ``max`` (AB). A NaN magnitude (flux ≤ 0 or missing) fails unless ``missing_passes``
    (the first documented version let rows without a z magnitude through; the revision rejects them, since a
    row with no measured z flux cannot be placed against a z-band cut)."""

    enabled: bool = True
    band: Literal["g", "r", "z"] = "z"
    max: float = 20.0
    missing_passes: bool = False


class MaskbitsFilter(StrictModel):
    """Reject rows with any of ``bits`` set in MASKBITS (bit numbers or names, DR10 numbering)."""

    enabled: bool = True
    bits: list[int | str] = Field(default_factory=lambda: [1, 5, 6, 7, 11, 12, 13])


class KnownLensFilter(StrictModel):
    """Reject rows with a known lens (the whole catalogue) within ``radius_arcsec``."""

    enabled: bool = True
    radius_arcsec: float = Field(default=11.0, gt=0.0)


class NegativeFilters(StrictModel):
    """Paper IV negative-pool filters, applied in this order (counts report each one). Positives pass the
    ones named in ``Stage6Config.positive_filters`` (all but ``known_lens`` by default)."""

    footprint: FootprintFilter = Field(default_factory=FootprintFilter)
    type: TypeFilter = Field(default_factory=TypeFilter)
    nobs: NobsFilter = Field(default_factory=NobsFilter)
    mag: MagFilter = Field(default_factory=MagFilter)
    maskbits: MaskbitsFilter = Field(default_factory=MaskbitsFilter)
    known_lens: KnownLensFilter = Field(default_factory=KnownLensFilter)


class N2Rule(StrictModel):
    """One confuser rule: every condition that is set must hold (AND); NaN fails a condition.

    ``type_in``: TYPE in the list; ``flux_r_min`` (nMgy, ≥); ``sersic_min`` (≥); ``ellipticity_min`` (≥,
    see ``Stage6Config.ellipticity``); ``shape_r_min`` (arcsec, ≥); ``g_minus_r_max`` (mag, ≤);
    ``mag_r_max`` (AB, ≤)."""

    category: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_]+$")
    enabled: bool = True
    type_in: list[str] | None = None
    flux_r_min: float | None = None
    sersic_min: float | None = None
    ellipticity_min: float | None = None
    shape_r_min: float | None = None
    g_minus_r_max: float | None = None
    mag_r_max: float | None = None

    @model_validator(mode="after")
    def _has_condition(self) -> N2Rule:
        conds = ("type_in", "flux_r_min", "sersic_min", "ellipticity_min", "shape_r_min", "g_minus_r_max",
                 "mag_r_max")
        if all(getattr(self, c) is None for c in conds):
            raise ValueError(f"N2 rule {self.category!r} has no condition; set at least one of {list(conds)}")
        return self


#: The pool rules of each preset (``Stage6Config.pool_preset``): values of ``filters`` and ``n2_rules``.
#: Keys a run YAML sets override these (nested dicts merge; a given ``n2_rules`` list replaces the preset's).
POOL_PRESETS: dict[str, dict[str, Any]] = {
    "revised": {
        "filters": {"type": {"allowed": ["SER", "DEV", "REX"]},
                    "mag": {"band": "z", "max": 20.0, "missing_passes": False},
                    "known_lens": {"radius_arcsec": 11.0}},
        "n2_rules": [
            {"category": "ring_proxy", "type_in": ["DEV"], "flux_r_min": 5.0},
            {"category": "ring_proxy", "type_in": ["SER"], "sersic_min": 4.0, "flux_r_min": 5.0},
            {"category": "edge_on_proxy", "ellipticity_min": 0.5, "shape_r_min": 0.6},
            {"category": "blue_clumpy", "g_minus_r_max": 0.4, "mag_r_max": 20.5},
            {"category": "large_galaxy", "shape_r_min": 2.0, "flux_r_min": 3.0},
        ],
    },
    "first_documented": {
        "filters": {"type": {"allowed": ["SER", "DEV", "REX", "EXP"]},
                    "mag": {"band": "z", "max": 21.0, "missing_passes": True},
                    "known_lens": {"radius_arcsec": 10.0}},
        "n2_rules": [
            {"category": "ring_proxy", "type_in": ["DEV"], "flux_r_min": 10.0},
            {"category": "edge_on_proxy", "type_in": ["EXP"], "shape_r_min": 2.0},
            {"category": "blue_clumpy", "g_minus_r_max": 0.4, "mag_r_max": 19.0},
        ],
    },
}
PoolPreset = Literal["revised", "first_documented"]


def default_n2_rules() -> list[N2Rule]:
    """Confuser rules of the ``revised`` preset in priority order (first match wins)."""
    return [N2Rule.model_validate(r) for r in POOL_PRESETS["revised"]["n2_rules"]]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: nested dicts merge, anything else in ``over`` replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class SamplingSettings(StrictModel):
    """Stratified negatives: per (nobs_z_bin × type_bin) stratum ``neg_per_pos`` negatives per positive,
    of which ``n2_fraction`` from N2 (shortfall back-filled from N1)."""

    neg_per_pos: float = Field(default=100.0, gt=0.0)
    n2_fraction: float = Field(default=0.15, ge=0.0, le=1.0)
    n1_share_min: float = Field(default=0.80, ge=0.0, le=1.0)
    """Gate: N1 share of the sampled negatives at least this."""
    n1_share_max: float = Field(default=0.90, ge=0.0, le=1.0)
    total_fraction_min: float = Field(default=1.0, gt=0.0, le=1.0)
    """Gate: sampled negatives ≥ this fraction of the target total."""


class TierSettings(StrictModel):
    """Lens grade → tier (A/B) and training weight per tier."""

    grade_to_tier: dict[str, Literal["A", "B"]] = Field(default_factory=lambda: {
        "A": "A", "confident": "A", "B": "B", "probable": "B"})
    default_tier: Literal["A", "B"] = "B"
    """Tier of lenses whose grade is empty or not in ``grade_to_tier``."""
    weights: dict[str, float] = Field(default_factory=lambda: {"A": 1.0, "B": 0.5})

    @model_validator(mode="after")
    def _weights(self) -> TierSettings:
        for t in ("A", "B"):
            if t not in self.weights or not self.weights[t] >= 0:
                raise ValueError(f"weights must give a weight ≥ 0 for tier {t!r}, got {self.weights}")
        return self


class CutoutSettings(StrictModel):
    """Cutouts of positives and sampled negatives."""

    source: Literal["coadd", "service"] = "coadd"
    """coadd: the DR10 coadds under survey_root (local or s3://, with invvar and maskbits);
    service: the Legacy Surveys cutout service over HTTP (images only)."""
    size: int = Field(default=101, ge=8, le=512)
    service_url: str = "https://www.legacysurvey.org/viewer/cutout.fits"
    service_layer: str = "ls-dr10"
    service_retries: int = Field(default=3, ge=0, le=20)
    service_timeout_s: float = Field(default=30.0, gt=0.0)
    service_backoff_s: float = Field(default=1.0, ge=0.0)
    cache_bytes: int = Field(default=500_000_000, ge=0)
    partitions: int = Field(default=0, ge=0)
    """Cutout tasks (0 = spark.shuffle_partitions)."""
    core_radius_pix: float = Field(default=4.0, gt=0.0)
    annulus_pix: tuple[float, float] = (8.0, 16.0)
    central_box_pix: int = Field(default=16, ge=1)
    """Side of the central box for ``nan_frac_central``."""
    keep_invvar: bool = True
    keep_maskbits: bool = True

    @model_validator(mode="after")
    def _annulus(self) -> CutoutSettings:
        a, b = self.annulus_pix
        if not 0 <= a < b:
            raise ValueError(f"annulus_pix must be (inner, outer) with 0 ≤ inner < outer pixels, got {self.annulus_pix}")
        return self


class HardNegativeSettings(StrictModel):
    """Hard negatives from a finder's score table (``phase6/<variant>/hard_negatives/<experiment_id>/``).

    ``score_table``: Parquet file or folder (local or s3://) with one row per scored object, an id column
    holding dhs ``galaxy_id`` strings ("<brickname>_<objid>") and a numeric score column (higher = more
    lens-like). Null → no hard negatives. Stage 6 joins it with the negative pools named in ``pools`` (which
    already passed every pool filter), drops objects with a known lens within ``exclusion_radius_arcsec``
    (null = ``filters.known_lens.radius_arcsec``) and every lens's matched object, and takes per stratum
    (nobs_z_bin × type_bin) the highest scores: ``count: per_positive`` takes round(per_positive × positives
    of the stratum) in the strata that hold sample positives, ``count: per_stratum`` takes ``per_stratum`` in
    every stratum of the pools. Ties in score go to the smaller sampling hash, then the smaller galaxy_id.
    A null or NaN score never makes a hard negative; an id scored twice keeps its highest score."""

    score_table: str | None = None
    id_column: str = Field(default="galaxy_id", min_length=1)
    score_column: str = Field(default="score", min_length=1)
    pools: list[Literal["N1", "N2"]] = Field(default_factory=lambda: ["N1", "N2"], min_length=1)
    count: Literal["per_positive", "per_stratum"] = "per_positive"
    per_positive: float = Field(default=10.0, gt=0.0)
    per_stratum: int = Field(default=1000, ge=1)
    min_score: float | None = None
    """Only objects scoring at least this become hard negatives (null = no threshold)."""
    exclusion_radius_arcsec: float | None = Field(default=None, gt=0.0)


class ValidationSettings(StrictModel):
    """Shortcut audit (positives vs negatives) and split checks."""

    n_boot: int = Field(default=500, ge=50, le=100_000)
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    auc_yellow: float = Field(default=0.6, ge=0.5, le=1.0)
    auc_red: float = Field(default=0.75, ge=0.5, le=1.0)
    max_per_class: int = Field(default=20000, ge=10)
    split_tolerance: float = Field(default=0.05, gt=0.0, lt=1.0)
    """Yellow flag when a split's share differs from its target by more than this."""
    neighbour_radius_arcsec: float = Field(default=11.0, ge=0.0)
    """Count objects in different splits closer than this (0 = skip)."""


PositiveFilter = Literal["footprint", "type", "nobs", "mag", "maskbits"]
#: Filters that decide the strata (nobs_z_bin × type_bin) a negative can fall in: positives must pass them
#: whenever the negatives do, or a stratum can hold positives and never negatives.
STRATUM_FILTERS: tuple[str, ...] = ("type", "nobs")


class Stage6Config(StrictModel):
    """Settings of stage 6 (real-lens training sets). Every field has a default.

    ``pool_preset`` picks the pool rules (``filters``, ``n2_rules``): ``revised`` (default, the seed system's
    later revision) or ``first_documented`` (its first documented version); keys set beside it override the
    preset (module docstring; docs/stage6.md lists the differences). ``positive_filters``: the pool filters a
    matched positive must also pass to enter the sample (a positive that fails is kept in ``positives/`` with
    ``passes_filters = 0`` and the failed filters in ``filter_failed``, and is counted and listed in
    ``_stage_config.json``); ``type`` and ``nobs`` cannot be left out while they filter the negatives.
    """

    pool_preset: PoolPreset = "revised"
    positive_filters: list[PositiveFilter] = Field(
        default_factory=lambda: ["footprint", "type", "nobs", "mag", "maskbits"])

    lens_catalog: str | None = None
    """Known-lens table (CSV/TSV/whitespace/FITS; RA/Dec deg). None → ``lenscat`` if ``use_lenscat``."""
    lens_format: Literal["auto", "csv", "tsv", "fits", "whitespace"] = "auto"
    lens_columns: LensColumns = Field(default_factory=LensColumns)
    use_lenscat: bool = False
    """Use the catalogue of the PyPI package ``lenscat`` (must be installed) when ``lens_catalog`` is null."""
    match_radius_arcsec: float = Field(default=5.0, gt=0.0, le=60.0)
    tiers: TierSettings = Field(default_factory=TierSettings)
    filters: NegativeFilters = Field(default_factory=NegativeFilters)
    n2_rules: list[N2Rule] = Field(default_factory=default_n2_rules)
    ellipticity: Literal["e_modulus", "one_minus_q"] = "e_modulus"
    """Ellipticity used by N2 rules: |e| = sqrt(SHAPE_E1² + SHAPE_E2²) = (1−q)/(1+q), or 1 − q."""
    healpix_nside: int = Field(default=128, ge=1, le=8192)
    split_fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.70, "val": 0.15, "test": 0.15})
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    cutouts: CutoutSettings = Field(default_factory=CutoutSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    hard_negatives: HardNegativeSettings = Field(default_factory=HardNegativeSettings)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("pool_preset", "revised")
        if name not in POOL_PRESETS:
            return data  # the Literal field reports the bad name with the allowed ones
        return _merge(POOL_PRESETS[name], data)

    @model_validator(mode="after")
    def _checks(self) -> Stage6Config:
        n = self.healpix_nside
        if n & (n - 1):
            raise ValueError(f"healpix_nside must be a power of 2, got {n}")
        fr = self.split_fractions
        if not fr or any(not v > 0 for v in fr.values()) or abs(sum(fr.values()) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must be > 0 and sum to 1, got {fr}")
        if self.sampling.n1_share_min > self.sampling.n1_share_max:
            raise ValueError("sampling.n1_share_min must be ≤ sampling.n1_share_max")
        for name in STRATUM_FILTERS:
            if getattr(self.filters, name).enabled and name not in self.positive_filters:
                raise ValueError(
                    f"positive_filters must include {name!r} while filters.{name} is enabled: positives outside "
                    f"it would fill strata that can never hold negatives (got {self.positive_filters})")
        return self

    def check_inputs(self, cfg: Any) -> list[str]:
        """Problems with input paths found before Spark starts (local paths only)."""
        problems = []
        p = self.lens_catalog
        if p and "://" not in p and not os.path.isfile(p):
            problems.append(f"stage6.lens_catalog: input path does not exist (got {p!r}; expected a CSV/TSV/FITS "
                            "table of known lenses with RA/Dec in degrees)")
        s = self.hard_negatives.score_table
        if s and "://" not in s and not os.path.exists(s):
            problems.append(f"stage6.hard_negatives.score_table: input path does not exist (got {s!r}; expected "
                            "a Parquet file or folder of galaxy_id → score)")
        return problems
