"""Ground truth (delayed labels): written by the server's feedback endpoint or by anyone, read by the
monitor's performance check.

A label source is a Parquet file or a folder of them (kubeloop.contracts.datasets decides which
files count; hidden and ``_``-prefixed entries are skipped). Columns:

- ``request_id`` (string): the ``_request_id`` of the prediction (kubeloop.contracts.payload_log);
- ``row`` (integer, optional, default 0): the row of that request, for requests of several rows;
- ``label`` (number, or string for classifiers with string classes): the true value;
- ``timestamp`` (timestamp, optional): when the label became known (the newest label of a
  prediction wins; without timestamps, the last one read).

The server's feedback endpoint writes them under ``{labels_uri}/{model}/dt=YYYY-MM-DD/`` with the
payload log's file naming (a label source for the monitor is then ``{labels_uri}/{model}``). In a
cluster the operator gives servers with payload logging ``LABELS_URI = {payload sink}/_labels``
(``labels_root``), and a DriftMonitor without ``performance.labelsUri`` reads
``model_labels(labels_root(sink), model)``: what its target's servers were sent.
"""

from __future__ import annotations

REQUEST_ID = "request_id"
ROW = "row"
LABEL = "label"
TIMESTAMP = "timestamp"
MAX_FEEDBACK_LABELS = 100_000
LABELS_FOLDER = "_labels"  # "_": never a model's payload folder (model names are DNS labels)


def labels_root(payload_sink: str) -> str:
    """Where the servers of a payload sink write the labels posted to them."""
    return f"{payload_sink.rstrip('/')}/{LABELS_FOLDER}"


def model_labels(root: str, model: str) -> str:
    """One model's labels under a labels root."""
    return f"{root.rstrip('/')}/{model}"
