"""The quality layer: held-out estimates through the ReadOut protocol (heldout.py), their metrics (metrics.py),
threshold calibration (calibration.py) and `valueguard eval --compare` (compare.py)."""
