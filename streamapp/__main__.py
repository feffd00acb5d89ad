"""`python -m streamapp` is the `streamapp` command."""

from streamapp.cli.main import cli

cli()
