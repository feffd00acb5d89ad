"""Running a worker process: Faust's own worker command over `streamapp.app`."""

from __future__ import annotations

from faust.cli.faust import cli as faust_cli


def run_worker(log_level: str, web_host: str, web_port: int) -> None:
    """Run `faust -A streamapp.app worker` in this process until it stops."""
    args = ["-A", "streamapp.app", "worker", "-l", log_level]
    args += ["--web-port", str(web_port), "--web-host", web_host]
    faust_cli.main(args=args, prog_name="streamapp worker")
