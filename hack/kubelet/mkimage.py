#!/usr/bin/env python3
"""Pack a root filesystem directory into a single-layer image archive that containerd imports.

No container registry is reachable from this machine, so images are assembled locally:

    mkimage.py ROOTFS_DIR NAME:TAG OUT.tar [--entrypoint /bin/sh] [--cmd ...] [--user 65532]
    ctr -n k8s.io images import OUT.tar          # then imagePullPolicy: Never in the Pod

The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) that also
carries a Docker-style manifest.json with RepoTags, so `ctr images import`, `docker load`
and `podman load` all accept it. The layer is gzip-compressed; owners are numeric (root
unless the tree says otherwise), device nodes are skipped (the runtime provides /dev).
Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import time


def _layer(rootfs: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in [*sorted(dirnames), *sorted(filenames)]:
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                    continue
                arc = os.path.relpath(full, rootfs)
                info = tar.gettarinfo(full, arcname=arc)
                info.uname = info.gname = ""
                info.mtime = 0
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def _blob(out: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mtime = len(data), 0
    out.addfile(info, io.BytesIO(data))
    return digest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rootfs")
    p.add_argument("ref", help="image name, e.g. localhost/kubeloop/busybox:feas")
    p.add_argument("out", help="archive to write")
    p.add_argument("--entrypoint", nargs="*", default=None)
    p.add_argument("--cmd", nargs="*", default=None)
    p.add_argument("--user", default="")
    p.add_argument("--workdir", default="/")
    p.add_argument(
        "--env",
        action="append",
        default=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    a = p.parse_args()

    tar_bytes = _layer(a.rootfs)
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    gz = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)),
        "config": {
            "Env": a.env,
            "WorkingDir": a.workdir,
            "User": a.user,
            **({"Entrypoint": a.entrypoint} if a.entrypoint is not None else {}),
            **({"Cmd": a.cmd} if a.cmd is not None else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "hack/kubelet/mkimage.py"}],
    }
    cfg_bytes = json.dumps(config, separators=(",", ":")).encode()
    name = a.ref
    with tarfile.open(a.out, "w") as out:
        layer_d = _blob(out, gz)
        cfg_d = _blob(out, cfg_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{cfg_d}",
                "size": len(cfg_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{layer_d}",
                    "size": len(gz),
                }
            ],
        }
        man_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        man_d = _blob(out, man_bytes)
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{man_d}",
                    "size": len(man_bytes),
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
        docker_manifest = [
            {"Config": f"blobs/sha256/{cfg_d}", "RepoTags": [name], "Layers": [f"blobs/sha256/{layer_d}"]}
        ]
        for fname, data in (
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", json.dumps(index).encode()),
            ("manifest.json", json.dumps(docker_manifest).encode()),
        ):
            info = tarfile.TarInfo(fname)
            info.size, info.mtime = len(data), 0
            out.addfile(info, io.BytesIO(data))
    print(f"{a.out}: {name} layer={len(gz)} bytes diff_id={diff_id}")


if __name__ == "__main__":
    main()
