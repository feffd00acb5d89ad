"""Serving RUL: the streaming agent, per-asset sequences, the ensemble, the live model,
its metrics, the HTTP API's logic and the benchmark."""
