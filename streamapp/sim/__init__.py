"""Deterministic telemetry simulators: degrading engines and electric vehicles."""
