"""The README's Python and command-line blocks run as written, top to bottom."""
import re
import shlex
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from napari_iem.cli import main

from synthetic import textured_ball, textured_disc

README = Path(__file__).parents[1] / "README.md"


def block(language: str, after: str) -> str:
    """The first fenced ``language`` block after the heading ``after``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(after)
    return re.search(rf"```{language}\n(.*?)```", text[start:], re.S).group(1)


def test_the_python_block_runs():
    code = block("python", "## Python")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["result"].labels.shape == namespace["photo"].shape[:2]


def test_the_command_line_block_runs_top_to_bottom(tmp_path, monkeypatch):
    for folder in ("photos", "masks", "stacks"):
        (tmp_path / folder).mkdir()
    for seed in range(2):
        image, truth = textured_disc(48, seed=seed, rgb=True)
        iio.imwrite(tmp_path / "photos" / f"p{seed}.png", image)
        iio.imwrite(tmp_path / "masks" / f"p{seed}.png", (truth * 255).astype(np.uint8))
    tifffile.imwrite(tmp_path / "stacks" / "s.tif", textured_ball((6, 32, 32), radius=8)[0])
    monkeypatch.chdir(tmp_path)
    lines = [line.split("#")[0].strip() for line in block("bash", "## Command line").splitlines()]
    lines = [line for line in lines if line]
    assert len(lines) >= 4
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "napari-iem"
        assert main(words[1:] + ["--quiet"] if words[1] != "evaluate" else words[1:]) == 0, line
    assert sorted(p.name for p in (tmp_path / "student").glob("*.png")) == ["p0.png", "p1.png"]
