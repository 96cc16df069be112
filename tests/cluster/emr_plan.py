"""scripts/emr/submit.py loaded as a module (it is a script, not part of the package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_submit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("emr_submit", REPO / "scripts" / "emr" / "submit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
