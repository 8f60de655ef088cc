"""kubeloop: Kubernetes-native MLOps — train, register, serve, watch for drift, retrain."""

__version__ = "0.1.0"
