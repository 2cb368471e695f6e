"""A fast parser for the small, simple YAML front matter task files almost always have.

``parse(block)`` reads a restricted subset of YAML and returns exactly what ``yaml.safe_load(block)`` would
(PyYAML's SafeLoader, YAML 1.1 resolution), or ``None`` when the text is outside the subset or anything is
doubtful; the caller then falls back to ``yaml.safe_load``. A dict is never a guess: returning ``None`` is
always safe, so every rule below errs towards it. Importing PyYAML costs ~15 ms; this module imports nothing.

One deliberate difference: a block of only blank and comment lines gives ``{}`` here where ``yaml.safe_load``
gives ``None``; the caller treats both as "no front matter".

The subset, line by line (``\\r\\n`` counts as ``\\n``; any other control character, tab included -> None):

* blank lines and full-line ``#`` comments (any indentation);
* ``key: value`` at column 0, the key a plain identifier ``[A-Za-z_][A-Za-z0-9_-]*`` that resolves to a
  string (``on:``/``yes:``/``null:`` keys -> None), each key once;
* a value is one of: a plain scalar; a one-line ``'single'`` (``''`` for a quote) or ``"double"`` (no
  backslash) quoted string; a one-line flow list ``[a, 'b', 3]`` of scalars; or nothing, and then either
  ``null`` or a block list of ``- scalar`` lines, all at one indentation (0 or more);
* a plain scalar resolves to null (``~ null Null NULL``), bool (``yes/no/true/false/on/off`` in their
  lower, Capitalised and UPPER forms; ``y``/``n`` stay strings, as in PyYAML), a decimal int (``0`` or
  ``-?[1-9][0-9]*``), or a string that starts with a letter, ``_``, ``/``, ``~`` or a non-ASCII character
  and holds no character that YAML could read otherwise (no ``#``, brackets, ``: ``, trailing ``:``, ...).
  Anything else that starts with a digit, ``-``, ``+`` or ``.`` (floats, octal, hex, ``1_000``, dates,
  sexagesimal, ``.inf``) -> None;
* a trailing `` # comment`` after any value.
"""

from __future__ import annotations

__all__ = ["parse"]

_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")
_KEY_REST = _LETTERS | _DIGITS | frozenset("_-")
_FIRST = _LETTERS | frozenset("_/~")  # starts no implicit resolver claims, but for the whole words in _WORDS
_BLOCK_REST = _LETTERS | _DIGITS | frozenset(" _-./+~:@,()'\"!?&*%$=;^")
_FLOW_REST = _LETTERS | _DIGITS | frozenset(" _-./+~@()!&*%$=;^")  # flow plain scalars stop at , : ? [ ] { }
_WORDS: dict[str, bool | None] = {"~": None, "null": None, "Null": None, "NULL": None}
for _w in ("yes", "true", "on"):
    _WORDS[_w] = _WORDS[_w.capitalize()] = _WORDS[_w.upper()] = True
for _w in ("no", "false", "off"):
    _WORDS[_w] = _WORDS[_w.capitalize()] = _WORDS[_w.upper()] = False
_EMPTY = object()  # "no value on this line"


class _Doubt(Exception):
    """The text is outside the subset: let PyYAML decide."""


def parse(block: str) -> dict[str, object] | None:
    """The mapping ``yaml.safe_load(block)`` gives, or None when ``block`` is outside the subset (see module)."""
    try:
        return _parse(block)
    except _Doubt:
        return None


def _parse(block: str) -> dict[str, object]:
    lines = block.replace("\r\n", "\n").split("\n")
    if not all(line.isprintable() for line in lines):  # tabs, \r, NEL, U+2028, BOM, ...
        raise _Doubt
    result: dict[str, object] = {}
    list_key: str | None = None  # the last key, while its value is empty (null) or a block list
    items: list[object] | None = None
    indent = 0
    for line in lines:
        stripped = line.lstrip(" ")
        if not stripped or stripped[0] == "#":
            continue
        column = len(line) - len(stripped)
        if stripped[0] == "-" and stripped[1:2] in ("", " "):  # a block list item
            if list_key is None:
                raise _Doubt
            if items is None:
                items, indent = [], column
                result[list_key] = items
            elif column != indent:
                raise _Doubt
            value = _value(stripped[1:].lstrip(" "))
            if value is _EMPTY or isinstance(value, list):
                raise _Doubt
            items.append(value)
            continue
        key, colon, rest = stripped.partition(":")
        if column or not colon or rest[:1] not in ("", " ") or key in result or not _is_key(key):
            raise _Doubt
        value = _value(rest.lstrip(" "))
        result[key] = None if value is _EMPTY else value
        list_key, items = (key if value is _EMPTY else None), None  # an empty value may become a block list
    return result


def _is_key(key: str) -> bool:
    return (
        0 < len(key) <= 128
        and key[0] in _FIRST
        and all(c in _KEY_REST for c in key)
        and isinstance(_scalar(key, _KEY_REST), str)
    )


def _value(text: str) -> object:
    """The value that starts ``text`` (leading spaces gone), with nothing after it but spaces and a comment."""
    if not text or text[0] == "#":
        return _EMPTY
    value: object
    if text[0] in "'\"":
        value, end = _quoted(text, 0)
    elif text[0] == "[":
        value, end = _flow_list(text)
    else:
        cut = text.find(" #")
        return _scalar((text if cut < 0 else text[:cut]).rstrip(" "), _BLOCK_REST)
    tail = text[end:].lstrip(" ")
    if tail and (tail[0] != "#" or len(tail) == len(text) - end):  # a comment needs a space before it
        raise _Doubt
    return value


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The one-line quoted string at ``text[start]`` and the index just after it."""
    quote = text[start]
    end = text.find(quote, start + 1)
    while quote == "'" and end >= 0 and text[end + 1 : end + 2] == "'":  # '' is a quote inside '...'
        end = text.find(quote, end + 2)
    if end < 0:
        raise _Doubt
    body = text[start + 1 : end]
    if quote == '"' and "\\" in body:
        raise _Doubt
    return (body.replace("''", "'") if quote == "'" else body), end + 1


def _flow_list(text: str) -> tuple[list[object], int]:
    """The one-line ``[a, 'b', 3]`` list of scalars at the start of ``text`` and the index just after it."""
    items: list[object] = []
    i = len(text) - len(text[1:].lstrip(" "))
    if text[i : i + 1] == "]":
        return items, i + 1
    while True:
        value: object
        if text[i : i + 1] in ("'", '"'):
            value, i = _quoted(text, i)
        else:
            ends = [j for j in (text.find(",", i), text.find("]", i)) if j >= 0]
            if not ends:
                raise _Doubt
            value, i = _scalar(text[i : min(ends)].rstrip(" "), _FLOW_REST), min(ends)
        items.append(value)
        i = len(text) - len(text[i:].lstrip(" "))
        if text[i : i + 1] == "]":
            return items, i + 1
        if text[i : i + 1] != ",":
            raise _Doubt
        i = len(text) - len(text[i + 1 :].lstrip(" "))


def _scalar(text: str, allowed: frozenset[str]) -> object:
    """What a one-line plain scalar resolves to, for the plain scalars whose resolution is beyond doubt."""
    if text in _WORDS:
        return _WORDS[text]
    if not text:
        raise _Doubt
    if text[0] == "-" or text[0] in _DIGITS:
        digits = text[1:] if text[0] == "-" else text
        if (
            digits.isascii()
            and digits.isdigit()
            and len(digits) <= 64
            and (digits == "0" or digits[0] != "0")
        ):
            return int(text)
        raise _Doubt
    if not (text[0] in _FIRST or not text[0].isascii()):
        raise _Doubt
    if any(c not in allowed and c.isascii() for c in text) or ": " in text or text.endswith(":"):
        raise _Doubt
    return text
