"""Test utilities: worker subprocesses, fault injection."""
