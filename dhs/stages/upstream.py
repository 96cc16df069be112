"""Inputs a stage reads from an earlier stage, checked before any Spark work.

``dhs run --stage 4c`` (or ``jobs/stage4c_inject.py``) before stage 4a has written its manifest stops with
one line naming the missing folder and the stage that writes it, instead of a traceback after Spark started.
"""

from __future__ import annotations

from dhs.config import ConfigError, RunConfig
from dhs.io.outputs import STAGE_OUTPUT_KINDS, stage_output_dir
from dhs.io.paths import exists
from dhs.io.stage_meta import STAGE_CONFIG_NAME, output_complete

UPSTREAM: dict[str, tuple[str, str]] = {"4a": ("3", "parent"), "4c": ("4a", "manifests"), "4d": ("4c", "metrics")}
"""Stage → (stage that writes its input, output kind of that stage)."""


class MissingInputError(ConfigError):
    """A stage's input from an earlier stage is missing or incomplete (one-line message)."""


def _outputs_complete(cfg: RunConfig, stage: str) -> bool:
    opts = cfg.s3.options()
    return all(output_complete(stage_output_dir(cfg, stage, k), opts) for k in STAGE_OUTPUT_KINDS[stage])


def check_upstream(cfg: RunConfig, stages: list[str]) -> None:
    """Raise :class:`MissingInputError` when a stage in ``stages`` (run in this order) needs the output of an
    earlier stage that neither exists complete nor is run before it. A stage whose own output is complete
    (and ``force`` is false) is skipped by its driver and needs nothing."""
    will_run: set[str] = set()
    opts = cfg.s3.options()
    for stage in stages:
        will_run.add(stage)
        if stage not in UPSTREAM or (not cfg.force and _outputs_complete(cfg, stage)):
            continue
        writer, kind = UPSTREAM[stage]
        if writer in will_run:
            continue
        if stage == "4c" and cfg.stage4c.manifest_path:  # a manifest given by path: any Parquet folder
            path = cfg.stage4c.manifest_path
            if not exists(path, opts):
                raise MissingInputError(f"stage 4c: input folder {path} (stage4c.manifest_path) does not exist; "
                                        f"stage {writer} writes manifests")
            continue
        path = stage_output_dir(cfg, writer, kind)
        if output_complete(path, opts):
            continue
        if exists(path, opts):
            raise MissingInputError(f"stage {stage}: input folder {path} is incomplete (no {STAGE_CONFIG_NAME}); "
                                    f"it is written by stage {writer}: run stage {writer} again")
        raise MissingInputError(f"stage {stage}: input folder {path} does not exist; it is written by stage "
                                f"{writer}: run stage {writer} first")
