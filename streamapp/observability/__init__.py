"""Logging and metrics exposition shared by every concept."""
