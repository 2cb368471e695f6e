"""Text that reaches a terminal, made harmless: what orch types into an agent and what it shows or stores of what a
worker said. Pure functions, standard library only.

Control characters are the only way text acts on a terminal instead of being shown by it: ESC starts a sequence
(a bracketed paste's end ``ESC[201~``, OSC 52 clipboard writes, screen clears, title changes), C1 codes do the same
in one byte (CSI, OSC), and C0 codes act on their own (``^C``, ``^Z``, ``^D``, a carriage return that submits). Each
one is replaced by its visible picture from Unicode's Control Pictures block (ESC becomes ``␛``, ``^C`` ``␃``), so
every printable character of the text stays and none of it acts. Newlines (and tabs) stay where the text may have
them; a carriage return becomes a newline.
"""

from __future__ import annotations

_PICTURES = {c: chr(0x2400 + c) for c in range(0x20)} | {0x7F: "\u2421"}
_TABLE = {**_PICTURES, **{c: "\ufffd" for c in range(0x80, 0xA0)}}
_MULTI = {**_TABLE, 0x0A: "\n", 0x09: "\t"}
_LINE = {**_TABLE, 0x09: " "}


def neutralise(text: str) -> str:
    """Text to type or show on several lines: newlines and tabs kept (``\\r\\n`` and ``\\r`` as newlines), every
    other control character shown as its picture."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_MULTI)


def neutralise_line(text: str) -> str:
    """Text for one line (the caller has already joined its lines): tabs as spaces, every control character
    (newlines too) as its picture."""
    return text.translate(_LINE)


def is_clean(text: str, multi_line: bool = True) -> bool:
    """Whether ``text`` has nothing a terminal would act on."""
    allowed = {0x0A, 0x09} if multi_line else set()
    return not any((ord(ch) < 0x20 and ord(ch) not in allowed) or 0x7F <= ord(ch) < 0xA0 for ch in text)


def colours_only(text: str) -> str:
    """A screen read with its colours (``tmux capture-pane -e``) for a terminal or a page: its colour and style
    sequences (SGR: ``ESC [ <digits, ; or :> m``) kept, every other control character neutralised as above."""
    out, i = [], 0
    while True:
        j = text.find("\x1b[", i)
        if j < 0:
            out.append(neutralise(text[i:]))
            return "".join(out)
        k = j + 2
        while k < len(text) and (text[k].isdigit() and text[k].isascii() or text[k] in ";:"):
            k += 1
        if k < len(text) and text[k] == "m":
            out.append(neutralise(text[i:j]))
            out.append(text[j:k + 1])
            i = k + 1
        else:  # not a colour: shown, not acted on
            out.append(neutralise(text[i:j + 2]))
            i = j + 2
