"""The README's table of settings names every setting the code reads, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from tellusonce.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_names_every_setting() -> None:
    """Seven settings, TELLUSONCE_SCHEMA_DIRS among them (a JSON list), were named nowhere."""
    named = re.findall(r"^\| `(TELLUSONCE_[A-Z_]+)` \|", README.read_text(encoding="utf-8"), re.M)
    assert sorted(named) == sorted(f"TELLUSONCE_{name.upper()}" for name in Settings.model_fields)
