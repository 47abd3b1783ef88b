"""Rotated phone videos and EXIF-oriented photos are processed as displayed."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from stages.sources.video import ImageFileSource, VideoFileSource, open_source
from stages.jobs.file_job import FileJob
from stages.settings import JobConfig
from stages.sources.orientation import UnsupportedOrientation, from_matrix

FAKE = JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), workers=1)
CODED = (64, 48)  # width, height as coded
DISPLAYMATRIX = av.sidedata.sidedata.Type.DISPLAYMATRIX


def marked_picture() -> np.ndarray:
    """A dark coded picture with a white block in its top-left corner."""
    image = np.full((CODED[1], CODED[0], 3), 16, np.uint8)
    image[:12, :16] = 235
    return image


def rotated_clip(path, degrees: float, *, hflip: bool = False, frames: int = 4):
    """An H.264 mp4 of ``marked_picture`` whose display matrix (the track's
    ``tkhd`` matrix, where phones write it) turns it ``degrees`` counter-clockwise."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = CODED
        stream.pix_fmt = "yuv420p"
        if degrees or hflip:
            stream.set_display_rotation(degrees, hflip=hflip)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(marked_picture(), format="bgr24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def marker_corner(image: np.ndarray) -> str:
    """Which quadrant of ``image`` holds the white block."""
    h, w = image.shape[:2]
    quadrants = {("top" if y == 0 else "bottom") + "-" + ("left" if x == 0 else "right"):
                 image[y * h // 2:(y + 1) * h // 2, x * w // 2:(x + 1) * w // 2].mean()
                 for y in (0, 1) for x in (0, 1)}
    return max(quadrants, key=quadrants.get)


# What a viewer sees: the coded top-left corner after the display turn.
CASES = [
    pytest.param(0, False, "top-left", (64, 48), 0, id="upright"),
    pytest.param(90, False, "bottom-left", (48, 64), 90, id="ccw90"),
    pytest.param(180, False, "bottom-right", (64, 48), 180, id="180"),
    pytest.param(-90, False, "top-right", (48, 64), 270, id="phone-rotate90-cw"),
    pytest.param(0, True, "top-right", (64, 48), 0, id="mirrored"),
]


@pytest.mark.parametrize("degrees, hflip, corner, size, rotation", CASES)
def test_video_frames_come_out_as_displayed(tmp_path, degrees, hflip, corner, size, rotation):
    clip = rotated_clip(tmp_path / "phone.mp4", degrees, hflip=hflip)
    with VideoFileSource(clip) as source:
        frames = list(source)
    assert (source.info.width, source.info.height, source.info.rotation) == (*size, rotation)
    assert len(frames) == 4
    for frame in frames:
        assert frame.size == size
        assert marker_corner(frame.image) == corner


def test_file_job_runs_and_writes_the_displayed_picture_upright(tmp_path):
    clip = rotated_clip(tmp_path / "phone.mp4", -90)
    seen, started = [], []
    summary = FileJob(clip, tmp_path / "out", FAKE).run(on_result=seen.append,
                                                         on_start=started.append)
    assert summary.frames_written == 4
    assert (started[0].width, started[0].height) == (48, 64)
    # what went to the network (and what keypoints are measured in) is the displayed picture
    assert {r.frame.size for r in seen} == {(48, 64)}
    assert {marker_corner(r.frame.image) for r in seen} == {"top-right"}
    with av.open(str(tmp_path / "out" / "phone.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (48, 64)
        written = list(container.decode(stream))
    assert len(written) == 4
    for frame in written:  # upright pixels, and no display matrix to turn them again
        assert frame.rotation == 0 and not frame.side_data.get(DISPLAYMATRIX)
        assert marker_corner(frame.to_ndarray(format="bgr24")) == "top-right"


def test_a_matrix_that_is_not_a_right_angle_is_reported():
    quarter = 46341  # cos(45 degrees) in 16.16 fixed point
    with pytest.raises(UnsupportedOrientation):
        from_matrix([quarter, quarter, 0, -quarter, quarter, 0, 0, 0, 1 << 30])


@pytest.mark.parametrize("exif, corner, size", [
    (1, "top-left", (64, 48)),
    (3, "bottom-right", (64, 48)),
    (6, "top-right", (48, 64)),    # rotate 90 degrees clockwise to display
    (8, "bottom-left", (48, 64)),  # rotate 90 degrees counter-clockwise
])
def test_photo_exif_orientation_is_honoured(tmp_path, exif, corner, size):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "photo.jpg"
    tags = pil.Exif()
    tags[0x0112] = exif  # Orientation
    rgb = marked_picture()[:, :, ::-1]
    buffer = io.BytesIO()
    pil.fromarray(np.ascontiguousarray(rgb)).save(buffer, "JPEG", exif=tags.tobytes())
    path.write_bytes(buffer.getvalue())
    with open_source(path) as source:
        assert isinstance(source, ImageFileSource)
        (frame,) = source
    assert (source.info.width, source.info.height) == size == frame.size
    assert marker_corner(frame.image) == corner


@pytest.mark.slow
def test_real_model_finds_the_face_of_a_sideways_coded_phone_video(tmp_path, capsys):
    import cv2
    import skimage.data

    import run_stream
    from stages.frames import PART_NAMES
    from stages.outputs.keypoint_log import read_keypoint_log

    upright = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    coded = np.ascontiguousarray(np.rot90(upright, -1))  # the sensor's picture: turned clockwise
    clip = tmp_path / "phone.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 512, 512
        stream.pix_fmt = "yuv420p"
        stream.set_display_rotation(90)  # a player turns it back counter-clockwise
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(coded, format="bgr24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert run_stream.main([str(clip), "-o", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    for record in read_keypoint_log(tmp_path / "out" / "phone.jsonl"):
        [person] = record["people"]
        kp = {name: person["keypoints"][i] for i, name in enumerate(PART_NAMES)}
        nose, r_eye, l_eye = kp["nose"], kp["r_eye"], kp["l_eye"]
        # where the face of the upright 512x512 photo is (see test_end_to_end)
        assert 190 < nose[0] < 260 and 90 < nose[1] < 160
        assert r_eye[0] < nose[0] < l_eye[0] and max(r_eye[1], l_eye[1]) < nose[1]
