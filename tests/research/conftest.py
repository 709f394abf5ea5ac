"""Tests of the research scripts: their helpers import from ``scripts/research``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "research"))
