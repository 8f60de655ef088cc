#!/bin/sh
# pip for image builds (installed as /usr/local/bin/kubeloop-pip in builder stages only).
#
#   kubeloop-pip install ARGS...   pip from the tool venv /opt/pip-tool installs into the target venv
#                                  ($PIP_TARGET_VENV, default /opt/kubeloop) with `pip --python`, so the
#                                  target venv (and the image) carries no pip
#   kubeloop-pip trim              remove test suites, headers and Cython sources from the target venv
#   kubeloop-pip stage DIST DEST   copy the installed files of distribution DIST (its RECORD: packages,
#                                  dist-info, console scripts) with byte-code into DEST/<absolute path>,
#                                  for `COPY --from=app DEST/ /` as a small last layer
#
# A CA bundle given as the build secret `ca-bundle` (a TLS-intercepting proxy) is used when present;
# without it pip uses its default certificates.
set -eu
target="${PIP_TARGET_VENV:-/opt/kubeloop}"
if [ -s /run/secrets/ca-bundle ]; then
  export PIP_CERT=/run/secrets/ca-bundle
fi
if [ "${1:-}" = stage ]; then
  cd / && exec "$target/bin/python" -I - "$2" "$3" <<'EOF'
import importlib.metadata as md, os, py_compile, shutil, sys
from pathlib import Path

dist, dest = md.distribution(sys.argv[1]), Path(sys.argv[2])
n = 0
for f in dist.files or []:
    src = Path(os.path.normpath(dist.locate_file(f)))
    if "__pycache__" in src.parts or not src.is_file():
        continue
    out = dest / src.relative_to("/")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, out)
    n += 1
    if src.suffix == ".py" and "site-packages" in src.parts:
        # checked-hash: valid whatever the file times become in the image
        pyc = Path(py_compile.compile(str(src), doraise=True,
                                      invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH))
        (dest / pyc.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pyc, dest / pyc.relative_to("/"))
print(f"staged {n} files of {sys.argv[1]} into {dest}")
EOF
fi
if [ "${1:-}" = trim ]; then
  # What only a build or a test suite uses: the test suites shipped inside numpy, scipy, pandas,
  # scikit-learn and pyarrow (~75 MB in the kubeloop image), C/C++ headers and Cython sources.
  # Byte-code stays: without it every start compiles in memory (5.8 s vs 13 s to import the server).
  sp="$("$target/bin/python" -I -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  before="$(du -sm "$target" | cut -f1)"
  for pkg in numpy scipy pandas sklearn pyarrow; do
    [ -d "$sp/$pkg" ] && find "$sp/$pkg" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} +
  done
  rm -rf "$sp/pyarrow/include" "$sp/pyarrow/src" "$sp/numpy/_core/include" "$sp/torch/include" "$sp/torch/share/cmake"
  find "$sp" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -delete
  echo "trimmed $target: $before MB -> $(du -sm "$target" | cut -f1) MB"
  exit 0
fi
exec /opt/pip-tool/bin/pip --python "$target/bin/python" "$@"
