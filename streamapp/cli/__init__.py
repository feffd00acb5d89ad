"""The `streamapp` command line."""
