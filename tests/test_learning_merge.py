"""Three-way merges, rebasing proposals onto a skill's current files, and git-style diffs."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from skills_hub.errors import MergeConflict
from skills_hub.learning.merge import Conflict, Lines, merge3, rebase, unified_diff

BASE = "a\nb\nc\nd\ne\n"


def conflict_text(ours: str, base: str, theirs: str, labels: tuple[str, str] = ("ours", "theirs")
                  ) -> str:
    """A conflict as merge3 writes it (each part given with its line breaks)."""
    return (f"<<<<<<< {labels[0]}\n{ours}||||||| base\n{base}=======\n{theirs}"
            f">>>>>>> {labels[1]}\n")


# --- merge3 -----------------------------------------------------------------------------------

CLEAN_TABLE = [
    pytest.param(BASE, "a\nB\nc\nd\ne\n", BASE, "a\nB\nc\nd\ne\n", id="ours-only"),
    pytest.param(BASE, BASE, "a\nb\nc\nD\ne\n", "a\nb\nc\nD\ne\n", id="theirs-only"),
    pytest.param(BASE, "a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n",
                 id="identical-change"),
    pytest.param(BASE, "a\nB\nc\nd\ne\n", "a\nb\nc\nD\ne\n", "a\nB\nc\nD\ne\n",
                 id="one-line-apart"),
    pytest.param(BASE, "x\na\nb\nc\nd\ne\n", "a\nb\nc\nd\ne\ny\n", "x\na\nb\nc\nd\ne\ny\n",
                 id="inserts-at-both-ends"),
    pytest.param(BASE, "a\nc\nd\ne\n", "a\nc\nd\ne\n", "a\nc\nd\ne\n", id="same-deletion"),
    pytest.param(BASE, "a\nc\nd\ne\n", "a\nb\nc\nd\nE\n", "a\nc\nd\nE\n", id="delete-and-edit"),
    pytest.param(BASE, "", BASE, "", id="ours-empties-the-file"),
    pytest.param("", "a\n", "", "a\n", id="empty-base-ours-adds"),
    pytest.param("", "", "", "", id="all-empty"),
    pytest.param("", "a\n", "a\n", "a\n", id="empty-base-same-addition"),
    pytest.param("a\nx\nb", "a\nx\nb\n", "A\nx\nb", "A\nx\nb\n", id="ours-adds-final-break"),
    pytest.param("a\nx\nb\n", "a\nx\nb", "a\nx\nb", "a\nx\nb", id="both-drop-final-break"),
    pytest.param("a\r\nb\r\nc\r\n", "A\r\nb\r\nc\r\n", "a\r\nb\r\nC\r\n", "A\r\nb\r\nC\r\n",
                 id="crlf"),
]


@pytest.mark.parametrize(("base", "ours", "theirs", "expected"), CLEAN_TABLE)
def test_clean_merges(base: str, ours: str, theirs: str, expected: str) -> None:
    result = merge3(base, ours, theirs)
    assert (result.text, result.conflicts, result.clean) == (expected, [], True)


CONFLICT_TABLE = [
    pytest.param(BASE, "a\nX\nc\nd\ne\n", "a\nY\nc\nd\ne\n",
                 "a\n" + conflict_text("X\n", "b\n", "Y\n") + "c\nd\ne\n",
                 Conflict(Lines(2, 2, "b\n"), Lines(2, 2, "X\n"), Lines(2, 2, "Y\n")),
                 id="same-line"),
    pytest.param(BASE, "a\nB\nc\nd\ne\n", "a\nb\nC\nd\ne\n",
                 "a\n" + conflict_text("B\nc\n", "b\nc\n", "b\nC\n") + "d\ne\n",
                 Conflict(Lines(2, 3, "b\nc\n"), Lines(2, 3, "B\nc\n"), Lines(2, 3, "b\nC\n")),
                 id="touching-lines"),
    pytest.param(BASE, "a\nb\nX\nd\ne\n", "a\nb\nd\ne\n",
                 "a\nb\n" + conflict_text("X\n", "c\n", "") + "d\ne\n",
                 Conflict(Lines(3, 3, "c\n"), Lines(3, 3, "X\n"), Lines(3, 2, "")),
                 id="edit-against-delete"),
    pytest.param(BASE, "a\nb\nP\nc\nd\ne\n", "a\nb\nQ\nc\nd\ne\n",
                 "a\nb\n" + conflict_text("P\n", "", "Q\n") + "c\nd\ne\n",
                 Conflict(Lines(3, 2, ""), Lines(3, 3, "P\n"), Lines(3, 3, "Q\n")),
                 id="different-inserts-same-place"),
    pytest.param("", "a\n", "b\n", conflict_text("a\n", "", "b\n"),
                 Conflict(Lines(1, 0, ""), Lines(1, 1, "a\n"), Lines(1, 1, "b\n")),
                 id="empty-base"),
    pytest.param("a\nb", "a\nc", "a\nd", "a\n" + conflict_text("c\n", "b\n", "d\n"),
                 Conflict(Lines(2, 2, "b"), Lines(2, 2, "c"), Lines(2, 2, "d")),
                 id="no-final-break"),
]


@pytest.mark.parametrize(("base", "ours", "theirs", "expected", "conflict"), CONFLICT_TABLE)
def test_conflicts(base: str, ours: str, theirs: str, expected: str, conflict: Conflict) -> None:
    result = merge3(base, ours, theirs)
    assert (result.text, result.conflicts, result.clean) == (expected, [conflict], False)


def test_conflicts_are_listed_in_order_with_labels() -> None:
    base = "1\n2\n3\n4\n5\n6\n7\n"
    result = merge3(base, "1\nA\n3\n4\n5\nC\n7\n", "1\nB\n3\n4\n5\nD\n7\n",
                    labels=("current", "proposed"))
    assert [c.base.start for c in result.conflicts] == [2, 6]
    assert result.text == ("1\n" + conflict_text("A\n", "2\n", "B\n", ("current", "proposed"))
                           + "3\n4\n5\n"
                           + conflict_text("C\n", "6\n", "D\n", ("current", "proposed")) + "7\n")
    assert result.conflicts[1].to_dict() == {
        "base": {"start": 6, "end": 6, "text": "6\n"},
        "ours": {"start": 6, "end": 6, "text": "C\n"},
        "theirs": {"start": 6, "end": 6, "text": "D\n"}}


def test_conflict_excerpts_are_capped() -> None:
    lines = Lines(1, 1, "x" * 5000)
    assert lines.to_dict(limit=10) == {"start": 1, "end": 1, "text": "x" * 10, "truncated": True}


def test_repeated_lines_of_a_long_file_stay_aligned() -> None:
    # With difflib's autojunk, lines in over 1% of a 200+ line file are junk and stop aligning;
    # markdown repeats blank lines, list items and fences that much.
    for seed in range(100):
        rng = random.Random(seed)
        lines = [rng.choice(["\n", "- item\n", "```\n"]) if rng.random() < 0.6 else f"u{i}\n"
                 for i in range(250)]
        mine, other = sorted(rng.sample(range(250), 2))
        if other - mine < 2:
            continue
        ours = [*lines[:mine], "OURS\n", *lines[mine + 1:]]
        theirs = [*lines[:other], "THEIRS\n", *lines[other:]]
        expected = [*ours[:other], "THEIRS\n", *ours[other:]]
        result = merge3("".join(lines), "".join(ours), "".join(theirs))
        assert (result.text, result.clean) == ("".join(expected), True), seed


# --- properties over a seeded random table (hypothesis is not installed) -----------------------

WORDS = ["alpha\n", "beta\n", "gamma\n", "\n", "  indented\n", "delta\n", "alpha\n", "x\r\n"]


def random_text(rng: random.Random) -> str:
    """A short text of often-repeated lines, sometimes without a final line break."""
    text = "".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 12)))
    return text.rstrip("\n") if text and rng.random() < 0.25 else text


def mutate(rng: random.Random, text: str) -> str:
    """text with a few lines inserted, deleted or replaced."""
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(0, len(lines) + 1)
        kind = rng.choice(["insert", "delete", "replace"]) if lines else "insert"
        if kind == "insert":
            lines.insert(at, rng.choice(WORDS + ["new\n", "other"]))
        elif at < len(lines):
            lines[at:at + 1] = [] if kind == "delete" else [rng.choice(WORDS + ["new\n"])]
    return "".join(lines)


@pytest.mark.parametrize("seed", range(100))
def test_merge_identities(seed: int) -> None:
    rng = random.Random(seed)
    base = random_text(rng)
    for text in (mutate(rng, base), random_text(rng), base):
        assert merge3(base, base, text) == merge3(base, text, base) == merge3(base, text, text)
        assert merge3(base, base, text).text == text
        assert merge3(base, text, text).clean


def test_merge_identities_over_more_cases() -> None:
    for seed in range(300, 1300):
        rng = random.Random(seed)
        base = random_text(rng)
        ours, theirs = mutate(rng, base), mutate(rng, base)
        assert merge3(base, base, theirs).text == theirs
        assert merge3(base, ours, base).text == ours
        assert merge3(base, ours, ours).text == ours
        result = merge3(base, ours, theirs)
        assert result.clean == ("<<<<<<<" not in result.text)


def test_disjoint_random_edits_merge_to_both() -> None:
    for seed in range(200):
        rng = random.Random(seed)
        base = [f"line {i}\n" for i in range(20)]
        top, bottom = base[:9], base[11:]
        ours_top = mutate(rng, "".join(top))
        theirs_bottom = mutate(rng, "".join(bottom))
        ours = ours_top + "".join(base[9:])
        theirs = "".join(base[:11]) + theirs_bottom
        expected = ours_top + "".join(base[9:11]) + theirs_bottom
        assert merge3("".join(base), ours, theirs).text == expected, seed


# --- rebase -----------------------------------------------------------------------------------

SKILL = b"---\nname: demo\n---\n# Demo\n\nOne.\nTwo.\nThree.\nFour.\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x01"
ORIGIN = {"SKILL.md": SKILL, "references/guide.md": b"# Guide\n", "assets/logo.png": PNG}


def changed(files: dict[str, bytes], changes: dict[str, bytes | None]) -> dict[str, bytes]:
    """files with changes applied (None removes the file)."""
    out = {**files, **{path: data for path, data in changes.items() if data is not None}}
    return {path: data for path, data in out.items() if changes.get(path, b"") is not None}


REBASE_TABLE = [
    pytest.param(changed(ORIGIN, {"SKILL.md": SKILL.replace(b"One", b"1")}), ORIGIN,
                 changed(ORIGIN, {"SKILL.md": SKILL.replace(b"One", b"1")}), id="proposal-only"),
    pytest.param(ORIGIN, changed(ORIGIN, {"SKILL.md": SKILL.replace(b"One", b"1")}),
                 changed(ORIGIN, {"SKILL.md": SKILL.replace(b"One", b"1")}), id="current-only"),
    pytest.param(changed(ORIGIN, {"SKILL.md": SKILL.replace(b"One", b"1")}),
                 changed(ORIGIN, {"SKILL.md": SKILL.replace(b"Four", b"4")}),
                 changed(ORIGIN, {"SKILL.md": SKILL.replace(b"One", b"1").replace(b"Four",
                                                                                  b"4")}),
                 id="both-merged"),
    pytest.param(changed(ORIGIN, {"references/new.md": b"new\n"}),
                 changed(ORIGIN, {"references/other.md": b"other\n"}),
                 changed(ORIGIN, {"references/new.md": b"new\n",
                                  "references/other.md": b"other\n"}),
                 id="added-on-both-sides"),
    pytest.param(changed(ORIGIN, {"references/guide.md": None}), ORIGIN,
                 changed(ORIGIN, {"references/guide.md": None}), id="proposal-removes"),
    pytest.param(ORIGIN, changed(ORIGIN, {"references/guide.md": None}),
                 changed(ORIGIN, {"references/guide.md": None}), id="current-removed"),
    pytest.param(changed(ORIGIN, {"references/guide.md": None}),
                 changed(ORIGIN, {"references/guide.md": None}),
                 changed(ORIGIN, {"references/guide.md": None}), id="both-removed"),
    pytest.param(changed(ORIGIN, {"x.md": b"same\n"}), changed(ORIGIN, {"x.md": b"same\n"}),
                 changed(ORIGIN, {"x.md": b"same\n"}), id="same-file-added"),
    pytest.param(changed(ORIGIN, {"assets/logo.png": PNG + b"\x02"}), ORIGIN,
                 changed(ORIGIN, {"assets/logo.png": PNG + b"\x02"}), id="binary-proposal"),
    pytest.param(ORIGIN, changed(ORIGIN, {"assets/logo.png": PNG + b"\x03"}),
                 changed(ORIGIN, {"assets/logo.png": PNG + b"\x03"}), id="binary-current"),
    pytest.param(changed(ORIGIN, {"assets/logo.png": PNG + b"\x02"}),
                 changed(ORIGIN, {"assets/logo.png": PNG + b"\x02"}),
                 changed(ORIGIN, {"assets/logo.png": PNG + b"\x02"}), id="binary-same"),
    pytest.param(changed(ORIGIN, {"references/guide.md": b""}), ORIGIN,
                 changed(ORIGIN, {"references/guide.md": b""}), id="emptied-file"),
]


@pytest.mark.parametrize(("proposed", "current", "expected"), REBASE_TABLE)
def test_rebase(proposed: dict[str, bytes], current: dict[str, bytes],
                expected: dict[str, bytes]) -> None:
    copies = (dict(ORIGIN), dict(proposed), dict(current))
    assert rebase(ORIGIN, proposed, current) == expected
    assert (ORIGIN, proposed, current) == copies


def rebase_conflicts(proposed: dict[str, bytes], current: dict[str, bytes]) -> dict[str, Any]:
    """The body of the MergeConflict rebasing proposed onto current raises."""
    with pytest.raises(MergeConflict) as info:
        rebase(ORIGIN, proposed, current)
    assert (info.value.status, info.value.code) == (409, "merge_conflict")
    return info.value.to_dict()


def test_rebase_conflict_lists_the_conflict() -> None:
    proposed = changed(ORIGIN, {"SKILL.md": SKILL.replace(b"Two.", b"2 (proposed).")})
    current = changed(ORIGIN, {"SKILL.md": SKILL.replace(b"Two.", b"2 (current).")})
    body = rebase_conflicts(proposed, current)
    assert body["message"] == ("the proposal conflicts with changes made since its base: "
                               "1 conflict in SKILL.md")
    assert body["conflicts"] == [{
        "path": "SKILL.md", "kind": "content",
        "base": {"start": 7, "end": 7, "text": "Two.\n"},
        "ours": {"start": 7, "end": 7, "text": "2 (current).\n"},
        "theirs": {"start": 7, "end": 7, "text": "2 (proposed).\n"}}]
    assert body["sides"] == {"ours": "the current version of the skill",
                             "theirs": "the proposal"}
    assert "apply your edits to it again" in body["hint"]


def test_rebase_lists_every_conflict_of_every_file() -> None:
    proposed = changed(ORIGIN, {
        "SKILL.md": SKILL.replace(b"One.", b"P1.").replace(b"Four.", b"P4."),
        "assets/logo.png": PNG + b"P", "references/guide.md": b"# Guide!\n",
        "new.md": b"proposed\n"})
    current = changed(ORIGIN, {
        "SKILL.md": SKILL.replace(b"One.", b"C1.").replace(b"Four.", b"C4."),
        "assets/logo.png": PNG + b"C", "references/guide.md": None, "new.md": b"current\n"})
    body = rebase_conflicts(proposed, current)
    assert [(c["path"], c["kind"]) for c in body["conflicts"]] == [
        ("SKILL.md", "content"), ("SKILL.md", "content"), ("assets/logo.png", "binary"),
        ("new.md", "content"), ("references/guide.md", "deleted")]
    assert body["message"].endswith("5 conflicts in SKILL.md, assets/logo.png, new.md, "
                                    "references/guide.md")
    binary = body["conflicts"][2]
    assert (binary["base"]["bytes"], binary["ours"]["bytes"], binary["theirs"]["bytes"]) == (
        len(PNG), len(PNG) + 1, len(PNG) + 1)
    assert binary["ours"]["sha256"] != binary["theirs"]["sha256"]
    deleted = body["conflicts"][4]
    assert deleted["ours"] is None and deleted["theirs"]["bytes"] == len(b"# Guide!\n")
    assert body["conflicts"][3]["base"] == {"start": 1, "end": 0, "text": ""}


def test_rebase_proposal_deleting_a_file_current_changed_conflicts() -> None:
    body = rebase_conflicts(changed(ORIGIN, {"references/guide.md": None}),
                            changed(ORIGIN, {"references/guide.md": b"# Guide v2\n"}))
    assert [(c["path"], c["kind"], c["theirs"]) for c in body["conflicts"]] == [
        ("references/guide.md", "deleted", None)]


def test_rebase_merges_text_that_only_one_side_made_binary_as_a_conflict() -> None:
    body = rebase_conflicts(changed(ORIGIN, {"references/guide.md": b"\x00binary"}),
                            changed(ORIGIN, {"references/guide.md": b"# Guide 2\n"}))
    assert [c["kind"] for c in body["conflicts"]] == ["binary"]


# --- unified_diff -----------------------------------------------------------------------------

DIFF_TABLE = [
    pytest.param({"a.md": b"x\ny\nz\n"}, {"a.md": b"x\nY\nz\n"},
                 "diff --git a/a.md b/a.md\n--- a/a.md\n+++ b/a.md\n@@ -1,3 +1,3 @@\n"
                 " x\n-y\n+Y\n z\n", id="modified"),
    pytest.param({}, {"n.md": b"new\n"},
                 "diff --git a/n.md b/n.md\nnew file mode 100644\n--- /dev/null\n+++ b/n.md\n"
                 "@@ -0,0 +1 @@\n+new\n", id="added"),
    pytest.param({"o.md": b"old\n"}, {},
                 "diff --git a/o.md b/o.md\ndeleted file mode 100644\n--- a/o.md\n+++ /dev/null\n"
                 "@@ -1 +0,0 @@\n-old\n", id="removed"),
    pytest.param({"b.png": PNG}, {"b.png": PNG + b"!"},
                 "diff --git a/b.png b/b.png\nBinary files a/b.png and b/b.png differ\n",
                 id="binary"),
    pytest.param({}, {"b.png": PNG},
                 "diff --git a/b.png b/b.png\nnew file mode 100644\n"
                 "Binary files /dev/null and b/b.png differ\n", id="binary-added"),
    pytest.param({"a": b"x\ny"}, {"a": b"x\nz"},
                 "diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1,2 +1,2 @@\n x\n-y\n"
                 "\\ No newline at end of file\n+z\n\\ No newline at end of file\n",
                 id="no-final-break"),
    pytest.param({"a": b"x"}, {"a": b"x\n"},
                 "diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n"
                 "\\ No newline at end of file\n+x\n", id="break-added"),
    pytest.param({}, {"e": b""}, "diff --git a/e b/e\nnew file mode 100644\n", id="empty-added"),
    pytest.param({"s": b"same\n"}, {"s": b"same\n"}, "", id="unchanged"),
]


@pytest.mark.parametrize(("old", "new", "expected"), DIFF_TABLE)
def test_unified_diff(old: dict[str, bytes], new: dict[str, bytes], expected: str) -> None:
    assert unified_diff(old, new) == expected


def test_unified_diff_orders_files_by_path_and_keeps_context() -> None:
    old = {"z.md": b"z\n", "a.md": "".join(f"{i}\n" for i in range(20)).encode()}
    new = {"z.md": b"Z\n", "a.md": old["a.md"].replace(b"10\n", b"ten\n")}
    diff = unified_diff(old, new, context=1)
    assert diff.index("diff --git a/a.md") < diff.index("diff --git a/z.md")
    assert "@@ -10,3 +10,3 @@\n 9\n-10\n+ten\n 11\n" in diff


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_applies_the_diff(tmp_path: Path) -> None:
    old = {"SKILL.md": SKILL, "references/guide.md": b"# Guide\nno break", "gone.md": b"bye\n"}
    new = {"SKILL.md": SKILL.replace(b"Two.", b"2.") + b"Five.\n",
           "references/guide.md": b"# Guide\nwith a break\n", "scripts/new.sh": b"echo hi\n"}
    for path, data in old.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    (tmp_path / "change.diff").write_text(unified_diff(old, new))
    subprocess.run(["git", "apply", "change.diff"], cwd=tmp_path, check=True,
                   capture_output=True)
    (tmp_path / "change.diff").unlink()
    found = {str(p.relative_to(tmp_path)): p.read_bytes()
             for p in tmp_path.rglob("*") if p.is_file()}
    assert found == new
