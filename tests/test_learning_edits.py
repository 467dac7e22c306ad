"""Edits to a skill's files: both request formats, exact and normalised matching, failures."""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

import pytest

from skills_hub.errors import BadRequest, EditFailed
from skills_hub.learning.edits import (
    MAX_EDITS,
    MAX_TEXT_CHARS,
    MAX_TOTAL_CHARS,
    Edit,
    apply_edits,
    parse_edits,
)

SKILL = "---\nname: demo\ndescription: A demo skill.\n---\n# Demo\n\nStep one.\nStep two.\n"
GUIDE = "# Guide\n\nUse the API.\n"


def skill_files(skill: str = SKILL, extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """SKILL.md, references/guide.md and any extra files."""
    return {"SKILL.md": skill.encode(), "references/guide.md": GUIDE.encode(), **(extra or {})}


def edit(raw: list[Any], files: dict[str, bytes] | None = None,
         skill_name: str | None = None) -> dict[str, bytes]:
    """Parse and apply raw edits to files (default: skill_files())."""
    return apply_edits(skill_files() if files is None else files,
                       parse_edits(raw, skill_name=skill_name))


def failure(raw: list[Any], files: dict[str, bytes]) -> dict[str, Any]:
    """The body of the EditFailed that applying raw to files raises."""
    with pytest.raises(EditFailed) as info:
        edit(raw, files)
    assert info.value.status == 422 and info.value.code == "edit_failed"
    return info.value.to_dict()


# --- both formats, every op ------------------------------------------------------------------

OPS_TABLE = [
    pytest.param({"op": "replace", "target": "Step one.", "content": "Step 1."},
                 "SKILL.md", SKILL.replace("Step one.", "Step 1."), id="native-replace"),
    pytest.param({"old_string": "Step one.", "new_string": "Step 1."},
                 "SKILL.md", SKILL.replace("Step one.", "Step 1."), id="hermes-replace"),
    pytest.param({"op": "insert_after", "target": "Step one.\n", "content": "Step 1.5.\n"},
                 "SKILL.md", SKILL.replace("one.\n", "one.\nStep 1.5.\n"), id="native-insert"),
    pytest.param({"op": "append", "content": "Step three.\n"},
                 "SKILL.md", SKILL + "Step three.\n", id="native-append"),
    pytest.param({"op": "append", "target": None, "content": "x\n", "file": "references/guide.md"},
                 "references/guide.md", GUIDE + "x\n", id="native-append-null-target"),
    pytest.param({"op": "delete", "target": "Step two.\n"},
                 "SKILL.md", SKILL.replace("Step two.\n", ""), id="native-delete"),
    pytest.param({"old_string": "Step two.\n", "new_string": ""},
                 "SKILL.md", SKILL.replace("Step two.\n", ""), id="hermes-delete"),
    pytest.param({"op": "replace", "target": "API", "content": "CLI",
                  "file": "references/guide.md"},
                 "references/guide.md", GUIDE.replace("API", "CLI"), id="native-file"),
    pytest.param({"old_string": "API", "new_string": "CLI", "file_path": "references/guide.md"},
                 "references/guide.md", GUIDE.replace("API", "CLI"), id="hermes-file_path"),
    pytest.param({"old_string": "Demo\n", "new_string": "Demo!\n", "file_path": "demo/SKILL.md"},
                 "SKILL.md", SKILL.replace("Demo\n", "Demo!\n"), id="hermes-skill-name-path"),
    pytest.param({"old_string": "Demo\n", "new_string": "Demo!\n", "file_path": "./SKILL.md"},
                 "SKILL.md", SKILL.replace("Demo\n", "Demo!\n"), id="hermes-dot-path"),
    pytest.param({"old_string": "Demo\n", "new_string": "Demo!\n", "file_path": None},
                 "SKILL.md", SKILL.replace("Demo\n", "Demo!\n"), id="hermes-null-path"),
    pytest.param({"op": "replace", "target": "Demo\n", "content": "Demo!\n", "file": ""},
                 "SKILL.md", SKILL.replace("Demo\n", "Demo!\n"), id="native-empty-path"),
    pytest.param({"op": "replace", "target": "Step one.\n", "content": ""},
                 "SKILL.md", SKILL.replace("Step one.\n", ""), id="native-replace-empty"),
]


@pytest.mark.parametrize(("raw", "path", "expected"), OPS_TABLE)
def test_each_op_in_both_formats(raw: dict[str, Any], path: str, expected: str) -> None:
    files = skill_files()
    result = edit([raw], files, skill_name="demo")
    assert result[path].decode() == expected
    assert {p: d for p, d in result.items() if p != path} == {
        p: d for p, d in files.items() if p != path}


PARSE_TABLE = [
    pytest.param({"op": "replace", "target": "a", "content": "b"},
                 Edit("replace", "a", "b", "SKILL.md", False, 0), id="native"),
    pytest.param({"op": "insert_after", "target": "a", "content": "b", "replace_all": True,
                  "file": "scripts/run.sh"},
                 Edit("insert_after", "a", "b", "scripts/run.sh", True, 0), id="native-all"),
    pytest.param({"op": "append", "content": "b", "target": ""},
                 Edit("append", None, "b", "SKILL.md", False, 0), id="append-empty-target"),
    pytest.param({"op": "delete", "target": "a", "content": None},
                 Edit("delete", "a", "", "SKILL.md", False, 0), id="delete-null-content"),
    pytest.param({"old_string": "a", "new_string": "b", "replace_all": True,
                  "file_path": "references/x.md"},
                 Edit("replace", "a", "b", "references/x.md", True, 0), id="hermes"),
    pytest.param({"old_string": "a", "new_string": ""},
                 Edit("delete", "a", "", "SKILL.md", False, 0), id="hermes-empty-is-delete"),
    pytest.param({"old_string": "a", "new_string": "b", "replace_all": None},
                 Edit("replace", "a", "b", "SKILL.md", False, 0), id="hermes-null-flag"),
]


@pytest.mark.parametrize(("raw", "expected"), PARSE_TABLE)
def test_parse_both_formats(raw: dict[str, Any], expected: Edit) -> None:
    assert parse_edits([raw]) == [expected]


def test_parse_keeps_order_and_index_in_a_mixed_list() -> None:
    edits = parse_edits([{"op": "append", "content": "x"},
                         {"old_string": "a", "new_string": "b"},
                         {"op": "delete", "target": "c"}])
    assert [(e.index, e.op) for e in edits] == [(0, "append"), (1, "replace"), (2, "delete")]
    assert edits[1].label == "edit 1 (replace in SKILL.md)"


def test_skill_name_path_is_only_skill_md_for_that_name() -> None:
    raw = [{"old_string": "a", "new_string": "b", "file_path": "other/SKILL.md"}]
    assert parse_edits(raw, skill_name="demo")[0].path == "other/SKILL.md"
    assert parse_edits(raw, skill_name="other")[0].path == "SKILL.md"
    assert parse_edits(raw)[0].path == "other/SKILL.md"


def test_append_creates_a_missing_file_and_adds_a_break_when_needed() -> None:
    files = skill_files(extra={"references/notes.md": b"no break at end"})
    result = edit([{"op": "append", "content": "new\n", "file": "references/new.md"},
                   {"op": "append", "content": "more", "file": "references/notes.md"}], files)
    assert result["references/new.md"] == b"new\n"
    assert result["references/notes.md"] == b"no break at end\nmore"


def test_non_ascii_text_round_trips() -> None:
    files = skill_files("# Café ☕\n\nÜber naïve résumé.\n")
    result = edit([{"old_string": "☕", "new_string": "🍵"}], files)
    assert result["SKILL.md"].decode() == "# Café 🍵\n\nÜber naïve résumé.\n"


def test_edit_refuses_direct_construction_without_a_target() -> None:
    with pytest.raises(ValueError, match="needs a non-empty target"):
        Edit("replace", "", "x")
    with pytest.raises(ValueError, match="unknown op"):
        Edit("rename", "a", "b")
    assert Edit("append", None, "x").target is None


# --- exact and normalised matching -----------------------------------------------------------

MATCH_TABLE = [
    pytest.param("a\r\nold line\r\nb\r\n", "old line\nb\n", "new line\nb\n",
                 "a\r\nnew line\r\nb\r\n", id="crlf-file-lf-target"),
    pytest.param("a\nold line\nb\n", "old line\r\nb\r\n", "new line\r\nb\r\n",
                 "a\nnew line\nb\n", id="lf-file-crlf-target"),
    pytest.param("a\rold\rb\r", "old\nb", "new\nb", "a\rnew\nb\r", id="lone-cr-file"),
    pytest.param("x   \ny\t\nz\n", "x\ny\n", "X\nY\n", "X\nY\nz\n", id="trailing-spaces-in-file"),
    pytest.param("Step one.\nStep two.\n", "Step one.   ", "Step 1.", "Step 1.\nStep two.\n",
                 id="trailing-spaces-in-target"),
    pytest.param("run  --fast\t--quiet now\n", "run --fast --quiet", "run --slow",
                 "run --slow now\n", id="runs-inside-a-line"),
    pytest.param("a\tb\n", "a  b", "a-b", "a-b\n", id="tab-vs-spaces-inside"),
    pytest.param("    - item one\n    - item two\n", "- item one\n- item two", "- item 1\n- item 2",
                 "    - item 1\n    - item 2\n", id="indentation-dropped-in-target"),
    pytest.param("\tif x:\n\t\treturn 1\n", "  if x:\n    return 1\n", "  if y:\n    return 2\n",
                 "\tif y:\n\t\treturn 2\n", id="tabs-vs-spaces-indentation"),
    pytest.param("    def foo():\n        return   1  \n", "def foo():\n  return 1",
                 "def bar():\n  if x:\n    return 2", "    def bar():\n        if x:\n"
                 "          return 2  \n", id="nested-indentation-kept"),
    pytest.param("  keep\n  x = 1\n", "x  =  1", "x = 2", "  keep\n  x = 2\n",
                 id="mid-line-start-keeps-indentation"),
    pytest.param("foo  bar\nfoo bar\n", "foo bar", "baz", "foo  bar\nbaz\n",
                 id="exact-wins-over-normalised"),
]


@pytest.mark.parametrize(("text", "target", "content", "expected"), MATCH_TABLE)
def test_exact_and_normalised_replace(text: str, target: str, content: str,
                                      expected: str) -> None:
    files = skill_files(text)
    raw = [{"op": "replace", "target": target, "content": content}]
    assert edit(raw, files)["SKILL.md"].decode() == expected


INSERT_TABLE = [
    pytest.param("  a:\n    b\nc\n", "a:\n  b\n", "  d\n", "  a:\n    b\n    d\nc\n",
                 id="reindented-after-a-block"),
    pytest.param("a\r\nb\r\n", "a\n", "x\ny\n", "a\r\nx\r\ny\r\nb\r\n", id="crlf-content"),
    pytest.param("title: x\n", "title:", " (draft)", "title: (draft) x\n", id="mid-line-exact"),
]


@pytest.mark.parametrize(("text", "target", "content", "expected"), INSERT_TABLE)
def test_insert_after(text: str, target: str, content: str, expected: str) -> None:
    raw = [{"op": "insert_after", "target": target, "content": content}]
    assert edit(raw, skill_files(text))["SKILL.md"].decode() == expected


def test_only_the_matched_span_changes() -> None:
    text = "keep   this  \n\tfirst   line \n\tsecond\tline\t\nkeep\ttoo  \n"
    raw = [{"op": "delete", "target": "first line\nsecond line"}]
    assert edit(raw, skill_files(text))["SKILL.md"].decode() == (
        "keep   this  \n\t\t\nkeep\ttoo  \n")


def test_content_takes_the_file_line_endings_on_exact_matches() -> None:
    files = skill_files("a\r\nb\r\n")
    raw = [{"op": "replace", "target": "b", "content": "b\nc"}]
    assert edit(raw, files)["SKILL.md"] == b"a\r\nb\r\nc\r\n"


@pytest.mark.parametrize(("text", "target"), [
    pytest.param("max = 1\n", "  x = 1", id="leading-blank-needs-a-boundary"),
    pytest.param("x = 10\n", "x = 1  ", id="trailing-blank-needs-a-boundary"),
    pytest.param("a\n\nb\n", " \n \n", id="blank-lines-only"),
    pytest.param("ab\n", "a b", id="no-blank-is-not-a-blank"),
])
def test_normalised_matching_keeps_word_boundaries(text: str, target: str) -> None:
    body = failure([{"op": "replace", "target": target, "content": "z"}], skill_files(text))
    assert body["reason"] == "missing"


# --- failures ---------------------------------------------------------------------------------


def test_missing_target_names_the_nearest_text() -> None:
    body = failure([{"op": "insert_after", "target": "Step 1!\nStep 2!", "content": "x"},
                    ], skill_files())
    ratio = SequenceMatcher(None, "Step one.\nStep two.", "Step 1!\nStep 2!",
                            autojunk=False).ratio()
    assert body == {
        "code": "edit_failed",
        "message": "edit 0 (insert_after in SKILL.md): the target text is not in the file; "
                   f"the nearest text starts at line 7 ({round(ratio, 3):.0%} similar)",
        "edit": 0, "op": "insert_after", "path": "SKILL.md", "reason": "missing",
        "nearest": {"line": 7, "text": "Step one.\nStep two.", "ratio": round(ratio, 3)},
        "hint": body["hint"],
    }
    assert "Copy the target exactly" in body["hint"]


def test_nearest_ignores_blank_differences_and_keeps_the_original_text() -> None:
    text = "# T\n\nalpha\n    beta   gamma\ndelta\n"
    body = failure([{"old_string": "beta gamma!", "new_string": "x"}], skill_files(text))
    assert body["nearest"] == {"line": 4, "text": "    beta   gamma",
                               "ratio": round(SequenceMatcher(None, "beta gamma",
                                                              "beta gamma!").ratio(), 3)}


LONG = "".join(f"entry {i}: value {i * 7}\n" for i in range(3000))


@pytest.mark.parametrize(("target", "line"), [
    pytest.param("".join(f"entry {i}: value {i * 7}\n" for i in range(1500, 1520)).replace(
        "entry 1510: value 10570", "entry 1510: value 1"), 1501, id="one-line-changed"),
    pytest.param("".join(f"entyr {i}: valeu {i * 7}\n" for i in range(300, 311)), 301,
                 id="typo-on-every-line"),
    pytest.param("entry 2999: value 20993!", 3000, id="last-line"),
])
def test_nearest_in_a_long_file(target: str, line: int) -> None:
    body = failure([{"old_string": target, "new_string": "x"}], skill_files(LONG))
    size = target.strip("\n").count("\n") + 1
    expected = "".join(LONG.splitlines(keepends=True)[line - 1:line - 1 + size]).strip("\n")
    assert (body["nearest"]["line"], body["nearest"]["text"]) == (line, expected)
    assert 0.8 < body["nearest"]["ratio"] < 1


def test_missing_in_an_empty_file_has_no_nearest_text() -> None:
    body = failure([{"old_string": "x", "new_string": "y"}], skill_files(""))
    assert body["nearest"] is None
    assert body["message"] == "edit 0 (replace in SKILL.md): the target text is not in the file"


@pytest.mark.parametrize(("text", "target", "lines", "how"), [
    pytest.param("- [ ] a\n- [ ] b\nx\n- [ ] c\n", "- [ ]", [1, 2, 4], "exact", id="exact"),
    pytest.param("  todo\nx\n\ttodo  \n", "todo", [1, 3], "exact", id="exact-substring"),
    pytest.param("  todo  \nx\n\ttodo\t\n", "todo \n", [1, 3], "normalised",
                 id="normalised-lines"),
    pytest.param("a  b\nx\na\tb\n", "a b", [1, 3], "normalised", id="normalised"),
])
def test_ambiguous_target_lists_every_match(text: str, target: str, lines: list[int],
                                            how: str) -> None:
    body = failure([{"op": "append", "content": "x"},
                    {"op": "delete", "target": target}], skill_files(text))
    assert body["message"] == (f"edit 1 (delete in SKILL.md): the target text occurs "
                               f"{len(lines)} times (lines {', '.join(map(str, lines))})")
    assert (body["edit"], body["reason"], body["lines"], body["match"]) == (
        1, "ambiguous", lines, how)
    assert "replace_all" in body["hint"]


def test_no_such_file() -> None:
    body = failure([{"old_string": "a", "new_string": "b", "file_path": "references/nope.md"}],
                   skill_files())
    assert body["message"] == "edit 0 (replace in references/nope.md): the skill has no such file"
    assert (body["reason"], body["files"]) == ("no_file", ["SKILL.md", "references/guide.md"])


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00", b"caf\xe9\n"])
def test_binary_file_is_refused(data: bytes) -> None:
    files = skill_files(extra={"assets/x.bin": data})
    for raw in ({"op": "replace", "target": "a", "content": "b", "file": "assets/x.bin"},
                {"op": "append", "content": "b", "file": "assets/x.bin"}):
        body = failure([raw], files)
        assert (body["reason"], body["path"]) == ("binary", "assets/x.bin")


# --- replace_all and sequences ----------------------------------------------------------------

REPLACE_ALL_TABLE = [
    pytest.param({"op": "replace", "target": "v1", "content": "v2", "replace_all": True},
                 "use v1\nv1 again\nv1\n", "use v2\nv2 again\nv2\n", id="native-replace"),
    pytest.param({"old_string": "v1", "new_string": "v2", "replace_all": True},
                 "use v1\nv1 again\nv1\n", "use v2\nv2 again\nv2\n", id="hermes-replace"),
    pytest.param({"old_string": "v1 ", "new_string": "", "replace_all": True},
                 "v1 a v1 b\n", "a b\n", id="hermes-delete"),
    pytest.param({"op": "insert_after", "target": "- [ ]", "content": " todo",
                  "replace_all": True}, "- [ ] a\n- [ ] b\n", "- [ ] todo a\n- [ ] todo b\n",
                 id="insert_after"),
    pytest.param({"op": "replace", "target": "aa", "content": "b", "replace_all": True},
                 "aaaaa\n", "bba\n", id="non-overlapping"),
    pytest.param({"op": "replace", "target": "x = 1", "content": "x = 2", "replace_all": True},
                 "  x  =  1\n\tx\t= 1\n", "  x = 2\n\tx = 2\n", id="normalised"),
    pytest.param({"op": "replace", "target": "once", "content": "twice", "replace_all": True},
                 "only once\n", "only twice\n", id="single-match"),
]


@pytest.mark.parametrize(("raw", "text", "expected"), REPLACE_ALL_TABLE)
def test_replace_all(raw: dict[str, Any], text: str, expected: str) -> None:
    assert edit([raw], skill_files(text))["SKILL.md"].decode() == expected


def test_later_edits_see_the_earlier_ones() -> None:
    raw = [
        {"op": "insert_after", "target": "Step two.\n", "content": "Step three.\n"},
        {"old_string": "Step three.", "new_string": "Step 3 (new)."},
        {"op": "append", "content": "# Notes\n", "file": "references/notes.md"},
        {"op": "insert_after", "target": "# Notes\n", "content": "- from the agent\n",
         "file": "references/notes.md"},
        {"op": "delete", "target": "Step one.\n"},
    ]
    result = edit(raw)
    assert result["SKILL.md"].decode() == SKILL.replace(
        "Step one.\nStep two.\n", "Step two.\nStep 3 (new).\n")
    assert result["references/notes.md"] == b"# Notes\n- from the agent\n"


def test_a_later_failure_applies_nothing_and_mutates_nothing() -> None:
    files = skill_files()
    before = dict(files)
    raw = [{"op": "replace", "target": "Step one.", "content": "Step 1."},
           {"op": "append", "content": "x", "file": "references/new.md"},
           {"op": "replace", "target": "Step one.", "content": "again"}]
    body = failure(raw, files)
    assert (body["edit"], body["reason"]) == (2, "missing")
    assert files == before


def test_success_returns_a_new_mapping_and_keeps_the_input() -> None:
    files = skill_files(extra={"assets/logo.png": b"\x89PNG\x00"})
    before = dict(files)
    result = edit([{"op": "replace", "target": "Step one.", "content": "Step 1."}], files)
    assert files == before
    assert result is not files
    assert result["assets/logo.png"] is files["assets/logo.png"]
    assert result["SKILL.md"] != files["SKILL.md"]


# --- invalid requests -------------------------------------------------------------------------

OK = {"op": "replace", "target": "a", "content": "b"}
BIG = "x" * (MAX_TEXT_CHARS + 1)
QUARTER = "x" * MAX_TEXT_CHARS

INVALID_TABLE = [
    pytest.param("replace a", [("edits", "edits must be a list of edit objects")], id="string"),
    pytest.param(OK, [("edits", "edits must be a list of edit objects")], id="object"),
    pytest.param(None, [("edits", "edits must be a list of edit objects")], id="null"),
    pytest.param([], [("edits", "the list of edits is empty")], id="empty"),
    pytest.param([OK] * (MAX_EDITS + 1),
                 [("edits", f"{MAX_EDITS + 1} edits is more than the {MAX_EDITS} allowed")],
                 id="too-many"),
    pytest.param([5], [("edits[0]", "each edit must be a JSON object")], id="not-an-object"),
    pytest.param([{"target": "a", "content": "b"}],
                 [("edits[0]", "the edit has neither op nor old_string/new_string")],
                 id="no-format"),
    pytest.param([{**OK, "old_string": "a"}],
                 [("edits[0]", "the edit mixes the two formats (op/target/content and "
                   "old_string/new_string)")], id="mixed-formats"),
    pytest.param([{**OK, "op": "rename"}], [("edits[0].op", "unknown op 'rename'")],
                 id="unknown-op"),
    pytest.param([{"op": None}], [("edits[0].op", "unknown op None")], id="null-op"),
    pytest.param([{"op": "replace", "content": "b"}], [("edits[0].target", "target is required")],
                 id="no-target"),
    pytest.param([{"op": "replace", "target": ""}],
                 [("edits[0].target", "target is empty"),
                  ("edits[0].content", "content is required")], id="empty-target-no-content"),
    pytest.param([{**OK, "target": 5}], [("edits[0].target", "target must be a string, not "
                                          "a number")], id="target-number"),
    pytest.param([{"op": "insert_after", "target": "a", "content": ""}],
                 [("edits[0].content", "content is empty")], id="insert-nothing"),
    pytest.param([{"op": "delete", "target": "a", "content": "x"}],
                 [("edits[0].content", "delete takes no content")], id="delete-content"),
    pytest.param([{"op": "append", "target": "a", "content": "x"}],
                 [("edits[0].target", "append takes no target")], id="append-target"),
    pytest.param([{"op": "append", "content": "x", "replace_all": True}],
                 [("edits[0].replace_all", "append takes no replace_all")], id="append-all"),
    pytest.param([{**OK, "content": "a"}],
                 [("edits[0].content", "content is identical to target: the edit changes "
                   "nothing")], id="native-no-change"),
    pytest.param([{**OK, "conent": "x"}], [("edits[0].conent", "unknown field 'conent'")],
                 id="unknown-field"),
    pytest.param([{**OK, "replace_all": "yes"}],
                 [("edits[0].replace_all", "replace_all must be true or false, not a string")],
                 id="flag-string"),
    pytest.param([{**OK, "file": "../etc/passwd"}],
                 [("edits[0].file", "'../etc/passwd': '..' is not allowed in paths")],
                 id="dotdot"),
    pytest.param([{**OK, "file": "/etc/passwd"}],
                 [("edits[0].file", "'/etc/passwd': use paths relative to the skill folder")],
                 id="absolute"),
    pytest.param([{**OK, "file": "C:\\skill\\SKILL.md"}],
                 [("edits[0].file", "'C:\\\\skill\\\\SKILL.md': use paths relative to the skill "
                   "folder")], id="drive"),
    pytest.param([{**OK, "file": "references//x.md"}],
                 [("edits[0].file", "'references//x.md': empty path segment; remove doubled or "
                   "trailing '/'")], id="empty-segment"),
    pytest.param([{**OK, "file": ".git/config"}],
                 [("edits[0].file", "'.git/config': '.git' folders cannot be uploaded; "
                   "remove it")], id="dot-git"),
    pytest.param([{**OK, "file": ["SKILL.md"]}],
                 [("edits[0].file", "file must be a string, not a list")], id="path-list"),
    pytest.param([{"old_string": "a", "new_string": "b", "file_path": "references/../../x"}],
                 [("edits[0].file_path", "'references/../../x': '..' is not allowed in paths")],
                 id="hermes-dotdot"),
    pytest.param([{"old_string": "a"}], [("edits[0].new_string", "new_string is required")],
                 id="hermes-no-new"),
    pytest.param([{"new_string": "a"}], [("edits[0].old_string", "old_string is required")],
                 id="hermes-no-old"),
    pytest.param([{"old_string": "", "new_string": "a"}],
                 [("edits[0].old_string", "old_string is empty")], id="hermes-empty-old"),
    pytest.param([{"old_string": "a", "new_string": "a"}],
                 [("edits[0].new_string", "new_string is identical to old_string: the edit "
                   "changes nothing")], id="hermes-no-change"),
    pytest.param([{"old_string": "a", "new_string": "b", "action": "patch", "name": "x"}],
                 [("edits[0].action", "unknown field 'action'"),
                  ("edits[0].name", "unknown field 'name'")], id="hermes-unknown-fields"),
    pytest.param([{**OK, "target": BIG}],
                 [("edits[0].target", f"target has {len(BIG)} characters, more than the "
                   f"{MAX_TEXT_CHARS} allowed")], id="target-too-long"),
    pytest.param([{"op": "append", "content": QUARTER}] * 5,
                 [("edits", f"the edits hold {5 * MAX_TEXT_CHARS} characters, more than the "
                   f"{MAX_TOTAL_CHARS} allowed")], id="total-too-long"),
    pytest.param([OK, {"op": "nope"}, 7, {"old_string": "", "new_string": 1}, OK],
                 [("edits[1].op", "unknown op 'nope'"),
                  ("edits[2]", "each edit must be a JSON object"),
                  ("edits[3].old_string", "old_string is empty"),
                  ("edits[3].new_string", "new_string must be a string, not a number")],
                 id="every-problem-at-once"),
]


@pytest.mark.parametrize(("raw", "problems"), INVALID_TABLE)
def test_invalid_edits_report_every_problem(raw: object,
                                            problems: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest) as info:
        parse_edits(raw)
    error = info.value
    assert (error.status, error.code) == (400, "bad_request")
    assert [(p.field, p.message) for p in error.problems] == problems
    assert all(p.hint for p in error.problems)
    count = len(problems)
    assert error.message == f"the edits are invalid ({count} problem{'s' if count > 1 else ''})"


@pytest.mark.parametrize(("raw", "size"), [
    pytest.param({"op": "replace", "target": "a", "content": "bbbb", "replace_all": True},
                 4 * 30, id="replace_all-grows"),
    pytest.param({"op": "insert_after", "target": "a" * 30, "content": "b" * 71}, 101,
                 id="insert"),
    pytest.param({"op": "append", "content": "b" * 70}, 101, id="append-after-a-break"),
])
def test_edits_cannot_grow_a_file_past_the_cap(raw: dict[str, Any], size: int) -> None:
    files = skill_files("a" * 30)
    with pytest.raises(EditFailed) as info:
        apply_edits(files, parse_edits([raw]), max_chars=100)
    assert (info.value.extra["reason"], info.value.message) == (
        "too_large", f"edit 0 ({raw['op']} in SKILL.md): the file would hold {size} "
        "characters, more than the 100 allowed")
    assert apply_edits(files, parse_edits([raw]), max_chars=size)["SKILL.md"] != files["SKILL.md"]


def test_match_lines_count_every_kind_of_line_break() -> None:
    body = failure([{"op": "delete", "target": "x"}], skill_files("x\r\na\rx\nb\r\nx"))
    assert body["lines"] == [1, 3, 5]
