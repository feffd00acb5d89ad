"""RUL: `training/` builds the ensemble offline, `serving/` runs it on the stream."""
