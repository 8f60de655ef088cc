"""Agreements between kubeloop's processes, as typed code both sides import.

- ``serving_env``: the environment the operator renders for inference servers (names and values).
- ``drift_check``: the ``kubeloop drift check`` command line the operator renders for a DriftMonitor.
- ``payload_log``: where the server writes sampled payloads and how a reader finds them.
- ``registry_uri``: the one parser of MLflow registry URIs (``models:/name/3``, ``models:/name@alias``).
- ``datasets``: which files of a dataset folder are data (trainer and drift check alike).
- ``trial_workers``: what a trial-worker pod is told (its index, the study database, the heartbeat).
"""
