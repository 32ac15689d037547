"""EXIF reading and exposure conventions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hdrcli.errors import HdrError
from hdrcli.exposure import (
    exif_exposures,
    make_bracket,
    parse_list,
    read_exposure_file,
    seconds_from_ev,
)
from hdrcli.io import read_exif, read_frames
from hdrcli.io.exif import ExifInfo
from hdrcli.io.frames import Frame
from tests.conftest import shared_path


def test_frobisher_exif_exact(frobisher):
    infos = [read_exif(p) for p in frobisher]
    assert [i.exposure_time for i in infos] == [1 / 8, 1.0, 8.0]
    assert [i.f_number for i in infos] == [8.0, 8.0, 8.0]
    assert [i.iso for i in infos] == [100.0, 100.0, 100.0]
    assert all(i.camera == "Canon EOS 5D Mark II" for i in infos)
    exposures = exif_exposures(read_frames(frobisher))
    assert exposures == [1 / 8 / 64, 1 / 64, 8 / 64]  # t * ISO/100 / N^2, exactly


def test_iphone_exif_and_subseconds():
    paths = sorted(shared_path("brackets", "iphone_handheld").glob("*.jpeg"))
    infos = [read_exif(p) for p in paths]
    assert [round(1 / i.exposure_time) for i in infos] == [59, 15, 4]
    assert infos[0].f_number == pytest.approx(1.8) and infos[0].iso == 1000
    assert infos[0].datetime_original.microsecond == 752000
    assert infos[0].orientation == 8  # stored landscape, displayed portrait


def test_example_exif(example_bracket):
    times = sorted(read_exif(p).exposure_time for p in example_bracket)
    assert times == pytest.approx([1 / 200, 1 / 50, 1 / 12.5])


def test_raw_exif():
    info = read_exif(shared_path("raw", "RAW_KODAK_DC50.KDC"))
    assert info.exposure_time == pytest.approx(87 / 20000)
    assert info.f_number == pytest.approx(6.2)


def _frame(name: str, t=None, iso=None, n=None) -> Frame:
    return Frame(Path(name), np.zeros((4, 4, 3), np.float32), 8, False, ExifInfo(exposure_time=t, iso=iso, f_number=n))


def test_missing_iso_and_fnumber_defaults(caplog):
    frames = [_frame("a.jpg", 1 / 60, 200, None), _frame("b.jpg", 1 / 15, None, None)]
    with caplog.at_level("WARNING", logger="hdrcli"):
        exposures = exif_exposures(frames)
    # ISO from the other frame (200), f-number from the default f/8.
    assert exposures == pytest.approx([1 / 60 * 2 / 64, 1 / 15 * 2 / 64])
    text = caplog.text
    assert "ISO 200" in text and "b.jpg" in text and "f-number 8" in text


def test_missing_exposure_time_is_an_error():
    with pytest.raises(HdrError, match="no exposure time"):
        exif_exposures([_frame("a.png"), _frame("b.png")])


def test_frames_sorted_by_exposure_not_name():
    frames = [_frame("a.jpg"), _frame("b.jpg"), _frame("c.jpg")]
    bracket = make_bracket(frames, [4.0, 1.0, 16.0])
    assert [f.name for f in bracket.frames] == ["b.jpg", "a.jpg", "c.jpg"]
    assert bracket.reference == 1 and bracket.relative_exposures == [1.0, 4.0, 16.0]
    assert bracket.stops == [0.0, 2.0, 4.0]
    assert make_bracket(frames, [4.0, 1.0, 16.0], reference="c.jpg").reference == 2
    assert make_bracket(frames, [4.0, 1.0, 16.0], reference=0).reference == 0
    with pytest.raises(HdrError, match="out of range"):
        make_bracket(frames, [4.0, 1.0, 16.0], reference=3)


def test_same_exposure_rejected():
    with pytest.raises(HdrError, match="same exposure"):
        make_bracket([_frame("a.jpg", 1 / 8), _frame("b.jpg", 1 / 8)], [1.0, 1.0])


def test_parse_lists():
    assert parse_list("1/60,1/15, 1/4", "t") == pytest.approx([1 / 60, 1 / 15, 0.25])
    assert seconds_from_ev(parse_list("-2,0,2", "ev")) == [0.25, 1.0, 4.0]
    with pytest.raises(HdrError):
        parse_list("1/0", "t")


def test_exposure_file_formats(tmp_path):
    names = ["a.jpg", "b.jpg", "c.jpg"]
    seconds = tmp_path / "times.txt"
    seconds.write_text("1/60\n1/15  # comment\n0.25\n")
    assert read_exposure_file(seconds, names) == pytest.approx([1 / 60, 1 / 15, 0.25])
    kalantari = tmp_path / "exposure.txt"
    kalantari.write_text("0\n2\n4\n")
    assert read_exposure_file(kalantari, names) == [1.0, 4.0, 16.0]  # EV stops, not seconds
    opencv = tmp_path / "list.txt"
    opencv.write_text("c.jpg 0.25\na.jpg 4\nb.jpg 1\n")
    assert read_exposure_file(opencv, names) == [0.25, 1.0, 4.0]  # second column is 1/t
    with pytest.raises(HdrError, match="no exposure listed"):
        read_exposure_file(opencv, names + ["d.jpg"])


def test_memorial_opencv_list():
    folder = shared_path("brackets", "memorial")
    names = [f"memorial{i:02d}.png" for i in range(16)]
    times = read_exposure_file(folder / "memorial.txt", names)
    assert times[0] == 32.0 and times[-1] == 1 / 1024
    assert all(math.isclose(a / b, 2.0) for a, b in zip(times, times[1:]))


def test_shutter_speeds_with_decimal_denominators_are_read():
    from hdrcli.errors import HdrError
    from hdrcli.exposure import parse_number

    assert parse_number("1/12.5") == 0.08 and parse_number("1/60") == 1 / 60
    for bad in ("1/2/3", "1/0", "/3"):
        with pytest.raises(HdrError):
            parse_number(bad)


def _photographed(radiance: np.ndarray, times: list[float]) -> list[Frame]:
    return [Frame(Path(f"t{t:g}.png"), (np.clip(radiance * t, 0, 1) ** (1 / 2.2)).astype(np.float32), 8, False)
            for t in times]


def test_exposures_that_contradict_the_frames_are_refused():
    from hdrcli.exposure import check_brightness_order, darker_share
    from tests.conftest import radiance_scene

    radiance = radiance_scene(120, 160, stops=10.0)
    frames = _photographed(radiance, [0.25, 1.0, 4.0])
    check_brightness_order(make_bracket(frames, [0.25, 1.0, 4.0]), "--exposures")  # as shot: accepted
    assert darker_share(frames[0].pixels, frames[1].pixels)[0] == 0.0
    # A moving object (a quarter of the frame, brighter in the longer frame's place) is not a contradiction.
    moved = [f.pixels.copy() for f in frames]
    moved[2][:60, :80] = moved[2][60:, 80:][::-1]
    check_brightness_order(make_bracket([Frame(f.path, m, 8, False) for f, m in zip(frames, moved)],
                                        [0.25, 1.0, 4.0]), "EXIF")
    # The values listed in the wrong order: the "longer" frame is darker everywhere it differs.
    with pytest.raises(HdrError, match=r"t1.png is darker than t4.png on 100% .* --exposures gives it a 4x longer") as err:
        check_brightness_order(make_bracket(frames, [0.25, 4.0, 1.0]), "--exposures")
    assert "\n" not in str(err.value) and "t1.png" in str(err.value)
    with pytest.raises(HdrError, match="its EXIF exposure .* give the exposures with --exposures or --ev"):
        check_brightness_order(make_bracket(frames, [4.0, 1.0, 0.25]), "EXIF")
    # Featureless frames give no evidence either way.
    flat = [Frame(Path(f"f{i}.png"), np.full((8, 8, 3), 0.5, np.float32), 8, False) for i in range(2)]
    check_brightness_order(make_bracket(flat, [1.0, 2.0]), "--ev")


def test_one_picture_given_two_exposures_is_refused():
    """Frames given exposures half a stop or more apart must change wherever the longer one is
    above black and unclipped; a picture given twice (a copy) does not."""
    from hdrcli.exposure import check_brightness_order, unchanged_share
    from tests.conftest import radiance_scene

    radiance = radiance_scene(120, 160, stops=10.0)
    frames = _photographed(radiance, [0.25, 0.41, 1.0])  # 0.7 and 1.3 stops apart: accepted
    check_brightness_order(make_bracket(frames, [0.25, 0.41, 1.0]), "EXIF")
    assert unchanged_share(frames[0].pixels, frames[1].pixels)[0] < 0.1
    copy = Frame(Path("copy.png"), frames[1].pixels.copy(), 8, False)
    with pytest.raises(HdrError, match=r"copy.png is the same picture as t0.41.png \(100% .* 2x longer exposure"):
        check_brightness_order(make_bracket([frames[0], frames[1], copy], [0.25, 0.5, 1.0]), "--exposures")
    # Closer than half a stop, a copy is not refused (the frames barely change there anyway).
    check_brightness_order(make_bracket([frames[1], copy], [1.0, 1.3]), "--exposures")

