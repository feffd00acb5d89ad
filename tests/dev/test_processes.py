"""Stopping the stack's processes: every one is asked to stop before any is waited on."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from streamapp.dev.processes import stop_processes


def test_processes_that_need_each_other_to_stop_all_stop_cleanly(tmp_path: Path) -> None:
    """Like the last nodes of a KRaft cluster: the first exits only once the second has
    been told to stop, so waiting on it before signalling the second would end in a
    SIGKILL after the timeout."""
    told, clean = tmp_path / "second-told", tmp_path / "first-clean"
    first = subprocess.Popen(
        [
            "sh",
            "-c",
            f"trap 'while [ ! -e {told} ]; do sleep 0.05; done; touch {clean}; exit 0' "
            f"TERM; touch {tmp_path}/first-ready; while true; do sleep 0.05; done",
        ],
        start_new_session=True,
    )
    second = subprocess.Popen(
        [
            "sh",
            "-c",
            f"trap 'touch {told}; exit 0' TERM; touch {tmp_path}/second-ready; "
            "while true; do sleep 0.05; done",
        ],
        start_new_session=True,
    )
    try:
        while not all((tmp_path / f"{name}-ready").exists() for name in ("first", "second")):
            time.sleep(0.01)  # both traps are set
        assert stop_processes([first.pid, second.pid], timeout=20.0) == [True, True]
        assert clean.exists()
        assert first.poll() is not None and second.poll() is not None
    finally:
        for process in (first, second):
            process.kill()
            process.wait()
