"""The model cache: keys, damaged entries, racing processes, an unwritable cache, warm starts.

Most tests build a toy "IR" (two small files) with a build function, so they
need no engine; the last ones load the real model with OpenVINO (slow).
"""

import hashlib
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import run_stream
from models import backend as backend_module
from models import fetch, model_cache
from models.model_cache import XML, cache_key, cached_ir
from stages.outputs.sample import make_test_clip
from tests.support.fakes import ZeroBackend

ROOT = Path(__file__).resolve().parents[2]
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


class OffCacheBackend(ZeroBackend):
    """A zero backend whose model cache could not be written."""

    precision = "f32"
    cache = "off"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test starts as a new process would: nothing warned, no cache problem seen."""
    monkeypatch.setattr(model_cache, "_warned", set())
    monkeypatch.setattr(model_cache, "_problems", {})
    monkeypatch.setattr(backend_module, "_warned", set())


def toy_build(payload: bytes = b"weights" * 100, calls: list | None = None):
    """A build function writing an .xml and a .bin, counting its calls."""

    def build(xml: Path) -> None:
        if calls is not None:
            calls.append(xml)
        xml.write_text("<net name='toy'/>")
        xml.with_suffix(".bin").write_bytes(payload)

    return build


def entry_of(result) -> Path:
    return result.xml.parent


# --- keys ---------------------------------------------------------------------------------------

def test_the_key_changes_with_each_part_and_not_with_their_order():
    base = {"graph": "a" * 64, "size": "432x368", "recipe": "f32 v1"}
    assert cache_key(base) == cache_key(dict(reversed(list(base.items()))))
    changed = [cache_key({**base, part: value}) for part, value in
               (("graph", "b" * 64), ("size", "656x368"), ("recipe", "int8 v1"))]
    assert len({cache_key(base), *changed}) == 4


def test_the_openvino_backend_keys_its_ir_by_graph_bytes_size_and_recipe(tmp_path, monkeypatch):
    from models import openvino_backend as ovb

    monkeypatch.setenv("POSESTREAM_CACHE", str(tmp_path / "cache"))
    keys = []
    monkeypatch.setattr(ovb, "cached_ir", lambda name, parts, build: keys.append(cache_key(parts)))
    graph_a, graph_b = tmp_path / "a.pb", tmp_path / "b.pb"
    graph_a.write_bytes(b"graph one")
    graph_b.write_bytes(b"graph two")
    out = "Openpose/concat_stage7:0"
    ovb._converted.__wrapped__(str(graph_a), (0, 0), (432, 368), out)
    ovb._converted.__wrapped__(str(graph_b), (0, 0), (432, 368), out)  # other bytes
    ovb._converted.__wrapped__(str(graph_a), (0, 0), (656, 368), out)  # other size
    monkeypatch.setattr(ovb, "IR_RECIPE", ovb.IR_RECIPE + " changed")
    ovb._converted.__wrapped__(str(graph_a), (0, 0), (432, 368), out)  # other recipe
    assert len(set(keys)) == 4


def test_other_key_parts_are_other_entries_built_once_each(tmp_path):
    calls = []
    first = cached_ir("toy", {"size": "64x48"}, toy_build(calls=calls), cache=tmp_path)
    again = cached_ir("toy", {"size": "64x48"}, toy_build(calls=calls), cache=tmp_path)
    other = cached_ir("toy", {"size": "96x64"}, toy_build(calls=calls), cache=tmp_path)
    assert (first.built, again.built, other.built) == (True, False, True)
    assert first.xml == again.xml != other.xml and len(calls) == 2
    assert first.cached and again.cached and other.cached


# --- damaged entries ----------------------------------------------------------------------------

def _truncate_bin(entry: Path) -> None:
    data = (entry / "model.bin").read_bytes()
    (entry / "model.bin").write_bytes(data[: len(data) // 2])


def _garbage_xml(entry: Path) -> None:
    size = (entry / XML).stat().st_size
    (entry / XML).write_bytes(b"\0" * size)  # same size, other bytes


def _no_manifest(entry: Path) -> None:  # as a writer cut off before its last file
    (entry / model_cache.MANIFEST).unlink()


def _garbage_manifest(entry: Path) -> None:
    (entry / model_cache.MANIFEST).write_text("{not json")


@pytest.mark.parametrize("damage", [_truncate_bin, _garbage_xml, _no_manifest, _garbage_manifest])
def test_a_damaged_entry_is_found_and_built_again_with_one_warning(tmp_path, caplog, damage):
    payload = bytes(range(256)) * 40
    first = cached_ir("toy", {"k": 1}, toy_build(payload), cache=tmp_path)
    damage(entry_of(first))
    calls = []
    with caplog.at_level(logging.WARNING, logger="models.model_cache"):
        rebuilt = cached_ir("toy", {"k": 1}, toy_build(payload, calls), cache=tmp_path)
        again = cached_ir("toy", {"k": 1}, toy_build(payload, calls), cache=tmp_path)
    assert (rebuilt.built, again.built, len(calls)) == (True, False, 1)
    assert rebuilt.xml == first.xml and rebuilt.xml.with_suffix(".bin").read_bytes() == payload
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0].getMessage()


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def broken(xml: Path) -> None:
        xml.write_text("<half")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError, match="converter crashed"):
        cached_ir("toy", {"k": 1}, broken, cache=tmp_path)
    assert not [p for p in (tmp_path / "ir").iterdir() if not p.name.endswith(".lock")]
    assert cached_ir("toy", {"k": 1}, toy_build(), cache=tmp_path).built


# --- racing processes ---------------------------------------------------------------------------

RACER = """
import hashlib, json, os, sys, time
from pathlib import Path
from models import model_cache

cache, flock = Path(sys.argv[1]), sys.argv[2] == "flock"
if not flock:
    model_cache.fcntl = None  # as on a system without flock: only the atomic rename protects

def build(xml):
    xml.write_text("<net/>")
    time.sleep(1.5)  # a slow conversion, so that the two builds overlap
    xml.with_suffix(".bin").write_bytes(os.urandom(4096))  # each build differs

result = model_cache.cached_ir("toy", {"k": 1}, build, cache=cache)
data = result.xml.read_bytes() + result.xml.with_suffix(".bin").read_bytes()
print(json.dumps({"xml": str(result.xml), "built": result.built,
                  "sha": hashlib.sha256(data).hexdigest()}))
"""


@pytest.mark.parametrize("locking", ["flock", "rename only"])
def test_two_processes_building_at_once_both_succeed_and_agree(tmp_path, locking):
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), locking], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outcomes.append(json.loads(out))
    assert outcomes[0]["xml"] == outcomes[1]["xml"]
    assert outcomes[0]["sha"] == outcomes[1]["sha"]
    if locking == "flock":  # the second waited for the first rather than building again
        assert sorted(o["built"] for o in outcomes) == [False, True]
    entry = Path(outcomes[0]["xml"]).parent
    assert model_cache._problem(entry, json.loads((entry / "manifest.json").read_text())["key"]) is None
    assert [p.name for p in entry.parent.iterdir() if p.name.startswith(".")] == []


def test_threads_of_one_process_build_once(tmp_path):
    calls, results = [], []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        results.append(cached_ir("toy", {"k": 1}, toy_build(calls=calls), cache=tmp_path))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({r.xml for r in results}) == 1


# --- an unwritable cache ------------------------------------------------------------------------

def test_an_unwritable_cache_builds_for_this_process_and_warns_once(tmp_path, caplog):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")  # unwritable even for root
    calls = []
    with caplog.at_level(logging.WARNING, logger="models.model_cache"):
        first = cached_ir("toy", {"k": 1}, toy_build(calls=calls), cache=blocked)
        second = cached_ir("toy", {"k": 2}, toy_build(calls=calls), cache=blocked)
        blobs = model_cache.compiled_cache_dir("openvino", "1.0", cache=blocked)
    assert (first.cached, second.cached, blobs) == (False, False, None)
    assert first.xml.is_file() and first.xml.with_suffix(".bin").is_file() and len(calls) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot be written" in warnings[0]
    assert str(blocked) in model_cache.cache_problem()


def test_the_summary_and_the_engine_line_record_a_run_without_the_cache(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=3, size=(64, 48))
    summary = tmp_path / "summary.json"
    code = run_stream.main([str(clip), "-o", str(tmp_path / "out"), "--backend",
                            f"{__name__}:OffCacheBackend", "--resolution", "64x48",
                            "--summary-json", str(summary)])
    out, err = capsys.readouterr()
    assert code == 0, err
    engine = json.loads(summary.read_text())["engine"]
    assert (engine["model_cache"], engine["precision"], engine["requested_precision"]) == \
        ("off", "f32", "f32")
    assert "model cache off" in out


def test_a_fallback_is_said_once(caplog):
    with caplog.at_level(logging.WARNING, logger="models.backend"):
        for _ in range(3):
            backend_module.warn_once("auto f32", "--precision auto: no bf16 here; f32 runs")
    assert [r.getMessage() for r in caplog.records] == ["--precision auto: no bf16 here; f32 runs"]


# --- the graph's digest -------------------------------------------------------------------------

def test_the_graph_digest_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    graph = tmp_path / "graph.pb"
    graph.write_bytes(b"first")
    hashed = []
    real = fetch.sha256_of
    monkeypatch.setattr(fetch, "sha256_of", lambda p: hashed.append(p) or real(p))
    cache = tmp_path / "cache"
    assert fetch.file_sha256(graph, cache) == hashlib.sha256(b"first").hexdigest()
    assert fetch.file_sha256(graph, cache) == hashlib.sha256(b"first").hexdigest()
    assert len(hashed) == 1
    graph.write_bytes(b"other")
    assert fetch.file_sha256(graph, cache) == hashlib.sha256(b"other").hexdigest()
    assert len(hashed) == 2


# --- the real model (OpenVINO) ------------------------------------------------------------------

@pytest.fixture
def real_graph(tmp_path):
    """The default graph (fetched once into the user cache), copied into a fresh cache."""
    from models.registry import DEFAULT_MODEL, get_model

    spec = get_model(DEFAULT_MODEL)
    cache = tmp_path / "cache"
    dest = fetch.model_path(spec, cache)
    dest.parent.mkdir(parents=True)
    shutil.copy(fetch.fetch_model(spec), dest)
    return spec, cache, dest


@pytest.mark.slow
@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO not installed")
def test_a_warm_start_loads_the_ir_and_never_reads_the_tf_graph(real_graph, monkeypatch):
    from models import openvino_backend as ovb
    from models.backend import BackendConfig, load_backend

    spec, cache, graph = real_graph
    monkeypatch.setenv("POSESTREAM_CACHE", str(cache))
    reads = []
    real_save = ovb._save_ir
    monkeypatch.setattr(ovb, "_save_ir", lambda *a: reads.append(a[0]) or real_save(*a))
    config = BackendConfig(backend="openvino", graph=graph, model=spec, threads=1,
                           resolution=(64, 48))
    frame = np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)

    def start():  # as a new process does: nothing converted in memory yet
        ovb._converted.cache_clear()
        copy = load_backend(config)
        return copy, copy.infer(frame)

    cold, cold_maps = start()
    warm, warm_maps = start()
    assert (cold.cache, warm.cache, len(reads)) == ("built", "hit", 1)
    assert np.array_equal(cold_maps, warm_maps)
    blobs = list((cache / "compiled").glob("openvino-*/*/*.blob"))  # a folder per IR and props
    assert blobs
    for blob in blobs:  # a compiled blob cut short: OpenVINO compiles again and rewrites it
        blob.chmod(0o644)
        blob.write_bytes(blob.read_bytes()[:1000])
    _, again_maps = start()
    assert np.array_equal(cold_maps, again_maps) and len(reads) == 1


@pytest.mark.slow
@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO not installed")
def test_the_cli_runs_without_a_writable_cache_and_says_so_once(real_graph, tmp_path):
    _, _, graph = real_graph
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    image = tmp_path / "photo.png"
    import cv2
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "run_stream", str(image), "-o", str(tmp_path / "out"), "--backend",
         "openvino", "--graph", str(graph), "--workers", "2", "--resolution", "64x48",
         "--summary-json", str(summary)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "POSESTREAM_CACHE": str(blocked)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("cannot be written") == 1, proc.stderr
    assert json.loads(summary.read_text())["engine"]["model_cache"] == "off"


def test_a_single_picture_plans_one_copy_on_all_cores(tmp_path, capsys, monkeypatch):
    import cv2

    import stages.jobs.file_job

    planned = []
    real = stages.jobs.file_job.plan_engine
    monkeypatch.setattr(stages.jobs.file_job, "plan_engine",
                        lambda config, **kw: planned.append(kw.get("latency")) or real(config, **kw))
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    clip = make_test_clip(tmp_path / "clip.mp4", frames=3, size=(64, 48))
    for source in (image, clip):
        code = run_stream.main([str(source), "-o", str(tmp_path / "out"), "--backend",
                                "tests.support.fakes:ZeroBackend", "--resolution", "64x48"])
        assert code == 0, capsys.readouterr().err
    assert planned == [True, False]


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO not installed")
def test_importing_openvino_leaves_its_converter_out_until_asked_for():
    code = ("import sys\n"
            "from models.offline import import_openvino\n"
            "ov = import_openvino()\n"
            "print('openvino.tools.ovc' in sys.modules, hasattr(ov, 'Core'))\n"
            "import openvino.tools.ovc\n"
            "print(callable(openvino.tools.ovc.convert_model))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True", "True"]


def test_a_build_folder_left_by_a_killed_process_is_cleared(tmp_path):
    (tmp_path / "ir").mkdir()
    first = cached_ir("toy", {"k": 1}, toy_build(), cache=tmp_path)
    name = entry_of(first).name
    shutil.rmtree(entry_of(first))
    left = tmp_path / "ir" / f".{name}.build-killed"
    left.mkdir()
    (left / XML).write_text("<half")
    assert cached_ir("toy", {"k": 1}, toy_build(), cache=tmp_path).built
    assert not left.exists()


class _Output:
    @staticmethod
    def get_names():
        return {"Openpose/concat_stage7:0"}


class FakeCompiled:
    """What OpenVINOBackend reads of a compiled model, running in f32 (``weights``: what it runs)."""

    outputs = (_Output(),)

    def __init__(self, weights: bytes = b"") -> None:
        self.weights = weights

    class _Value:
        def __init__(self, text):
            self.text = text

        def to_string(self):
            return self.text

    def get_property(self, name):
        return self._Value("f32") if name == "INFERENCE_PRECISION_HINT" else False

    def output(self, name):
        return name

    def create_infer_request(self):
        return None


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO not installed")
def test_auto_without_a_fixed_size_says_once_that_f32_runs(tmp_path, monkeypatch, caplog):
    from models import openvino_backend as ovb
    from models.backend import BackendConfig
    from models.registry import get_model

    monkeypatch.setattr(ovb, "_compile", lambda config: (FakeCompiled(), "out", "hit"))
    config = BackendConfig(backend="openvino", graph=tmp_path / "g.pb", model=get_model("cmu"),
                           precision="auto")
    with caplog.at_level(logging.WARNING):
        copies = [ovb.OpenVINOBackend(config) for _ in range(2)]
    assert [c.precision for c in copies] == ["f32", "f32"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["--precision auto: f32, since int8 needs a fixed network size (a resolution)"]


# --- the engine's compiled blobs ----------------------------------------------------------------

BLOB = "5831859860882683959.blob"


def toy_engine(folder: Path, weights: bytes) -> bytes:
    """As OpenVINO's CACHE_DIR: the blob's bytes when it is there (unchecked), else write it."""
    blob = folder / BLOB
    if blob.exists():
        return blob.read_bytes()
    blob.write_bytes(weights)
    blob.chmod(0o440)  # OpenVINO writes its blobs read-only
    return weights


def _overwrite_middle(blob: Path) -> None:  # same size, other bytes
    data = bytearray(blob.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))


def _cut_short(blob: Path) -> None:
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:100])


def _forget_record(blob: Path) -> None:  # as a process killed between the write and the record
    (blob.parent / model_cache.ENGINE_RECORD).unlink()


def _garbage_record(blob: Path) -> None:
    (blob.parent / model_cache.ENGINE_RECORD).write_text("{not json")


@pytest.mark.parametrize("damage", [_overwrite_middle, _cut_short, _forget_record, _garbage_record])
def test_a_damaged_compiled_blob_is_made_again_with_one_warning_never_used(tmp_path, caplog, damage):
    weights = bytes(range(256)) * 64
    folder = model_cache.compiled_cache_dir("toy", "1.0", cache=tmp_path, entry="net-64x48")
    with model_cache.verified_files(folder) as first:
        assert toy_engine(folder, weights) == weights
    assert (first.removed, first.written) == ([], [BLOB])
    damage(folder / BLOB)
    with caplog.at_level(logging.WARNING, logger="models.model_cache"):
        with model_cache.verified_files(folder) as again:
            read = toy_engine(folder, weights)
        with model_cache.verified_files(folder) as third:
            assert toy_engine(folder, weights) == weights
    assert read == weights
    assert (again.removed, again.written, third.removed, third.written) == ([BLOB], [BLOB], [], [])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0] and str(folder / BLOB) in warnings[0]


def test_a_blob_no_record_vouches_for_is_removed_before_the_engine_reads_it(tmp_path, caplog):
    folder = model_cache.compiled_cache_dir("toy", "1.0", cache=tmp_path, entry="net")
    (folder / BLOB).write_bytes(b"left by someone else")
    with caplog.at_level(logging.WARNING, logger="models.model_cache"):
        with model_cache.verified_files(folder) as files:
            assert toy_engine(folder, b"real weights") == b"real weights"
    assert files.removed == [BLOB]
    assert [r.getMessage() for r in caplog.records if "no record" in r.getMessage()]


class FakeCore:
    """An OpenVINO core whose CACHE_DIR, like OpenVINO's, serves a blob without checking it."""

    def __init__(self, weights: bytes) -> None:
        self.weights = weights

    def compile_model(self, xml, device, props):
        folder = Path(props["CACHE_DIR"]) if "CACHE_DIR" in props else None
        return FakeCompiled(toy_engine(folder, self.weights) if folder else self.weights)


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO not installed")
@pytest.mark.parametrize("damage", [_overwrite_middle, _cut_short])
def test_the_openvino_backend_never_runs_a_damaged_blob(tmp_path, monkeypatch, caplog, damage):
    from models import openvino_backend as ovb
    from models.backend import BackendConfig
    from models.registry import get_model

    cache = tmp_path / "cache"
    monkeypatch.setenv("POSESTREAM_CACHE", str(cache))
    weights = bytes(range(256)) * 64
    monkeypatch.setattr(ovb, "_core", lambda: FakeCore(weights))
    monkeypatch.setattr(ovb, "_converted", lambda *a: cached_ir("toy", {"k": 1}, toy_build()))
    graph = tmp_path / "g.pb"
    graph.write_bytes(b"graph")
    config = BackendConfig(backend="openvino", graph=graph, model=get_model("cmu"), threads=1,
                           resolution=(64, 48))

    def start():  # what each model copy does as it starts
        compiled, _, state = ovb._compile(config)
        return state, compiled.weights

    assert start() == ("built", weights)
    assert start() == ("hit", weights)
    blobs = list((cache / "compiled").rglob("*.blob"))
    assert len(blobs) == 1
    damage(blobs[0])
    with caplog.at_level(logging.WARNING):
        state, used = start()
        again, used_again = start()
    assert used == used_again == weights
    assert (state, again) == ("built", "hit")  # the damaged blob was compiled again, then served
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0] and blobs[0].name in warnings[0]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO not installed")
def test_a_blob_overwritten_in_the_middle_is_compiled_again_not_run(real_graph, monkeypatch,
                                                                     caplog):
    from models import openvino_backend as ovb
    from models.backend import BackendConfig, load_backend

    spec, cache, graph = real_graph
    monkeypatch.setenv("POSESTREAM_CACHE", str(cache))
    config = BackendConfig(backend="openvino", graph=graph, model=spec, threads=1,
                           resolution=(64, 48))
    frame = np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)

    def start():
        ovb._converted.cache_clear()
        copy = load_backend(config)
        return copy.cache, copy.infer(frame)

    clean_state, clean = start()
    blobs = list((cache / "compiled").rglob("*.blob"))
    assert clean_state == "built" and len(blobs) == 1
    _overwrite_middle(blobs[0])
    with caplog.at_level(logging.WARNING):
        state, maps = start()
    assert state == "built" and np.array_equal(maps, clean)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0] and blobs[0].name in warnings[0]
    again_state, again = start()
    assert again_state == "hit" and np.array_equal(again, clean)
