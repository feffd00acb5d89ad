"""Training RUL models offline: data, networks, training, conformal calibration,
evaluation and C-MAPSS scoring, artifacts, training jobs and the C-MAPSS replay."""
