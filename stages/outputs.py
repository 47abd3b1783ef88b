"""The per-input outputs of a file run: annotated video (or image) and keypoints."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from stages.decode import SourceInfo
from stages.errors import InputError, OutputError
from stages.formats import KeypointWriter, format_path, make_writers
from stages.frames import Result
from stages.video_sink import VideoWriter, write_image

log = logging.getLogger(__name__)


def output_paths(outdir: Path, input: Path, *, still: bool,
                 formats: Sequence[str] = ("jsonl",)) -> tuple[Path, ...]:
    """(annotated video or image, then one path per keypoint format) for ``input``.

    Raises:
        InputError: An unknown format, or an output would overwrite the input itself.
    """
    media = outdir / (input.name if still else f"{input.stem}.mp4")
    paths = (media, *(format_path(f, outdir, input.stem) for f in dict.fromkeys(formats)))
    for p in paths:
        if p.exists() and p.resolve() == input.resolve():
            raise InputError(f"{input}: output {p} would overwrite the input; choose another -o OUTDIR")
    return paths


class FileOutputs:
    """Writes every Result of one input; a pipeline step (``write``).

    Files appear under their final names only when closed, complete with the
    frames written so far (also after an interruption or a failure).

    Args:
        outdir: Output directory, created when missing.
        input: The input file (names the outputs; its audio is copied into
            the annotated video).
        info: The source's description (size, rate, time base).
        preset: x264 preset.
        still: The input is a single image: write an annotated image, not a video.
        formats: Keypoint formats (``stages.formats.FORMATS``), in order.
        audio: Copy the input's audio streams into the annotated video.
    """

    def __init__(self, outdir: Path, input: Path, info: SourceInfo, *,
                 preset: str = "veryfast", still: bool = False,
                 formats: Sequence[str] = ("jsonl",), audio: bool = True) -> None:
        self.paths = output_paths(outdir, input, still=still, formats=formats)
        self._outdir = Path(outdir)
        self._input = Path(input)
        self._info = info
        self._preset = preset
        self._still = still
        self._formats = tuple(dict.fromkeys(formats))
        self._audio = audio
        self._video: VideoWriter | None = None
        self._writers: list[KeypointWriter] = []
        self._last_image = None

    def __enter__(self) -> FileOutputs:
        try:
            self._outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self._outdir}: cannot create output directory "
                              f"({exc.strerror})") from exc
        self._writers = make_writers(self._formats, self._outdir, self._input.stem)
        if not self._still:
            try:
                self._video = VideoWriter(self.paths[0], self._info, preset=self._preset,
                                          audio_from=self._input if self._audio else None)
            except BaseException:
                self._close_writers()
                raise
        return self

    def write(self, result: Result) -> Result:
        """Write one rendered result; return it."""
        image = result.image if result.image is not None else result.frame.image
        if self._video is not None:
            self._video.write(image, result.frame.pts_ticks)
        else:
            self._last_image = image
        for writer in self._writers:
            writer.write(result)
        return result

    def close(self) -> None:
        """Finish and rename every file; idempotent."""
        try:
            if self._video is not None:
                self._video.close()
            elif self._last_image is not None:
                write_image(self.paths[0], self._last_image)
                self._last_image = None
        finally:
            self._close_writers()

    def _close_writers(self) -> None:
        # Every writer is closed, even when one fails; the first failure is raised.
        error: BaseException | None = None
        for writer in self._writers:
            try:
                writer.close()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                error = error or exc
        if error is not None:
            raise error

    def __exit__(self, *exc_info: object) -> None:
        self.close()
