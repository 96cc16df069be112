"""Configuration of stage 4a (the `stage4a:` section of a run YAML)."""

from __future__ import annotations

from dhs.config.base import StrictModel


class Stage4aConfig(StrictModel):
    """Settings of stage 4a. Every field has a default, so `stage4a: {}` is valid."""
