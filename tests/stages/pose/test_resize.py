import numpy as np
import pytest

from stages.errors import InputError
from stages.frames import Frame
from stages.pose.resize import NetInput, Resizer, parse_resolution


@pytest.mark.parametrize("text, expected", [("432x368", (432, 368)), ("656X368", (656, 368)),
                                             (" 8x8 ", (8, 8))])
def test_parse_resolution_accepts_multiples_of_8(text, expected):
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("430x368", "multiples of 8"), ("0x368", "positive"), ("432x0", "positive"),
    ("garbage", "WIDTHxHEIGHT"), ("432", "WIDTHxHEIGHT"), ("-8x8", "WIDTHxHEIGHT"), ("", "WIDTHxHEIGHT"),
])
def test_parse_resolution_names_the_input_and_the_problem(text, reason):
    with pytest.raises(InputError) as err:
        parse_resolution(text)
    msg = str(err.value)
    assert repr(text) in msg and reason in msg and "\n" not in msg


def _frame(w, h):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = 255
    return Frame(source="t", index=0, pts=0.0, image=img)


def test_resizer_stretches_to_network_size_and_keeps_the_frame():
    frame = _frame(1280, 720)
    out = Resizer((432, 368))(frame)
    assert isinstance(out, NetInput) and out.frame is frame
    assert out.tensor.shape == (368, 432, 3) and out.tensor.dtype == np.uint8
    assert out.tensor[:, :200].min() == 255 and out.tensor[:, 232:].max() == 0


def test_resizer_passes_a_frame_of_the_right_size_through():
    frame = _frame(432, 368)
    assert Resizer((432, 368))(frame).tensor is frame.image
