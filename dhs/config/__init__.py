"""Typed, validated run configuration.

One YAML file describes a run: survey root, output root, LRG variant, experiment id, seed and one section
per stage. :func:`load_config` reads it, applies ``--set key.path=value`` overrides (values parsed as YAML)
and validates everything before any Spark work. Errors (:class:`ConfigError`) name the key path, what was
expected and what was given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from dhs.config.base import StrictModel
from dhs.config.stage3 import Stage3Config
from dhs.config.stage4a import Stage4aConfig
from dhs.config.stage4c import Stage4cConfig
from dhs.config.stage4d import Stage4dConfig
from dhs.config.stage6 import Stage6Config
from dhs.io.paths import S3Options, is_s3

__all__ = [
    "ConfigError",
    "RunConfig",
    "SparkSettings",
    "LoggingSettings",
    "S3Settings",
    "SynthSettings",
    "load_config",
    "config_from_dict",
    "apply_overrides",
]


FREE_FORM_SECTIONS: tuple[tuple[str, ...], ...] = (("spark", "conf"),)
"""Mappings whose keys may contain dots (``--set spark.conf.spark.executor.cores=4``)."""


class ConfigError(ValueError):
    """A configuration problem; the message names the key path and what was expected."""


class SparkSettings(StrictModel):
    """Spark session settings. Under ``spark-submit`` the submitted master wins over ``master``."""

    master: str = "local[*]"
    """Spark master URL for local runs, e.g. ``local[2]`` or ``spark://host:7077``."""
    app_name: str = "dhs"
    """Spark application name (shown in the Spark UI and the cluster's application list)."""
    shuffle_partitions: int = Field(default=8, ge=1)
    """``spark.sql.shuffle.partitions``: partitions of shuffles and the default of the stages' repartitions."""
    conf: dict[str, str] = Field(default_factory=dict)
    """Any further Spark configuration, e.g. ``{spark.driver.memory: 4g}`` (keys may contain dots)."""
    show_progress: bool | None = None
    """Spark's console progress bar; None = only when standard error is a terminal (dhs logs its own
    progress lines either way, see ``logging.progress_seconds``)."""

    @field_validator("conf", mode="before")
    @classmethod
    def _scalars_to_str(cls, value: Any) -> Any:
        """Spark conf values are strings; accept YAML scalars (4, true, 2.5) and convert them."""
        if isinstance(value, dict):
            return {
                k: (str(v).lower() if isinstance(v, bool) else str(v)) if isinstance(v, (int, float, bool)) else v
                for k, v in value.items()
            }
        return value


SPARK_LOG_LEVELS: tuple[str, ...] = ("ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
DHS_LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")


class LoggingSettings(StrictModel):
    """What a run prints: the ``dhs`` logger's level, Spark's own log level, the progress-line interval."""

    level: str = "INFO"
    spark_level: str = "WARN"
    progress_seconds: float = Field(default=30.0, gt=0)

    @field_validator("level", "spark_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("level", "spark_level")
    @classmethod
    def _known_level(cls, value: str, info: ValidationInfo) -> str:
        allowed, what = (DHS_LOG_LEVELS, "") if info.field_name == "level" else (SPARK_LOG_LEVELS, "Spark's log levels ")
        if value not in allowed:
            raise ValueError(f"expected one of {what}{', '.join(allowed)}")
        return value


class S3Settings(StrictModel):
    """S3-protocol endpoint for boto3 readers (coadds, sweeps, banks). None = AWS defaults."""

    endpoint_url: str | None = None
    """S3-compatible endpoint, e.g. ``http://127.0.0.1:9000``; null = AWS."""
    region: str | None = None
    """AWS region of the buckets; null = boto3's default."""

    def options(self) -> S3Options:
        return S3Options(endpoint_url=self.endpoint_url, region=self.region)


class SynthSettings(StrictModel):
    """Build the synthetic DR10 sky at ``survey_root`` when it does not exist yet (debug tier only)."""

    n_bricks: int = Field(default=6, ge=1, le=64)
    """Bricks of the synthetic sky (real DR10 brick names near the equator)."""
    seed: int = 42
    """Seed of the synthetic sky (objects, noise, masks)."""
    coadd_size: int = Field(default=480, ge=128, le=3600)
    """Side of each synthetic coadd image (pixels; DR10 coadds are 3600)."""


class RunConfig(StrictModel):
    """One run of the pipeline: where the survey is, where outputs go, and each stage's settings."""

    survey_root: str
    """Root of the DR10-layout survey files (sweeps, coadds, brick table): a local folder or s3://bucket/prefix."""
    output_root: str
    """Where every stage writes its folder (local or s3://); see docs/outputs.md."""
    variant: str = "v2_baseline_dr10"
    """The LRG selection that defines hosts, named in every output path (``phase*/<variant>/``)."""
    experiment_id: str = Field(default="debug", pattern=r"^[A-Za-z0-9_.\-]+$")
    """Name of the injection experiment (stage 4 and 6 output folders, task ids)."""
    seed: int = 1234
    """Run seed: every random draw is xxhash64 of stable keys and this seed."""
    force: bool = False
    """Recompute stages whose output folder is already complete (otherwise they are skipped)."""
    spark: SparkSettings = Field(default_factory=SparkSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    synth: SynthSettings | None = None
    """Build a synthetic sky at ``survey_root`` when it is absent (the debug tier); null for real data."""
    stage3: Stage3Config = Field(default_factory=Stage3Config)
    stage4a: Stage4aConfig = Field(default_factory=Stage4aConfig)
    stage4c: Stage4cConfig = Field(default_factory=Stage4cConfig)
    stage4d: Stage4dConfig = Field(default_factory=Stage4dConfig)
    stage6: Stage6Config = Field(default_factory=Stage6Config)

    def resolved_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able data (what goes into ``_stage_config.json``)."""
        return self.model_dump(mode="json")


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        key = _format_loc(tuple(p for p in e["loc"] if p not in ("function-after",)))
        got = e.get("input")
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling; allowed keys are the documented ones)")
        elif e["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            shown = repr(got)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            lines.append(f"  {key}: {e['msg']} (got {shown})")
    return "\n".join(lines)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML: {exc}") from exc
        node = data
        parts = key.split(".")
        for prefix in FREE_FORM_SECTIONS:
            n = len(prefix)
            if tuple(parts[:n]) == prefix and len(parts) > n:
                parts = list(prefix) + [".".join(parts[n:])]
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _check_inputs(cfg: RunConfig, source: str) -> None:
    """Input paths that must exist before the run starts (local ones; S3 is checked by readers)."""
    if not is_s3(cfg.survey_root) and cfg.synth is None and not os.path.isdir(cfg.survey_root):
        raise ConfigError(
            f"invalid configuration in {source}:\n  survey_root: input path does not exist "
            f"(got {cfg.survey_root!r}; expected a DR10-layout directory or s3://bucket/prefix)"
        )
    for section in (cfg.stage3, cfg.stage4a, cfg.stage4c, cfg.stage4d, cfg.stage6):
        check = getattr(section, "check_inputs", None)
        if check is not None:
            problems = check(cfg)
            if problems:
                raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(f"  {p}" for p in problems))


def config_from_dict(
    data: dict[str, Any], overrides: list[str] | None = None, source: str = "<dict>", check_inputs: bool = True
) -> RunConfig:
    """Validate a configuration given as a dict (after applying overrides)."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {source}: expected a mapping at the top level")
    data = apply_overrides(data, list(overrides or []))
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    if check_inputs:
        _check_inputs(cfg, source)
    return cfg


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None, check_inputs: bool = True) -> RunConfig:
    """Read, override and validate a run configuration YAML file (a local path or an ``s3://`` URL)."""
    source = str(path)
    if is_s3(source):
        from dhs.io.paths import read_bytes

        try:
            text = read_bytes(source).decode("utf-8")
        except Exception as exc:  # boto3 raises several types; report them all the same way
            raise ConfigError(f"configuration file not readable: {source}: {exc}") from exc
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"configuration file not found: {p}")
        text = p.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    return config_from_dict(data, overrides, source=source, check_inputs=check_inputs)
