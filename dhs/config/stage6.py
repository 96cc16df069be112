"""Configuration of stage 6 (the `stage6:` section of a run YAML)."""

from __future__ import annotations

from dhs.config.base import StrictModel


class Stage6Config(StrictModel):
    """Settings of stage 6. Every field has a default, so `stage6: {}` is valid."""
