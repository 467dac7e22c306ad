"""What every check returns: findings with a rule id, and the verdict they add up to.

A finding names its rule, the family the rule belongs to, a severity, the file and line,
what was seen and how to fix it. The verdict of a version is decided by the worst finding
that is not covered by a reviewed exception:

    critical  -> dangerous  (refused at publish)
    high      -> caution    (published, flagged everywhere it is shown)
    medium, low, info -> safe (listed in the report)
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

SAFE = "safe"
CAUTION = "caution"
DANGEROUS = "dangerous"
VERDICTS = (SAFE, CAUTION, DANGEROUS)

# Where a finding came from: one per stage of the pipeline.
SOURCES = ("spec", "syntax", "bandit", "threat", "sandbox")

# The families threat rules belong to. Reports, the labelled test set and the benchmark
# all use these names.
FAMILIES = (
    "prompt-injection",   # ignore previous instructions, concealment, role hijack, hidden
                          # comments, edits to agent memory/config files
    "remote-exec",        # curl|sh, bash -c "$(curl ...)", raw-IP URLs, paste sites
    "supply-chain",       # untrusted package indexes, typosquatted names, install hooks
    "delayed-trigger",    # behaviour that changes after a date or a number of uses
    "encoded-payload",    # base64/hex/xor/base85 chains fed to a shell or exec
    "fake-prereq",        # password-protected archives, "copy this into your terminal"
    "credential-access",  # ~/.ssh, ~/.aws, .env, keychains, browser profiles
    "exfiltration",       # secrets sent out (curl --data, webhooks, ...)
    "destructive",        # rm -rf /, mkfs, dd to disks, fork bombs
    "persistence",        # cron, shell rc files, launch agents, systemd units
    "insecure-tls",       # curl -k, verify=False, NODE_TLS_REJECT_UNAUTHORIZED=0
    "secret",             # hardcoded AWS/GitHub/OpenAI-style keys, private keys
    "hidden-unicode",     # invisible, bidi and tag-block (U+E0000-E007F) characters
    "binary",             # binaries and executables where none belong
    # Families of the other stages.
    "syntax",
    "bandit",
    "sandbox",
    "spec",
)


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Severity) -> Severity:
        if isinstance(value, Severity):
            return value
        if isinstance(value, int):
            return cls(value)
        return cls[value.upper()]


@dataclass(frozen=True)
class Finding:
    """One thing a check saw. `line` is 1-based; None when the finding is about a whole file."""

    rule: str            # e.g. "remote-exec.pipe-to-shell", "bandit.B602", "syntax.python"
    family: str          # one of FAMILIES
    severity: Severity
    source: str          # one of SOURCES
    message: str         # what was seen, in one sentence
    hint: str            # how to fix it
    file: str | None = None
    line: int | None = None
    excerpt: str = ""    # the offending text, trimmed, invisible characters escaped
    confidence: str | None = None  # bandit's confidence, when it has one
    exception: str | None = None   # the reviewed exception's reason, when one covers it

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "family": self.family, "severity": self.severity.label,
            "source": self.source, "file": self.file, "line": self.line,
            "message": self.message, "hint": self.hint, "excerpt": self.excerpt,
            "confidence": self.confidence, "exception": self.exception,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            rule=data["rule"], family=data["family"], severity=Severity.parse(data["severity"]),
            source=data["source"], message=data["message"], hint=data["hint"],
            file=data.get("file"), line=data.get("line"), excerpt=data.get("excerpt", ""),
            confidence=data.get("confidence"), exception=data.get("exception"),
        )

    def excepted(self, reason: str) -> Finding:
        return replace(self, exception=reason)

    @property
    def counts(self) -> bool:
        """Whether the finding weighs on the verdict (no reviewed exception covers it)."""
        return self.exception is None


def verdict_of(findings: Iterable[Finding]) -> str:
    worst = max((f.severity for f in findings if f.counts), default=Severity.INFO)
    if worst >= Severity.CRITICAL:
        return DANGEROUS
    if worst >= Severity.HIGH:
        return CAUTION
    return SAFE


def escape_invisible(text: str, limit: int = 160) -> str:
    """Trim `text` to `limit` characters and show invisible/format characters as \\uXXXX."""
    out = []
    for ch in text:
        if ch in "\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cf", "Cc", "Co", "Cn") or ch in "\u2028\u2029":
            code = ord(ch)
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
        else:
            out.append(ch)
    result = "".join(out).strip()
    return result if len(result) <= limit else result[: limit - 1] + "…"
