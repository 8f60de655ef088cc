"""``python -m kubeloop_drift check|profile ...`` (the same as ``kubeloop drift``)."""

import sys

from kubeloop_drift.cli import main

sys.exit(main())
