"""Token pieces made safe and visible for a terminal.

A piece can hold anything the tokenizer produces: spaces, newlines, tabs, or control bytes such as
NUL or ESC, which would corrupt the screen if written as they are. Control characters become their
Unicode "control picture" (␀, ␛, …).
"""

from __future__ import annotations

CONTROL_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}  # ␀ … ␟, ␡


def visible(piece: str, newlines: bool = False) -> str:
    """Control characters as pictures; with newlines=True a newline stays a line break after '↵'."""
    out = []
    for char in piece:
        code = ord(char)
        if char == "\n":
            out.append("↵\n" if newlines else "↵")
        elif char == "\t":
            out.append("→")
        elif code in CONTROL_PICTURES or 0x80 <= code < 0xA0:
            out.append(CONTROL_PICTURES.get(code, "�"))
        else:
            out.append(char)
    return "".join(out)


def label_text(piece: str, width: int) -> str:
    """A piece as a short label: spaces as '·', cut to width; an empty piece as '∅'."""
    return (visible(piece).replace(" ", "·") or "∅")[:width]
