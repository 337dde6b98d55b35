"""The estimator's defaults, stated once: the neighbours of evidence (k) and the softmax temperature of their
weights (tau). Low in the estimation layer (it imports nothing) so that the estimator, the read-outs and the
held-out evaluation all read the same numbers.

Chosen on held-out data (docs/quality.md, "How the estimator was chosen"; `make choice`): among k 1-30 and tau
0-0.1, k=10 with tau=0.05 is within 0.003 of the best mean violation AP, keeps mean r near 0.59 and shows ten
neighbours of evidence.
"""

DEFAULT_K = 10
DEFAULT_TAU = 0.05
