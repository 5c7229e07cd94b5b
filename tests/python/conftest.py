"""pytest configuration for the flinq Python tests."""

from __future__ import annotations

import os
import sys

# Make the helper module next to this file importable regardless of pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
