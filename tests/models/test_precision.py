"""models.precision: what each precision costs, what auto picks, and the docs' copy of the figures."""

from __future__ import annotations

from pathlib import Path

import pytest

import run_stream
from models import precision
from models.devices import DevicePlan
from stages.errors import InputError
from stages.jobs import engine

PERFORMANCE = Path(__file__).resolve().parents[2] / "docs" / "performance.md"
START = "<!-- precision-trade: made by models.precision.markdown_table(); a test keeps it equal -->\n"
END = "\n<!-- end precision-trade -->"
AVX2 = frozenset({"sse4_2", "avx2", "fma"})
AMX = AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}


def test_the_docs_table_is_the_table():
    text = PERFORMANCE.read_text(encoding="utf-8")
    assert text[text.index(START) + len(START):text.index(END)] == precision.markdown_table()


def test_the_table_has_a_row_per_precision_and_the_gate_verdicts():
    rows = precision.markdown_table().splitlines()[2:]
    verdicts = {row.split(" | ")[0].strip("| `"): row.rsplit(" | ", 1)[1].strip(" |") for row in rows}
    assert verdicts == {"f32": "yes", "int8": "yes", "bf16": "no", "tf32": "no"}


@pytest.mark.parametrize("flags", [AVX2, AMX], ids=["avx2", "amx"])
def test_auto_on_openvino_picks_int8_and_says_why(flags):
    chosen, why = precision.choose("auto", "openvino", "cpu", flags)
    assert chosen == "int8"
    assert why.startswith("--precision auto: int8, the fastest precision that passes the accuracy gate")
    assert "--precision f32 keeps TensorFlow's numbers" in why


def test_auto_on_a_cpu_without_avx2_stays_f32_and_says_why():
    chosen, why = precision.choose("auto", "openvino", "cpu", frozenset({"sse4_2"}))
    assert chosen == "f32" and "no AVX2" in why


@pytest.mark.parametrize("backend, kind", [("tf", "cpu"), ("tf", "gpu"), ("neuron", "neuron")])
def test_auto_elsewhere_is_left_to_the_backend(backend, kind):
    assert precision.choose("auto", backend, kind, AVX2) == ("auto", "")


@pytest.mark.parametrize("requested", ["f32", "int8", "bf16"])
def test_an_explicit_precision_is_kept(requested):
    assert precision.choose(requested, "openvino", "cpu", AMX) == (requested, "")


def test_bf16_arithmetic_is_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 avx512_bf16\n")
    assert precision.cpu_flags(cpuinfo) >= {"avx2", "avx512_bf16"}
    assert precision.has_bf16(precision.cpu_flags(cpuinfo))
    assert not precision.has_bf16(AVX2) and precision.has_bf16(AMX)
    assert precision.cpu_flags(tmp_path / "absent") == frozenset()


def test_bf16_on_a_cpu_without_it_is_refused_before_a_model_loads(monkeypatch):
    monkeypatch.setattr(engine, "has_bf16", lambda: False)
    plan = DevicePlan(kind="cpu", slots=("cpu",), backend="openvino")
    with pytest.raises(InputError, match=r"--precision bf16: this CPU has no bf16 arithmetic \(AMX or AVX512_BF16\)"):
        engine.check_precision("bf16", plan)
    monkeypatch.setattr(engine, "has_bf16", lambda: True)
    engine.check_precision("bf16", plan)  # taken
    with pytest.raises(InputError, match="--precision bf16 runs on the OpenVINO backend only, not tf"):
        engine.check_precision("bf16", DevicePlan(kind="gpu", slots=("gpu:0",), backend="tf"))


def test_help_states_each_precisions_cost():
    text = " ".join(run_stream.build_parser().format_help().split())
    for words in ("int8 (OpenVINO, CPU; built once per machine)", precision.TRADES["int8"].agreement,
                  "3-4% fewer skeletons, so it fails the accuracy gate", "auto: the fastest that passes the gate"):
        assert " ".join(words.split()) in text
