"""ReadTally: the rules that tell a cut file from a damaged one."""

from fractions import Fraction

from stages.sources._read_tally import ReadTally

TB = Fraction(1, 1000)


def tally(**kwargs) -> ReadTally:
    return ReadTally(file_size=1000, time_base=TB, rate=Fraction(25), **kwargs)


def test_a_clean_file_loses_nothing_even_with_fewer_frames_out():
    t = tally(declared_frames=3)
    for i in range(3):
        t.read(i * 40, 40, 100 + i * 10, 10)
    assert t.lost(2) == 0  # no rejected packet, no repaired frame: not damage
    assert not t.short_of_declared_count() and not t.cut_inside()


def test_a_rejected_last_packet_at_the_end_of_the_file_is_the_cut():
    t = tally(declared_frames=10)
    t.read(0, 40, 900, 50)
    t.read(40, 40, 950, 50)  # reaches byte 1000: the end of the file
    t.reject()
    assert t.settle_cut() and (t.packets, t.rejected) == (1, 0)
    assert t.short_of_declared_count()


def test_a_rejected_packet_inside_the_file_is_damage():
    t = tally(declared_frames=3)
    for i in range(3):
        t.read(i * 40, 40, 100 + i * 10, 10)
        if i == 1:
            t.reject()
    assert not t.settle_cut()
    assert t.lost(2) == 1 and t.rejected == 1


def test_matroska_ending_before_its_declared_duration_is_cut():
    t = tally(declared_end=4.0)
    t.read(0, 40, 0, 10)
    t.read(2000, 40, 10, 10)
    assert t.ended_early() and t.read_until == 2.04
    t.read(3960, 40, 20, 10)
    assert not t.ended_early()


def test_a_damaged_timestamp_past_the_declared_end_is_not_believed():
    t = tally(declared_end=4.0)
    t.read(1000, 40, 0, 10)
    t.read(987_654, 40, 10, 10)  # garbage pts from a damaged block
    assert t.read_until == 1.04 and t.ended_early()


def test_a_file_with_a_frame_count_is_judged_by_the_count_not_the_duration():
    t = tally(declared_frames=2, declared_end=4.0)
    t.read(0, 40, 0, 10)
    t.read(40, 40, 10, 10)
    assert not t.ended_early() and not t.short_of_declared_count()
