"""RUL: networks, data, training, conformal intervals, artifacts, streaming."""
