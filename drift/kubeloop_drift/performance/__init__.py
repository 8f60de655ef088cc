"""Performance from delayed labels (realized), per group and fairness, and estimated without labels (CBPE).

- ``labels``: read ground truth (kubeloop.contracts.labels) from any fsspec URI.
- ``join``: predictions from the payload log joined to labels by (request id, row) within a
  maturity window; label coverage.
- ``metrics``: accuracy, F1, ROC AUC, MAE, RMSE; ``bootstrap``: seeded percentile intervals.
- ``groups``: per-group metrics with a minimum group size, demographic parity and equalized odds.
- ``cbpe``: confidence-based performance estimation (NannyML's method) for binary classifiers.
"""
