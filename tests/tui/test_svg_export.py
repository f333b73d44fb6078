"""Exported screenshots render anywhere: no web font, generic monospace, every character at its own cell."""

import html
import re
import shutil
import subprocess
from xml.etree import ElementTree

import pytest

from engine.events import SamplingConfig
from tests.support import require
from tests.tui.conftest import SIZE, notifications, settle, wait_until
from tui.app import make_app

SVG = "{http://www.w3.org/2000/svg}"


async def exported_svg(toy, export_dir) -> str:
    app = make_app(model=toy, config=SamplingConfig(temperature=0.0), export_dir=export_dir, deterministic=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", "n", "n")  # generated tokens: tinted, underlined runs that start with a space
        await settle(pilot)
        await pilot.press("e")
        await wait_until(pilot, lambda: any("Saved" in n for n in notifications(app)), "the export notification")
    return next(export_dir.glob("screen-*.svg")).read_text(encoding="utf-8")


@pytest.mark.anyio
async def test_the_exported_svg_needs_no_web_font_and_places_every_character_on_its_cell(toy, tmp_path):
    svg = await exported_svg(toy, tmp_path / "figures")
    assert "@font-face" not in svg and "url(http" not in svg and "woff" not in svg
    assert "Fira Code" not in svg and "font-family: monospace;" in svg
    cells = [text for text in ElementTree.fromstring(svg).iter(f"{SVG}text") if not text.get("class", "").endswith("-title")]
    assert len(cells) > 100
    for text in cells:
        assert len(text.get("x").split()) == len(text.text) and text.get("textLength") is None  # one x per character
        assert text.get("{http://www.w3.org/XML/1998/namespace}space") == "preserve"  # a leading space is kept
    assert any(text.text.startswith("\xa0") and len(text.text) > 1 for text in cells), "a token run that starts with a space"
    grid = sorted({float(text.get("x").split()[0]) for text in cells})  # where runs start: cells
    width = min(b - a for a, b in zip(grid, grid[1:]))  # one cell
    for text in cells:
        for x in text.get("x").split():
            assert abs(float(x) / width - round(float(x) / width)) < 1e-3  # every character sits on a cell


@pytest.mark.anyio
async def test_the_exported_svg_renders_offline_with_rsvg_convert(toy, tmp_path):
    require(shutil.which("rsvg-convert") is not None, "rsvg-convert", "apt-get install -y librsvg2-bin (.ci/run does)")
    svg = tmp_path / "screen.svg"
    svg.write_text(await exported_svg(toy, tmp_path / "figures"), encoding="utf-8")
    png = tmp_path / "screen.png"
    result = subprocess.run(["rsvg-convert", "-o", str(png), str(svg)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert html.unescape(re.sub(r"<[^>]+>", "", svg.read_text(encoding="utf-8"))).count("Candidates") == 1
