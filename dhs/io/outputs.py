"""Where each stage writes (docs/outputs.md): ``<output_root>/phase<stage>/<variant>/<kind>[/<experiment_id>]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dhs.io.paths import join

if TYPE_CHECKING:  # pragma: no cover
    from dhs.config import RunConfig

PHASE_DIR = {"3": "phase3", "4a": "phase4a", "4b": "phase4b", "4c": "phase4c", "4d": "phase4d", "6": "phase6"}
"""Stage name → top-level output folder."""

PER_EXPERIMENT_KINDS = {"manifests", "stamps", "metrics", "completeness", "assets"}
"""Output kinds that sit below an ``<experiment_id>`` folder (every stage-6 kind does too)."""

STAGE_OUTPUT_KINDS: dict[str, tuple[str, ...]] = {
    "3": ("parent", "regions"),
    "4a": ("manifests",),
    "4c": ("stamps", "metrics"),
    "4d": ("completeness",),
    "6": ("positives", "negatives", "sample", "cutouts", "validation"),
}
"""The folders each stage writes."""


def stage_output_dir(cfg: "RunConfig", stage: str, kind: str) -> str:
    """``<output_root>/phase<stage>/<variant>/<kind>[/<experiment_id>]`` (docs/outputs.md)."""
    if stage not in PHASE_DIR:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(PHASE_DIR)}")
    parts = [PHASE_DIR[stage], cfg.variant, kind]
    if kind in PER_EXPERIMENT_KINDS or stage == "6":
        parts.append(cfg.experiment_id)
    return join(cfg.output_root, *parts)
