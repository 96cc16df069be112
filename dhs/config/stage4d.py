"""Configuration of stage 4d (the `stage4d:` section of a run YAML)."""

from __future__ import annotations

from dhs.config.base import StrictModel


class Stage4dConfig(StrictModel):
    """Settings of stage 4d. Every field has a default, so `stage4d: {}` is valid."""
