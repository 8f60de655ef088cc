#!/usr/bin/env bash
# Install PyTorch 2.13.0 from PyPI for CPU use, without the parts only a GPU needs. No prompts.
#
# PyPI has no CPU-only Linux x86_64 build of torch: its wheel (527 MB) links libtorch_cuda.so,
# whose ELF NEEDED entries (cudart, cublas, cudnn, nccl, cusparseLt, nvshmem, ...) must resolve
# for `import torch` to work, even where no GPU exists. So those runtime libraries are installed,
# pinned to what pip resolves for torch==2.13.0, and what is loaded only on use of a GPU is left
# out: triton (GPU kernels for torch.compile), cusolver (GPU linear algebra, loaded lazily) and
# cuda-bindings. Download 2.2 GB instead of 2.6 GB; 3.7 GB on disk instead of 4.6 GB.
# `pip check` reports those three as missing: expected. For a GPU image use the `torch` extra
# (`pip install '.[torch]'`), which installs everything.
#
# Usage: trainer/install-torch-cpu.sh [PIP]   (default PIP: .venv/bin/pip)
set -euo pipefail
pip="${1:-.venv/bin/pip}"
"$pip" install --no-input --quiet --no-deps \
  torch==2.13.0 \
  nvidia-cuda-runtime==13.0.96 \
  nvidia-cuda-cupti==13.0.85 \
  nvidia-cuda-nvrtc==13.0.88 \
  nvidia-cublas==13.1.1.3 \
  nvidia-cufft==12.0.0.61 \
  nvidia-cufile==1.15.1.6 \
  nvidia-curand==10.4.0.35 \
  nvidia-cusparse==12.6.3.3 \
  nvidia-nvjitlink==13.5.37 \
  nvidia-cudnn-cu13==9.20.0.48 \
  nvidia-cusparselt-cu13==0.8.1 \
  nvidia-nccl-cu13==2.29.7 \
  nvidia-nvshmem-cu13==3.4.5
"$pip" install --no-input --quiet \
  filelock 'typing-extensions>=4.10.0' 'setuptools>=77.0.3' 'sympy>=1.13.3' 'networkx>=2.5.1' jinja2 'fsspec>=0.8.5'
python="$(dirname "$pip")/python"
"$python" -c 'import torch, torch.distributed as dist; assert dist.is_gloo_available(); print("torch", torch.__version__)'
