"""The estimation layer: ValueEstimator (estimator.py) over a ValueIndex (value_index.py: the reference store and
its read-out), the read-outs (readout/), the evidence every estimate shows (evidence.py), long-text windows
(windows.py) and the grouped folds read-outs are fitted and cross-validated with (folds.py)."""
