"""Make the docs' pictures from the real program, so they can be remade when the look changes.

    .venv/bin/python scripts/make_pictures.py                 # all four, into docs/img/
    .venv/bin/python scripts/make_pictures.py frame window    # some

- ``annotated-frame.png``: ``posestream`` with no input (the sample clip with two
  people, the real model), a frame of the annotated video it wrote.
- ``dashboard.svg``: a live run of two sources (the sample clip looped, and an
  FFmpeg test pattern) in a tmux terminal, the screen captured with its colours
  while it runs and drawn as SVG by rich.
- ``preview.png``: the same run's ``--preview`` page in headless Chromium
  (Debian's ``chromium``), once it shows frames.
- ``window.png``: ``posestream photo.jpg --show`` under Xvfb (Debian's ``xvfb``,
  ``xdotool``, ``imagemagick``), the window once the picture is up.

Each picture is made on its own; one that cannot be made (a tool missing)
is reported and the others are still made. The PNGs are reduced to a
palette of 128 colours to keep them small. Needs the model (the set-up of
``scripts/demo.sh`` fetches it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMG = ROOT / "docs" / "img"
PYTHON = sys.executable
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def main(argv: list[str] | None = None) -> int:
    makers = {"frame": annotated_frame, "dashboard": live_pictures, "preview": live_pictures,
              "window": window}
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pictures", nargs="*", metavar="PICTURE",
                        help=f"which to make, of {', '.join(makers)} (default: all)")
    chosen = parser.parse_args(argv).pictures or list(makers)
    if unknown := [name for name in chosen if name not in makers]:
        parser.error(f"unknown picture {', '.join(unknown)}; expected {', '.join(makers)}")
    IMG.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="pictures-") as tmp:
        work = Path(tmp)
        clip = sample_clip(work)
        for maker in dict.fromkeys(makers[name] for name in chosen):  # live_pictures once
            try:
                for path in maker(work, clip):
                    print(f"made {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")
            except Exception as exc:  # noqa: BLE001 - say which picture, go on with the others
                failed += 1
                print(f"could not make {maker.__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def sample_clip(work: Path) -> Path:
    """The sample clip ``posestream`` makes when given no input, annotated by it."""
    out = work / "sample"
    run([PYTHON, str(ROOT / "run_stream.py"), "-o", str(out)], timeout=600)
    return out / "sample" / "people.mp4"


def annotated_frame(work: Path, clip: Path) -> list[Path]:
    """A frame from the middle of the annotated sample video."""
    import av

    annotated = clip.parent.parent / "people.mp4"
    with av.open(str(annotated)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    image = frames[len(frames) // 2]
    return [save_png(image.resize((768, 432)), IMG / "annotated-frame.png")]


def live_pictures(work: Path, clip: Path) -> list[Path]:
    """The dashboard (tmux capture) and the preview page (Chromium) of one live run."""
    port = free_port()
    sources = work / "cameras.txt"
    looped = f"lavfi:movie={clip}:loop=0,setpts=N/FRAME_RATE/TB,realtime"
    sources.write_text(f"{looped} entrance\nlavfi:testsrc2=size=640x360:rate=10 hall\n")
    command = [PYTHON, str(ROOT / "run_stream.py"), "--sources", str(sources),
               "-o", str(work / "live"), "--preview", f"127.0.0.1:{port}", "--record", "none"]
    tmux = ["tmux", "-L", f"pictures-{os.getpid()}"]
    if shutil.which("tmux") is None:
        raise RuntimeError("tmux is not installed (apt-get install tmux)")
    env_args = [arg for key in ("PYTHONPATH",) for arg in ("-e", f"{key}={ENV[key]}")]
    run([*tmux, "new-session", "-d", "-s", "live", "-x", "112", "-y", "24", *env_args,
         " ".join(map(_quote, command))])
    made = []
    try:
        wait_for(lambda: (work / "live" / "entrance" / "live.jsonl").is_file(), 180,
                 "the live run's first record")
        made.append(preview_page(port))
        time.sleep(3)  # a few dashboard refreshes: the FPS over its window settles
        screen = subprocess.run([*tmux, "capture-pane", "-p", "-e", "-t", "live"],
                                capture_output=True, text=True, check=True).stdout
        made.insert(0, dashboard_svg(screen))
    finally:
        subprocess.run([*tmux, "send-keys", "-t", "live", "C-c"], capture_output=True)
        time.sleep(3)
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    return made


def dashboard_svg(screen: str) -> Path:
    """The captured terminal as SVG: the dashboard's tables, without the command's blank tail."""
    from rich.console import Console
    from rich.text import Text

    import re

    lines = screen.rstrip("\n").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    plain = [Text.from_ansi(line).plain.strip() for line in lines]
    if "sources" in plain:  # the tables only: log lines above them name this machine's paths
        lines = lines[plain.index("sources"):]
    console = Console(record=True, width=112, force_terminal=True, color_system="truecolor",
                      file=open(os.devnull, "w"))
    for line in lines:
        console.print(Text.from_ansi(line), soft_wrap=True)
    svg = console.export_svg(title="posestream: a live run of two sources")
    # the fonts from the machine only: the docs fetch nothing from elsewhere
    svg = re.sub(r',\s*url\("https?://[^"]*"\) format\("[^"]*"\)', "", svg)
    path = IMG / "dashboard.svg"
    path.write_text(svg, encoding="utf-8")
    return path


def preview_page(port: int) -> Path:
    """The preview page once it shows frames and figures."""
    from tests.support.devtools import DevTools

    png = IMG / "preview.png"
    with DevTools(size=(960, 540), timeout=60) as browser:
        browser.open(f"http://127.0.0.1:{port}/")
        browser.wait_for("document.getElementById('waiting').hidden && "
                         "document.getElementById('people').textContent.trim() !== '\u2013' && "
                         "document.getElementById('latency').textContent.trim() !== '\u2013'", 60)
        time.sleep(2)
        browser.screenshot(png)
    return save_png(load_image(png), png)


def window(work: Path, clip: Path) -> list[Path]:
    """``posestream photo.jpg --show`` under Xvfb: the window with its figures."""
    for tool in ("Xvfb", "xdotool", "import"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed "
                               "(apt-get install xvfb xdotool imagemagick)")
    photo = work / "photo.jpg"
    first_frame(clip).save(photo, quality=92)
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x720x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write)
    proc = None
    try:
        display = f":{os.read(read, 16).decode().strip()}"
        env = dict(ENV, DISPLAY=display)
        out = work / "window"
        proc = subprocess.Popen([PYTHON, str(ROOT / "run_stream.py"), str(photo), "-o", str(out),
                                 "--show"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_for(lambda: (out / "photo.jsonl").is_file() or proc.poll() is not None, 180,
                 "the picture's outputs")  # then the window shows the picture until q
        time.sleep(2)
        png = IMG / "window.png"
        run(["import", "-window", "root", str(png)], env=env)
        ids = subprocess.run(["xdotool", "search", "--name", "posestream"], env=env,
                             capture_output=True, text=True).stdout.split()
        for window_id in ids[:1]:
            subprocess.run(["xdotool", "windowfocus", "--sync", window_id, "key", "q"], env=env,
                           capture_output=True, timeout=10)
        proc.wait(timeout=30)
        return [save_png(load_image(png).resize((800, 450)), png)]
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        xvfb.terminate()
        xvfb.wait(timeout=10)
        os.close(read)


def first_frame(clip: Path):
    import av

    with av.open(str(clip)) as container:
        return next(container.decode(video=0)).to_image()


def load_image(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def save_png(image, path: Path) -> Path:
    """``image`` as a PNG of 128 colours (a screenshot or a frame stays legible)."""
    image.convert("RGB").quantize(colors=128, dither=0).save(path, optimize=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {seconds:.0f} s")
        time.sleep(0.2)


def run(command: list[str], *, timeout: float = 120, env: dict | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=env or ENV, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {done.returncode}: {done.stderr.strip()[-500:]}")


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


if __name__ == "__main__":
    sys.exit(main())
