"""Models converted or quantized once per machine, kept in the model cache.

A cached model is an OpenVINO IR (``model.xml`` and ``model.bin``) in a
folder of its own under ``<model cache>/ir/``, named by the model's name and
a key: the SHA-256 of every fact its bytes depend on (the graph file's
SHA-256, the network size, a recipe string that names how it was made, and
the OpenVINO version). A ``manifest.json`` beside the IR lists each file's
size and SHA-256, so a damaged folder (a cut-short ``.bin``, an ``.xml``
overwritten with garbage) is found on the next run and built again.

An engine's own compiled-model cache (OpenVINO's ``CACHE_DIR`` blobs, under
``<model cache>/compiled/``) is held to the same rule: ``verified_files``
records each file the engine writes there (size and SHA-256) and, before the
engine may read the folder again, deletes with one WARNING any file that no
longer matches its record, or that has none, so the engine compiles it again
rather than run damaged weights (OpenVINO does not check a blob's bytes).

Writes are safe when several processes start at once (two batch lanes, two
cluster workers on one machine): a model is built in a temporary folder in
the same directory and renamed into place, which is atomic; an advisory lock
beside the folder makes a second process wait for the first one's build
rather than repeat it, and readers never take the lock. A cache that cannot
be written does not stop a run: the model is built for this process only in
a private temporary folder, and one WARNING says so.

Typical use (the builder writes the IR at the path it is given)::

    model = cached_ir("mobilenet_thin-432x368-f32",
                      {"graph": graph_sha256, "size": "432x368", "recipe": "f32-ir-1"},
                      lambda xml: ov.save_model(converted, xml))
    compiled = core.compile_model(core.read_model(model.xml), "CPU")
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from models.fetch import cache_dir, sha256_of

try:
    import fcntl
except ImportError:  # not POSIX: the atomic rename alone keeps the cache whole
    fcntl = None

log = logging.getLogger(__name__)

IR_FOLDER = "ir"
COMPILED_FOLDER = "compiled"
MANIFEST = "manifest.json"
ENGINE_RECORD = ".verified.json"  # in an engine's folder: the files it wrote, as it wrote them
XML = "model.xml"
_FORMAT = 1  # of the manifest

_warned: set[str] = set()
_problems: dict[str, str] = {}
_state_lock = threading.Lock()
_build_lock = threading.Lock()  # threads of one process build one at a time (flock is per process)
_engine_lock = threading.Lock()  # likewise for an engine writing its compiled-model cache


@dataclass(frozen=True, slots=True)
class CachedModel:
    """Where a model's IR is, and whether the cache kept it.

    Attributes:
        xml: The IR's ``.xml`` file (its ``.bin`` is beside it).
        cached: True when the IR is in the model cache (found or stored there);
            False when the cache could not be written and the IR was built
            for this process only.
        built: True when this call built the IR.
    """

    xml: Path
    cached: bool
    built: bool


def cache_key(parts: Mapping[str, object]) -> str:
    """The key of a cached model: SHA-256 (hex) of its key parts as canonical JSON.

    Args:
        parts: Every fact the model's bytes depend on; values are turned
            into strings, so ``{"size": (432, 368)}`` and ``{"size": "432x368"}``
            are different keys: callers should spell each fact one way.
    """
    text = json.dumps({str(k): str(v) for k, v in parts.items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def openvino_version() -> str:
    """The installed OpenVINO's full version string ("" when it is not importable)."""
    from models.offline import import_openvino
    from pipeline.errors import ModelError

    try:
        return import_openvino().get_version()
    except ModelError:
        return ""


def cached_ir(name: str, key_parts: Mapping[str, object], build: Callable[[Path], None], *,
              cache: Path | None = None) -> CachedModel:
    """The IR of a model, built by ``build`` on the first call on this machine only.

    The OpenVINO version is added to ``key_parts``: an IR is never reused
    across versions.

    Args:
        name: Readable part of the folder name (model, size, precision);
            characters other than letters, digits, ``.``, ``_`` and ``-``
            become ``_``.
        key_parts: What the IR's bytes depend on (see ``cache_key``).
        build: Writes the IR at the ``.xml`` path it is given (and its
            ``.bin`` beside it, as ``openvino.save_model`` does); it may
            write other files in the same folder, which are kept with it.
            It runs at most once per machine and key, unless the cache
            cannot be written.
        cache: Model cache directory (default ``models.fetch.cache_dir()``).

    Returns:
        Where the IR is, and whether it is cached.

    Raises:
        Whatever ``build`` raises (nothing is left behind in the cache).
    """
    parts = {**key_parts, "openvino": openvino_version()}
    key = cache_key(parts)
    root = (cache or cache_dir()) / IR_FOLDER
    entry = root / f"{_safe(name)}-{key[:24]}"
    if _problem(entry, key) is None:
        return CachedModel(entry / XML, cached=True, built=False)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _build_lock, _locked(entry.with_name(entry.name + ".lock")):
            return _build_entry(entry, key, parts, build)
    except OSError as exc:
        if not _is_unwritable(exc):
            raise
        note_unwritable(root, exc)
        return CachedModel(_build_private(name, build), cached=False, built=True)


def compiled_cache_dir(engine: str, version: str, *, cache: Path | None = None,
                       entry: str | None = None) -> Path | None:
    """A folder for an engine's own compiled-model cache (e.g. OpenVINO's ``CACHE_DIR``).

    One folder per engine version, so a new version never reads the old one's
    blobs; with ``entry``, a folder of its own inside that, so that what
    ``verified_files`` checks before a compile is only what it may read.

    Returns:
        The folder, created; None when it cannot be written (one WARNING
        says so, and ``cache_problem()`` records it).
    """
    folder = (cache or cache_dir()) / COMPILED_FOLDER / _safe(f"{engine}-{version}")
    if entry is not None:
        folder /= _safe(entry)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        note_unwritable(folder, exc)
        return None
    return folder


@dataclass(slots=True)
class EngineFiles:
    """What ``verified_files`` found and did in an engine's folder.

    Attributes:
        removed: Files deleted before the engine ran (damaged, or unrecorded).
        written: Files the engine wrote or rewrote in the block, now recorded.
    """

    removed: list[str]
    written: list[str]


@contextlib.contextmanager
def verified_files(folder: Path | None) -> Iterator[EngineFiles]:
    """Let an engine use its own cache in ``folder`` only with files verified here.

    Before the block, each file in ``folder`` is checked against the record
    written when the engine last wrote it (size and SHA-256, in
    ``ENGINE_RECORD``); one that differs, or that no record vouches for (its
    writer stopped before recording it), is deleted, with one WARNING naming
    it and what is wrong, so the engine makes it again. After the block, the
    files the engine wrote are recorded. The block runs under an exclusive
    lock on the folder, so no other process reads or checks a file that is
    still being written. ``None`` (no engine cache) does nothing.

    Yields:
        What was removed and written (filled in as the block ends).
    """
    done = EngineFiles([], [])
    if folder is None:
        yield done
        return
    with _engine_lock, _locked(folder.with_name(folder.name + ".lock")):
        records, seen = _check_engine_files(folder, done)
        yield done
        _record_engine_files(folder, records, seen, done)


def _engine_files(folder: Path) -> dict[str, os.stat_result]:
    """The engine's files in ``folder`` (not our record, nor other dot files)."""
    found = {}
    for path in folder.iterdir():
        if not path.name.startswith("."):
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                if path.is_file():
                    found[path.name] = st
    return found


def _check_engine_files(folder: Path, done: EngineFiles) -> tuple[dict, dict]:
    """Delete what does not match its record; the records kept and the files' stats."""
    unrecorded = "no record of it: its writer stopped before it was checked"
    try:
        records = json.loads((folder / ENGINE_RECORD).read_text())["files"]
        if not isinstance(records, dict):
            raise TypeError(type(records).__name__)
    except FileNotFoundError:
        records = {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        unrecorded = f"the record {ENGINE_RECORD} is unreadable ({exc.__class__.__name__})"
        records = {}
    files = _engine_files(folder)
    kept = {}
    for name, st in files.items():
        problem = _engine_file_problem(folder / name, st, records.get(name), unrecorded)
        if problem is None:
            kept[name] = records[name]
            continue
        log.warning("model cache: compiled model %s is damaged (%s); compiling it again",
                    folder / name, problem)
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
        done.removed.append(name)
    return kept, {name: _identity(st) for name, st in files.items() if name in kept}


def _engine_file_problem(path: Path, st: os.stat_result, record, unrecorded: str) -> str | None:
    """What is wrong with one file of an engine's cache (None: it is as recorded)."""
    if not isinstance(record, dict):
        return unrecorded
    if st.st_size != record.get("size"):
        return f"{st.st_size} bytes, expected {record.get('size')}"
    try:
        digest = sha256_of(path)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return None if digest == record.get("sha256") else "wrong checksum"


def _record_engine_files(folder: Path, records: dict, seen: dict, done: EngineFiles) -> None:
    """Record the files the engine wrote or changed since ``seen``; keep the others' records."""
    records = dict(records)
    for name, st in _engine_files(folder).items():
        if seen.get(name) == _identity(st):
            continue
        try:
            records[name] = {"size": st.st_size, "sha256": sha256_of(folder / name)}
        except OSError:
            continue  # gone again: it will be unrecorded, hence rebuilt, next time
        done.written.append(name)
    if not done.written and not done.removed:
        return
    tmp = None
    try:
        with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".record-", suffix=".tmp",
                                         delete=False) as f:
            tmp = Path(f.name)
            json.dump({"format": _FORMAT, "files": records}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / ENGINE_RECORD)
    except OSError as exc:  # unrecorded files are made again next time: safe, only slower
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        note_unwritable(folder, exc)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def cache_problem() -> str | None:
    """Why this process could not use the model cache (None while it could)."""
    with _state_lock:
        return next(iter(_problems.values()), None)


def note_unwritable(path: Path, exc: OSError) -> None:
    """Record that the cache at ``path`` cannot be written; say so once at WARNING."""
    reason = f"{path}: {exc.strerror or exc}"
    with _state_lock:
        _problems.setdefault(str(path), reason)
        first = not any(w.startswith("unwritable") for w in _warned)
        _warned.add(f"unwritable {path}")
    if first:
        log.warning("model cache %s cannot be written (%s): models are converted again on every run",
                    path, exc.strerror or exc)


def _build_entry(entry: Path, key: str, parts: dict, build: Callable[[Path], None]) -> CachedModel:
    """Build the entry under the lock, unless another process did meanwhile."""
    problem = _problem(entry, key)
    if problem is None:
        return CachedModel(entry / XML, cached=True, built=False)
    if entry.exists():
        log.warning("model cache: %s is damaged (%s); building it again", entry, problem)
        _remove(entry)
    if fcntl is not None:  # we hold the lock: any build folder left is of a killed process
        for stale in entry.parent.glob(f".{entry.name}.build-*"):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.build-"))
    try:
        log.info("model cache: building %s (once)", entry.name)
        build(tmp / XML)
        _write_manifest(tmp, key, parts)
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide it from the cache's other readers
        try:
            os.rename(tmp, entry)
        except OSError as exc:  # a process that holds no lock (no flock here) won the race
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or _problem(entry, key):
                raise
            return CachedModel(entry / XML, cached=True, built=False)
        _fsync_dir(entry.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CachedModel(entry / XML, cached=True, built=True)


def _problem(entry: Path, key: str) -> str | None:
    """What is wrong with a cache entry (None: whole and for this key)."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        files = manifest["files"]
        if manifest.get("key") != key:
            return "its key differs"
        if XML not in files:
            return f"no {XML} in its manifest"
        for name, facts in files.items():
            path = entry / name
            size = path.stat().st_size
            if size != facts["size"]:
                return f"{name} has {size} bytes, expected {facts['size']}"
            if sha256_of(path) != facts["sha256"]:
                return f"{name} has the wrong checksum"
    except FileNotFoundError as exc:
        return f"{Path(exc.filename or '?').name} is missing"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable manifest ({exc.__class__.__name__})"
    return None


def _write_manifest(folder: Path, key: str, parts: dict) -> None:
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        files[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size,
                                                      "sha256": sha256_of(path)}
    manifest = {"format": _FORMAT, "key": key, "parts": {k: str(v) for k, v in parts.items()},
                "files": files}
    with open(folder / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created), held for the block."""
    with open(path, "a+b") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("model cache: another run is building %s; waiting for it", path.stem)
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _remove(entry: Path) -> None:
    """Move a damaged entry aside (one rename, so no reader sees half of it), then delete it."""
    aside = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.stale-"))
    try:
        os.rename(entry, aside / "old")
    except FileNotFoundError:
        pass
    shutil.rmtree(aside, ignore_errors=True)


_private_root: Path | None = None


def _build_private(name: str, build: Callable[[Path], None]) -> Path:
    """Build into a temporary folder of this process (deleted when it exits)."""
    global _private_root
    with _state_lock:
        if _private_root is None:
            _private_root = Path(tempfile.mkdtemp(prefix="posestream-models-"))
            atexit.register(shutil.rmtree, _private_root, True)
    folder = Path(tempfile.mkdtemp(dir=_private_root, prefix=f"{_safe(name)}-"))
    build(folder / XML)
    return folder / XML


def _is_unwritable(exc: OSError) -> bool:
    return exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                         errno.ENOTDIR, errno.EEXIST)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
