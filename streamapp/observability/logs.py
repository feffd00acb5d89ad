"""Structured, quiet-by-default logging: `time level logger key=value message`."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def configure_logging(verbose: bool = False) -> None:
    """INFO for streamapp and WARNING for libraries; DEBUG everywhere with --verbose."""
    logging.basicConfig(stream=sys.stderr, format=FORMAT, force=True)
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("streamapp").setLevel(logging.DEBUG if verbose else logging.INFO)
