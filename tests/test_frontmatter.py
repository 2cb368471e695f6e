"""The fast front-matter parser: whenever it answers, it answers exactly what yaml.safe_load would."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orch import frontmatter, taskfile
from orch.errors import OrchError


def same(a: object, b: object) -> bool:
    """Equal *and* of the same types all the way down (True == 1 and 0 == False would otherwise pass)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def yaml_view(text: str) -> object:
    """What yaml.safe_load gives, with None as {} (the caller treats them alike); an exception is returned."""
    try:
        loaded = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any failure means parse must have declined
        return exc
    return {} if loaded is None else loaded


def check(text: str) -> object:
    got = frontmatter.parse(text)
    if got is not None:
        want = yaml_view(text)
        assert not isinstance(want, Exception), f"parse answered {got!r} where yaml raises {want!r}"
        assert same(got, want), f"{text!r}: parse {got!r} != yaml {want!r}"
    return got


TYPICAL = """\
agent: codex
base: main
depends_on: [setup-db, "api"]
hold: true
validate:
  - make test
  - ruff check .
rounds: 3
"""

ACCEPTED = [
    TYPICAL,
    TYPICAL.replace("\n", "\r\n"),
    "",
    "\n\n",
    "# only a comment\n   \n  # another\n",
    "a: b",
    "a: yes\nb: No\nc: ON\nd: off\ne: TRUE\nf: False\n",
    "a: y\nb: n\nc: Y\nd: N\n",  # YAML 1.1 in PyYAML: y/n are strings
    "a: yES\nb: tRUE\n",
    "a: ~\nb: null\nc: Null\nd: NULL\ne:\nf: # nothing\n",
    "a: 0\nb: 12\nc: -7\nd: -0\ne: 123456789012345678901234567890\n",
    "a: don't\nb: it's \"quoted\"\n",
    "url: http://example.com:8080/x?y=1&z=2\n",
    "a: a:b\nb: a :b\nc: a::b\n",
    "a: b # comment\nc: d  # two: spaces\n",
    "a: 'b # c'\nb: \"d: e\"\nc: 'it''s'\nd: ''\ne: \"\"\nf: ''''\n",
    "a: '  padded  '\nb: \"yes\"\nc: '0x10'\n",
    "a: [a, b, 'c', \"d\"]\nb: []\nc: [ ]\nd: [1, -2, yes, ~, null]\ne: [a b , c]  # x\n",
    "a: [a&b, c*d, e!f]\n",
    "k:\n- a\n- b\nj: 1\n",
    "k:\n  - a\n  # comment\n\n  - 'b'\n  - 3\n  - off\n",
    "k: # comment\n  - a\n",
    "k:\n  - a\n# column-0 comment\n  - b\n",
    "a: b\n  # indented comment\n",
    "a: x, y\nb: a - b\nc: a ? b\n",
    "name: Ünïcödé\nemoji: 🙂 x\n",
    "_private: x\nsnake_case-and-dash: y\nyes_no: z\n",
]

DECLINED = [
    "a: 0x10",
    "a: 0o7",
    "a: 012",
    "a: 09",
    "a: 1_000",
    "a: +1",
    "a: .5",
    "a: 1e3",
    "a: 1.0",
    "a: .inf",
    "a: .nan",
    "a: 2024-01-01",
    "a: 1:30",
    "a: 190:20:30",
    "a: =",
    "a: <<",
    "a: b: c",
    "a: b:",
    "a: b#c",
    "a: 'b'#c",
    "a: 'b' c",
    'a: "b\\n"',
    "a: 'unterminated",
    "a: &anchor x",
    "a: *alias",
    "a: !tag x",
    "a: !!str 1",
    "a: |\n  text\n",
    "a: >\n  text\n",
    "a: @x",
    "a: `x`",
    "a: %x",
    "a: {b: c}",
    "a: [b, [c]]",
    "a: [b, c",
    "a: [b,]",
    "a: [b, , c]",
    "a: [b:c]",
    "a: [b] c",
    "a: ['b' 'c']",
    "a: ['b'xc, d]",
    "a:\n  b: c\n",
    "a: b\n  continued\n",
    "a: b\na: c\n",
    "? a\n: b\n",
    "a:\tb",
    "\ta: b",
    "  a: b\n",
    "a : b",
    "a:b",
    "on: push",
    "yes: x",
    "null: x",
    "- a\n- b\n",
    "just text",
    "a: b\n- c\n",
    "k:\n  - a\n - b\n",
    "k:\n  - a\n    b\n",
    "k:\n  -\n",
    "k:\n  - [a]\n",
    "k:\n  - a: b\n",
    "k:\n  -a\n",
    "%YAML 1.1\n---\na: b\n",
    "a: b\n---\nc: d\n",
    "a: b\r",
    "\ufeffa: b",
    "a: b\u2028c",
    "a: b\x85c",
    "a: " + "9" * 5000,
    "k" * 2000 + ": v",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted_examples_equal_yaml(text):
    got = check(text)
    assert got is not None, f"{text!r} should be inside the subset"


@pytest.mark.parametrize("text", DECLINED)
def test_declined_examples(text):
    assert frontmatter.parse(text) is None


def test_typical_block_values():
    assert frontmatter.parse(TYPICAL) == {
        "agent": "codex",
        "base": "main",
        "depends_on": ["setup-db", "api"],
        "hold": True,
        "validate": ["make test", "ruff check ."],
        "rounds": 3,
    }


def test_empty_block_is_an_empty_mapping_where_yaml_says_none():
    assert yaml.safe_load("# nothing\n") is None
    assert frontmatter.parse("# nothing\n") == {}


# ---------------------------------------------------------------------------------------------------------------
# Property: generated front matter mixing in-subset and out-of-subset pieces

TOKENS = [
    "a", "codex", "main", "make test", "ruff check .", "setup-db", "x_y", "/usr/bin", "~/x", "Ünï", "🙂",
    "yes", "No", "ON", "off", "y", "n", "Y", "true", "False", "TRUE", "yES",
    "~", "null", "Null", "NULL", "", " ",
    "0", "-0", "7", "-12", "+1", "012", "09", "0o7", "0x1F", "0b101", "1_0", "1_000", "1e3", "1.5", ".5",
    ".inf", "-.inf", ".NaN", "2001-12-14", "2001-12-14 21:59:43.10 -5", "1:30", "190:20:30",
    "a: b", "a:", "a:b", ":a", "#x", " #x", "a#b", "a #b", "- a", "-a", "? a", "?a", "=", "<<",
    "'", '"', "''", "'q'", '"q"', "'it''s'", '"a\\nb"', "'a # b'", "[a]", "[]", "[a, b]", "{a: b}", "{}",
    "&x", "*x", "!x", "!!str", "|", ">", "@x", "`x`", "%x", ",", "[", "]", "{", "}", "\t", "\\",
    "a b", "a  b", "a, b", "a ,b", "a - b", "a ? b", "a & b", "a'b", 'a"b', "é", "١٢", "²", "1__", "\u2028", "\x85", "\ufeff",
]  # fmt: skip
KEYS = ["agent", "base", "a", "b", "y", "n", "_k", "k-1", "yes", "on", "null", "NULL", "~", "1", "-a", "a b"]
NAMES = st.sampled_from(KEYS[:8])  # keys that are strings

GOOD = ["x", "1", "-12", "0", "no", "Yes", "y", "~", "NULL", "make test", "a:b", "a, b", "/usr/bin", "Ünï", "🙂"]  # fmt: skip


def line_of(key: str, sep: str, value: str, comment: str) -> str:
    return key + sep + value + comment


def list_block(key: str, comment: str, indent: str, items: list[tuple[str, str]]) -> str:
    return key + ":" + comment + "".join(f"\n{indent}- {v}{c}" for v, c in items)


def flow_list1(item: str) -> str:
    return f"[{item}, x]"


def flow_list(items: list[str], sep: str, end: str) -> str:
    return "[" + sep.join(items) + end + "]"


def join_lines(lines: list[str], eol: str, final: bool) -> str:
    return eol.join(lines) + (eol if final else "")


def with_trap(good: list[str], trap: str, where: int) -> list[str]:
    return good[: where % (len(good) + 1)] + [trap] + good[where % (len(good) + 1) :]


# wild pieces: anything goes
tokens = st.one_of(st.sampled_from(TOKENS), st.text(max_size=6))
scalars = st.one_of(
    tokens,
    st.lists(tokens, min_size=1, max_size=3).map("".join),
    tokens.map(lambda t: f"'{t}'"),
    tokens.map(lambda t: f'"{t}"'),
)
flow_lists = st.builds(
    flow_list,
    st.lists(scalars, max_size=4),
    st.sampled_from([", ", ",", " , ", " "]),
    st.sampled_from(["", " ", ","]),
)
values = st.one_of(scalars, flow_lists)
comments = st.sampled_from(["", " # c", "  #c: d", "#c", " #", " # 'x"])
seps = st.sampled_from([": ", ": ", ":", ":  ", " : ", ":\t", "::"])
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=4))
indents = st.sampled_from(["", "  ", "  ", "    ", " ", "\t"])
key_lines = st.builds(line_of, keys, seps, values, comments)
list_blocks = st.builds(
    list_block, keys, comments, indents, st.lists(st.tuples(scalars, comments), min_size=1, max_size=3)
)
other_lines = st.one_of(
    st.sampled_from(
        ["", "# comment", "  # indented comment", "   ", "---", "...", "- x", "  more", "%YAML 1.1"]
    ),
    st.text(max_size=10),
    st.builds(lambda i, v: i + v, indents, values),
)
wild_lines = st.lists(st.one_of(key_lines, key_lines, list_blocks, other_lines), max_size=6)

# in-subset lines (distinct keys g0, g1, ...) with one wild or trap line slipped in, so parse's answer hangs on it
good_scalars = st.one_of(st.sampled_from(GOOD), st.sampled_from(GOOD).map(lambda t: f"'{t}'"))
good_values = st.one_of(
    good_scalars, st.builds(flow_list, st.lists(good_scalars, max_size=3), st.just(", "), st.just(""))
)
good_comments = st.sampled_from(["", "", " # c", "  # c: d"])
good_lines = st.lists(
    st.one_of(
        st.builds(line_of, st.just(""), st.just(": "), good_values, good_comments),
        st.builds(
            list_block,
            st.just(""),
            good_comments,
            st.sampled_from(["", "  "]),
            st.lists(st.tuples(good_scalars, good_comments), min_size=1, max_size=2),
        ),
        st.sampled_from(["", "# c"]),
    ),
    max_size=4,
).map(lambda ls: [f"g{i}{line}" if line and line[0] in ":" else line for i, line in enumerate(ls)])
trap_scalars = st.one_of(tokens, tokens.map(lambda t: f"'{t}'"), tokens.map(lambda t: f'"{t}"'))
trap_keys = st.one_of(NAMES, st.sampled_from(["g0", "g1"]))  # g0, g1: duplicates of the good lines' keys
token_lines = st.builds(line_of, trap_keys, st.just(": "), st.sampled_from(TOKENS), good_comments)
ragged_items = st.lists(
    st.tuples(st.sampled_from(["", "  ", "  ", " "]), st.one_of(trap_scalars, flow_lists), comments),
    min_size=1,
    max_size=3,
)
trap_lines = st.builds(
    lambda indent, line: indent + line,
    st.sampled_from(["", "", "", "", "", "", " ", "  "]),
    st.one_of(
        token_lines,
        token_lines,
        token_lines,
        st.builds(line_of, trap_keys, st.just(": "), trap_scalars, comments),
        st.builds(line_of, trap_keys, st.just(": "), flow_lists, comments),
        st.builds(
            lambda k, c, items: k + ":" + c + "".join(f"\n{i}- {v}{e}" for i, v, e in items),
            trap_keys,
            good_comments,
            ragged_items,
        ),
        key_lines,
        list_blocks,
        other_lines,
    ),
)
trapped_lines = st.builds(with_trap, good_lines, trap_lines, st.integers(0, 5))

documents = st.builds(
    join_lines,
    st.one_of(wild_lines, trapped_lines, trapped_lines),
    st.sampled_from(["\n", "\n", "\r\n"]),
    st.booleans(),
)


@settings(max_examples=2000, deadline=None, database=None)
@given(documents)
def test_parse_agrees_with_yaml_or_declines(text):
    check(text)


@settings(max_examples=1000, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            NAMES,
            st.one_of(
                st.sampled_from(GOOD), st.sampled_from(TOKENS), st.sampled_from(TOKENS).map(flow_list1)
            ),
        ),
        max_size=3,
        unique_by=lambda p: p[0],
    ),
    st.sampled_from(["", " # c", "#c"]),
)
def test_parse_agrees_on_one_line_values(pairs, comment):
    """Short documents of trap tokens among plain values: parse answers often here, so each token is judged."""
    check("".join(f"{k}: {v}{comment}\n" for k, v in pairs))
    check("k:\n" + "".join(f"  - {v}{comment}\n" for _, v in pairs))


def test_the_property_is_not_vacuous():
    answered = [t for t in ACCEPTED if frontmatter.parse(t) is not None]
    assert len(answered) == len(ACCEPTED)
    assert frontmatter.parse("agent: codex\nrounds: 3\nhold: yes\n") == {
        "agent": "codex",
        "rounds": 3,
        "hold": True,
    }


# ---------------------------------------------------------------------------------------------------------------
# Integration with orch.taskfile


def test_front_matter_uses_the_fast_path_with_the_same_result():
    person = f"---\n{TYPICAL}---\n# Title\n"
    assert frontmatter.parse(TYPICAL) is not None
    assert same(taskfile.front_matter(person), yaml.safe_load(TYPICAL))


def test_front_matter_falls_back_to_yaml():
    person = "---\nagent: codex\nextra:\n  nested: 0x10\n---\nbody\n"
    assert taskfile.front_matter(person) == {"agent": "codex", "extra": {"nested": 16}}


def test_front_matter_still_refuses_invalid_yaml():
    with pytest.raises(OrchError, match="not valid YAML"):
        taskfile.front_matter("---\nagent: [codex\n---\nbody\n", "fix.md")
    with pytest.raises(OrchError, match="must be a mapping"):
        taskfile.front_matter("---\n- agent\n---\nbody\n", "fix.md")


def test_typical_front_matter_does_not_import_yaml():
    code = (
        "import sys\n"
        "from orch.taskfile import front_matter\n"
        f"meta = front_matter({'---' + chr(10) + TYPICAL + '---' + chr(10) + 'body' + chr(10)!r})\n"
        "assert meta['rounds'] == 3, meta\n"
        "print('yaml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
