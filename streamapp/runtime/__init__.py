"""Kafka plumbing: client configuration, topic administration, offset look-ups."""
