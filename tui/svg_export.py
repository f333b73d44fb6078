"""Screenshots that render anywhere: Textual's SVG (Rich's template) asks for Fira Code from a web CDN,
so an offline viewer (rsvg-convert ignores @font-face) falls back to a font of other widths: word gaps
vanish and charts misalign. `portable_svg` drops the web font for the generic `monospace` and places
every character at its own cell (an x per character, spaces kept), so the font's widths no longer matter."""

from __future__ import annotations

import html
import re

from rich.cells import cell_len

FONT_FACE = re.compile(r"@font-face\s*\{.*?\}\s*", re.S)  # the template's web-font blocks
WEB_FONT = re.compile(r"font-family:\s*Fira Code,\s*monospace;")
TEXT_RUN = re.compile(r'<text class="([^"]+)" x="([0-9.]+)" y="([0-9.]+)" textLength="([0-9.]+)" clip-path="([^"]+)">([^<]*)</text>')


def place_each_character(run: re.Match) -> str:
    """One <text> run of n characters spread over textLength: the same run with n x positions, one per cell."""
    css_class, x, y, length, clip, body = run.groups()
    text = html.unescape(body)
    char_width = float(length) / len(text)  # Rich's textLength is char_width * len(text)
    positions, at = [], float(x)
    for character in text:
        positions.append(f"{at:.2f}".rstrip("0").rstrip("."))
        at += char_width * cell_len(character)  # a wide character (CJK) takes two cells
    # xml:space="preserve": otherwise a run's leading (no-break) space is dropped and the rest moves onto its cell
    return f'<text class="{css_class}" xml:space="preserve" x="{" ".join(positions)}" y="{y}" clip-path="{clip}">{body}</text>'


def portable_svg(svg: str) -> str:
    """`svg` (App.export_screenshot) without web fonts: generic monospace, every character positioned."""
    svg = FONT_FACE.sub("", svg)
    svg = WEB_FONT.sub("font-family: monospace;", svg)
    svg = svg.replace("font-family: arial;", "font-family: sans-serif;")  # the window title
    return TEXT_RUN.sub(place_each_character, svg)
