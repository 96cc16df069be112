"""Configuration of stage 3 (the `stage3:` section of a run YAML)."""

from __future__ import annotations

from dhs.config.base import StrictModel


class Stage3Config(StrictModel):
    """Settings of stage 3. Every field has a default, so `stage3: {}` is valid."""
