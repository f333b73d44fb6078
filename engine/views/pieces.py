"""Token pieces made safe and visible for a terminal: one implementation for the CLI views and the TUI.

A piece can hold anything the tokenizer produces: spaces, newlines, tabs, or control bytes such as
NUL or ESC, which would corrupt the screen if written as they are. Control characters become their
Unicode "control picture" (␀, ␛, …), C1 controls (U+0080-U+009F) become "�", a newline "↵".
"""

from __future__ import annotations

CONTROL_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}  # ␀ … ␟, ␡
TOKEN_MARKERS = {"space": "␣", "tab": "⇥"}  # the tokenization views' markers: every space of a piece shows


def visible(piece: str, newlines: bool = False, space: str = " ", tab: str = "→") -> str:
    """Control characters as pictures, a tab as `tab`, a space as `space`; a newline as '↵'
    (with newlines=True still followed by the line break)."""
    out = []
    for char in piece:
        code = ord(char)
        if char == "\n":
            out.append("↵\n" if newlines else "↵")
        elif char == "\t":
            out.append(tab)
        elif char == " ":
            out.append(space)
        elif code in CONTROL_PICTURES or 0x80 <= code < 0xA0:
            out.append(CONTROL_PICTURES.get(code, "�"))
        else:
            out.append(char)
    return "".join(out)
