"""Asset classes: which kind of asset a record is about, and what that decides."""
