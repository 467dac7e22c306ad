"""SKILL.md: split the frontmatter, parse it safely, validate it against the agentskills.io spec."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from skills_hub.errors import InvalidSkill, Problem

MAX_NAME_LENGTH = 64
MAX_DESCRIPTION_LENGTH = 1024
MAX_COMPATIBILITY_LENGTH = 500
# How deep YAML collections may nest in the frontmatter. The spec needs two levels
# (metadata: {key: value}); the cap keeps PyYAML's recursive composer far from Python's limit.
MAX_YAML_DEPTH = 32

# The top-level keys the agentskills.io specification defines.
SPEC_KEYS = frozenset({"name", "description", "license", "compatibility", "metadata",
                       "allowed-tools"})

# Keys real clients read (Claude Code and others). Still unknown to the spec: warnings by
# default, errors in strict mode; named here only to give a better message.
CLIENT_EXTENSION_KEYS = frozenset({"argument-hint", "user-invocable", "disable-model-invocation",
                                   "model", "context", "agent", "hooks", "version"})

# Where we deliberately differ from the reference validator `skills-ref` 0.1.1. Each entry is
# also explained in docs/SKILL_FORMAT.md; tests/test_corpus.py may only excuse a verdict
# difference that one of these explains.
FLOW_COLLECTIONS = ("YAML flow collections (`tags: [a, b]`, `allowed-tools: [Read, Bash]`) "
                    "are parsed; skills-ref (strictyaml) rejects them as invalid YAML.")
TYPED_SCALARS = ("Scalars keep their YAML types: a number, date or boolean where a string is "
                 "required (name, description, license, compatibility, metadata values) is an "
                 "error with a hint to quote it; skills-ref reads every scalar as a string.")
EMPTY_COMPATIBILITY = ("An empty `compatibility` is an error (the spec says 1-500 characters); "
                       "skills-ref accepts an empty string.")
FRONTMATTER_LINES = ("The `---` delimiters must be whole lines; a UTF-8 BOM and CRLF line ends are "
                     "accepted; skills-ref splits on the first `---` anywhere in the text and "
                     "rejects a BOM.")
DOCUMENTED_DIFFERENCES: list[str] = [FLOW_COLLECTIONS, TYPED_SCALARS, EMPTY_COMPATIBILITY,
                                     FRONTMATTER_LINES]

_QUOTE_HINT = 'Put the value in quotes, e.g. {key}: "{value}", so YAML reads it as text.'
_YAML_HINT = ("Check the YAML syntax: quote values that contain ': ' or ' #' or start with one "
              "of [ ] { } * & ! | > @ ` % and indent nested keys consistently.")


@dataclass(frozen=True)
class Manifest:
    """A validated SKILL.md: spec fields, derived fields and the warnings found."""

    name: str
    description: str
    body: str
    frontmatter: dict[str, Any]
    license: str | None = None
    compatibility: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    allowed_tools: str | None = None
    tags: list[str] = field(default_factory=list)
    version: str | None = None
    warnings: tuple[Problem, ...] = ()


def split_frontmatter(text: str) -> tuple[str, str]:
    """Split SKILL.md text into (yaml text, markdown body); raise InvalidSkill if malformed."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[0].rstrip() != "---":
        raise InvalidSkill("SKILL.md must start with YAML frontmatter", problems=[Problem(
            "frontmatter", "SKILL.md does not start with a '---' line",
            "Begin the file with '---', the YAML keys (name, description, ...), then '---'.")])
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() == "---":
            return "\n".join(lines[1:index]) + "\n", "\n".join(lines[index + 1:])
    raise InvalidSkill("SKILL.md frontmatter is not closed", problems=[Problem(
        "frontmatter", "the frontmatter has no closing '---' line",
        "Add a line containing only '---' after the last YAML key.")])


# --- unsafe characters ----------------------------------------------------------------------

# Invisible characters that reorder or hide text (Trojan Source, CVE-2021-42574): the bidi
# embeddings, overrides and isolates, the implicit marks, and zero-width characters.
_INVISIBLE = frozenset("\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                       "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff")


def unsafe_character(text: str, *, allow: str = "", invisible: bool = True) -> str | None:
    """The first character of `text` a terminal or editor would not show as itself: C0
    controls (except those in `allow`), DEL, C1 controls, line and paragraph separators,
    and (with `invisible`) bidi controls and other invisible formatting characters."""
    for char in text:
        if char in allow:
            continue
        category = unicodedata.category(char)
        if category == "Cc" or category in ("Zl", "Zp"):
            return char
        if invisible and (char in _INVISIBLE or category == "Cf"):
            return char
    return None


def describe_character(char: str) -> str:
    """`U+202E (RIGHT-TO-LEFT OVERRIDE)`: a character named safely, for messages."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else " (a control character)")


def shown(text: str) -> str:
    """`text` for a message, with unsafe characters written as escapes (never raw)."""
    return "".join(char.encode("unicode_escape").decode("ascii")
                   if unsafe_character(char) else char for char in text)


def parse_manifest(text: str, *, dirname: str | None, strict: bool = False) -> Manifest:
    """Parse and validate SKILL.md text; raise InvalidSkill listing every error at once."""
    yaml_text, body = split_frontmatter(text)
    data = _load_yaml(yaml_text)
    problems = list(_validate(data, dirname=dirname, strict=strict))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InvalidSkill(_summary(errors), problems=problems)
    warnings = tuple(p for p in problems if p.severity == "warning")
    return _build(data, body, warnings)


def _summary(errors: list[Problem]) -> str:
    """One line naming how many errors there are and where."""
    fields = ", ".join(dict.fromkeys(p.field for p in errors))
    noun = "error" if len(errors) == 1 else "errors"
    return f"SKILL.md has {len(errors)} {noun} ({fields})"


# --- YAML -----------------------------------------------------------------------------------


class _FrontmatterLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases (no billion-laughs expansion) and collections nested
    deeper than MAX_YAML_DEPTH (PyYAML composes recursively)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose as SafeLoader does, but refuse `*alias` references and deep nesting."""
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed", event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"collections nest more than {MAX_YAML_DEPTH} levels deep",
                self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load_yaml(yaml_text: str) -> dict[str, Any]:
    """Load the frontmatter mapping safely; raise InvalidSkill on bad YAML or duplicate keys.

    Every failure of the YAML library (a control character the reader refuses, nesting
    past the cap, a syntax error) is a validation problem, never an unexpected error."""
    loader: _FrontmatterLoader | None = None
    try:
        loader = _FrontmatterLoader(yaml_text)  # the reader checks the characters here
        node = loader.get_single_node()
        duplicates = list(_duplicate_keys(node, "")) if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise InvalidSkill("SKILL.md frontmatter is not valid YAML", problems=[Problem(
            "frontmatter", f"invalid YAML: {_describe_yaml_error(exc, yaml_text)}",
            _yaml_hint(exc))]) from None
    except RecursionError:  # a backstop: the depth cap should make this unreachable
        raise InvalidSkill("SKILL.md frontmatter is not valid YAML", problems=[Problem(
            "frontmatter", "the YAML nests too deeply", _DEPTH_HINT)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise InvalidSkill("SKILL.md frontmatter is not a mapping", problems=[Problem(
            "frontmatter", "the frontmatter must be a YAML mapping of keys to values",
            "Write one 'key: value' per line, e.g. 'name: my-skill'.")])
    if duplicates:
        raise InvalidSkill("SKILL.md frontmatter repeats keys", problems=duplicates)
    return data


_DEPTH_HINT = (f"Keep the frontmatter flat: at most {MAX_YAML_DEPTH} levels of nested lists "
               "and mappings (the spec needs two: metadata and its keys).")
_CONTROL_HINT = ("Remove the control character; if an editor or a tool added it, retype the "
                 "line.")


def _yaml_hint(exc: yaml.YAMLError) -> str:
    """How to fix this kind of YAML failure."""
    if isinstance(exc, yaml.reader.ReaderError):
        return _CONTROL_HINT
    if "nest more than" in str(getattr(exc, "problem", "")):
        return _DEPTH_HINT
    return _YAML_HINT


def _describe_yaml_error(exc: yaml.YAMLError, yaml_text: str = "") -> str:
    """The YAML problem with a SKILL.md line number (the opening '---' is line 1)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = yaml_text.count("\n", 0, exc.position) + 2
        char = chr(exc.character) if isinstance(exc.character, int) else "?"
        return (f"the frontmatter contains the character {describe_character(char)}, which "
                f"YAML does not allow (SKILL.md line {line})")
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return str(problem)
    return f"{problem} (SKILL.md line {mark.line + 2}, column {mark.column + 1})"


def _duplicate_keys(node: yaml.Node, path: str) -> Iterator[Problem]:
    """Yield a problem for every key that appears twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            where = f"{path}.{key}" if path else key
            if isinstance(key_node, yaml.ScalarNode):
                if (key_node.tag, key) in seen:
                    yield Problem(where, f"the key '{key}' appears more than once",
                                  "Keep one of them; YAML would silently use the last.")
                seen.add((key_node.tag, key))
            yield from _duplicate_keys(value_node, where)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item, path)


# --- validation -----------------------------------------------------------------------------


def _validate(data: dict[Any, Any], *, dirname: str | None, strict: bool) -> Iterator[Problem]:
    """Yield every problem with the frontmatter mapping."""
    yield from _check_unknown_keys(data, strict)
    yield from _check_characters(data, "")
    yield from _check_name(data, dirname)
    yield from _check_description(data)
    yield from _check_optional_text(data, "license", max_length=None)
    yield from _check_optional_text(data, "compatibility", max_length=MAX_COMPATIBILITY_LENGTH)
    yield from _check_metadata(data.get("metadata"))
    yield from _check_allowed_tools(data.get("allowed-tools"))


def _check_characters(value: Any, where: str) -> Iterator[Problem]:
    """Every key and text value holding a control character (tab and newline excepted), at
    any depth: a terminal would run it as an escape sequence when the text is shown."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{shown(str(key))}" if where else shown(str(key))
            if isinstance(key, str):
                yield from _control_problem(key, path, "the key")
            yield from _check_characters(item, path)
    elif isinstance(value, list):
        for item in value:
            yield from _check_characters(item, where)
    elif isinstance(value, str):
        yield from _control_problem(value, where, "the value of")


def _control_problem(text: str, where: str, what: str) -> Iterator[Problem]:
    """A problem when `text` holds a control character (tab and newline are text)."""
    char = unsafe_character(text, allow="\t\n", invisible=False)
    if char is not None:
        yield Problem(where, f"{what} '{where}' contains the control character "
                      f"{describe_character(char)}", _CONTROL_HINT)


def _check_unknown_keys(data: dict[Any, Any], strict: bool) -> Iterator[Problem]:
    """Keys outside the spec: warnings by default, errors when strict."""
    severity = "error" if strict else "warning"
    for key in data:
        if key in SPEC_KEYS:
            continue
        text = shown(str(key))
        yield Problem(text, _unknown_key_message(text), _unknown_key_hint(text), severity)


def _unknown_key_message(key: str) -> str:
    """Why this key is unknown."""
    if key in CLIENT_EXTENSION_KEYS:
        return (f"'{key}' is a client extension (e.g. Claude Code), not an agentskills.io "
                "spec field")
    return f"'{key}' is not an agentskills.io spec field"


def _unknown_key_hint(key: str) -> str:
    """How to fix an unknown key."""
    if key.lower() in SPEC_KEYS:
        return f"Keys are case-sensitive: write '{key.lower()}'."
    allowed = ", ".join(sorted(SPEC_KEYS))
    return (f"Move it under 'metadata:' as a string (e.g. metadata: {{{key}: \"...\"}}) or "
            f"remove it. Allowed top-level keys: {allowed}.")


def _check_name(data: dict[Any, Any], dirname: str | None) -> Iterator[Problem]:
    """The name: required, 1-64 lowercase letters, digits and single hyphens, equal to dirname."""
    if "name" not in data:
        yield Problem("name", "the required field 'name' is missing",
                      "Add 'name: my-skill' (lowercase letters, digits and hyphens).")
        return
    value = data["name"]
    if not isinstance(value, str):
        yield _not_text("name", value)
        return
    name = normalize_name(value)
    if not name:
        yield Problem("name", "'name' is empty", "Give the skill a name such as 'my-skill'.")
        return
    char = unsafe_character(name)
    if char is not None:
        yield Problem("name", f"the name '{shown(name)}' contains the invisible or control "
                      f"character {describe_character(char)}",
                      "Use lowercase letters, digits and hyphens only; retype the name.")
        return
    yield from _name_format_problems(name)
    if dirname is not None and unicodedata.normalize("NFKC", dirname) != name:
        yield Problem("name", f"the name '{name}' does not match its folder '{dirname}'",
                      f"Rename the folder to '{name}' or set 'name: {dirname}'.")


def normalize_name(value: str) -> str:
    """The name as the spec compares it: stripped and NFKC-normalised."""
    return unicodedata.normalize("NFKC", value.strip())


def _name_format_problems(name: str) -> Iterator[Problem]:
    """Every format rule the name breaks (the reference validator's rules)."""
    if len(name) > MAX_NAME_LENGTH:
        yield Problem("name", f"the name is {len(name)} characters; the limit is "
                      f"{MAX_NAME_LENGTH}", "Shorten the name.")
    if name != name.lower():
        yield Problem("name", f"the name '{name}' must be lowercase",
                      f"Use '{_suggest_name(name)}'.")
    if name.startswith("-") or name.endswith("-"):
        yield Problem("name", "the name cannot start or end with a hyphen",
                      f"Use '{name.strip('-')}'.")
    if "--" in name:
        yield Problem("name", "the name cannot contain consecutive hyphens",
                      f"Use '{re.sub('-{2,}', '-', name)}'.")
    if not all(c.isalnum() or c == "-" for c in name):
        yield Problem("name", f"the name '{name}' contains characters other than letters, "
                      "digits and hyphens", f"Use '{_suggest_name(name)}'.")


def _suggest_name(name: str) -> str:
    """A spec-conforming spelling of a bad name, for hints."""
    words = re.split(r"[^\w]+|_", name.lower())
    return "-".join(w for w in words if w) or "my-skill"


def _check_description(data: dict[Any, Any]) -> Iterator[Problem]:
    """The description: required non-empty text of at most 1024 characters."""
    if "description" not in data:
        yield Problem("description", "the required field 'description' is missing",
                      "Add 'description:' saying what the skill does and when to use it.")
        return
    value = data["description"]
    if not isinstance(value, str):
        yield _not_text("description", value)
    elif not value.strip():
        yield Problem("description", "'description' is empty",
                      "Say what the skill does and when an agent should use it.")
    elif len(value) > MAX_DESCRIPTION_LENGTH:
        yield Problem("description", f"the description is {len(value)} characters; the limit "
                      f"is {MAX_DESCRIPTION_LENGTH}",
                      "Shorten it and move the detail into the body of SKILL.md.")


def _check_optional_text(data: dict[Any, Any], key: str,
                         max_length: int | None) -> Iterator[Problem]:
    """An optional string field (absent or null is fine)."""
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, str):
        yield _not_text(key, value)
    elif max_length is not None and not value.strip():
        yield Problem(key, f"'{key}' is empty", f"Write 1-{max_length} characters or remove it.")
    elif max_length is not None and len(value) > max_length:
        yield Problem(key, f"'{key}' is {len(value)} characters; the limit is {max_length}",
                      "Shorten it.")


def _check_metadata(value: Any) -> Iterator[Problem]:
    """metadata: a mapping of string keys to string values."""
    if value is None:
        return
    if not isinstance(value, dict):
        yield Problem("metadata", "'metadata' must be a mapping of keys to text values",
                      "Write it as indented 'key: \"value\"' lines under 'metadata:'.")
        return
    for key, item in value.items():
        where = f"metadata.{key}"
        if not isinstance(key, str):
            yield Problem(where, f"the metadata key {key!r} is not text",
                          f'Quote the key: "{key}": ...')
        if not isinstance(item, str):
            yield _not_text(where, item, key=str(key))


def _check_allowed_tools(value: Any) -> Iterator[Problem]:
    """allowed-tools: a space-separated string; a list of strings is accepted with a warning."""
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        joined = " ".join(value)
        yield Problem("allowed-tools", "'allowed-tools' is a list; the spec defines a "
                      "space-separated string", f'Write allowed-tools: "{joined}".', "warning")
        return
    yield Problem("allowed-tools", "'allowed-tools' must be a space-separated string of tools",
                  'Write e.g. allowed-tools: "Read Bash(git:*)".')


def _not_text(where: str, value: Any, *, key: str | None = None) -> Problem:
    """A problem for a value YAML read as a non-string (number, date, list, ...)."""
    kind = _yaml_kind(value)
    label = key if key is not None else where
    if isinstance(value, (dict, list)) or value is None:
        hint = f"Write '{label}' as a single line of text."
    else:
        hint = _QUOTE_HINT.format(key=label, value=_yaml_text(value))
    return Problem(where, f"'{where}' must be text, but YAML read {kind}", hint)


def _yaml_kind(value: Any) -> str:
    """A short description of a YAML value's type."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list",
             dict: "a mapping", type(None): "nothing (null)"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _yaml_text(value: Any) -> str:
    """How the author most likely wrote a scalar value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- building the manifest ------------------------------------------------------------------


def _build(data: dict[str, Any], body: str, warnings: tuple[Problem, ...]) -> Manifest:
    """A Manifest from frontmatter that passed validation."""
    metadata: dict[str, str] = dict(data.get("metadata") or {})
    tools = data.get("allowed-tools")
    return Manifest(
        name=normalize_name(data["name"]),
        description=data["description"].strip(),
        body=body,
        frontmatter=data,
        license=data.get("license"),
        compatibility=data.get("compatibility"),
        metadata=metadata,
        allowed_tools=" ".join(tools) if isinstance(tools, list) else tools,
        tags=_tags(metadata.get("tags"), data.get("tags")),
        version=metadata.get("version"),
        warnings=warnings,
    )


def _tags(from_metadata: str | None, top_level: Any) -> list[str]:
    """Tags from metadata.tags and a top-level tags key (comma or space separated)."""
    values: list[str] = []
    for source in (from_metadata, top_level):
        if isinstance(source, str):
            values.extend(source.split(",") if "," in source else source.split())
        elif isinstance(source, list):
            values.extend(str(item) for item in source if isinstance(item, (str, int, float)))
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))
