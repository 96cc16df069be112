"""Configuration of stage 4c (injection) and of the 4b coadd cache (the ``stage4c:`` YAML block).

Every field has a default, so ``stage4c: {}`` is valid.  Units are in the field names or descriptions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from dhs.config.base import StrictModel
from dhs.core.render import DEFAULT_SUPERSAMPLE

_ARRAYS = ("arc", "invvar", "maskbits")


class CoaddCacheConfig(StrictModel):
    """Stage 4b: mirror the coadd files of a manifest's bricks from an HTTP(S) base URL."""

    base_url: str | None = Field(
        default=None,
        description="DR10 base URL holding coadd/<AAA>/<brick>/..., e.g. "
                    "https://portal.nersc.gov/cfs/cosmo/data/legacysurvey/dr10/south")
    dest: str | None = Field(default=None, description="cache root (local dir or s3://); default survey_root")
    products: list[Literal["image", "invvar", "maskbits", "psfsize"]] = Field(
        default_factory=lambda: ["image", "invvar", "maskbits", "psfsize"])
    """Coadd products mirrored per brick (image, invvar, maskbits, psfsize)."""
    workers: int = Field(default=8, ge=1, le=256, description="parallel downloads")
    retries: int = Field(default=4, ge=0, le=20, description="retries per file after the first attempt")
    backoff_s: float = Field(default=1.0, ge=0.0, description="first retry delay, doubled per retry (s)")
    timeout_s: float = Field(default=60.0, gt=0.0, description="socket timeout per request (s)")


class Stage4cConfig(StrictModel):
    """Stage 4c: inject lensed arcs into coadd cutouts."""

    manifest_path: str | None = Field(
        default=None, description="manifest folder; default phase4a/<variant>/manifests/<experiment_id>")
    keep_arrays: list[Literal["arc", "invvar", "maskbits"]] = Field(
        default_factory=lambda: ["arc"],
        description="optional per-row arrays written next to `stamp` in stamps/ (arc, invvar, maskbits)")
    stamp_npz: bool = Field(default=False,
                            description="also write `stamp_npz` (np.savez_compressed, keys image_g/r/z)")
    arc_noise: Literal["none", "poisson"] = Field(default="none", description="Poisson noise of the arc")
    sky_mag_arcsec2: dict[str, float] = Field(
        default_factory=lambda: {"g": 22.0, "r": 20.9, "z": 18.9},
        description="sky surface brightness per band (AB mag/arcsec²) used only for the arc-noise gain "
                    "estimate (see dhs.injection.noise)")
    psf_beta: float = Field(default=3.5, gt=1.0, le=20.0, description="Moffat β of the injected PSF")
    supersample: int = Field(default=DEFAULT_SUPERSAMPLE, ge=1, le=16,
                             description="ray-shooting supersampling per axis (default: the renderer's, "
                                         "the smallest converged factor; see dhs.core.render)")
    pixscale: float = Field(default=0.262, gt=0.0, description="arcsec per pixel")
    default_stamp_size: int = Field(default=64, ge=8, le=512,
                                    description="stamp side (pixels) when the manifest has no stamp_size")
    clean_max_bad_pixel_frac: float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="rows get clean = 1 when cutout_ok and bad_pixel_frac <= this (the seed's clean cut, 0.2)")
    bad_maskbits: list[str] | None = Field(
        default=None, description="MASKBITS names that make a pixel bad; default DEFAULT_BAD_BITS")
    cosmos_bank: str | None = Field(default=None, description="COSMOS bank HDF5 path (local or s3://)")
    cosmos_colours: Literal["manifest", "template"] = Field(
        default="manifest",
        description="COSMOS sources: colours from the manifest (src_gr/src_rz) or the template's own "
                    "(falls back to the other when missing)")
    cosmos_flip: bool = Field(default=True, description="random mirror flip of COSMOS templates")
    cache_bytes: int = Field(default=2_000_000_000, ge=0, description="executor coadd cache size (bytes)")
    arrow_batch_rows: int = Field(default=256, ge=1, le=100_000,
                                  description="rows per Arrow batch in mapInArrow")
    partitions: int | None = Field(default=None, ge=1,
                                   description="partitions for the brick repartition; default shuffle setting")
    max_records_per_file: int | None = Field(
        default=None, ge=1, description="Parquet rows per stamps/ file; default from target_file_mb")
    target_file_mb: float = Field(default=256.0, gt=0.0,
                                  description="approximate stamps/ file size (MB) when max_records_per_file "
                                              "is not set")
    zstd_level: int = Field(default=1, ge=1, le=22,
                            description="zstd level of the stamps/ Parquet files (stamps are mostly incompressible "
                                        "noise: level 1 writes with ~half the CPU of 3 for ~1.5 % more bytes)")
    cache: CoaddCacheConfig = Field(default_factory=CoaddCacheConfig)

    @field_validator("keep_arrays")
    @classmethod
    def _unique_arrays(cls, v: list[str]) -> list[str]:
        return [a for a in _ARRAYS if a in v]

    @field_validator("sky_mag_arcsec2")
    @classmethod
    def _sky_bands(cls, v: dict[str, float]) -> dict[str, float]:
        missing = [b for b in ("g", "r", "z") if b not in v]
        if missing:
            raise ValueError(f"stage4c.sky_mag_arcsec2 lacks bands {missing}")
        return v

    @field_validator("bad_maskbits")
    @classmethod
    def _known_bits(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        from dhs.survey.maskbits import MaskBit
        bad = [name for name in v if name.upper() not in MaskBit.__members__]
        if bad:
            raise ValueError(f"stage4c.bad_maskbits: unknown MASKBITS names {bad}; "
                             f"known: {list(MaskBit.__members__)}")
        return [name.upper() for name in v]

    def records_per_file(self, stamp_size: int | None = None) -> int:
        """Rows per stamps/ Parquet file: ``max_records_per_file`` or ~``target_file_mb`` of arrays."""
        if self.max_records_per_file:
            return int(self.max_records_per_file)
        npix = (stamp_size or self.default_stamp_size) ** 2
        per_row = 4 * 3 * npix * (1 + ("arc" in self.keep_arrays) + ("invvar" in self.keep_arrays)) \
            + 4 * npix * ("maskbits" in self.keep_arrays) + 2048
        return max(1, int(self.target_file_mb * 1e6 // per_row))

    def check_inputs(self, cfg: object) -> list[str]:
        """Input problems found before Spark starts (local paths only; S3 is checked by the readers)."""
        import os

        from dhs.io.paths import is_s3

        problems = []
        if self.cosmos_bank and not is_s3(self.cosmos_bank) and not os.path.isfile(self.cosmos_bank):
            problems.append(f"stage4c.cosmos_bank: file does not exist (got {self.cosmos_bank!r})")
        if self.manifest_path and not is_s3(self.manifest_path) and not os.path.exists(self.manifest_path):
            problems.append(f"stage4c.manifest_path: folder does not exist (got {self.manifest_path!r})")
        return problems
