"""pytest configuration for the ArrayQueue tests."""

from __future__ import annotations

import os
import sys

# ahelpers.py lives next to this file; make it importable whatever pytest's
# import mode (spawned worker processes import it by name too).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
