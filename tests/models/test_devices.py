import pytest

import models.devices as devices
from models.devices import parse_indices, plan_devices
from stages.errors import InputError


@pytest.mark.parametrize("text, expected", [("0", [0]), ("0,2", [0, 2]), ("0-3", [0, 1, 2, 3]),
                                            ("0-1,4", [0, 1, 4]), (" 3 ", [3])])
def test_parse_indices(text, expected):
    assert parse_indices(text, "--device x") == expected


@pytest.mark.parametrize("text, reason", [("a", "not a list"), ("3-1", "backwards"), ("1,1", "twice"),
                                          ("0-2,2", "twice"), ("", "not a list"), ("-1", "not a list")])
def test_parse_indices_errors_are_one_line(text, reason):
    with pytest.raises(InputError, match=reason) as err:
        parse_indices(text, "--device gpu:" + text)
    assert "\n" not in str(err.value)


def test_cpu_gets_one_slot_per_worker_and_the_named_backend():
    plan = plan_devices("cpu", workers=3, backend="tf")
    assert (plan.kind, plan.slots, plan.backend, plan.workers) == ("cpu", ("cpu",) * 3, "tf", 3)


def test_cpu_auto_backend_is_openvino_when_installed(monkeypatch):
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: object())
    assert plan_devices("cpu").backend == "openvino"
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: None)
    assert plan_devices("cpu").backend == "tf"


def test_chosen_cpu_workers_are_one_per_core_for_throughput_and_one_for_latency(monkeypatch):
    monkeypatch.setattr(devices, "usable_cores", lambda: 6)
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: object())  # OpenVINO present
    assert plan_devices("cpu", workers=0).slots == ("cpu",) * 6
    assert plan_devices("cpu", workers=0, latency=True).slots == ("cpu",)
    assert plan_devices("cpu", workers=2).slots == ("cpu",) * 2  # asked for: kept
    # TensorFlow's thread pool is per process: copies would only fight over it
    assert plan_devices("cpu", workers=0, backend="tf").slots == ("cpu",)
    assert plan_devices("cpu", workers=0, backend="tests.support.fakes:ZeroBackend").slots == ("cpu",)
    monkeypatch.setattr(devices, "usable_cores", lambda: 64)  # more cores: more threads per copy
    assert plan_devices("cpu", workers=0).workers == devices.MAX_CHOSEN_CPU_WORKERS


def test_usable_cores_follows_the_affinity_mask():
    assert devices.usable_cores() == len(__import__("os").sched_getaffinity(0))


def test_gpus_get_one_worker_each(monkeypatch):
    monkeypatch.setattr(devices, "_visible_gpus", lambda: 4)
    assert plan_devices("gpu").slots == ("gpu:0", "gpu:1", "gpu:2", "gpu:3")
    assert plan_devices("gpu:1,3", workers=7).slots == ("gpu:1", "gpu:3")
    assert plan_devices("gpu:0").backend == "tf"


def test_missing_gpus_are_a_clear_error(monkeypatch):
    monkeypatch.setattr(devices, "_visible_gpus", lambda: 1)
    with pytest.raises(InputError, match="sees 1 GPU"):
        plan_devices("gpu:1")
    monkeypatch.setattr(devices, "_visible_gpus", lambda: 0)
    with pytest.raises(InputError, match="sees 0 GPU"):
        plan_devices("gpu")


def test_gpu_cannot_run_a_cpu_only_backend(monkeypatch):
    monkeypatch.setattr(devices, "_visible_gpus", lambda: 1)
    with pytest.raises(InputError, match="'tf'"):
        plan_devices("gpu", backend="openvino")


@pytest.mark.parametrize("device", ["tpu", "cpu:0", "gpu:x", ""])
def test_unknown_devices_are_refused(monkeypatch, device):
    monkeypatch.setattr(devices, "_visible_gpus", lambda: 1)
    with pytest.raises(InputError, match="--device"):
        plan_devices(device)


def test_auto_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(devices, "_visible_gpus", lambda: 0)
    monkeypatch.setattr(devices, "_best_kind", lambda: "cpu")
    assert plan_devices("auto", workers=2).slots == ("cpu", "cpu")
