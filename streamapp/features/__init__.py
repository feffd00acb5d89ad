"""Windowed feature extraction with state in RocksDB tables."""
