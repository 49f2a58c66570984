"""Makes scripted.py importable by the rollout tests (the tiny policy: tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # scripted.py, importable by both tiers
