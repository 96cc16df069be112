"""Base class for configuration sections: unknown keys are errors, values are validated on assignment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A configuration section. Unknown keys and wrong types are errors that name the key path."""

    # attribute docstrings become field descriptions (shown in docs/config-reference.md)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False,
                              use_attribute_docstrings=True)
