"""The quality layer: held-out estimates through the ReadOut protocol (heldout.py), their metrics (metrics.py),
threshold calibration (calibration.py), `valueguard eval --compare` (compare.py) and `valueguard reward-eval`
(reward_eval.py)."""
