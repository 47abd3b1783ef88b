"""The per-input outputs of a file run: annotated video (or image) and keypoint log."""

from __future__ import annotations

import logging
from pathlib import Path

from stages.decode import SourceInfo
from stages.errors import InputError, OutputError
from stages.frames import Result
from stages.keypoint_log import KeypointLog
from stages.video_sink import VideoWriter, write_image

log = logging.getLogger(__name__)


def output_paths(outdir: Path, input: Path, *, still: bool) -> tuple[Path, Path]:
    """(annotated video or image, keypoint log) for ``input`` in ``outdir``.

    Raises:
        InputError: An output would overwrite the input itself.
    """
    media = outdir / (input.name if still else f"{input.stem}.mp4")
    paths = (media, outdir / f"{input.stem}.jsonl")
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
        input: The input file (names the outputs).
        info: The source's description (size, rate, time base).
        preset: x264 preset.
        still: The input is a single image: write an annotated image, not a video.
    """

    def __init__(self, outdir: Path, input: Path, info: SourceInfo, *,
                 preset: str = "veryfast", still: bool = False) -> None:
        self.paths = output_paths(outdir, input, still=still)
        self._info = info
        self._preset = preset
        self._still = still
        self._video: VideoWriter | None = None
        self._log: KeypointLog | None = None
        self._last_image = None

    def __enter__(self) -> FileOutputs:
        try:
            self.paths[0].parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.paths[0].parent}: cannot create output directory "
                              f"({exc.strerror})") from exc
        self._log = KeypointLog(self.paths[1])
        if not self._still:
            try:
                self._video = VideoWriter(self.paths[0], self._info, preset=self._preset)
            except BaseException:
                self._log.close()
                raise
        return self

    def write(self, result: Result) -> Result:
        """Write one rendered result; return it."""
        image = result.image if result.image is not None else result.frame.image
        if self._video is not None:
            self._video.write(image, result.frame.pts_ticks)
        else:
            self._last_image = image
        self._log.write(result)
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
            if self._log is not None:
                self._log.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
