"""The guard layer: ValueGuard (guard.py: estimator + policy + actions -> Verdict), the rewrite step (rewrite.py),
the bounds on one check (limits.py), the streaming gate every integration uses (streaming.py), and ValueReward
(reward.py: the value reward for RL fine-tuning, estimator + a profile's target + optionally a policy)."""
