"""SKILL.md parsing and validation against the agentskills.io rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from skills_hub.errors import InvalidSkill, Problem
from skills_hub.skill import DOCUMENTED_DIFFERENCES, Manifest, parse_manifest, split_frontmatter

DOCS = Path(__file__).resolve().parents[1] / "docs" / "SKILL_FORMAT.md"


def skill_md(frontmatter: str, body: str = "# Title\n\nDo the thing.\n") -> str:
    """A SKILL.md text from frontmatter lines."""
    return f"---\n{frontmatter.strip()}\n---\n{body}"


def parse(frontmatter: str, dirname: str | None = "my-skill", strict: bool = False) -> Manifest:
    """Parse a SKILL.md built from frontmatter lines."""
    return parse_manifest(skill_md(frontmatter), dirname=dirname, strict=strict)


def error_fields(exc: InvalidSkill) -> list[str]:
    """The fields of every error in an InvalidSkill, in order."""
    return [p.field for p in exc.problems if p.severity == "error"]


GOOD = """
name: my-skill
description: Does the thing when asked.
"""


def test_minimal_skill_parses() -> None:
    manifest = parse(GOOD)
    assert manifest.name == "my-skill"
    assert manifest.description == "Does the thing when asked."
    assert manifest.body == "# Title\n\nDo the thing.\n"
    assert manifest.frontmatter == {"name": "my-skill",
                                    "description": "Does the thing when asked."}
    assert (manifest.license, manifest.compatibility, manifest.allowed_tools) == (None,) * 3
    assert manifest.metadata == {}
    assert manifest.tags == []
    assert manifest.version is None
    assert manifest.warnings == ()


def test_all_spec_fields() -> None:
    manifest = parse("""
name: my-skill
description: Does the thing.
license: Apache-2.0
compatibility: Needs git and network access
allowed-tools: Read Bash(git:*)
metadata:
  version: "1.2.0"
  tags: "pdf, forms,  ocr"
  author: someone
""")
    assert manifest.license == "Apache-2.0"
    assert manifest.compatibility == "Needs git and network access"
    assert manifest.allowed_tools == "Read Bash(git:*)"
    assert manifest.metadata == {"version": "1.2.0", "tags": "pdf, forms,  ocr",
                                 "author": "someone"}
    assert manifest.version == "1.2.0"
    assert manifest.tags == ["pdf", "forms", "ocr"]
    assert manifest.warnings == ()


def test_space_separated_tags_and_top_level_tags_list() -> None:
    manifest = parse("""
name: my-skill
description: Does the thing.
tags: [ocr, scanning]
metadata:
  tags: pdf ocr
""")
    assert manifest.tags == ["pdf", "ocr", "scanning"]
    assert [(w.field, w.severity) for w in manifest.warnings] == [("tags", "warning")]


def test_allowed_tools_list_is_joined_with_a_warning() -> None:
    manifest = parse(GOOD + "allowed-tools:\n  - Read\n  - Bash\n", strict=True)
    assert manifest.allowed_tools == "Read Bash"
    assert [(w.field, w.severity) for w in manifest.warnings] == [("allowed-tools", "warning")]
    assert 'allowed-tools: "Read Bash"' in manifest.warnings[0].hint


def test_bom_and_crlf() -> None:
    text = "\ufeff---\r\nname: my-skill\r\ndescription: Works.\r\n---\r\nBody\r\n"
    manifest = parse_manifest(text, dirname="my-skill")
    assert manifest.name == "my-skill"
    assert manifest.body == "Body\n"


@pytest.mark.parametrize("text, yaml_text, body", [
    ("---\na: 1\n---\nbody", "a: 1\n", "body"),
    ("---\na: 1\n---", "a: 1\n", ""),
    ("---  \na: 1\n--- \n\nbody\n", "a: 1\n", "\nbody\n"),
    ("---\ndescription: x --- y\n---\nz", "description: x --- y\n", "z"),
    ("\ufeff---\r\na: 1\r\n---\r\nb\r\n", "a: 1\n", "b\n"),
])
def test_split_frontmatter(text: str, yaml_text: str, body: str) -> None:
    assert split_frontmatter(text) == (yaml_text, body)


@pytest.mark.parametrize("text, message", [
    ("# no frontmatter\n", "does not start"),
    ("", "does not start"),
    ("name: x\n---\n", "does not start"),
    ("---\nname: x\ndescription: y\n", "no closing"),
    ("---name: x\n---\n", "does not start"),
])
def test_split_frontmatter_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidSkill) as info:
        split_frontmatter(text)
    [problem] = info.value.problems
    assert problem.field == "frontmatter"
    assert message in problem.message
    assert problem.hint


# Each row: frontmatter, dirname, the exact fields of every error, in report order.
BAD_FRONTMATTER = [
    pytest.param("description: Works.", "my-skill", ["name"], id="missing-name"),
    pytest.param("name: my-skill", "my-skill", ["description"], id="missing-description"),
    pytest.param('name: ""\ndescription: Works.', "my-skill", ["name"], id="empty-name"),
    pytest.param("name: my-skill\ndescription: '   '", "my-skill", ["description"],
                 id="blank-description"),
    pytest.param("name: My-Skill\ndescription: Works.", "My-Skill", ["name"], id="uppercase"),
    pytest.param("name: my_skill\ndescription: Works.", "my_skill", ["name"], id="underscore"),
    pytest.param("name: -my-skill-\ndescription: Works.", "-my-skill-", ["name"],
                 id="edge-hyphens"),
    pytest.param("name: my--skill\ndescription: Works.", "my--skill", ["name"],
                 id="double-hyphen"),
    pytest.param(f"name: {'a' * 65}\ndescription: Works.", "a" * 65, ["name"], id="name-65"),
    pytest.param("name: other-skill\ndescription: Works.", "my-skill", ["name"],
                 id="dirname-mismatch"),
    pytest.param("name: My Skill\ndescription: Works.", "my-skill",
                 ["name", "name", "name"], id="name-breaks-three-rules"),
    pytest.param("name: 2024-01-01\ndescription: Works.", "2024-01-01", ["name"],
                 id="name-is-a-date"),
    pytest.param("name: 123\ndescription: Works.", "123", ["name"], id="name-is-a-number"),
    pytest.param("name: my-skill\ndescription: 3.14", "my-skill", ["description"],
                 id="description-is-a-number"),
    pytest.param("name: my-skill\ndescription: yes", "my-skill", ["description"],
                 id="description-is-a-boolean"),
    pytest.param("name: my-skill\ndescription: [a, b]", "my-skill", ["description"],
                 id="description-is-a-list"),
    pytest.param(f"name: my-skill\ndescription: {'d' * 1025}", "my-skill", ["description"],
                 id="description-1025"),
    pytest.param("name: my-skill\ndescription: Works.\ncompatibility: ''", "my-skill",
                 ["compatibility"], id="compatibility-empty"),
    pytest.param(f"name: my-skill\ndescription: Works.\ncompatibility: {'c' * 501}",
                 "my-skill", ["compatibility"], id="compatibility-501"),
    pytest.param("name: my-skill\ndescription: Works.\ncompatibility: 3", "my-skill",
                 ["compatibility"], id="compatibility-number"),
    pytest.param("name: my-skill\ndescription: Works.\nlicense: 2024", "my-skill",
                 ["license"], id="license-number"),
    pytest.param("name: my-skill\ndescription: Works.\nmetadata: just text", "my-skill",
                 ["metadata"], id="metadata-not-mapping"),
    pytest.param("name: my-skill\ndescription: Works.\nmetadata:\n  version: 1.0\n"
                 "  updated: 2024-05-01\n  ok: fine", "my-skill",
                 ["metadata.version", "metadata.updated"], id="metadata-non-strings"),
    pytest.param("name: my-skill\ndescription: Works.\nmetadata:\n  nested:\n    a: b",
                 "my-skill", ["metadata.nested"], id="metadata-nested"),
    pytest.param("name: my-skill\ndescription: Works.\nmetadata:\n  1: one", "my-skill",
                 ["metadata.1"], id="metadata-int-key"),
    pytest.param("name: my-skill\ndescription: Works.\nallowed-tools: 5", "my-skill",
                 ["allowed-tools"], id="allowed-tools-number"),
    pytest.param("name: my-skill\ndescription: Works.\nallowed-tools: [Read, 3]", "my-skill",
                 ["allowed-tools"], id="allowed-tools-mixed-list"),
    pytest.param("name: my-skill\nname: other\ndescription: Works.", "my-skill", ["name"],
                 id="duplicate-key"),
    pytest.param("name: my-skill\ndescription: Works.\nmetadata:\n  a: x\n  a: y", "my-skill",
                 ["metadata.a"], id="duplicate-metadata-key"),
    pytest.param("- name\n- description", "my-skill", ["frontmatter"], id="not-a-mapping"),
    pytest.param("", "my-skill", ["frontmatter"], id="empty-frontmatter"),
    pytest.param("name: my-skill\ndescription: Usage: run it: now", "my-skill",
                 ["frontmatter"], id="invalid-yaml"),
    pytest.param("name: &n my-skill\ndescription: *n", "my-skill", ["frontmatter"],
                 id="alias"),
    pytest.param("name: my-skill\ndescription: !!python/object/apply:os.system ['true']",
                 "my-skill", ["frontmatter"], id="python-tag-refused"),
]


@pytest.mark.parametrize("frontmatter, dirname, fields", BAD_FRONTMATTER)
def test_bad_frontmatter(frontmatter: str, dirname: str, fields: list[str]) -> None:
    with pytest.raises(InvalidSkill) as info:
        parse(frontmatter, dirname=dirname)
    assert error_fields(info.value) == fields
    assert all(p.message and p.hint for p in info.value.problems)
    assert info.value.status == 422
    assert info.value.code == "invalid_skill"


def test_every_error_comes_back_at_once() -> None:
    frontmatter = f"""
name: Bad--Name-
description: {'x' * 1100}
compatibility: ''
license: 3
metadata:
  version: 2.0
  flag: true
allowed-tools: {{a: b}}
author: me
"""
    with pytest.raises(InvalidSkill) as info:
        parse(frontmatter, dirname="bad-name", strict=True)
    assert error_fields(info.value) == [
        "author", "name", "name", "name", "name", "description", "license", "compatibility",
        "metadata.version", "metadata.flag", "allowed-tools",
    ]
    assert "11 errors" in info.value.message


def test_warnings_ride_along_with_errors() -> None:
    with pytest.raises(InvalidSkill) as info:
        parse("name: my-skill\nauthor: me")
    assert [(p.field, p.severity) for p in info.value.problems] == [
        ("author", "warning"), ("description", "error")]


@pytest.mark.parametrize("key", ["argument-hint", "user-invocable", "disable-model-invocation",
                                 "model", "context", "agent", "hooks", "version", "author"])
def test_unknown_keys_warn_by_default_and_fail_when_strict(key: str) -> None:
    frontmatter = GOOD + f"{key}: something\n"
    [warning] = parse(frontmatter).warnings
    assert (warning.field, warning.severity) == (key, "warning")
    assert "metadata" in warning.hint
    with pytest.raises(InvalidSkill) as info:
        parse(frontmatter, strict=True)
    assert error_fields(info.value) == [key]


def test_client_extension_keys_are_named_as_such() -> None:
    [warning] = parse(GOOD + "user-invocable: true\n").warnings
    assert "client extension" in warning.message


def test_wrongly_cased_key_gets_a_spelling_hint() -> None:
    with pytest.raises(InvalidSkill) as info:
        parse("Name: my-skill\ndescription: Works.")
    assert [p.field for p in info.value.problems] == ["Name", "name"]
    assert "write 'name'" in info.value.problems[0].hint


@pytest.mark.parametrize("name, dirname", [
    ("a", "a"),
    ("a" * 64, "a" * 64),
    ("pdf-2-text", "pdf-2-text"),
    ("café-ß", "café-ß"),            # unicode lowercase letters, as skills-ref allows
    ("技能", "技能"),                 # caseless letters are lowercase per str.lower()
    ("ｍｙ-skill", "my-skill"),      # NFKC folds full-width letters
    ("cafe\u0301", "café"),          # NFKC composes the accent
])
def test_valid_names(name: str, dirname: str) -> None:
    manifest = parse(f"name: {name}\ndescription: Works.", dirname=dirname)
    assert manifest.name == dirname


@pytest.mark.parametrize("name", ["Café", "naïve!", "a.b", "a/b", "a b", "ÀB"])
def test_invalid_unicode_names(name: str) -> None:
    with pytest.raises(InvalidSkill) as info:
        parse(f"name: '{name}'\ndescription: Works.", dirname=None)
    assert set(error_fields(info.value)) == {"name"}


def test_no_dirname_skips_the_folder_check() -> None:
    assert parse("name: whatever\ndescription: Works.", dirname=None).name == "whatever"


def test_quote_hint_shows_the_value() -> None:
    with pytest.raises(InvalidSkill) as info:
        parse(GOOD + "metadata:\n  version: 1.10\n")
    [problem] = info.value.problems
    assert problem == Problem("metadata.version", problem.message,
                              'Put the value in quotes, e.g. version: "1.1", so YAML reads it '
                              "as text.")
    assert "a number" in problem.message


def test_yaml_error_names_the_skill_md_line() -> None:
    with pytest.raises(InvalidSkill) as info:
        parse("name: my-skill\ndescription: Usage: run it")
    assert "SKILL.md line 3" in info.value.problems[0].message


def test_null_optional_fields_count_as_absent() -> None:
    manifest = parse(GOOD + "license:\ncompatibility:\nmetadata:\nallowed-tools:\n")
    assert (manifest.license, manifest.compatibility, manifest.allowed_tools) == (None,) * 3
    assert manifest.metadata == {}


def test_documented_differences_are_in_the_docs() -> None:
    text = " ".join(DOCS.read_text(encoding="utf-8").split())
    assert DOCUMENTED_DIFFERENCES
    for difference in DOCUMENTED_DIFFERENCES:
        assert difference in text
