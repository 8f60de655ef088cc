"""A DVC-tracked path at a git revision: the commit the revision names, then the data at it."""

from __future__ import annotations

import os
import tempfile
from urllib.parse import urlsplit

from dvc.api import DVCFileSystem
from dvc.repo.open_repo import clean_repos
from scmrepo.git.credentials import Credential, memory_helper

from kubeloop.api.data_sources import GIT_PASSWORD_ENV, GIT_USERNAME_ENV, DvcSource
from kubeloop.contracts.datasets import DataFormat
from kubeloop_trainer.dataset import read_dataset
from kubeloop_trainer.errors import BadDataError
from kubeloop_trainer.sources import Source


def requested(source: DvcSource) -> str:
    return f"{source.repo} {source.path}@{source.rev or 'HEAD'}"


def why(error: BaseException) -> str:
    """The error, and the innermost one of its chain if another (DVC's is often just 'SCM error')."""
    root, seen = error, {id(error)}
    while (cause := root.__cause__ or root.__context__) is not None and id(cause) not in seen:
        root = cause
        seen.add(id(cause))
    return str(error) if root is error else f"{error} ({type(root).__name__}: {root})"


def git_credentials(repo: str) -> None:
    """Gives the pod's git credentials (the variables the operator fills from ``dvc.secretRef``) to
    DVC's git clients, dulwich and libgit2, for the repository's host only: scmrepo asks its in-memory
    credential helper when a server answers 401. Nothing prompts: a batch job has no one to ask."""
    os.environ.setdefault("GIT_TERMINAL_PROMPT", "0")
    username, password = os.environ.get(GIT_USERNAME_ENV), os.environ.get(GIT_PASSWORD_ENV)
    url = urlsplit(repo)
    if username and password and url.scheme in ("http", "https") and url.netloc:
        host = Credential(url=repo).host
        memory_helper[Credential(protocol=url.scheme, host=host)] = Credential(
            protocol=url.scheme, host=host, username=username, password=password
        )


def load_dvc(source: DvcSource, declared: DataFormat | None) -> Source:
    """Opens the repository at ``rev`` (a clone for a URL; DVC fetches from its remote what the
    cache lacks); the file system is bound to one commit's tree, so what is read is that commit's."""
    fs = None
    git_credentials(source.repo)
    # DVC's site cache (its index and state databases) defaults to /var/tmp/dvc: in a pod, a read-only
    # root file system
    with tempfile.TemporaryDirectory(prefix="dvc-site-") as site_cache:
        try:
            # never the working tree of a local checkout (it may hold uncommitted changes): a commit's tree
            fs = DVCFileSystem(
                source.repo, rev=source.rev or "HEAD", config={"core": {"site_cache_dir": site_cache}}
            )
            commit = str(fs.repo.get_rev())  # the tree's commit (scm.get_rev() is the clone's HEAD)
            loaded = read_dataset(fs, source.path, f"{source.repo} {source.path}@{commit}", declared)
        except BadDataError:
            raise
        except Exception as error:  # not a git/DVC repository, an unknown revision, no access
            raise BadDataError(f"cannot open DVC repository {requested(source)}: {why(error)}") from error
        finally:
            if fs is not None:
                fs.close()
            # DVC keeps the clones and data caches of repository URLs for the process's life; the data
            # is in memory now, and a pod's /tmp is the node's disk
            clean_repos()
    details = {"files": str(loaded.fingerprint.files)}
    return Source.of_files(loaded, "dvc", requested(source), commit, details)
