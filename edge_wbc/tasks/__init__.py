"""Tasks built on the runtime: classify files, segment, count WBCs on smears, calibrate a classifier."""
