"""Asset-class files of the test suites."""

from __future__ import annotations

from pathlib import Path

#: Every asset a turbofan windowed by WINDOW_* (the suites that send engines only).
TURBOFANS = Path(__file__).with_name("turbofans.yaml")
