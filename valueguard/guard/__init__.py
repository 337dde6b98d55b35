"""The guard layer: ValueGuard (guard.py: estimator + policy + actions -> Verdict), the rewrite step (rewrite.py),
the bounds on one check (limits.py) and the streaming gate every integration uses (streaming.py)."""
