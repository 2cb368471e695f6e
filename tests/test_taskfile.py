"""Task files: the person's text survives byte for byte; orch only ever rewrites its own block."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch import files, taskfile
from orch.errors import OrchError
from orch.taskfile import MARKER, TaskDoc, fenced_blocks, front_matter, one_line, parse, render

PROPS = settings(database=None, deadline=None, max_examples=300)

TRICKY = [
    "```",
    "~~~",
    "## Status",
    "## Summary",
    "\r\n",
    "\n",
    "\r",
    "- ",
    "session: x",
    MARKER,
    "#",
    " ",
    "\x00",
    "é",
]

person_texts = st.one_of(
    st.text(),
    st.text(
        alphabet=st.sampled_from(["\r", "\n", "\x00", "`", "#", "-", ":", " ", "a", "é", "\u2028", "🙂"])
    ),
    st.lists(st.sampled_from(TRICKY), max_size=30).map("".join),
    st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=5)), max_size=20).map("".join),
)
eols = st.sampled_from(["\n", "\r\n"])
single_lines = st.text().map(one_line)
meta_dicts = st.dictionaries(
    st.one_of(st.sampled_from(taskfile.META_KEYS), st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)),
    single_lines,
    max_size=5,
)
summaries = st.lists(single_lines.filter(bool), max_size=6)
statuses = st.lists(single_lines, max_size=6)


def block_of(text: str, person: str) -> str:
    assert text.startswith(person)
    return text[len(person) :]


# ---------------------------------------------------------------------------------------------------------------
# parse / render


@PROPS
@given(person=person_texts, meta=meta_dicts, summary=summaries, status=statuses, eol=eols)
def test_render_then_parse_round_trips(person, meta, summary, status, eol):
    doc = TaskDoc(person=person, meta=meta, summary=summary, status=status, eol=eol)
    back = parse(render(doc))
    assert back.person == person
    assert back.meta == meta
    assert back.summary == summary
    assert back.status == status
    assert back.eol == eol
    assert back.has_block


@PROPS
@given(person=person_texts, entries=st.lists(st.text(), min_size=1, max_size=5), eol=eols)
def test_repeated_rewrites_keep_person_bytes(person, entries, eol):
    original = person.encode("utf-8")
    text = render(TaskDoc(person=person, summary=["state: queued"], eol=eol))
    for n, entry in enumerate(entries):
        doc = parse(text)
        doc.status.append(taskfile.status_line(f"2026-01-0{n % 9 + 1}T00:00:00Z", entry))
        doc.summary = [f"state: step-{n}"]
        text = render(doc)
    final = parse(text)
    assert final.person.encode("utf-8") == original
    assert len(final.status) == len(entries)
    assert final.state == f"step-{len(entries) - 1}"


@PROPS
@given(person=person_texts.filter(lambda p: MARKER not in p))
def test_text_without_marker_is_all_person(person):
    doc = parse(person)
    assert doc.person == person
    assert doc.has_block is False
    assert doc.meta == {} and doc.summary == [] and doc.status == []
    assert doc.state == "queued"


def test_crlf_person_text_gets_a_crlf_block():
    person = "# Fix login\r\n\r\nThe login page 500s.\r\n"
    doc = parse(person)
    assert doc.eol == "\r\n"
    doc.meta["session"] = "task-fix-login"
    doc.summary = ["state: coding"]
    doc.status.append("2026-11-22T10:00:00Z queued")
    text = render(doc)
    block = block_of(text, person)
    assert block.startswith("\r\n" + MARKER + "\r\n")
    assert "\n" not in block.replace("\r\n", "")
    again = parse(text)
    assert again.person == person
    assert again.eol == "\r\n"
    assert again.meta == {"session": "task-fix-login"}
    assert again.status == ["2026-11-22T10:00:00Z queued"]


def test_text_without_trailing_newline_survives():
    person = "no newline at the end"
    text = render(TaskDoc(person=person, summary=["state: queued"]))
    assert parse(text).person == person
    assert text.startswith(person + "\n" + MARKER)


def test_persons_own_status_heading_in_a_fence_is_not_orchs():
    person = "Task\n\n```markdown\n## Status\n- not orch's line\n## Summary\nstate: done\n```\n"
    assert parse(person).has_block is False
    doc = TaskDoc(person=person, summary=["state: coding"], status=["2026-11-22T10:00:00Z queued"])
    back = parse(render(doc))
    assert back.person == person
    assert back.state == "coding"
    assert back.status == ["2026-11-22T10:00:00Z queued"]


def test_copy_of_the_marker_in_person_text_is_kept():
    person = f"before\n{MARKER}\nsession: task-fake\n\n## Status\n- fake\n"
    back = parse(render(TaskDoc(person=person, status=["real"])))
    assert back.person == person
    assert back.status == ["real"]
    assert back.meta == {}


def test_summary_line_that_is_a_copy_of_the_marker_does_not_swallow_the_block():
    doc = TaskDoc(person="p", summary=["state: coding", one_line(MARKER)], status=["x"])
    back = parse(render(doc))
    assert back.person == "p"
    assert back.state == "coding"
    assert back.status == ["x"]


def test_multi_line_meta_value_cannot_forge_block_lines():
    doc = TaskDoc(person="p", meta={"worktree": "/a\nbranch: evil\n## Status\n- forged"}, status=["x"])
    back = parse(render(doc))
    assert back.person == "p"
    assert set(back.meta) == {"worktree"}
    assert back.status == ["x"]


def test_summary_heading_lines_are_escaped_not_taken_as_sections():
    doc = TaskDoc(person="p", summary=["state: coding", "## Status"], status=["one"])
    back = parse(render(doc))
    assert back.status == ["one"]
    assert back.summary == ["state: coding", "\\## Status"]


def test_one_line_flattens_and_escapes_headings():
    assert one_line("  a\r\nb\rc\n\n d  ") == "a b c d"
    assert one_line("## Status") == "\\## Status"
    assert one_line("\n\n") == ""


def test_summary_field_and_state():
    doc = TaskDoc(person="", summary=["state: coding", "question: which db?"])
    assert doc.state == "coding"
    assert doc.summary_field("question") == "which db?"
    assert doc.summary_field("missing") is None
    assert TaskDoc(person="", summary=["state:"]).state == "queued"


# ---------------------------------------------------------------------------------------------------------------
# decode / files


def test_decode_refuses_invalid_utf8():
    with pytest.raises(OrchError, match="UTF-8") as info:
        taskfile.decode(b"caf\xe9\n", "fix.md")
    assert "fix.md" in str(info.value)
    assert taskfile.decode("café".encode(), "fix.md") == "café"


def test_update_does_not_touch_an_invalid_utf8_file(tmp_path):
    path = tmp_path / "t.md"
    data = b"latin-1 text: caf\xe9\n"
    path.write_bytes(data)
    calls = []
    with pytest.raises(OrchError, match="UTF-8"):
        taskfile.update(str(path), lambda doc: calls.append(doc) or True)
    assert calls == []
    assert path.read_bytes() == data


def test_atomic_write_writes_and_is_never_world_writable(tmp_path):
    path = tmp_path / "t.md"
    files.atomic_write(str(path), b"hello", mode=0o666)
    assert path.read_bytes() == b"hello"
    assert os.stat(path).st_mode & 0o002 == 0
    assert os.listdir(tmp_path) == ["t.md"]


def test_atomic_write_keeps_the_existing_mode(tmp_path):
    path = tmp_path / "t.md"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    files.atomic_write(str(path), b"new")
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o7777 == 0o600
    assert os.listdir(tmp_path) == ["t.md"]


def test_atomic_write_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "t.md"
    path.write_bytes(b"old")

    def boom(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "write", boom)
    with pytest.raises(OSError):
        files.atomic_write(str(path), b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["t.md"]


PERSON = "---\nagent: claude\n---\n# Add search\n\nSearch box on the home page.\n"


def _add_status(text):
    def change(doc):
        doc.status.append(text)
        return True

    return change


def test_update_changes_only_orchs_block(tmp_path):
    path = tmp_path / "t.md"
    path.write_bytes(render(TaskDoc(person=PERSON, summary=["state: queued"], status=["s0"])).encode())

    def change(doc):
        doc.summary = ["state: coding"]
        doc.meta["session"] = "task-t"
        doc.status.append("s1")
        return True

    written = taskfile.update(str(path), change)
    assert written is not None
    data = path.read_bytes()
    assert data.startswith(PERSON.encode())
    doc = parse(data.decode())
    assert doc.person == PERSON
    assert doc.state == "coding"
    assert doc.meta == {"session": "task-t"}
    assert doc.status == ["s0", "s1"]


def test_update_on_a_crlf_file_without_block(tmp_path):
    path = tmp_path / "t.md"
    person = "# Title\r\n\r\nbody without final newline"
    path.write_bytes(person.encode())
    taskfile.update(str(path), _add_status("queued"))
    text = path.read_bytes().decode()
    block = block_of(text, person)
    assert "\n" not in block.replace("\r\n", "")
    assert parse(text).status == ["queued"]


def test_update_writes_nothing_when_change_returns_false(tmp_path):
    path = tmp_path / "t.md"
    path.write_bytes(PERSON.encode())
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = os.stat(path)

    def change(doc):
        doc.status.append("ignored")
        return False

    assert taskfile.update(str(path), change) is None
    after = os.stat(path)
    assert path.read_bytes() == PERSON.encode()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert os.listdir(tmp_path) == ["t.md"]


def test_update_appends_status_lines_in_order(tmp_path):
    path = tmp_path / "t.md"
    path.write_bytes(PERSON.encode())
    for entry in ["one", "two", "three"]:
        taskfile.update(str(path), _add_status(entry))
    doc = parse(path.read_bytes().decode())
    assert doc.status == ["one", "two", "three"]
    assert doc.person == PERSON
    assert os.listdir(tmp_path) == ["t.md"]


def test_update_redoes_the_change_when_the_person_saves_meanwhile(tmp_path):
    path = tmp_path / "t.md"
    path.write_bytes(render(TaskDoc(person=PERSON, status=["s0"])).encode())
    edited = PERSON + "\nOne more requirement, added while orch was busy.\n"
    calls = []

    def change(doc):
        calls.append(doc.person)
        if len(calls) == 1:  # the person saves the file between orch's read and orch's write
            on_disk = parse(path.read_bytes().decode())
            on_disk.person = edited
            path.write_bytes(render(on_disk).encode())
        doc.status.append("s1")
        return True

    written = taskfile.update(str(path), change)
    assert calls == [PERSON, edited]
    assert written is not None and written.person == edited
    doc = parse(path.read_bytes().decode())
    assert doc.person == edited
    assert doc.status == ["s0", "s1"]


def test_update_gives_up_when_the_file_keeps_changing(tmp_path):
    path = tmp_path / "t.md"
    path.write_bytes(b"start\n")
    calls = []

    def change(doc):
        calls.append(1)
        path.write_bytes(f"edit {len(calls)}\n".encode())
        doc.status.append("x")
        return True

    with pytest.raises(OrchError, match="kept changing"):
        taskfile.update(str(path), change, attempts=3)
    assert len(calls) == 3
    assert path.read_bytes() == b"edit 3\n"


def add_status(text):
    def change(doc):
        doc.status.append(text)
        return True
    return change


def test_a_kept_file_whose_replacement_was_killed_is_not_a_late_save(tmp_path):
    """A write killed between keeping the old file and replacing it leaves a link to the live file: the person's
    in-place saves to it are theirs (read by the next write), not late saves that would undo their later ones."""
    path, keep = tmp_path / "t.md", str(tmp_path / "keep")
    path.write_text("Words.\n")

    taskfile.update(str(path), add_status("s0"), keep=keep)
    killed = files.write_tmp(str(path), b"orch's next copy")
    files.keep_replaced(str(path), keep, killed)  # the next write, killed before its replace
    with open(path, "r+", encoding="utf-8") as fh:  # an in-place save to the live file
        person, sep, block = fh.read().partition(MARKER)
        fh.seek(0)
        fh.truncate()
        fh.write(person + "Line 1.\n\n" + sep + block)
    assert files.late_writes(keep, str(path)) == []
    taskfile.update(str(path), add_status("s1"), keep=keep)  # reads the save, replaces the file
    assert files.late_writes(keep, str(path)) == []
    person, sep, block = path.read_text().partition(MARKER)
    tmp = tmp_path / ".t.md.swp"
    tmp.write_text(person + "Line 2.\n\n" + sep + block)
    os.replace(tmp, path)  # a later save by rename
    assert files.late_writes(keep, str(path)) == []
    assert "Line 1." in parse(path.read_text()).person and "Line 2." in parse(path.read_text()).person


def test_a_file_kept_by_a_killed_write_and_replaced_by_the_person_is_not_a_late_save(tmp_path):
    path, keep = tmp_path / "t.md", str(tmp_path / "keep")
    path.write_text("Words.\n")

    taskfile.update(str(path), add_status("s0"), keep=keep)
    killed = files.write_tmp(str(path), b"orch's next copy")
    files.keep_replaced(str(path), keep, killed)  # a write killed before its replace
    person, sep, block = path.read_text().partition(MARKER)
    with open(path, "r+", encoding="utf-8") as fh:  # an in-place save to the live file
        fh.truncate()
        fh.write(person + "Line 1.\n\n" + sep + block)
    tmp = tmp_path / ".t.md.swp"
    tmp.write_text(person + "Line 1.\n\nLine 2.\n\n" + sep + block)
    os.replace(tmp, path)  # then a save by rename, before orch's next write
    taskfile.update(str(path), add_status("s1"), keep=keep)  # orch writes again: the killed write's link is not kept
    assert files.late_writes(keep, str(path)) == []
    assert not os.path.exists(killed)
    assert parse(path.read_text()).person.endswith("Line 1.\n\nLine 2.\n")
    assert parse(path.read_text()).status[-1].endswith("s1")


def test_a_link_kept_by_a_killed_write_does_not_stop_keeping(tmp_path):
    path, keep = tmp_path / "t.md", tmp_path / "keep"
    path.write_text("Words.\n")
    keep.mkdir()
    os.link(path, keep / "1")  # linked, index never written
    files.keep_replaced(str(path), str(keep), files.write_tmp(str(path), b"orch's copy"))
    assert sorted(os.listdir(keep)) == ["2", "index"]
    assert os.path.samefile(keep / "2", path)


# ---------------------------------------------------------------------------------------------------------------
# front matter


def test_front_matter_fields():
    person = "---\nagent: codex\nbase: develop\ndepends_on:\n  - fix-login\n  - db.v2\n---\n# Body\n"
    assert front_matter(person) == {"agent": "codex", "base": "develop", "depends_on": ["fix-login", "db.v2"]}


def test_front_matter_with_crlf():
    assert front_matter("---\r\nagent: codex\r\n---\r\nbody\r\n") == {"agent": "codex"}


@pytest.mark.parametrize("person", ["", "# Title\n\nagent: x\n", "text\n---\nagent: x\n---\n", "----x\n"])
def test_no_front_matter_is_empty(person):
    assert front_matter(person) == {}


@pytest.mark.parametrize(
    "person",
    ["---\nagent: [unclosed\n---\nbody\n", "---\nagent: x\n\tbase: y\n---\n", "---\na: b: c\n---\n"],
)
def test_invalid_front_matter_is_one_line_error(person):
    with pytest.raises(OrchError) as info:
        front_matter(person, "fix.md")
    message = str(info.value)
    assert message.startswith("fix.md: front matter is not valid YAML")
    assert "\n" not in message and "\r" not in message


def test_front_matter_that_is_not_a_mapping_is_refused():
    with pytest.raises(OrchError, match="mapping"):
        front_matter("---\n- agent\n- base\n---\nbody\n", "fix.md")


def test_body_without_front_matter():
    assert taskfile.body_without_front_matter(PERSON) == "# Add search\n\nSearch box on the home page.\n"
    assert taskfile.body_without_front_matter("plain\n") == "plain\n"


# ---------------------------------------------------------------------------------------------------------------
# fenced blocks


def test_fenced_blocks_picks_the_info_string():
    text = "intro\n```scripted\nsay hi\nwait\n```\n```python\nprint(1)\n```\n``` scripted extra words\nexit 0\n```\n"
    assert fenced_blocks(text, "scripted") == ["say hi\nwait", "exit 0"]
    assert fenced_blocks(text, "python") == ["print(1)"]


def test_fenced_blocks_ignores_other_and_similar_info_strings():
    text = "```scriptedx\na\n```\n```\nb\n```\n~~~sh\nc\n~~~\n"
    assert fenced_blocks(text, "scripted") == []


def test_fenced_blocks_tilde_fences():
    assert fenced_blocks("~~~scripted\nrun ls\n~~~\n", "scripted") == ["run ls"]


def test_fenced_blocks_longer_fence_contains_shorter_one():
    text = "````scripted\n```\ninner\n```\n````\n"
    assert fenced_blocks(text, "scripted") == ["```\ninner\n```"]


def test_fenced_blocks_closing_fence_may_be_longer_but_not_another_char():
    assert fenced_blocks("```scripted\na\n~~~\nb\n`````\n", "scripted") == ["a\n~~~\nb"]


def test_fenced_blocks_nested_different_fences():
    outer_tilde = "~~~scripted\n```python\nx = 1\n```\n~~~\n"
    assert fenced_blocks(outer_tilde, "scripted") == ["```python\nx = 1\n```"]
    inside_other = "```markdown\n~~~scripted\nnot this\n~~~\n```\n~~~scripted\nthis\n~~~\n"
    assert fenced_blocks(inside_other, "scripted") == ["this"]


def test_fenced_blocks_crlf():
    assert fenced_blocks("```scripted\r\nsay a\r\nsay b\r\n```\r\n", "scripted") == ["say a\nsay b"]


@PROPS
@given(person=person_texts, summary=summaries, state=st.sampled_from(["", "reviewing", "blocked"]), eol=eols)
def test_the_hot_paths_state_reader_agrees_with_the_parser(person, summary, state, eol):
    from orch.blockmarks import state_in

    lines = ([f"state: {state}"] if state else []) + summary
    text = taskfile.render(TaskDoc(person=person, summary=lines, eol=eol, has_block=True))
    assert state_in(text) == taskfile.parse(text).state


def test_a_save_between_orch_s_read_and_its_replace_is_a_late_save(tmp_path):
    """The person saves after orch read the file and before orch keeps and replaces it: what they wrote is in the
    replaced copy only, so it is a late save (judged against the file as orch read it, not as it was kept)."""
    path, keep = tmp_path / "t.md", str(tmp_path / "keep")
    path.write_text("Words.\n")
    os.utime(path, ns=(10**18, 10**18))  # (an earlier time than any save below: no waiting for the clock)
    st = os.stat(path)
    seen = (st.st_mtime_ns, st.st_size)  # orch has read it
    with open(path, "a", encoding="utf-8") as fh:  # the person's in-place save lands now
        fh.write("A late line.\n")
    new = files.write_tmp(str(path), b"orch's copy, made from what it read\n")
    mark = taskfile.person_mark("Words.\n")
    files.keep_replaced(str(path), keep, new, mark, b"Words.\n", seen=seen)
    files.replace(new, str(path))
    (found,) = files.late_writes(keep, str(path))
    assert found[1] == b"Words.\nA late line.\n" and found[2] == mark
    assert files.kept_base(keep, mark) == b"Words.\n"
    files.drop_kept(found[0])
    assert files.late_writes(keep, str(path)) == []
    again = files.write_tmp(str(path), b"another copy\n")  # the next write: the base no link needs goes
    other = taskfile.person_mark("Other.\n")
    files.keep_replaced(str(path), keep, again, other, b"Other.\n")
    files.replace(again, str(path))
    assert files.kept_base(keep, mark) is None and files.kept_base(keep, other) == b"Other.\n"
    with open(os.path.join(keep, other + files.BASE), "wb") as fh:  # a base cut short (a full disk, a kill)
        fh.write(b"Oth")
    assert files.kept_base(keep, other) is None  # not merged on: the late save is kept aside instead


def test_three_way_merge_of_a_late_save() -> None:
    from orch import git

    base = "Task.\n\nKeep this.\n"
    assert git.merge_text(base + "Live note.\n", base, base + "Late note.\n") == base + "Late note.\nLive note.\n"
    assert git.merge_text("Task, live.\n\nKeep this.\n", base, base + "Late.\n") == "Task, live.\n\nKeep this.\nLate.\n"
    assert git.merge_text("Task, live.\n\nKeep this.\n", base, "Task, late.\n\nKeep this.\n") is None
    odd = "<<<<<<< not a marker\n=======\n>>>>>>> either\n"  # a person's own lines that look like markers
    assert git.merge_text(base + odd + "Live.\n", base + odd, base + odd + "Late.\n") == base + odd + "Late.\nLive.\n"
    # a line both added (the late save was also taken up by a later write) is kept once
    both = base + "Note 6.\n"
    assert git.merge_text(both + "Note 10.\n", base, both) == both + "Note 10.\n"
