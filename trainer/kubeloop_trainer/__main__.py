"""``python -m kubeloop_trainer``: the same as ``kubeloop train``."""

import sys

from kubeloop_trainer.cli import main

sys.exit(main())
