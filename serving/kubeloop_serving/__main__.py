"""``python -m kubeloop_serving``: the same as ``kubeloop serve``."""

from kubeloop_serving.cli import main

raise SystemExit(main())
