"""End to end on the real model (mobilenet_thin, fetched by the set-up): slow."""

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import skimage.data

import run_stream
from stages.frames import PART_NAMES
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_sample_clip

pytestmark = pytest.mark.slow
P = {name: i for i, name in enumerate(PART_NAMES)}


def _stream_facts(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = [float(f.pts * f.time_base) for f in c.decode(s)]
        return pts, s.average_rate


def test_clip_with_people_through_two_workers(tmp_path, capsys):
    clip = make_sample_clip(tmp_path / "people.mp4", seconds=1.0, fps=Fraction(25), size=(640, 360))
    code = run_stream.main([str(clip), "-o", str(tmp_path / "out"), "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    in_pts, in_rate = _stream_facts(clip)
    out_pts, out_rate = _stream_facts(tmp_path / "out" / "people.mp4")
    assert len(in_pts) == 25 and out_pts == pytest.approx(in_pts, abs=1e-9) and out_rate == in_rate
    records = read_keypoint_log(tmp_path / "out" / "people.jsonl")
    assert [r["frame"] for r in records] == list(range(25))
    assert [r["pts"] for r in records] == pytest.approx(in_pts, abs=1e-6)
    two_people = sum(len(r["people"]) >= 2 for r in records)
    assert two_people >= 0.9 * len(records), f"two people found in only {two_people} frames"
    for r in records:
        for person in r["people"]:
            kp = np.array(person["keypoints"])
            assert kp.shape == (18, 3)
            found = kp[:, 2] > 0
            assert (kp[found, 0] >= 0).all() and (kp[found, 0] <= 640).all()
            assert (kp[found, 1] >= 0).all() and (kp[found, 1] <= 360).all()
            assert (kp[~found] == 0).all()


def test_astronaut_face_and_shoulders_are_where_they_belong(tmp_path, capsys):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    code = run_stream.main([str(photo), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    [record] = read_keypoint_log(tmp_path / "out" / "astronaut.jsonl")
    [person] = record["people"]
    kp = {name: person["keypoints"][i] for name, i in P.items()}
    for part in ("nose", "r_eye", "l_eye", "r_shoulder", "l_shoulder"):
        assert kp[part][2] > 0.1, f"{part} not found"
    nose, r_eye, l_eye = kp["nose"], kp["r_eye"], kp["l_eye"]
    # the face of the 512x512 photo spans about x 170..290, y 60..170
    assert 190 < nose[0] < 260 and 90 < nose[1] < 160
    assert r_eye[0] < nose[0] < l_eye[0]  # she faces the camera: her right is image left
    assert max(r_eye[1], l_eye[1]) < nose[1] and abs(r_eye[1] - l_eye[1]) < 20
    assert kp["r_shoulder"][0] < nose[0] < kp["l_shoulder"][0]
    assert min(kp["r_shoulder"][1], kp["l_shoulder"][1]) > nose[1] + 40
