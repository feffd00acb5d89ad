"""In-memory helpers shared by the stateful agents (their tables stay the truth)."""
