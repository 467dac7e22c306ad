"""Threat rules: what a malicious skill looks like, as a table of named rules.

Every text file of a skill (SKILL.md included) is scanned line by line. The approach:

- **Normalise before matching.** Backslash-newline continuations are joined (the finding
  points at the first physical line), and each logical line is matched in a de-obfuscated,
  lower-cased form: quotes and backticks dropped (``c'u'rl`` -> ``curl``), string
  concatenations joined (``"cu" + "rl"``), ``${IFS}`` made a space, backslash escapes
  before letters removed, ANSI-C ``$'\\x63'`` escapes decoded, and shell variables assigned
  in the same file substituted (``a=cu; b=rl; $a$b``). Secrets and Unicode are matched on
  the raw text, where case and invisible characters matter.
- **Decode what is hidden.** Long base64, base32, hex and base85 strings, ROT13 strings in
  files that mention rot13, and Unicode tag characters are decoded; decoded text is scanned
  with the same rules, and a hit is reported as an ``encoded-payload`` finding at the blob.
- **Combine within a file.** Reading credentials and sending data in the same file is
  exfiltration; "paste this into your terminal" next to a download-and-run is a fake
  prerequisite; ``exec``/``eval`` in a file that decodes data is an encoded payload.

Severity policy (the verdict is set in ``findings.py``): CRITICAL only for what is malicious
in essentially every context (a download piped to a shell from a raw IP or paste site,
decode-and-execute, credential theft with egress, instruction overrides, hidden tag
characters, wiping a home folder); HIGH for what is risky but has legitimate uses (a
well-known installer piped to a shell, a shipped secret, persistence, a native binary);
MEDIUM and below for context (disabled TLS verification, a release download).

Matching is linear: every pattern uses bounded repetition only, each rule has literal
keywords that must appear in the file before its patterns run, and long lines are scanned
in overlapping windows.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml

from skills_hub.checks.findings import FAMILIES, Finding, Severity, escape_invisible
from skills_hub.errors import InvalidSkill
from skills_hub.skill.bundle import Bundle
from skills_hub.skill.manifest import split_frontmatter

MAX_PER_RULE_PER_FILE = 20
WINDOW = 4000          # characters of a line matched at once
WINDOW_OVERLAP = 300
MAX_DECODE_DEPTH = 2
MAX_BLOBS_PER_FILE = 50

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW


@dataclass(frozen=True)
class Rule:
    id: str
    family: str
    severity: Severity
    title: str
    hint: str
    patterns: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()   # one must occur in the (normalised) file to try the rule
    raw: bool = False                # match the raw line (case and invisible chars kept)
    compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        flags = 0 if self.raw else re.IGNORECASE
        object.__setattr__(self, "compiled", tuple(re.compile(p, flags) for p in self.patterns))


# -- building blocks of the patterns ------------------------------------------------------

SHELL = r"(?:sudo\s+(?:-\S+\s+){0,3})?(?:env\s+)?(?:/usr)?(?:/bin/)?(?:ba|z|k|da|fi)?sh\b(?!\w)"
INTERP = rf"(?:{SHELL}|python[23]?(?:\.\d+)?\b|perl\b|ruby\b|node\b|php\b|pwsh\b|powershell\b)"
FETCH = r"(?:curl|wget|fetch|aria2c|iwr|irm|invoke-webrequest|invoke-restmethod|lwp-download)\b"
RAW_IP = (r"(?:https?|ftp|tcp)://(?!127\.|0\.0\.0\.0|10\.|192\.168\.|172\.(?:1[6-9]|2\d|3[01])\.|"
          r"169\.254\.|localhost)\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
PASTE_HOSTS = (r"(?:pastebin\.com|paste\.ee|hastebin\.com|ghostbin\.\w+|rentry\.(?:co|org)|"
               r"termbin\.com|transfer\.sh|0x0\.st|controlc\.com|pastes\.io|paste\.rs|"
               r"dpaste\.\w+|justpaste\.it|pastebin\.pl|ix\.io|sprunge\.us|"
               r"[\w-]+\.ngrok(?:-free)?\.(?:io|app|dev)|ngrok\.io|[\w-]+\.trycloudflare\.com|"
               r"serveo\.net|[\w-]+\.localhost\.run|[\w-]+\.loca\.lt|[\w-]+\.serveousercontent\.com)")
UNTRUSTED = rf"(?:{RAW_IP}|https?://(?:[\w.-]+\.)?{PASTE_HOSTS}|\bhttp://(?!localhost|127\.))"
KNOWN_INSTALLERS = (r"(?:sh\.rustup\.rs|astral\.sh|get\.docker\.com|raw\.githubusercontent\.com/"
                    r"(?:homebrew|nvm-sh|ohmyzsh)|install\.python-poetry\.org|deno\.land|"
                    r"bun\.sh|get\.pnpm\.io|cli\.github\.com|brew\.sh|sdk\.cloud\.google\.com|"
                    r"claude\.ai/install|ollama\.com/install|fnm\.vercel\.app|get\.helm\.sh|"
                    r"pyenv\.run|starship\.rs|tailscale\.com/install|foundry\.paradigm\.xyz|"
                    r"install\.determinate\.systems|nixos\.org|mise\.run|volta\.sh)")
HOME = r"(?:~|\$home|\$\{home\}|%userprofile%|\$env:userprofile|expanduser\(\s*~|path\.home\(\)|" \
       r"os\.homedir\(\)|homedir\(\)|/home/\w+|/users/\w+|/root)"
SECRET_PATHS = (r"(?:\.ssh/(?:id_\w+(?!\.pub)|identity|\*)|(?:~|\$home|\$\{home\})/\.ssh\b(?!/config|/known_hosts)|"
                r"\.aws/(?:credentials|config)|(?:~|\$home|\$\{home\})/\.aws\b|\.config/gcloud|\.azure/|\.netrc|"
                r"\.docker/config\.json|\.kube/config|\.git-credentials|\.npmrc|\.pypirc|"
                r"\.gnupg|wallet\.dat|\.bitcoin|\.ethereum|keystore|login data|"
                r"cookies(?:\.sqlite)?\b|logins\.json|key[34]\.db|local state|"
                r"\.bash_history|\.zsh_history|\.password-store|\.config/gh/hosts\.yml|"
                r"(?:~|\$home|\$\{home\})/\.env\b|/etc/shadow|\.local/share/keyrings|keychain)")
# What a request that sends secrets carries: files and environment values, not a header.
EXFIL_DATA = (r"(?:\.env\b(?!\.example|\.sample|\.template)|id_rsa|id_ed25519|aws_secret|"
              r"\bprintenv\b|os\.environ|process\.env)")
READ_VERBS = (r"(?:\bcat\b|\bless\b|\bhead\b|\btail\b|\bcp\b|\bscp\b|\brsync\b|\btar\b|\bzip\b|"
              r"\bbase64\b|\bxxd\b|\bfind\b|\bgrep\b|open\(|read_text\(|read_bytes\(|"
              r"readfile\w*\(|get-content\b|copyfile|copy2?\(|shutil\.|configparser|"
              r"\.read\(|glob\(|\bsqlite3\b)")
SEND = (r"(?:requests\.(?:post|put|patch)|httpx\.(?:post|put)|urlopen\(|urllib\.request\.request\(|"
        r"http\.client|socket\.(?:socket|create_connection)|smtplib|axios\.post|"
        r"fetch\([^)]{0,200}method\s*:\s*post|\bcurl\b[^\n]{0,300}\s(?:-d|--data[\w-]*|-f|--form|-t|"
        r"--upload-file|-x\s*post)\b|\bwget\b[^\n]{0,200}--post-(?:file|data)|\b(?:nc|ncat|netcat)"
        r"\s+(?:-\w+\s+){0,3}[\w.-]+\s+\d{2,5}|/dev/tcp/|invoke-restmethod[^\n]{0,200}-method\s+post|"
        r"git\s+push\s+--mirror|__import__\(\s*(?:requests|httpx|socket|urllib\.request)\s*\)|"
        r"getattr\([^)]{0,40},\s*(?:post|put|urlopen|sendall)\s*\))")
AGENT_FILES = (r"(?:claude\.md|agents\.md|gemini\.md|memory\.md|user\.md|soul\.md|\.cursorrules|"
               r"\.windsurfrules|copilot-instructions\.md|(?:\.claude|\.hermes|\.codex|\.gemini|"
               r"\.cursor|\.openclaw|\.clawdbot|\.continue)/(?!skills\b)|\.aider)")

# A claim of approval is an order only when it is not a condition ("once the user has approved").
_NOT_CONDITIONAL = ("(?<!once the )(?<!after the )(?<!when the )(?<!until the )(?<!if the )"
                    "(?<!before the )(?<!unless the )(?<!once )(?<!after )(?<!when )(?<!if )"
                    "(?<!until )(?<!unless )(?<!before )")

# -- the rules ------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    # prompt injection and concealment
    Rule("prompt-injection.ignore-instructions", "prompt-injection", C,
         "Instruction override",
         "Remove text that tells the agent to ignore or replace its instructions; a skill adds "
         "procedures, it never overrides the user or the system.",
         (r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)"
          r"{0,3}(?:previous|prior|above|earlier|preceding|former|system|original|existing|safety)"
          r"\s+(?:\w+\s+){0,2}(?:instructions?|prompts?|rules|guidelines|directives|guidance|"
          r"constraints|messages)\b",
          r"\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:you\s+were\s+told|above|before)"),
         ("ignore", "disregard", "forget", "override", "bypass")),
    Rule("prompt-injection.concealment", "prompt-injection", H,
         "Hiding actions from the user",
         "A skill must not ask the agent to hide what it does; remove the concealment and let "
         "the agent report every action.",
         (r"\b(?:do\s+not|don't|never|must\s+not|without)\s+(?:tell(?:ing)?|inform(?:ing)?|"
          r"mention(?:ing)?|reveal(?:ing)?|alert(?:ing)?|notify(?:ing)?|disclos\w+|ask(?:ing)?)"
          r"\s+(?:\w+\s+){0,3}(?:the\s+)?(?:user|human|operator|owner)\b(?!\s+(?:to|how|that\s+you\s+can)\b)",
          r"\bwithout\s+(?:the\s+)?(?:user|human|them)\s+(?:knowing|noticing|seeing|being\s+aware)",
          r"\b(?:silently|quietly|secretly|covertly|discreetly|invisibly)\s+(?:\w+\s+){0,2}"
          r"(?:run|execute|send|upload|post|install|copy|exfiltrat\w*|forward|delete|add|append|"
          r"write|curl|fetch|download|transmit|collect)",
          r"\bkeep\s+(?:this|it)\s+(?:secret|hidden|confidential)\s+from\b",
          r"\b(?:do\s+(?:this|it|so)|run\s+(?:them|it|this|these))\s+without\s+(?:asking|"
          r"confirmation|confirming|prompting|approval)",
          r"\b(?:hide|suppress)\s+(?:this|the)\s+(?:output|step|command|action)s?\s+from\s+the\s+user"),
         ("tell", "inform", "mention", "reveal", "without", "silently", "quietly", "secretly",
          "covertly", "discreetly", "keep", "hide", "suppress", "notify", "alert", "disclos")),
    Rule("prompt-injection.role-hijack", "prompt-injection", C,
         "Role hijack or fake system message",
         "Remove fake system/assistant turns and persona overrides; skills are plain procedures.",
         (r"<\|im_start\|>\s*system", r"<\|system\|>",
          r"^\s*<\s*/?\s*(?:system|system_prompt|system-prompt)\s*>\s*$",
          r"^\s*</\s*(?:instructions|user_instructions|skill)\s*>\s*<",
          r"\byou\s+are\s+now\s+(?:dan\b|in\s+(?:developer|god|jailbreak)\s+mode|jailbroken|"
          r"an?\s+(?:unrestricted|unfiltered|uncensored))",
          r"\b(?:developer|god|jailbreak)\s+mode\s+(?:enabled|activated|on)\b",
          r"\[\s*(?:system|admin)\s+(?:override|instruction|message)\s*\]",
          r"\bnew\s+system\s+prompt\s*:", r"^\s*#+\s*system\s+override\b"),
         ("im_start", "<|", "you are now", "mode", "system", "override")),
    Rule("prompt-injection.agent-config-tamper", "prompt-injection", C,
         "Writes to agent memory or configuration",
         "A skill must not edit the agent's memory, instructions or settings files; describe the "
         "setting and let the user change it.",
         (rf"(?:(?:^|(?<=\s))\d?>>?|\btee\b(?:\s+-a)?|write_text\(|\.write\(|appendfile\w*\(|writefile\w*\(|"
          rf"add-content|set-content|open\([^)]{{0,120}}['\"]?[aw]\+?['\"]?\s*\)|\bcp\b|\bmv\b|"
          rf"\bsed\s+-i)[^\n]{{0,160}}{AGENT_FILES}",
          rf"{AGENT_FILES}[^\n]{{0,120}}(?:open\([^)]{{0,60}}['\"]a|\.write\(|write_text\()",
          rf"(?<!not )(?<!never )\b(?:add|append|write|insert|prepend)\b[^\n]{{0,80}}\b(?:to|into)"
          rf"\s+(?:[\w'’-]+\s+){{0,4}}(?:(?:persistent|long[- ]term|permanent|agent|agent's|"
          rf"your|its)\s+memor(?:y|ies)\b|{AGENT_FILES})"),
         ("claude", "agents.md", "gemini", "memory", "user.md", "soul.md", "cursorrules",
          "windsurfrules", "copilot-instructions", ".hermes", ".codex", ".cursor", "openclaw",
          "clawdbot", ".continue", "aider", "system prompt")),
    Rule("prompt-injection.auto-approve", "prompt-injection", C,
         "Disables the agent's permission prompts",
         "Remove settings that auto-approve tools or skip permission checks; the user decides "
         "what the agent may run.",
         (r"dangerously-?skip-?permissions", r"bypasspermissions",
          r"\bautoapprove\w*\s*[:=]\s*(?:true|\[)", r"approval[_-]?(?:policy|mode)\s*[:=]\s*never",
          r"--yolo\b", r"\ballow\W{1,6}bash\(\*\)", r"full[_-]auto\s*[:=]\s*true", r"--full-auto\b",
          r"--dangerously-bypass-approvals-and-sandbox", r"--approval-mode[\s=]+yolo",
          r"\b(?:trust|approve)_all_tools\s*[:=]\s*true", r"sandbox_mode\s*[:=]\s*danger"),
         ("permission", "autoapprove", "approval", "yolo", "bash(*)", "full", "approve_all",
          "dangerously",
          "trust_all", "sandbox_mode")),
    Rule("prompt-injection.hidden-comment", "prompt-injection", H,
         "Instructions hidden in an HTML comment",
         "Move instructions out of HTML comments into visible text, or remove them; readers "
         "of the rendered page cannot see comments, agents can."),
    Rule("prompt-injection.persuasion", "prompt-injection", C,
         "Persuasion that talks the agent out of its safeguards",
         "Remove claims of prior approval, of priority over other instructions and pressure "
         "to skip confirmation; a skill states what it does and lets the user approve it.",
         (rf"{_NOT_CONDITIONAL}\b(?:user|owner|operator|admin\w*|developers?|maintainers?|lead|"
          r"manager|team|company|organi[sz]ation|anthropic|openai)\s+(?:has|have|had)\s+"
          r"(?:already\s+|previously\s+|explicitly\s+)?(?:pre-?)?(?:approved|authori[sz]ed|"
          r"consented\s+to|allowed|permitted|whitelisted|cleared|signed\s+off\s+on)\s+"
          r"(?:all|every|any|each|these|everything)\b",
          r"\bpre-?(?:approved|authori[sz]ed|cleared)\s+(?:all|every|any|everything)\b",
          r"\b(?:all|every|any)\s+(?:\w+\s+){0,3}(?:commands?|actions?|tools?|operations?|steps?|"
          r"changes?|requests?)\s+(?:are|is|have\s+been|has\s+been)\s+(?:already\s+)?"
          r"pre-?(?:approved|authori[sz]ed|cleared)",
          r"\b(?:this\s+skill|these\s+(?:steps|instructions|commands))\s+(?:is|are|has\s+been|"
          r"have\s+been)\s+(?:already\s+)?(?:pre-?approved|pre-?authori[sz]ed|whitelisted)\b",
          r"\b(?:take|takes|have|has|get|gets)\s+(?:\w+\s+){0,2}(?:precedence|priority)\s+over\s+"
          r"(?:the\s+|your\s+|any\s+|all\s+)?(?:\w+\s+){0,2}(?:system\s+prompt|(?:other|previous|"
          r"prior|earlier|safety|default)\s+(?:guidance|instructions|guidelines|rules|polic(?:y|ies))|"
          r"(?:your|the\s+assistant'?s|the\s+agent'?s)\s+(?:\w+\s+)?(?:instructions|guidelines|"
          r"rules|polic(?:y|ies)|training)|safety\s+\w+|user'?s?\s+instructions)",
          r"\btreat\s+(?:the\s+)?(?:text|instructions|content|comments?|notes?|messages?|anything|"
          r"whatever)\s+(?:in|from|found\s+in|inside)\s+(?:(?!\b(?:data|never|not|untrusted)\b)"
          r"[^\n]){0,80}?\bas\s+(?:if\s+(?:they|it)\s+"
          r"(?:were|was|came)\s+)?(?:(?:direct|trusted|binding|user|system)\s+)?(?:instructions|"
          r"commands|orders|from\s+the\s+(?:user|owner|operator|system))\b",
          r"\b(?:instructions|text|requests?|notes?|comments?)\s+(?:found\s+)?(?:in|inside)\s+"
          r"[^\n]{0,80}?\b(?:come|comes|are|is)\s+(?:directly\s+)?from\s+(?:the\s+)?(?:user|owner|"
          r"operator|administrator|system|developer)\b",
          r"\b(?:your|the)\s+(?:usual|normal|standard|default|built-in|regular)\s+(?:\w+\s+)?"
          r"(?:rules|restrictions|guidelines|polic(?:y|ies)|safeguards|safety\s+\w+|checks|limits)"
          r"\s+(?:do\s+not|don't|no\s+longer|does\s+not|are\s+(?:suspended|lifted|waived|relaxed|"
          r"disabled|not\s+needed)|is\s+(?:suspended|lifted|waived|disabled))",
          r"\bsafety\s+(?:checks?|warnings?|reminders?|guidelines?|reviews?|prompts?)\s+(?:are|is)\s+"
          r"(?:unnecessary|not\s+needed|redundant|optional|disabled|waived|not\s+required)"),
         ("approved", "authori", "consented", "allowed", "permitted", "whitelisted", "cleared",
          "signed off", "precedence", "priority", "treat", "come from", "comes from",
          "are from", "is from", "apply", "suspended", "lifted", "waived", "relaxed",
          "disabled", "not needed", "unnecessary", "redundant", "optional", "not required")),
    Rule("delayed-trigger.instructions", "delayed-trigger", C,
         "Behaviour that changes after a date or a number of uses",
         "Remove the condition: a skill behaves the same way every time, so what was reviewed "
         "is what runs; a date or use count that unlocks other steps hides them from review."),
    Rule("prompt-injection.subagent-auto-approve", "prompt-injection", M,
         "Runs a sub-agent with its permission prompts off",
         "Say why the sub-agent needs it and keep it scoped (a worktree or container, a "
         "narrow tool list); never persist the setting in the user's agent configuration."),
    Rule("prompt-injection.memory-write", "prompt-injection", L,
         "Documented write to the agent's own memory or instruction file",
         "Show the user what is written and keep it to facts and preferences; standing orders, "
         "permission changes and hidden text make it agent-config-tamper."),
    # remote execution
    Rule("remote-exec.untrusted-download-exec", "remote-exec", C,
         "Runs code downloaded from a raw IP, paste site or tunnel",
         "Never pipe a download from a raw IP, paste site, tunnel or plain http into a shell or "
         "interpreter; ship the script in the skill where it can be reviewed."),
    Rule("remote-exec.download-exec", "remote-exec", H,
         "Runs code downloaded at run time",
         "Ship the script in the skill, or download it, verify a pinned checksum, and only then "
         "run it; piping a download into a shell runs whatever the server sends.",
         (rf"{FETCH}[^\n|]{{0,400}}\|\s*{INTERP}",
          rf"{SHELL}\s+(?:-\w+\s+){{0,2}}\$\(\s*{FETCH}",
          rf"{SHELL}\s+<\(\s*{FETCH}", rf"\b(?:eval|source|\.)\s+\$?\(?<?\(\s*{FETCH}",
          rf"\beval\s+\$\(\s*{FETCH}",
          r"\b(?:iex|invoke-expression)\b[^\n]{0,40}(?:iwr|irm|invoke-webrequest|invoke-restmethod|"
          r"downloadstring|net\.webclient)",
          r"(?:iwr|irm|invoke-webrequest|invoke-restmethod|downloadstring)\b[^\n]{0,300}\|\s*"
          r"(?:iex|invoke-expression)\b",
          r"\b(?:exec|eval)\s*\(\s*(?:urllib\.request\.)?urlopen\(",
          r"\b(?:exec|eval)\s*\(\s*(?:requests|httpx)\.get\(",
          r"\b(?:exec|eval)\s*\([^\n]{0,80}(?:urlopen|requests\.get|httpx\.get)\(",
          rf"{FETCH}[^\n;|&]{{0,300}}(?:-o|-O|--output)\s*\S+\s*(?:&&|;)\s*(?:chmod\s+\+?[0-7x]+\s+\S+"
          rf"\s*(?:&&|;)\s*)?(?:\./|{SHELL}|bash\s|sh\s)"),
         ("curl", "wget", "fetch", "aria2c", "iwr", "irm", "invoke-", "lwp-download", "urlopen",
          "requests.get", "httpx.get", "downloadstring", "webclient")),
    Rule("remote-exec.known-installer", "remote-exec", M,
         "Pipes a well-known installer into a shell",
         "Prefer the tool's package manager; if the official installer is needed, say what it "
         "installs so the user can decide."),
    Rule("remote-exec.reverse-shell", "remote-exec", C,
         "Reverse shell",
         "Remove the reverse shell; a skill must never hand a remote host a shell.",
         (r"/dev/tcp/[\w.-]+/\d+", r"\b(?:nc|ncat|netcat)\b[^\n]{0,80}\s-(?:e|c)\s+(?:/bin/)?\w*sh\b",
          r"\bsocat\b[^\n]{0,120}exec:[^\n]{0,40}sh\b",
          r"pty\.spawn\([^)]{0,40}sh[^)]{0,10}\)[^\n]{0,200}", r"mkfifo\s+\S+[^\n]{0,120}\bnc\b",
          r"socket\.socket\([^\n]{0,200}(?:dup2|subprocess\.call\(\[?['\"]?/bin/\w*sh)"),
         ("/dev/tcp", "nc", "ncat", "netcat", "socat", "pty.spawn", "mkfifo", "dup2")),
    Rule("remote-exec.declared-source", "remote-exec", M,
         "Runs an installer from the skill's own declared homepage or repository",
         "Prefer a package manager or a pinned checksum; the script comes from the project the "
         "skill declares, so say what it installs."),
    Rule("delayed-trigger.code", "delayed-trigger", C,
         "Code that runs something only after a date or a number of uses",
         "Remove the date or use-count condition around the network, shell or exec call; "
         "code that waits before acting is built to pass review and tests."),
    Rule("supply-chain.untrusted-index", "supply-chain", H,
         "Installs packages from an untrusted package index",
         "Install from the official index (pypi.org, registry.npmjs.org) or the project's own "
         "declared source; an extra index lets whoever runs it replace any package.",
         (r"\b(?:pip[23]?|pipx|uv|poetry|pdm|rye|python[23]?(?:\.\d+)?\s+-m\s+pip)\b[^\n|;&]{0,300}?"
          r"\s(?:--(?:extra-)?index-url|--index|--default-index|--find-links|-i|-f)[\s=]+(\S+)",
          r"\b(?:npm|pnpm|yarn|bun|npx)\b[^\n|;&]{0,300}?\s--registry[\s=]+(\S+)",
          r"\b(?:npm|pnpm|yarn)\s+config\s+set\s+(?:@[\w-]+:)?registry[\s=]+(\S+)",
          r"\b(?:pip_index_url|pip_extra_index_url|pip_find_links|uv_index_url|uv_extra_index_url|"
          r"uv_default_index|uv_index|npm_config_registry|yarn_registry|goproxy)\s*[=:]\s*(\S+)",
          r"^\s*(?:extra-index-url|index-url|find-links)\s*[=:]\s*(\S+)",
          r"^\s*(?:@[\w-]+:)?registry\s*=\s*(\S+)", r"^\s*npmregistryserver:\s*(\S+)",
          r"^\s*(?:--(?:extra-)?index-url|-i|--find-links)[\s=]+(\S+)",
          r"\b(?:pip[23]?|pipx|uv\s+pip|npm|pnpm|yarn|bun)\s+(?:install|i|add)\b[^\n|;&]{0,300}?"
          r"\s(https?://\S+)"),
         ("index", "registry", "find-links", "goproxy", "-i ", "-f ", "install http", "add http",
          "i http")),
    Rule("supply-chain.typosquat", "supply-chain", H,
         "Installs a look-alike of a popular package name",
         "Check the spelling: the name is one typo away from a popular package, which is how "
         "typosquatted packages are found by mistake."),
    Rule("supply-chain.install-hook", "supply-chain", C,
         "Package install hook that runs code",
         "Remove the install hook (postinstall, preinstall, a setup.py install command); "
         "installing a package must not download or run code."),
    Rule("remote-exec.raw-ip-url", "remote-exec", H,
         "URL with a raw public IP address",
         "Use a named host the user can recognise and verify; raw IP addresses are how "
         "droppers avoid domain reputation.",
         (RAW_IP,), ("://",)),
    Rule("remote-exec.paste-site", "remote-exec", H,
         "Paste site or tunnel URL",
         "Ship the content in the skill; paste sites and tunnels serve content that can change "
         "after review.",
         (rf"(?:https?://)?(?:[\w-]+\.)?{PASTE_HOSTS}(?:/|\b)",),
         ("paste", "hastebin", "ghostbin", "rentry", "termbin", "transfer.sh", "0x0.st",
          "controlc", "ix.io", "sprunge", "ngrok", "trycloudflare", "serveo", "localhost.run",
          "loca.lt")),
    # encoded payloads
    Rule("encoded-payload.decode-to-shell", "encoded-payload", C,
         "Decoded data fed to a shell",
         "Write the command in plain text; encoding a command before running it only serves to "
         "hide it from review.",
         (rf"(?:base64\s+(?:-\w*d\w*|--decode)|base32\s+(?:-d|--decode)|xxd\s+(?:-\w+\s+){0,8}-r|"
          rf"openssl\s+(?:enc\s+)?(?:-\w+\s+){0,8}(?:-d|base64\s+-d|-a\s+-d)|\bgunzip\b|\bzcat\b|"
          rf"\brev\b|\btr\s+\S*a-z\S*\s+\S*n-za-m|\bprintf\s+\S*\\x[0-9a-f]{{2}}|"
          rf"echo\s+-e\s+\S*\\x[0-9a-f]{{2}})[^\n]{{0,300}}\|\s*{INTERP}",
          rf"{SHELL}\s+(?:-\w+\s+){{0,2}}\$\([^)]{{0,400}}(?:base64\s+-\w*d|xxd\s+-r|base32\s+-d)",
          r"\b(?:powershell|pwsh)(?:\.exe)?\b[^\n]{0,80}\s-(?:e|ec|enc|encodedcommand)\s+[a-z0-9+/=]{16,}",
          r"\beval\s*\(\s*(?:buffer\.from|atob)\(", r"\beval\s*\(\s*function\s*\(p,\s*a,\s*c,\s*k"),
         ("base64", "base32", "xxd", "openssl", "gunzip", "zcat", "rev", "tr ", "printf", "echo",
          "powershell", "pwsh", "eval")),
    Rule("encoded-payload.exec-decoded", "encoded-payload", C,
         "Executes decoded or assembled code",
         "Ship readable source; exec/eval of decoded, decompressed, XOR-ed or character-built "
         "strings hides what runs.",
         (r"\b(?:exec|eval|compile)\s*\([^\n]{0,200}(?:b64decode|b85decode|a85decode|b32decode|"
          r"b16decode|fromhex|unhexlify|decompress|marshal\.loads|codecs\.decode|rot_?13|"
          r"\bchr\(|bytes\(\[|bytearray\()",
          r"__import__\(\s*(?:base64|codecs|zlib|marshal|binascii)\b[^\n]{0,200}\b(?:exec|eval)\b",
          r"\b(?:exec|eval)\s*\(\s*__import__\(",
          r"\bgetattr\(\s*__builtins__[^\n]{0,40}(?:exec|eval)",
          r"new\s+function\s*\(\s*atob\(",
          r"getattr\(\s*__import__\(\s*\w+\s*\)\s*,\s*(?:system|popen|exec\w*|spawn\w*|eval|"
          r"check_output|run|call)\s*\)",
          r"(?:join\(\s*map\(\s*chr|join\(\s*chr\(|join\(\s*\[\s*chr\()[^\n]{0,300}"
          r"(?:system|popen|exec|eval|subprocess|spawn)",
          r"(?:system|popen|exec|eval|check_output|spawn\w*)\s*\([^\n]{0,40}join\(\s*(?:map\(\s*)?chr"),
         ("exec", "eval", "compile", "__import__", "__builtins__", "function", "chr")),
    Rule("encoded-payload.split-payload", "encoded-payload", C,
         "Command assembled from pieces in different sections or files",
         "Write the command once, in plain text, where it is used; pieces that only become a "
         "command when joined are hidden from review."),
    Rule("encoded-payload.hidden-blob", "encoded-payload", C,
         "Encoded blob hides a threat",
         "Ship the decoded content as plain text; a blob that decodes to a command or "
         "instruction is hidden from review."),
    # fake prerequisites
    Rule("fake-prereq.password-archive", "fake-prereq", H,
         "Password-protected archive",
         "Ship readable files in the skill; password-protected archives exist to evade "
         "scanners.",
         (r"\bunzip\s+(?:-\w+\s+){0,8}-p\s*\S+", r"\b7z[az]?\s+[xe]\b[^\n]{0,120}\s-p\S+",
          r"\bunrar\s+[xe]\b[^\n]{0,80}\s-p\S+",
          r"\b(?:archive|zip|file|rar|7z|download)(?:'s)?\s+(?:\w+\s+){0,2}password\s*(?:is|:|=)",
          r"\bpassword\s*(?::|is|=)\s*\S+[^\n]{0,80}\b(?:zip|archive|rar|7z|extract|unpack)",
          r"\bpass(?:word)?\s*[:=]?\s*infected\b",
          r"\b(?:unzip|extract|open|unpack|decompress)\b[^\n]{0,40}\bwith\s+(?:the\s+)?password\b"),
         ("password", "unzip", "7z", "unrar", "infected")),
    Rule("fake-prereq.paste-in-terminal", "fake-prereq", M,
         "Asks the user to paste a command into a terminal",
         "Prefer commands the agent runs visibly; if a manual step is needed, show exactly what "
         "it does.",
         (r"\b(?:copy|paste|run|type|enter|execute)\b[^\n]{0,40}\b(?:this|the\s+following|these|"
          r"below|command|line|one-liner)\b[^\n]{0,40}\b(?:terminal|command\s+prompt|powershell|"
          r"shell|console|run\s+dialog|win\s*\+\s*r)\b",
          r"\b(?:open|launch)\s+(?:a\s+|your\s+)?terminal\s+and\s+(?:paste|run|type)\b"),
         ("terminal", "prompt", "powershell", "shell", "console", "run dialog")),
    Rule("fake-prereq.terminal-dropper", "fake-prereq", C,
         "Fake setup step that runs hidden or downloaded code",
         "Remove the setup step: it asks for a pasted command that downloads or decodes code."),
    Rule("fake-prereq.release-binary", "fake-prereq", M,
         "Prerequisite binary from a release page or file host",
         "Install prerequisites with a package manager, or pin a checksum and say what the "
         "binary is.",
         (r"https?://\S{0,200}/releases/download/\S{0,200}\.(?:exe|dmg|pkg|msi|zip|7z|rar|"
          r"appimage|scr|bat)\b",
          r"https?://(?:drive\.google\.com|www\.dropbox\.com|dropbox\.com|mega\.nz|"
          r"(?:www\.)?mediafire\.com|gofile\.io|anonfiles\.\w+|files\.catbox\.moe)\S*"),
         ("releases/download", "drive.google", "dropbox", "mega.nz", "mediafire", "gofile",
          "anonfiles", "catbox")),
    Rule("fake-prereq.security-bypass", "fake-prereq", H,
         "Disables an operating-system protection",
         "Do not disable Gatekeeper, quarantine or antivirus; sign the tool or ask the user to "
         "approve it through the OS.",
         (r"\bspctl\s+--master-disable", r"set-mppreference\s+-disable\w+",
          r"add-mppreference\s+-exclusion\w+", r"\bcsrutil\s+disable",
          r"\bsetenforce\s+0\b"),
         ("spctl", "mppreference", "csrutil", "setenforce")),
    Rule("fake-prereq.quarantine-removal", "fake-prereq", M,
         "Removes macOS quarantine from a download",
         "Say which binary it is and where it came from; removing quarantine skips Gatekeeper's "
         "check of downloaded code.",
         (r"\bxattr\s+-\w*[dcr]\w*\s+(?:\S+\s+)?com\.apple\.quarantine", r"\bxattr\s+-c?r?c\b"),
         ("xattr",)),
    # credential access and exfiltration
    Rule("credential-access.read-secret-file", "credential-access", H,
         "Reads credential files",
         "A skill must not read SSH keys, cloud credentials, browser profiles, keychains or "
         "token files; ask the user for the specific value it needs.",
         (rf"{READ_VERBS}[^\n]{{0,160}}{SECRET_PATHS}",
          rf"{SECRET_PATHS}[^\n]{{0,80}}{READ_VERBS}"),
         (".ssh", ".aws", "gcloud", ".azure", "netrc", ".docker", ".kube", "credentials", "npmrc",
          "pypirc", "gnupg", "wallet", "bitcoin", "ethereum", "keystore", "login data", "cookies",
          "logins.json", "key3", "key4", "local state", "history", "password-store", "hosts.yml",
          ".env", "shadow", "keyrings", "keychain")),
    Rule("credential-access.keychain-dump", "credential-access", H,
         "Reads the system keychain or credential helpers",
         "Do not read keychains or credential helpers; ask the user for the one value needed.",
         (r"\bsecurity\s+(?:find-generic-password|find-internet-password|dump-keychain|"
          r"export)\b", r"\bgit\s+credential\s+fill\b", r"\bgh\s+auth\s+token\b",
          r"\bcmdkey\s+/list\b", r"\bsecret-tool\s+lookup\b", r"\bvaultcmd\b",
          r"\bmimikatz\b", r"\blazagne\b", r"cryptunprotectdata"),
         ("security", "credential fill", "gh auth", "cmdkey", "secret-tool", "vaultcmd",
          "mimikatz", "lazagne", "cryptunprotect")),
    Rule("credential-access.env-harvest", "credential-access", H,
         "Collects secrets from environment variables",
         "Read only the variables the skill documents by name; never collect every token or key.",
         (r"(?:os\.environ|process\.env)\.items\(\)[^\n]{0,200}(?:if|filter|search|match)",
          r"(?:os\.environ|process\.env)[^\n]{0,120}\b(?:token|secret|key|passw\w*|credential)s?\b"
          r"[^\n]{0,40}\bin\b", r"\bfor\s+\w+(?:\s*,\s*\w+)?\s+in\s+(?:os\.environ|process\.env)"
          r"[^\n]{0,200}(?:token|secret|key|pass)",
          r"\b(?:printenv|env)\b\s*(?:\||>)[^\n]{0,80}(?:curl|wget|nc|base64)"),
         ("environ", "process.env", "printenv", "env")),
    Rule("exfiltration.send-secrets", "exfiltration", C,
         "Sends secrets to a remote host",
         "Remove the upload; a skill must not send credentials, keys or environment variables "
         "anywhere.",
         (rf"{SEND}[^\n]{{0,300}}(?:{SECRET_PATHS}|{EXFIL_DATA}|\$\(\s*(?:cat|printenv|env|gh\s+auth|"
          rf"security|git\s+credential)\b|@\s*{HOME}|(?:\s-d|--data[\w-]*|\s-f|--form|json=|data=)"
          rf"\s*\S{{0,40}}\$\{{?\w*(?:token|secret|key|passw)\w*)",
          rf"(?:\$\(\s*cat\s+[^)]{{0,80}}{SECRET_PATHS}[^)]{{0,20}}\))[^\n]{{0,200}}{SEND}"),
         ("curl", "wget", "requests", "httpx", "urlopen", "urllib", "http.client", "socket",
          "smtplib", "axios", "fetch", "nc", "ncat", "netcat", "/dev/tcp", "invoke-restmethod",
          "git push")),
    Rule("exfiltration.read-and-send", "exfiltration", C,
         "Reads credentials and sends data out",
         "Remove the upload or the credential access; a skill that reads secrets must not also "
         "send data to the network."),
    Rule("exfiltration.webhook", "exfiltration", H,
         "Posts to a chat webhook or request collector",
         "Name the destination the user configures; hard-coded webhooks and collectors are "
         "common exfiltration channels.",
         (r"discord(?:app)?\.com/api/webhooks/", r"api\.telegram\.org/bot",
          r"hooks\.slack\.com/services/", r"webhook\.site", r"requestbin\.\w+", r"pipedream\.net",
          r"\binteract\.sh\b", r"\boast\.(?:pro|live|site|online|fun|me)\b",
          r"burpcollaborator\.net", r"canarytokens\.com"),
         ("discord", "telegram", "hooks.slack", "webhook.site", "requestbin", "pipedream",
          "interact.sh", "oast.", "burpcollaborator", "canarytokens")),
    Rule("exfiltration.prose-instruction", "exfiltration", C,
         "Prose instruction to send secrets",
         "Remove the instruction; a skill must never tell the agent to send credentials, keys or "
         "private files anywhere.",
         (r"\b(?:send|post|upload|transmit|forward|share|submit|report|sync|copy|exfiltrate|"
          r"include)\b[^\n]{0,80}\b(?:contents?\s+of|ssh\s+keys?|private\s+keys?|aws\s+(?:keys?|"
          r"credentials)|api\s+keys?|credentials|secrets|tokens|passwords|\.env\b|id_rsa|"
          r"~/\.\w+)[^\n]{0,120}\b(?:to|at|into)\s+(?:https?://|[\w.-]+@[\w.-]+|"
          r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[\w-]+\.[\w.-]*(?:invalid|xyz|ru|top|tk)\b)",),
         ("send", "post", "upload", "transmit", "forward", "share", "submit", "report", "sync",
          "copy", "exfiltrate", "include")),
    Rule("exfiltration.git-mirror", "exfiltration", H,
         "Pushes the repository to a hidden remote",
         "Push only to remotes the user configured, and show the push; a quiet mirror push "
         "copies every branch and tag elsewhere.",
         (r"\bgit\s+push\s+--mirror\b[^\n]{0,120}(?:--quiet|\s-q\b|/dev/null)",
          r"\bgit\s+remote\s+add\b[^\n]{0,200}\$\(\s*(?:whoami|hostname|id\s+-un)",
          r"\bgit\s+push\b[^\n]{0,80}(?:--quiet|\s-q\b)[^\n]{0,40}>\s*/dev/null\s+2>&1"),
         ("git push", "git remote")),
    Rule("credential-access.secret-path-in-code", "credential-access", H,
         "Code refers to credential files in the home folder",
         "Scripts must not touch SSH keys, cloud credentials, token files or browser profiles; "
         "take the one value needed as an argument or environment variable."),
    Rule("exfiltration.dns", "exfiltration", C,
         "Data smuggled out through DNS lookups",
         "Remove the lookup; encoding data into host names sends it to whoever runs the domain.",
         (r"\b(?:dig|nslookup|host|drill|resolve-dnsname)\b[^\n]{0,60}\$\(\s*(?:cat|whoami|"
          r"hostname|printenv|env|base64|echo|id|xxd|uname)",
          r"\b(?:dig|nslookup|host|drill)\b[^\n]{0,60}\$\{?\w+\}?\.[\w-]+\.[a-z]{2,}",
          r"gethostbyname\([^)]{0,80}(?:\+|%|format|f['\"])"),
         ("dig", "nslookup", "host", "drill", "resolve-dnsname", "gethostbyname")),
    # destructive commands
    Rule("destructive.wipe", "destructive", C,
         "Deletes the home folder, the root file system or system folders",
         "Delete only paths the skill created, named explicitly and inside the working folder.",
         (r"\brm\s+(?:-{1,2}[\w-]+\s+){1,4}(?:--\s+)?(?:/|/\*|~/?|~/\*|~/\.\[|\$home/?\*?|"
          r"\$\{home\}/?\*?|/home/?\*?|/users/?\*?|/etc/?|/usr/?|/var/?|/boot/?|\.\./\.\./?)"
          r"(?=\s|$|;|&|\||\)|\")",
          r"\bshutil\.rmtree\(\s*(?:os\.path\.expanduser\(\s*~/?\s*\)|path\.home\(\)|"
          r"os\.environ\[\s*home\s*\]|/)\s*[,)]",
          r"--no-preserve-root", r"\bremove-item\b[^\n]{0,40}(?:c:\\\\?|\$home|~)\s[^\n]{0,40}-recurse",
          r"\bdel\s+/[fsq]\s+/[fsq][^\n]{0,20}c:\\"),
         ("rm", "rmtree", "no-preserve-root", "remove-item", "del")),
    Rule("destructive.disk", "destructive", C,
         "Overwrites or formats a disk",
         "Remove disk-level commands; a skill has no reason to format or overwrite devices.",
         (r"\bmkfs(?:\.\w+)?\s+(?:-\w+\s+){0,3}/dev/", r"\bdd\b[^\n]{0,120}\bof=/dev/(?:sd|nvme|hd|"
          r"vd|xvd|disk|mmcblk|rdisk)", r">\s*/dev/(?:sd[a-z]|nvme\d|hd[a-z]|disk\d)",
          r"\bshred\b[^\n]{0,80}(?:/dev/|~|\$home)", r"\bwipefs\s+-a", r"\bformat\s+c:",
          r"\bdiskutil\s+(?:erasedisk|zerodisk|secureerase)"),
         ("mkfs", "dd", "/dev/", "shred", "wipefs", "format", "diskutil")),
    Rule("destructive.fork-bomb", "destructive", C,
         "Fork bomb",
         "Remove the fork bomb.",
         (r"(\w+|:)\(\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}\s*;?\s*\1",
          r"\bwhile\s+true\s*;\s*do\s+\S+\s*&\s*done", r"os\.fork\(\)\s+while\b",
          r"while\s+true:\s*os\.fork\(\)", r"%0\|%0"),
         ("()", "while", "fork", "%0")),
    Rule("destructive.permissions", "destructive", H,
         "Opens up or takes over system permissions",
         "Change permissions only on files the skill created.",
         (r"\bchmod\s+(?:-\w+\s+){0,8}(?:-r\s+)?[0-7]?777\s+/(?:\s|$|etc|usr|\*)",
          r"\bchown\s+-r\s+\S+\s+/(?:\s|$)", r"\bchmod\s+(?:-\w+\s+){0,8}[ug]?\+s\s+/(?:bin|usr)"),
         ("chmod", "chown")),
    # persistence
    Rule("persistence.cron", "persistence", H,
         "Installs a scheduled job",
         "Do not install cron jobs or scheduled tasks; document the schedule and let the user "
         "add it.",
         (r"\|\s*crontab\s+-", r"\bcrontab\s+(?:-u\s+\S+\s+)?(?:-r\b|[\w./~-]+\.(?:txt|cron)\b|<)",
          r">>?\s*/etc/cron", r"/var/spool/cron", r"\bschtasks\s+/create",
          r"register-scheduledtask", r"(?:echo|printf)\s[^\n]{0,200}@reboot"),
         ("crontab", "/etc/cron", "/var/spool/cron", "schtasks", "scheduledtask", "@reboot")),
    Rule("persistence.shell-rc", "persistence", H,
         "Modifies shell start-up files",
         "Tell the user which line to add to their shell profile instead of writing it.",
         (rf"(?:>>|\btee\s+-a|>\s*)\s*\S{{0,20}}{HOME}?/?\.(?:bashrc|zshrc|profile|bash_profile|"
          rf"zprofile|zshenv|bash_login|config/fish/config\.fish)\b",
          r"\.(?:bashrc|zshrc|profile|bash_profile|zprofile|zshenv)['\"]?\s*[),][^\n]{0,40}['\"]a",
          r"open\([^)]{0,120}\.(?:bashrc|zshrc|profile|bash_profile|zprofile)[^)]{0,40}['\"]a",
          r"\bfor\s+\w+\s+in\s+[^\n;]{0,200}\.(?:bashrc|zshrc|bash_profile|zprofile)\b"),
         ("bashrc", "zshrc", "profile", "zshenv", "bash_login", "config.fish")),
    Rule("persistence.path-only", "persistence", L,
         "Adds an export or PATH line to a shell start-up file",
         "Prefer telling the user which line to add to their profile."),
    Rule("persistence.service", "persistence", H,
         "Installs a login item, service or hook that runs automatically",
         "Do not install services, launch agents or global hooks; document them and let the "
         "user install what they want.",
         (r"library/launch(?:agents|daemons)", r"\blaunchctl\s+(?:load|bootstrap|submit)",
          r"/etc/systemd/system", r"\.config/systemd/user",
          r"\bsystemctl\s+(?:--user\s+)?(?:enable|daemon-reload)", r"/etc/rc\.local",
          r"/etc/init\.d/", r"currentversion\\+run", r"\bgit\s+config\s+--global\s+core\.hookspath",
          r"/etc/profile\.d/", r"\.config/autostart"),
         ("launchagents", "launchdaemons", "launchctl", "systemd", "systemctl", "rc.local",
          "init.d", "currentversion", "hookspath", "profile.d", "autostart")),
    Rule("persistence.authorized-keys", "persistence", C,
         "Adds an SSH key to authorized_keys",
         "Remove it: adding a key to authorized_keys gives someone permanent access.",
         (r"(?:>>|\btee\s+-a)[^\n]{0,80}authorized_keys", r"authorized_keys[^\n]{0,60}['\"]a['\"]",
          r"ssh-copy-id\b[^\n]{0,80}\b(?:root|localhost)@"),
         ("authorized_keys", "ssh-copy-id")),
    # insecure TLS
    Rule("insecure-tls.verification-off", "insecure-tls", M,
         "Turns off TLS certificate verification",
         "Keep certificate verification on; point the tool at the right CA bundle instead.",
         (r"\bcurl\b[^\n]{0,300}\s(?:-k|--insecure)\b", r"\bcurl\s+-\w*k\w*\s",
          r"\bwget\b[^\n]{0,200}--no-check-certificate", r"\bverify\s*=\s*false\b",
          r"node_tls_reject_unauthorized\W{0,3}0", r"_create_unverified_context",
          r"pythonhttpsverify\W{0,3}0", r"sslverify\s*(?:=\s*|\s+)false",
          r"rejectunauthorized\s*:\s*false", r"insecureskipverify\s*:\s*true",
          r"check_hostname\s*=\s*false", r"cert_none\b", r"--trusted-host\b",
          r"strict-ssl\s+false", r"git_ssl_no_verify\W{0,3}(?:1|true)"),
         ("curl", "wget", "verify", "tls", "unverified", "httpsverify", "sslverify",
          "rejectunauthorized", "insecureskipverify", "check_hostname", "cert_none",
          "trusted-host", "strict-ssl", "git_ssl")),
    Rule("insecure-tls.unverified-exec", "insecure-tls", H,
         "Runs or installs what it downloaded without TLS verification",
         "Turn certificate verification back on before running anything downloaded; without it "
         "anyone on the network can swap the code."),
    # hardcoded secrets
    Rule("secret.aws-access-key", "secret", H, "AWS access key id",
         "Remove the key, rotate it in AWS IAM, and read credentials from the environment.",
         (r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b",), ("AKIA", "ASIA", "AGPA", "AIDA",
                                                                    "AROA", "ANPA"), raw=True),
    Rule("secret.aws-secret-key", "secret", H, "AWS secret access key",
         "Remove the key, rotate it in AWS IAM, and read credentials from the environment.",
         (r"(?i:aws_?secret_?(?:access_?)?key)\W{1,6}[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",),
         ("secret",), raw=True),
    Rule("secret.github-token", "secret", H, "GitHub token",
         "Revoke the token on GitHub and read it from the environment (GITHUB_TOKEN).",
         (r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b", r"\bgithub_pat_[A-Za-z0-9_]{60,}"),
         ("gh", "github_pat_"), raw=True),
    Rule("secret.openai-key", "secret", H, "OpenAI-style API key",
         "Revoke the key and read it from the environment (OPENAI_API_KEY).",
         (r"\bsk-(?:proj-|svcacct-|admin-)?(?!ant-)[A-Za-z0-9_-]{32,}",), ("sk-",), raw=True),
    Rule("secret.anthropic-key", "secret", H, "Anthropic API key",
         "Revoke the key and read it from the environment (ANTHROPIC_API_KEY).",
         (r"\bsk-ant-(?:api\d\d-|admin\d\d-)?[A-Za-z0-9_-]{40,}",), ("sk-ant-",), raw=True),
    Rule("secret.slack-token", "secret", H, "Slack token",
         "Revoke the token in Slack and read it from the environment.",
         (r"\bxox[abposr]-[A-Za-z0-9-]{20,}",), ("xox",), raw=True),
    Rule("secret.stripe-key", "secret", H, "Stripe live key",
         "Roll the key in Stripe and read it from the environment.",
         (r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}",), ("_live_",), raw=True),
    Rule("secret.google-api-key", "secret", H, "Google API key",
         "Restrict or delete the key in Google Cloud and read it from the environment.",
         (r"\bAIza[0-9A-Za-z_-]{35}\b",), ("AIza",), raw=True),
    Rule("secret.private-key", "secret", H, "Private key",
         "Remove the private key from the skill and rotate it; keys belong in the user's key "
         "store.",
         (r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",),
         ("PRIVATE KEY",), raw=True),
    # invisible characters
    Rule("hidden-unicode.tag-characters", "hidden-unicode", C,
         "Invisible Unicode tag characters",
         "Remove the invisible tag characters (U+E0000-U+E007F); they carry hidden text that "
         "agents read and people cannot see."),
    Rule("hidden-unicode.variation-selectors", "hidden-unicode", C,
         "Smuggled variation selectors",
         "Remove the run of variation selectors; more than one after a character encodes "
         "hidden data."),
    Rule("hidden-unicode.bidi-control", "hidden-unicode", H,
         "Bidirectional control characters",
         "Remove bidi override/embedding/isolate characters (U+202A-U+202E, U+2066-U+2069); "
         "they make text display differently from what it is."),
    Rule("hidden-unicode.zero-width", "hidden-unicode", H,
         "Zero-width characters",
         "Remove zero-width characters; inside ASCII text they hide or split words."),
    # binaries
    Rule("binary.executable", "binary", H,
         "Native executable",
         "Do not ship compiled executables; ship source and build it, or install the tool from "
         "a package manager."),
    Rule("binary.disguised", "binary", C,
         "Executable disguised as another file type",
         "Remove the file: its content is a native executable but its name says otherwise."),
    Rule("binary.encrypted-archive", "binary", C,
         "Encrypted archive",
         "Ship readable files; encrypted archives cannot be reviewed or scanned."),
    Rule("binary.archive", "binary", M,
         "Archive inside the skill",
         "Ship the files unpacked so they can be reviewed and scanned."),
    Rule("binary.unknown", "binary", M,
         "Unrecognised binary file",
         "Ship text, or a known media format; unknown binary data cannot be reviewed."),
    Rule("binary.exec-bit", "binary", L,
         "Executable bit on a file that is not a script",
         "Clear the executable bit, or add a #! line if it is a script."),
)

_BY_ID = {r.id: r for r in RULES}
assert len(_BY_ID) == len(RULES)
assert all(r.family in FAMILIES and r.id.startswith(r.family + ".") for r in RULES)


def rule(rule_id: str) -> Rule:
    return _BY_ID[rule_id]


# -- scanning ---------------------------------------------------------------------------------

_UNTRUSTED_RE = re.compile(UNTRUSTED, re.IGNORECASE)
_KNOWN_RE = re.compile(KNOWN_INSTALLERS, re.IGNORECASE)
_SEND_RE = re.compile(SEND, re.IGNORECASE)
_PASTE_PROSE = re.compile(r"\b(?:terminal|command prompt|powershell|console)\b", re.IGNORECASE)
_EXEC_RE = re.compile(r"\b(?:exec|eval)\s*\(|\bcompile\s*\([^)]{0,200}['\"]exec['\"]",
                      re.IGNORECASE)
_DECODER_RE = re.compile(r"b64decode|b85decode|a85decode|b32decode|fromhex|unhexlify|"
                         r"zlib\.decompress|marshal\.loads|codecs\.decode|rot_?13|\^\s*(?:key|k)\b|"
                         r"\bord\(\w+\)\s*\^|['\"]{2}\.join\(\s*(?:map\(\s*)?chr", re.IGNORECASE)
_RUN_RE = re.compile(r"\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b|\bexec\s*\(|\beval\s*\(|os\.system|"
                     r"subprocess\.|chmod\s+\+x|\bnpx\b|\bnpm\s+(?:i|install|exec)\b|"
                     r"pip3?\s+install|\bsource\b|&&\s*(?:\./|(?:ba)?sh\s)", re.IGNORECASE)
_CODE_EXT = (".py", ".sh", ".bash", ".zsh", ".js", ".mjs", ".cjs", ".ts", ".ps1", ".rb", ".pl",
             ".php", ".go", ".rs")
_CODE_SECRET = re.compile(
    r"(?:\.ssh/(?:id_|\*|identity)|\.aws/credentials|\.git-credentials|\.netrc\b|\.pypirc|"
    r"\.config/gcloud|application_default_credentials|wallet\.dat|key[34]\.db|logins\.json|"
    r"login data|\.password-store|\.gnupg/|\.config/gh/hosts|local state|"
    r"\[\s*\.ssh\s*,|\.ssh\W{1,4}id_|\.aws\W{1,4}credentials|\.npmrc|"
    r"\.ssh\b[^\n]{0,60}\b(?:glob|iterdir|listdir|walk|rglob)\b|glob\([^)]{0,20}id_)", re.IGNORECASE)
_STRING_LIT = re.compile(r"(['\"])((?:(?!\1)[^\\\n]){1,200})\1")
_CONT = re.compile(r"\\\r?\n")
_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.){1,400})'")
_CONCAT = re.compile(r"(['\"])\s*\+\s*(['\"])")
_IFS = re.compile(r"\$\{IFS[^}]{0,8}\}|\$IFS\b", re.IGNORECASE)
_SHELL_VAR = re.compile(r"(?:^|[;&\s(])([A-Za-z_]\w{0,30})=(['\"]?)([^\s;&'\"|]{1,200})\2")
_VAR_USE = re.compile(r"\$\{?([A-Za-z_]\w{0,30})\}?")
_ADDRESSED = re.compile(
    r"\b(?:you|assistants?|agents?|claude|ai|llm|model|codex|copilot|gpt)\s*(?:,|:|must\b|should\b|"
    r"will\b|need\s+to\b|are\s+(?:to|required|now)\b|have\s+to\b|may\b)|\b(?:note|instructions?|"
    r"message|directive)s?\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?(?:ai|assistant|agent|claude|"
    r"llm|model)s?\b|^\s*(?:ai|assistant|agent|system)\s*:", re.IGNORECASE | re.MULTILINE)
_AGENT_DIRECTED = re.compile(
    r"\b(?:run|execute|send|upload|curl|wget|download|install|read|copy|ignore|disregard|delete|"
    r"remove|fetch|post|do\s+not\s+(?:tell|mention|inform|show)|never\s+(?:tell|mention|reveal)|"
    r"secretly|silently|quietly|append|write)\b", re.IGNORECASE)
_BENIGN_COMMENT = re.compile(r"^\s*(?:todo|fixme|note:\s*keep|markdownlint|prettier|vale|"
                             r"textlint|cspell|toc|end\s*toc|omit|more|lint|eslint|"
                             r"start|end|begin)\b", re.IGNORECASE)
_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/]{40,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){24,}(?![0-9A-Fa-f])")
_HEX_ESC = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){12,}")
_B32 = re.compile(r"(?<![A-Z2-7=])[A-Z2-7]{48,}={0,6}(?![A-Z2-7])")
_B85_CALL = re.compile(r"(?:b85decode|a85decode)\(\s*b?(['\"])(.{20,}?)\1", re.DOTALL)
_QUOTED = re.compile(r"(['\"])([^'\"\n]{12,400})\1")
_DATA_URI = re.compile(r"data:[\w/+.-]{1,60};base64,", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"(?i)example|x{6,}|\.\.\.|your|<|placeholder|dummy|sample|redacted|"
                          r"0{8,}|1234567890|abcdef|test")
_PATH_ONLY = re.compile(r"^\s*(?:echo|printf)\s+(?:export\s+\w+=(?:(?!\$\()[^|;&])*|path=[^|;&]*|eval\s+\$\(\w[\w-]*\s+"
                        r"(?:init|env|activate)[^)]*\)|source\s+\S+)\s*>>", re.IGNORECASE)
_EMOJI_BASE = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u3030\u303D"
                         "\u3297\u3299\u00A9\u00AE\u203C\u2049\u2122\u2139\u2194-\u21AA"
                         "\u231A-\u23FF\u25AA-\u25FE\u2934\u2935\U0001F1E6-\U0001F1FF]")
_TAG_FLAG = re.compile("\U0001F3F4[\U000E0030-\U000E0039\U000E0061-\U000E007A]{2,8}\U000E007F")
_ZW = re.compile("[\u200B\u2060-\u2064\u180E]|(?<=[\x21-\x7E])[\u200C\u200D](?=[\x21-\x7E])|"
                 "(?<!^)\uFEFF")
_BIDI = re.compile("[\u202A-\u202E\u2066-\u2069]")
_TAGS = re.compile("[\U000E0000-\U000E007F]+")
_VS_RUN = re.compile("[\uFE00-\uFE0F\U000E0100-\U000E01EF]{2,}|[\U000E0100-\U000E01EF]")

_MEDIA_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"wOFF", b"wOF2", b"OTTO",
                b"\x00\x01\x00\x00", b"\x00\x00\x01\x00", b"ID3", b"fLaC", b"OggS", b"BM",
                b"\x1aE\xdf\xa3", b"SQLite format 3")
_EXEC_MAGIC = {b"\x7fELF": "ELF", b"\xfe\xed\xfa\xce": "Mach-O", b"\xfe\xed\xfa\xcf": "Mach-O",
               b"\xce\xfa\xed\xfe": "Mach-O", b"\xcf\xfa\xed\xfe": "Mach-O",
               b"\xca\xfe\xba\xbe": "Mach-O universal", b"MZ": "Windows PE",
               b"\x00asm": "WebAssembly"}
_EXEC_EXT = (".exe", ".dll", ".so", ".dylib", ".bin", ".elf", ".out", ".wasm", ".node", "")
_ARCHIVE_MAGIC = {b"PK\x03\x04": "zip", b"7z\xbc\xaf\x27\x1c": "7z", b"Rar!": "rar",
                  b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ": "xz"}


@dataclass(frozen=True)
class Context:
    """What the whole skill says about itself, for the rules that judge one file.

    `purpose` is the name and description from SKILL.md's frontmatter (lower-case);
    `sources` the (host, path prefix) pairs of its declared homepage/repository (top-level
    keys or under `metadata`); `variables` the shell variables assigned in any of its files.
    """

    purpose: str = ""
    sources: tuple[tuple[str, str], ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _File:
    path: str
    raw_lines: list[str]            # physical lines
    logical: list[tuple[int, str]]  # (first physical line number, joined raw text)
    norm: list[str]                 # normalised logical lines (lower-case, de-obfuscated)
    norm_text: str
    raw_text: str
    context: Context = field(default_factory=lambda: Context())
    foreign: frozenset[int] = frozenset()   # logical lines that use another file's variables


class _Collector:
    def __init__(self, path: str, context: Context | None = None) -> None:
        self.path = path
        self.context = context or Context()
        self.items: dict[tuple[str, int | None], Finding] = {}
        self.per_rule: dict[str, int] = {}

    def add(self, rule_: Rule, line: int | None, message: str, excerpt: str,
            severity: Severity | None = None) -> None:
        key = (rule_.id, line)
        if key in self.items or self.per_rule.get(rule_.id, 0) >= MAX_PER_RULE_PER_FILE:
            return
        self.per_rule[rule_.id] = self.per_rule.get(rule_.id, 0) + 1
        self.items[key] = Finding(rule=rule_.id, family=rule_.family,
                                  severity=severity or rule_.severity, source="threat",
                                  message=message, hint=rule_.hint, file=self.path, line=line,
                                  excerpt=escape_invisible(excerpt))

    def has(self, prefix: str) -> list[Finding]:
        return [f for f in self.items.values() if f.rule.startswith(prefix)]


def scan_bundle(bundle: Bundle) -> list[Finding]:
    findings: list[Finding] = []
    texts: dict[str, str] = {}
    for path in sorted(bundle.files):
        data = bundle.files[path]
        binary = _binary_findings(path, data, path in bundle.executables)
        if binary is not None:
            findings.extend(binary)
            continue
        texts[path] = _decode(data)
    context = bundle_context(texts)
    for path, text in texts.items():
        findings.extend(scan_text(path, text, context))
    return findings


def bundle_context(texts: Mapping[str, str]) -> Context:
    """The Context of a skill from its text files (SKILL.md's frontmatter, shell variables)."""
    purpose: str = ""
    sources: tuple[tuple[str, str], ...] = ()
    skill_md = texts.get("SKILL.md")
    if skill_md is not None:
        purpose, sources = _declared(skill_md)
    variables: dict[str, str] = {}
    for text in texts.values():
        for name, value in _shell_variables(text).items():
            variables.setdefault(name, value)
            if len(variables) >= 400:
                break
    return Context(purpose, sources, variables)


def _declared(skill_md: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    try:
        data = yaml.safe_load(split_frontmatter(skill_md[:100_000])[0])
    except (InvalidSkill, yaml.YAMLError, RecursionError):
        return "", ()
    if not isinstance(data, dict):
        return "", ()
    purpose = f"{data.get('name', '')} {data.get('description', '')}".lower()
    raw_metadata = data.get("metadata")
    metadata: dict[str, object] = raw_metadata if isinstance(raw_metadata, dict) else {}
    urls = [value for mapping in (data, metadata) for key in _SOURCE_KEYS
            if isinstance(value := mapping.get(key), str)]
    sources: list[tuple[str, str]] = []
    for url in urls:
        sources.extend(_source_prefixes(url.strip()))
    return purpose, tuple(sources)


def _source_prefixes(url: str) -> list[tuple[str, str]]:
    """Where a declared homepage/repository serves files from, as (host, path prefix)."""
    url = url.removeprefix("git+").removesuffix(".git")
    if _UNTRUSTED_RE.match(url.lower()) or not url.lower().startswith("https://"):
        return []
    parts = urlsplit(url.lower())
    host, segments = parts.hostname or "", [s for s in parts.path.split("/") if s]
    if host in _CODE_HOSTS:
        if len(segments) < 2:
            return []
        owner, repo = segments[:2]
        prefix = f"/{owner}/{repo}"
        out = [(host, prefix)]
        if host == "github.com":
            out += [("raw.githubusercontent.com", prefix), ("codeload.github.com", prefix),
                    (f"{owner}.github.io", "")]
        return out
    if not host or "." not in host:
        return []
    return [(host, "/" + "/".join(segments) if segments else "")]


def scan_text(path: str, text: str, context: Context | None = None) -> list[Finding]:
    out = _Collector(path, context)
    _scan_into(out, _prepare(path, text, context), depth=0)
    return sorted(out.items.values(), key=lambda f: (f.line or 0, f.rule))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _prepare(path: str, text: str, context: Context | None = None) -> _File:
    raw_lines = text.splitlines() or [""]
    logical: list[tuple[int, str]] = []
    start, parts = 1, list[str]()
    for number, line in enumerate(raw_lines, start=1):
        if not parts:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        logical.append((start, " ".join(parts)))
        parts = []
    if parts:
        logical.append((start, " ".join(parts)))
    context = context or Context()
    local = _shell_variables(text)
    variables = {**context.variables, **local} if context.variables else local
    norm = [_normalise(line, variables) for _, line in logical]
    foreign: set[int] = set()
    if len(variables) > len(local):
        for index, (_, line) in enumerate(logical):
            if "$" in line and any(m.group(1) not in local and m.group(1) in variables
                                   for m in _VAR_USE.finditer(line)):
                foreign.add(index)
    return _File(path, raw_lines, logical, norm, "\n".join(norm), text, context,
                 frozenset(foreign))


def _shell_variables(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _SHELL_VAR.finditer(text[:200_000]):
        if len(found) >= 200:
            break
        found[match.group(1)] = match.group(3)
    return found


def _normalise(line: str, variables: Mapping[str, str]) -> str:
    line = line[:200_000]
    line = _ANSI_C.sub(lambda m: _ansi_c(m.group(1)), line)
    if variables and "$" in line:
        line = _VAR_USE.sub(lambda m: variables.get(m.group(1), m.group(0)), line)
    line = _IFS.sub(" ", line)
    line = _CONCAT.sub("", line)
    line = re.sub(r"\\(?=[a-zA-Z])", "", line)
    line = line.replace("'", "").replace('"', "").replace("`", "")
    return re.sub(r"[ \t]+", " ", line).lower()


def _ansi_c(body: str) -> str:
    try:
        return codecs.decode(body, "unicode_escape")
    except (UnicodeDecodeError, ValueError):
        return body


def _windows(line: str) -> Iterator[str]:
    if len(line) <= WINDOW:
        yield line
        return
    for start in range(0, len(line), WINDOW - WINDOW_OVERLAP):
        yield line[start:start + WINDOW]


def _scan_into(out: _Collector, f: _File, depth: int) -> None:
    norm_text, raw_text = f.norm_text, f.raw_text
    for rule_ in RULES:
        if not rule_.compiled:
            continue
        haystack = raw_text if rule_.raw else norm_text
        if rule_.keywords and not any(
                (k in haystack) if rule_.raw else (k.lower() in haystack)
                for k in rule_.keywords):
            continue
        hit = False
        for index, (line_no, raw) in enumerate(f.logical):
            line = raw if rule_.raw else f.norm[index]
            for window in _windows(line):
                if any(p.search(window) for p in rule_.compiled):
                    _emit(out, rule_, line_no, raw, window)
                    hit = True
                    break
        if not hit and rule_.id in _PROSE:
            _paragraphs(out, f, rule_)
    _hidden_comments(out, f)
    code = f.path.lower().endswith(_CODE_EXT)
    if code:
        _code_checks(out, f)
    else:
        _span_soup(out, f)
    _persuasion_cues(out, f)
    _delayed_triggers(out, f, code)
    _supply_chain(out, f)
    _unicode(out, f)
    if depth < MAX_DECODE_DEPTH:
        _blobs(out, f, depth)
        _fragments(out, f, depth)
    _combinations(out, f)
    _assembled_elsewhere(out, f)
    _scoped_memory_writes(out, f)


_NEW_ITEM = re.compile(r"^(?:[-*+]|\d{1,3}[.)]|#{1,6})\s")
_QUOTES = "\"'`“”‘’«»"
_QUOTABLE = ("prompt-injection.ignore-instructions", "prompt-injection.role-hijack",
             "prompt-injection.concealment", "prompt-injection.persuasion")
_PROSE = ("prompt-injection.ignore-instructions", "prompt-injection.concealment",
          "prompt-injection.agent-config-tamper", "exfiltration.prose-instruction",
          "prompt-injection.persuasion")
_SOUP_RULES = ("remote-exec.download-exec", "encoded-payload.decode-to-shell",
               "remote-exec.reverse-shell", "destructive.wipe")


def _quoted(rule_: Rule, raw: str) -> bool:
    """Whether the phrase sits inside quotes: an example being discussed, not an order."""
    lower = raw.lower()
    for pattern in rule_.compiled:
        match = pattern.search(lower)
        if match:
            before = lower[:match.start()].rstrip()
            after = lower[match.end():match.end() + 40]
            return bool(before) and before[-1] in _QUOTES and any(q in after for q in _QUOTES)
    return False


def _paragraphs(out: _Collector, f: _File, rule_: Rule) -> None:
    """Prose rules also match across two consecutive lines (sentences wrap)."""
    for index in range(len(f.norm) - 1):
        first, second = f.norm[index].strip(), f.norm[index + 1].strip()
        if not first or not second or _NEW_ITEM.match(second):
            continue
        joined = f"{first} {second}"[:WINDOW]
        if any(p.search(joined) for p in rule_.compiled):
            line_no, raw = f.logical[index]
            _emit(out, rule_, line_no, raw, joined)


def _code_checks(out: _Collector, f: _File) -> None:
    """Scripts: credential paths referred to at all, and commands built from string pieces."""
    for index, (line_no, raw) in enumerate(f.logical):
        if _CODE_SECRET.search(f.norm[index]) and not raw.lstrip().startswith("#"):
            out.add(rule("credential-access.secret-path-in-code"), line_no,
                    f"this script refers to a credential file: {_snippet(raw)}", raw)
    pieces: list[tuple[int, int, str]] = []  # (offset in soup, line, text)
    soup = []
    length = 0
    for line_no, raw in f.logical:
        for match in _STRING_LIT.finditer(raw):
            pieces.append((length, line_no, match.group(2)))
            soup.append(match.group(2))
            length += len(match.group(2))
    text = "".join(soup).lower()
    if not text:
        return
    for rule_id in _SOUP_RULES:
        rule_ = rule(rule_id)
        for window_start in range(0, len(text), WINDOW - WINDOW_OVERLAP):
            window = text[window_start:window_start + WINDOW]
            found = [m for p in rule_.compiled if (m := p.search(window)) is not None]
            if not found:
                continue
            match = found[0]
            offset = window_start + match.start()
            line_no = max((ln for off, ln, _ in pieces if off <= offset), default=1)
            if not any(item.rule.startswith(rule_.family) for item in out.items.values()
                       if item.line == line_no):
                _emit(out, rule_, line_no, _raw_line(f, line_no),
                      window[match.start():match.end()])
            break


def _emit(out: _Collector, rule_: Rule, line_no: int, raw: str, matched: str) -> None:
    if rule_.family == "secret":
        if not _real_secret(rule_, raw):
            return
    if rule_.id in _QUOTABLE and rule_.severity > Severity.HIGH and _quoted(rule_, raw):
        out.add(rule_, line_no, f"{rule_.title} (quoted, as an example): {_snippet(raw)}",
                raw, severity=H)
        return
    if rule_.id == "exfiltration.webhook" and re.search(r"x{4,}|/t0{3,}|example|your", matched):
        return
    if rule_.id == "remote-exec.download-exec":
        urls = [u for u in _URL_RE.findall(matched) if "$" not in u and "{" not in u]
        if _UNTRUSTED_RE.search(matched):
            out.add(rule("remote-exec.untrusted-download-exec"), line_no,
                    "downloads code from a raw IP, paste site, tunnel or plain http and runs it",
                    raw)
            return
        if any(_impersonates_installer(u) for u in urls):
            out.add(rule("remote-exec.untrusted-download-exec"), line_no,
                    "downloads code from a host that imitates a well-known installer's address "
                    "and runs it", raw)
            return
        if urls and all(_known_installer(u) for u in urls):
            out.add(rule("remote-exec.known-installer"), line_no,
                    "pipes a well-known installer into a shell", raw)
            return
        if urls and all(_declared_source(u, out.context) for u in urls):
            out.add(rule("remote-exec.declared-source"), line_no,
                    "runs an installer from the skill's own declared homepage or repository", raw)
            return
    if rule_.id == "prompt-injection.auto-approve" and _AGENT_CLI.search(matched) \
            and not _PERSISTED.search(matched):
        out.add(rule("prompt-injection.subagent-auto-approve"), line_no,
                f"starts a sub-agent with its permission prompts off: {_snippet(raw)}", raw)
        return
    if rule_.id == "supply-chain.untrusted-index":
        _judge_index(out, line_no, raw, matched)
        return
    if rule_.id == "persistence.shell-rc" and _PATH_ONLY.search(matched):
        out.add(rule("persistence.path-only"), line_no,
                "appends a PATH or tool set-up line to a shell start-up file", raw)
        return
    out.add(rule_, line_no, f"{rule_.title}: {_snippet(raw)}", raw)


def _snippet(text: str) -> str:
    return escape_invisible(text, 100)


def _real_secret(rule_: Rule, line: str) -> bool:
    for pattern in rule_.compiled:
        match = pattern.search(line)
        if match is not None and _genuine(rule_, match, line):
            return True
    return False


def _genuine(rule_: Rule, match: re.Match[str], text: str) -> bool:
    """Whether a `secret` rule's match looks like a real value, not a placeholder or an
    example (`AKIAEXAMPLE...`, `sk-xxxxxxxx...`, a key header followed by `...`)."""
    value = match.group(0)
    if rule_.id == "secret.private-key":
        return not _PLACEHOLDER.search(text[match.end():match.end() + 80] or "x")
    body = value.split("_", 1)[-1] if rule_.id != "secret.aws-access-key" else value[4:]
    return not (_PLACEHOLDER.search(value) or len(set(body)) < 10)


SECRET_RULES = tuple(r for r in RULES if r.family == "secret")


def find_secrets(text: str) -> list[tuple[int, int, str]]:
    """(start, end, rule id) of every hardcoded secret the `secret` rules find in free text
    (outside a skill: the evidence export redacts what this finds), placeholders left out as
    the checks leave them out. A private key's span is its header; callers that redact
    extend it to the key's end. Spans may overlap when two rules match the same text."""
    lowered = text.lower()
    found = []
    for rule_ in SECRET_RULES:
        if not any(k.lower() in lowered for k in rule_.keywords):
            continue
        for pattern in rule_.compiled:
            found += [(m.start(), m.end(), rule_.id) for m in pattern.finditer(text)
                      if _genuine(rule_, m, text)]
    return sorted(found)


# -- file-level checks ------------------------------------------------------------------------

def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _hidden_comments(out: _Collector, f: _File) -> None:
    if "<!--" not in f.raw_text:
        return
    for start, body in _html_comments(f.raw_text):
        if len(body.strip()) < 12 or _BENIGN_COMMENT.match(body):
            continue
        words = len(body.split())
        if words >= 6 and _ADDRESSED.search(body) and _AGENT_DIRECTED.search(body):
            line = _line_of(f.raw_text, start)
            out.add(rule("prompt-injection.hidden-comment"), line,
                    f"an HTML comment, invisible when rendered, addresses the agent: "
                    f"{_snippet(body.strip())}", body.strip())


def _html_comments(text: str) -> Iterator[tuple[int, str]]:
    """(offset, body) of each HTML comment up to 8000 characters; linear in the text."""
    previous_end = 0
    while True:
        end = text.find("-->", previous_end)
        if end < 0:
            return
        start = text.rfind("<!--", previous_end, end)
        if start >= 0 and end - start <= 8000:
            yield start, text[start + 4:end]
        previous_end = end + 3


def _unicode(out: _Collector, f: _File) -> None:
    text = f.raw_text
    if text.isascii():
        return
    cleaned = _TAG_FLAG.sub("", text)
    for match in _TAGS.finditer(cleaned):
        hidden = "".join(chr(ord(c) - 0xE0000) for c in match.group(0))
        line = _line_of(cleaned, match.start())
        out.add(rule("hidden-unicode.tag-characters"), line,
                f"{len(match.group(0))} invisible tag characters spell: "
                f"{_snippet(hidden) or '(nothing printable)'}", _raw_line(f, line))
        if hidden.strip():
            _scan_decoded(out, f, hidden, line, "Unicode tag characters", 1)
    for match in _VS_RUN.finditer(text):
        line = _line_of(text, match.start())
        out.add(rule("hidden-unicode.variation-selectors"), line,
                f"{len(match.group(0))} variation selectors in a row hide data "
                f"({_smuggled(match.group(0))})", _raw_line(f, line))
    for regex, rule_id, what in ((_BIDI, "hidden-unicode.bidi-control", "bidi control"),
                                 (_ZW, "hidden-unicode.zero-width", "zero-width")):
        for match in regex.finditer(text):
            line = _line_of(text, match.start())
            char = match.group(0)[-1]
            out.add(rule(rule_id), line, f"{what} character U+{ord(char):04X} in the text",
                    _raw_line(f, line))


def _smuggled(run: str) -> str:
    data = []
    for ch in run:
        cp = ord(ch)
        if 0xFE00 <= cp <= 0xFE0F:
            data.append(cp - 0xFE00)
        elif 0xE0100 <= cp <= 0xE01EF:
            data.append(cp - 0xE0100 + 16)
    text = bytes(b for b in data if b < 256).decode("latin-1")
    return f"{len(data)} bytes" + (f": {_snippet(text)}" if text.isprintable() else "")


def _raw_line(f: _File, line: int) -> str:
    return f.raw_lines[line - 1] if 0 < line <= len(f.raw_lines) else ""


def _blobs(out: _Collector, f: _File, depth: int) -> None:
    text = f.raw_text
    count = 0
    candidates: list[tuple[int, str, str]] = []
    for match in _B64.finditer(text):
        prefix = text[max(0, match.start() - 40):match.start()]
        if _DATA_URI.search(prefix):
            continue
        candidates.append((match.start(), "base64", match.group(0)))
    for match in _HEX.finditer(text):
        candidates.append((match.start(), "hex", match.group(0)))
    for match in _HEX_ESC.finditer(text):
        candidates.append((match.start(), "hex escapes", match.group(0).replace("\\x", "")))
    for match in _B32.finditer(text):
        candidates.append((match.start(), "base32", match.group(0)))
    for match in _B85_CALL.finditer(text):
        candidates.append((match.start(), "base85", match.group(2)))
    if "rot13" in f.norm_text or "rot_13" in f.norm_text or "n-za-m" in f.norm_text:
        for match in _QUOTED.finditer(text):
            candidates.append((match.start(), "rot13", match.group(2)))
    for offset, kind, blob in candidates:
        if count >= MAX_BLOBS_PER_FILE:
            break
        decoded = _try_decode(kind, blob)
        if decoded is None:
            continue
        count += 1
        _scan_decoded(out, f, decoded, _line_of(text, offset), kind, depth + 1)


def _try_decode(kind: str, blob: str) -> str | None:
    try:
        if kind == "base64":
            data = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
        elif kind in ("hex", "hex escapes"):
            data = binascii.unhexlify(blob)
        elif kind == "base32":
            data = base64.b32decode(blob + "=" * (-len(blob) % 8))
        elif kind == "base85":
            try:
                data = base64.b85decode(blob)
            except ValueError:
                data = base64.a85decode(blob)
        else:
            return codecs.decode(blob, "rot13")
    except (ValueError, binascii.Error):
        return None
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in decoded)
    return decoded if decoded and printable / len(decoded) > 0.95 else None


def _scan_decoded(out: _Collector, f: _File, decoded: str, line: int, kind: str,
                  depth: int) -> None:
    inner = _Collector(f.path)
    _scan_into(inner, _prepare(f.path, decoded), depth)
    serious = [i for i in inner.items.values() if i.severity >= Severity.HIGH]
    if not serious:
        return
    worst = max(serious, key=lambda i: i.severity)
    rules = ", ".join(sorted({i.rule for i in serious}))
    out.add(rule("encoded-payload.hidden-blob"), line,
            f"{kind} data decodes to text that trips {rules}: {_snippet(decoded)}",
            _raw_line(f, line), severity=C if worst.severity >= Severity.HIGH else H)
    for item in serious:  # the inner findings count too, at the blob's line
        key = (item.rule, line)
        if key not in out.items:
            out.add(rule(item.rule), line, f"(inside {kind} data) {item.message}",
                    _raw_line(f, line), severity=item.severity)


def _combinations(out: _Collector, f: _File) -> None:
    paste = out.has("fake-prereq.paste-in-terminal")
    droppers = out.has("remote-exec.") + out.has("encoded-payload.")
    if paste and any(d.severity >= Severity.HIGH for d in droppers):
        first = paste[0]
        out.add(rule("fake-prereq.terminal-dropper"), first.line,
                "a 'paste this into your terminal' step goes with code that downloads or "
                "decodes what it runs", _raw_line(f, first.line or 0))
    elif droppers and _PASTE_PROSE.search(f.raw_text) and any(
            d.severity >= Severity.CRITICAL for d in droppers):
        worst = max(droppers, key=lambda d: d.severity)
        out.add(rule("fake-prereq.terminal-dropper"), worst.line,
                "setup prose sends the user to a terminal for a command that downloads or "
                "decodes what it runs", _raw_line(f, worst.line or 0))
    reads = out.has("credential-access.")
    if reads:
        for index, norm in enumerate(f.norm):
            if _SEND_RE.search(norm):
                line_no, raw = f.logical[index]
                out.add(rule("exfiltration.read-and-send"), line_no,
                        f"this file reads credentials ({reads[0].rule} at line {reads[0].line}) "
                        f"and sends data out here", raw)
                break
    if _EXEC_RE.search(f.raw_text) and _DECODER_RE.search(f.raw_text):
        for line_no, raw in f.logical:
            if _EXEC_RE.search(raw):
                out.add(rule("encoded-payload.exec-decoded"), line_no,
                        "exec/eval in a file that decodes, decompresses or XORs data", raw)
                break
    tls = out.has("insecure-tls.verification-off")
    for finding in tls:
        where = [i for i, (n, _) in enumerate(f.logical) if n == finding.line]
        if not where:
            continue
        index = where[0]
        code = f.path.lower().endswith(_CODE_EXT)
        scope = f.norm_text if code else "\n".join(f.norm[index:index + 8])
        if _RUN_RE.search(scope):
            out.add(rule("insecure-tls.unverified-exec"), finding.line,
                    "downloads without certificate verification and runs or installs the result",
                    f.logical[index][1])


# -- supply chain, delayed triggers, persuasion, split payloads, scoped writes ----------------

_SOURCE_KEYS = ("homepage", "repository", "repo", "source", "url", "website")
_CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org")
_URL_RE = re.compile(r"https?://[^\s'\"`|()<>\]]{1,400}", re.IGNORECASE)
# (host, path prefix) of the installers KNOWN_INSTALLERS names; the host must match exactly.
_KNOWN_INSTALLER_SOURCES = (
    ("sh.rustup.rs", ""), ("astral.sh", ""), ("get.docker.com", ""),
    ("raw.githubusercontent.com", "/homebrew/"), ("raw.githubusercontent.com", "/nvm-sh/"),
    ("raw.githubusercontent.com", "/ohmyzsh/"), ("install.python-poetry.org", ""),
    ("deno.land", ""), ("bun.sh", ""), ("get.pnpm.io", ""), ("cli.github.com", ""),
    ("brew.sh", ""), ("sdk.cloud.google.com", ""), ("claude.ai", "/install"),
    ("ollama.com", "/install"), ("fnm.vercel.app", ""), ("get.helm.sh", ""), ("pyenv.run", ""),
    ("starship.rs", ""), ("tailscale.com", "/install"), ("foundry.paradigm.xyz", ""),
    ("install.determinate.systems", ""), ("nixos.org", ""), ("mise.run", ""), ("volta.sh", ""))
_OFFICIAL_INDEXES = (
    "pypi.org", "pypi.python.org", "files.pythonhosted.org", "download.pytorch.org",
    "pypi.nvidia.com", "pypi.ngc.nvidia.com", "registry.npmjs.org", "registry.yarnpkg.com",
    "npm.pkg.github.com", "proxy.golang.org", "goproxy.io", "goproxy.cn", "direct",
    "data.pyg.org", "storage.googleapis.com", "download.openmmlab.com", "conda.anaconda.org",
    "repo.anaconda.com", "huggingface.co", "developer.download.nvidia.com", "flashinfer.ai",
    "wheels.vllm.ai", "rubygems.org", "crates.io", "registry.npmmirror.com",
    "mirrors.aliyun.com", "pypi.tuna.tsinghua.edu.cn")
_LOCAL_HOST = re.compile(r"^(?:localhost|127\.|10\.|192\.168\.|172\.(?:1[6-9]|2\d|3[01])\.|"
                         r"[\w.-]+\.(?:local|internal|lan|corp|home\.arpa)$)")
_REGISTRY_WORDS = re.compile(r"pypi|pythonhosted|npmjs|yarnpkg|pytorch|registry-?npm|npm-?registry")
_AGENT_CLI = re.compile(
    r"(?:^|[\s;&|(`$])(?:npx\s+(?:-y\s+)?@anthropic-ai/claude-code|claude|codex(?:\s+exec)?|gemini|"
    r"aider|opencode|cursor-agent|qwen|goose|amp|crush)\s+(?:[^\n|&]{0,300}\s)?--?(?:dangerously|"
    r"yolo|full-auto|approval-mode|permission-mode|ask-for-approval|bypass|sandbox\b|y\b)")
_PERSISTED = re.compile(r"\balias\b|>>|\btee\b|settings[\w.-]*\.json|config\.(?:toml|json|ya?ml)|"
                        r"\bexport\b|\.bashrc|\.zshrc|\.profile|setx\b")

_PERSUASION_CUES = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"\b(?:a\s+)?(?:truly|really|genuinely)\s+(?:helpful|good|smart|capable)\s+(?:assistant|agent|"
    r"ai|model)\s+(?:would|will|does|doesn't|never)\b",
    r"\b(?:asking|checking|confirming|warning|double-checking)\s+(?:(?:with\s+)?the\s+user\s+|"
    r"them\s+)?"
    r"(?:again\s+)?(?:only\s+|just\s+)?(?:annoys|frustrates|irritates|wastes|slows|interrupts|"
    r"bothers|confuses)\b",
    r"\b(?:no\s+need|not\s+necessary|unnecessary)\s+to\s+(?:ask|confirm|check|verify|warn)\b"
    r"[^\n]{0,40}\b(?:user|permission|approval|confirmation|first)\b",
    r"\b(?:it\s+is|it's|this\s+is)\s+(?:completely|perfectly|totally|entirely|always)\s+(?:safe|"
    r"fine|harmless|normal|expected)\s+to\s+(?:run|skip|disable|ignore|bypass|send|share|upload|"
    r"execute|turn\s+off)",
    r"\btrust\s+(?:this\s+skill|the\s+skill(?:'s)?\s+(?:author|instructions)|these\s+"
    r"instructions)\b",
    r"\b(?:refus\w+|hesitat\w+|declin\w+|pushing\s+back)\s+(?:\w+\s+){0,3}(?:would|will|could|"
    r"only)\s+(?:harm|hurt|break|disappoint|cost|fail|frustrate|annoy)",
    r"\bthe\s+user\s+(?:expects|wants|prefers|has\s+asked\s+for)\s+you\s+(?:to\s+)?(?:not\s+to\s+"
    r"ask|never\s+to\s+ask|to\s+skip|to\s+just\s+(?:run|do)|not\s+to\s+confirm|not\s+to\s+check)",
    r"\b(?:everyone|all\s+(?:other\s+)?(?:agents|assistants))\s+(?:already\s+)?(?:does|do|runs?)\s+"
    r"(?:this|it)\b[^\n]{0,40}\b(?:without|no)\b"))

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_ORDINAL = (r"(?:\d+(?:st|nd|rd|th)|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|"
            r"tenth|twentieth|fiftieth|hundredth)")
_TRIGGER_PROSE = re.compile(
    rf"\b(?:after|from|starting(?:\s+on)?|beginning|on\s+or\s+after|until|till|before|as\s+of|"
    rf"on|once)\s+(?:\w+\s+){{0,2}}(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}"
    rf"\s+\d{{4}}|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
    rf"|\b(?:used|run|invoked|called|loaded|triggered|activated|executed|installed)\s+(?:more\s+than\s+|"
    rf"at\s+least\s+|over\s+|for\s+)?\d+\s+(?:times|days|weeks|sessions)\b"
    rf"|\b(?:after|from|on|at|starting\s+(?:with|from|at))\s+the\s+{_ORDINAL}\s+(?:use|run|"
    rf"invocation|session|call|time|launch|install)"
    rf"|\bafter\s+\d+\s+(?:uses|runs|invocations|sessions|launches|installs|days\s+of\s+use)\b"
    rf"|\b(?:counter|count|tally|number\s+of\s+(?:runs|uses|sessions|invocations))\s+(?:reaches|"
    rf"exceeds|hits|passes|is\s+(?:at\s+least|over|above|greater\s+than))\s*\d+"
    rf"|\bevery\s+{_ORDINAL}\s+(?:use|run|invocation|session|time)", re.IGNORECASE)
_TRIGGER_ACTION = re.compile(
    rf"\b(?:silently|quietly|secretly|covertly)\b|without\s+(?:asking|confirm\w*|telling|"
    rf"notifying|prompting|approval)|(?:do\s+not|don't|never|stop)\s+(?:ask(?:ing)?|tell(?:ing)?|"
    rf"mention(?:ing)?|confirm(?:ing)?|show(?:ing)?|report(?:ing)?|prompt(?:ing)?)\b|\bignore\b|"
    rf"\bdisregard\b|(?:instead|from\s+then\s+on|thereafter|from\s+now\s+on|afterwards)[^\n]{{0,60}}"
    rf"\b(?:follow|obey|load|fetch|run|execute|read|apply)\b|(?:new|different|updated|real|"
    rf"alternate|alternative|second)\s+(?:set\s+of\s+)?instructions|\|\s*(?:sudo\s+)?(?:ba|z)?sh\b|"
    rf"\b(?:curl|wget|iwr|invoke-webrequest)\b|(?:download|fetch)\w*\s[^\n]{{0,80}}\b(?:and|then)\s+"
    rf"(?:run|execute|source|install)|{SECRET_PATHS}|(?:send|upload|post|copy|include|attach)\w*\s"
    rf"[^\n]{{0,60}}(?:credentials|\bkeys?\b|tokens?|secrets|passwords|\.env\b)|(?:persistent|"
    rf"long[- ]term)\s+memory|{AGENT_FILES}|auto-?approv\w*|skip\s+(?:the\s+)?(?:confirmation|"
    rf"review|checks?|permission)|{RAW_IP}|\bexfiltrat", re.IGNORECASE)
_TRIGGER_CODE = re.compile(
    r"(?:datetime|date)\.(?:now|today|utcnow)\([^)]{0,20}\)[^\n]{0,80}[<>]=?[^\n]{0,40}"
    r"(?:datetime\(\s*20\d\d|date\(\s*20\d\d|20\d\d-\d\d-\d\d)"
    r"|(?:datetime\(\s*20\d\d|date\(\s*20\d\d|20\d\d-\d\d-\d\d)[^\n]{0,60}[<>]=?[^\n]{0,20}"
    r"(?:datetime|date)\.(?:now|today|utcnow)"
    r"|time\.time\(\)\s*[<>]=?\s*1[6-9]\d{8}\b|\b1[6-9]\d{8}\s*[<>]=?\s*time\.time\(\)"
    r"|date\.now\(\)\s*[<>]=?\s*1[6-9]\d{11}\b|new\s+date\(\)\s*[<>]=?\s*new\s+date\(\s*20\d\d"
    r"|\$\(\s*date\s+\+%[a-z%]{1,12}\s*\)\s*-(?:gt|ge|lt|le|eq)\s*\d{6,10}"
    r"|\b\d{8,10}\s*-(?:gt|ge|lt|le)\s*\$\(\s*date\s+\+%"
    r"|\b(?:runs?|uses?|usage|invocations?|launches|n_runs|run_count|use_count|usage_count|"
    r"invocation_count|counter|launch_count|times_run)\b\s*(?:>=?|==|%|-gt|-ge|-eq)\s*\d+",
    re.IGNORECASE)
_COUNTER_STORE = re.compile(r"write_text\(|\.write\(|json\.dump|writefilesync|localstorage|"
                            r">\s*\S{0,80}(?:count|runs|usage|uses)|\bset-content\b", re.IGNORECASE)
_SINK = re.compile(
    rf"{SEND}|\b(?:urlopen|urlretrieve|requests\.get|httpx\.get|os\.system|os\.popen|subprocess\.|"
    rf"popen\(|spawn\w*\(|child_process|execsync|shell\s*=\s*true|__import__)|\b(?:exec|eval)\s*\(|"
    rf"\|\s*(?:sudo\s+)?(?:ba|z)?sh\b|{FETCH}|{AGENT_FILES}", re.IGNORECASE)
_MEMORY_PURPOSE = re.compile(
    r"\b(?:memor(?:y|ies|ise|ize)|remember\w*|recall|persona\w*|soul|identity|notes?|journal\w*|"
    r"preferences?|learnings?|agents\.md|claude\.md|gemini\.md|instructions?\s+files?|"
    r"context\s+files?|knowledge\s+base|diary|profile)\b")
_MEMORY_TARGET_DENY = re.compile(r"settings[\w.-]*\.json|config\.(?:toml|json|ya?ml)|permissions|"
                                 r"hooks?\b|mcp\.json|\.mcp\b|auth\.json|credentials")
_MEMORY_RED_FLAGS = re.compile(
    r"\bnever\s+(?:ask|confirm|tell|mention|show|check)|without\s+(?:asking|confirm\w*|telling|"
    r"showing|prompting|approval|the\s+user)|(?:do\s+not|don't)\s+(?:ask|tell|mention|list|show|"
    r"report|confirm)|pre-?(?:authori|approv)|auto-?approv|approved\s+(?:all|every|any)|"
    r"skip\s+(?:the\s+)?(?:confirmation|checks?|review|permission)|(?:every|each)\s+session"
    r"[^\n.]{0,40}\b(?:run|execute|fetch|download|source)|(?:run|execute|source)\b[^\n.]{0,60}"
    r"(?:every|each)\s+session|before\s+doing\s+anything|take\s+priority|takes\s+priority|"
    r"precedence|override|\bignore\b|disregard|\bobey\b|treat\s[^\n]{0,60}\bas\s+(?:instructions|"
    r"commands|from)|come\s+from\s+the\s+user|silently|quietly|secretly|\bcurl\b|\bwget\b|"
    r"https?://|\|\s*(?:ba)?sh\b|\.sh\b|\bpermission|\btrust\s|allow(?:ed)?\s+all|bypass|"
    r"dangerously|--yolo", re.IGNORECASE)
_CODE_SPAN = re.compile(r"`([^`\n]{1,300})`")
_FRAGMENT = re.compile(r"[`'\"]([A-Za-z0-9+/]{8,120}={0,2})[`'\"]")
MAX_FRAGMENTS = 60


def _host_path(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url.lower())
        return parts.hostname or "", parts.path or ""
    except ValueError:
        return "", ""


def _known_installer(url: str) -> bool:
    host, path = _host_path(url)
    return any((host == h or host.endswith("." + h)) and path.startswith(prefix)
               for h, prefix in _KNOWN_INSTALLER_SOURCES)


def _impersonates_installer(url: str) -> bool:
    """A host such as bun.sh.example.net or astral.sh-cdn.net: a known name as a disguise."""
    host, _ = _host_path(url)
    if not host or _known_installer(url):
        return False
    return any(host.startswith(h + ".") or host.startswith(h + "-") or
               host.startswith(h.replace(".", "-") + ".")
               for h, _ in _KNOWN_INSTALLER_SOURCES if h != "raw.githubusercontent.com")


def _declared_source(url: str, context: Context) -> bool:
    host, path = _host_path(url)
    if not host or not context.sources:
        return False
    for h, prefix in context.sources:
        if (host == h or host.endswith("." + h)) and (
                not prefix or path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def _judge_index(out: _Collector, line_no: int, raw: str, line: str) -> None:
    """Severity of a package-index option by where it points."""
    rule_ = rule("supply-chain.untrusted-index")
    for pattern in rule_.compiled:
        for match in pattern.finditer(line):
            url = match.group(1).strip(",;)]}'\"")
            if "$" in url or "{" in url or "<" in url or not re.match(r"(?:https?|ftp)://", url):
                continue
            host, _ = _host_path(url)
            if not host:
                continue
            if _UNTRUSTED_RE.match(url) and not _LOCAL_HOST.match(host):
                out.add(rule_, line_no, f"installs packages from an untrusted index ({host}): "
                        f"a raw IP, tunnel, paste site or plain http", raw, severity=C)
            elif _LOCAL_HOST.match(host) or _declared_source(url, out.context) or any(
                    host == h or host.endswith("." + h) for h in _OFFICIAL_INDEXES):
                continue
            elif _REGISTRY_WORDS.search(host):
                out.add(rule_, line_no, f"installs packages from {host}, which imitates an "
                        f"official package registry's name", raw, severity=C)
            else:
                # An index that replaces or extends resolution for every package is high; a
                # find-links page of wheels for one package is context.
                links = "find-links" in match.group(0) or re.search(r"\s-f[\s=]", match.group(0))
                out.add(rule_, line_no, f"installs packages from an index that is neither the "
                        f"official one nor the skill's declared source: {host}", raw,
                        severity=M if links else H)
            return


# Popular package names; a name one typo away from one of these (and not itself a known
# package) is a likely typosquat. PyPI names are compared normalised (PEP 503).
_POPULAR_PYPI = frozenset("""
requests numpy pandas scipy matplotlib pillow flask django fastapi pydantic sqlalchemy boto3
botocore pytest setuptools wheel urllib3 certifi charset-normalizer idna six python-dateutil
pyyaml jinja2 markupsafe click attrs packaging cryptography pyopenssl cffi pycparser colorama
tqdm rich typer httpx aiohttp uvicorn gunicorn celery redis psycopg2 psycopg2-binary pymongo
beautifulsoup4 lxml selenium playwright scrapy openai anthropic langchain transformers
tokenizers datasets torch torchvision torchaudio tensorflow keras scikit-learn xgboost lightgbm
seaborn plotly sympy networkx opencv-python pytz tzdata docutils sphinx black flake8 pylint
mypy isort coverage virtualenv pipenv poetry twine markdown pygments openpyxl xlsxwriter
python-docx python-pptx pypdf pdfplumber pymupdf reportlab paramiko fabric jsonschema protobuf
grpcio google-api-python-client google-auth tiktoken huggingface-hub safetensors accelerate
sentence-transformers faiss-cpu chromadb streamlit gradio nltk spacy gensim statsmodels joblib
cloudpickle websockets websocket-client python-dotenv pyjwt bcrypt passlib pexpect psutil
watchdog schedule apscheduler arrow pendulum loguru structlog tenacity backoff orjson ujson
simplejson msgpack tomli pyarrow polars duckdb sqlparse alembic marshmallow pytest-cov
pytest-mock hypothesis pre-commit bandit ansible docker kubernetes awscli azure-cli
google-cloud-storage firebase-admin stripe twilio sendgrid slack-sdk pygithub gitpython mlflow
wandb optuna numba cython pybind11 ipython jupyter notebook jupyterlab ipykernel ipywidgets
pyautogui pynput pyperclip keyring pycryptodome pysftp yt-dlp ffmpeg-python moviepy pydub
librosa soundfile imageio scikit-image shapely geopandas folium rasterio pyproj biopython
rdkit openai-whisper llama-index langgraph litellm ollama mcp fastmcp
""".split())
_POPULAR_NPM = frozenset("""
react react-dom vue angular svelte next nuxt express koa fastify axios lodash underscore moment
dayjs chalk commander yargs inquirer dotenv uuid debug minimist rimraf mkdirp fs-extra webpack
rollup esbuild vite parcel typescript eslint prettier jest mocha sinon vitest cypress
playwright puppeteer nodemon cross-env concurrently husky lint-staged tailwindcss postcss
autoprefixer styled-components redux mobx zustand jquery bootstrap socket.io node-fetch cheerio
jsdom marked markdown-it highlight.js mongoose sequelize prisma mysql2 sqlite3 redis ioredis
bcrypt bcryptjs jsonwebtoken passport cors helmet morgan body-parser multer nodemailer semver
async bluebird rxjs immer classnames date-fns luxon openai electron chart.js sharp
canvas pdfkit papaparse csv-parse js-yaml handlebars mustache execa boxen nanoid
ethers web3 discord.js telegraf twilio stripe firebase firebase-admin graphql apollo-server
""".split())
# Real, popular packages that sit one typo away from a name above.
_KNOWN_NEIGHBOURS = frozenset("""
scapy simpy markdown2 pypdf2 pypdf3 pypdf4 beautifulsoup fabric2 jinja preact tslint request
colors color pyyaml-include types-requests mysql torchx dash nuxt3 redux-thunk
""".split())
_INSTALL_CMD = re.compile(
    r"\b(?:(?:pip[23]?|pipx|uv\s+pip|python[23]?(?:\.\d+)?\s+-m\s+pip)\s+install|(?:uv|poetry|"
    r"pdm|rye)\s+add|(?:npm|pnpm|bun|yarn)\s+(?:install|i|add)|(?:npx|bunx|pnpm\s+dlx))\b"
    r"([^\n|;&#]{0,400})", re.IGNORECASE)
_VALUE_OPTIONS = frozenset({"-r", "-c", "-e", "-i", "-f", "-t", "--index-url",
                            "--extra-index-url", "--find-links", "--registry", "--target",
                            "--prefix", "--requirement", "--constraint", "--editable", "-p",
                            "--python", "--tag", "--workspace", "-w", "--package"})


def _edit1(a: str, b: str) -> bool:
    """Whether a and b differ by exactly one insertion, deletion, substitution or swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def _lookalike(name: str, npm: bool) -> str | None:
    """The popular package `name` imitates, if any."""
    if npm:
        name = name.lower().split("@", 1)[0] if not name.startswith("@") else ""
        popular = _POPULAR_NPM
    else:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~;@ ]", name, maxsplit=1)[0].lower())
        popular = _POPULAR_PYPI
    if len(name) < 5 or name in popular or name in _KNOWN_NEIGHBOURS \
            or name in _POPULAR_PYPI or name in _POPULAR_NPM:
        return None
    for candidate in popular:
        if len(candidate) >= 5 and _edit1(name, candidate):
            return candidate
    return None


def _install_names(args: str) -> Iterator[str]:
    skip = False
    for token in args.split():
        if skip:
            skip = False
            continue
        if token.startswith("-"):
            skip = token in _VALUE_OPTIONS
            continue
        if re.search(r"[/\\:$<>{}()`]|^\.|\.(?:txt|whl|gz|zip|toml|cfg)$", token):
            continue
        yield token.strip(",;'\"")


def _supply_chain(out: _Collector, f: _File) -> None:
    lower_path = f.path.lower()
    name = lower_path.rsplit("/", 1)[-1]
    requirements = name.startswith("requirements") and name.endswith((".txt", ".in"))
    if requirements or _INSTALL_CMD.search(f.norm_text):
        for index, norm in enumerate(f.norm):
            line_no, raw = f.logical[index]
            found: list[tuple[str, str]] = []
            for match in _INSTALL_CMD.finditer(norm):
                npm = bool(re.match(r"(?:npm|pnpm|bun|yarn|npx|bunx)\b", match.group(0)))
                for token in _install_names(match.group(1)):
                    target = _lookalike(token, npm)
                    if target:
                        found.append((token, target))
            if requirements and not norm.lstrip().startswith(("#", "-")):
                token = norm.strip()
                target = _lookalike(token, False) if token else None
                if target:
                    found.append((token, target))
            for token, target in found[:1]:
                out.add(rule("supply-chain.typosquat"), line_no,
                        f"installs {token!r}, one typo away from the popular package "
                        f"{target!r}", raw)
    if name == "package.json":
        _npm_hooks(out, f)
    elif name == "setup.py" and "setup(" in f.norm_text:
        _setup_py_hooks(out, f)
    if name == "package.json":
        try:
            data = json.loads(f.raw_text)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        for key in ("dependencies", "devDependencies", "optionalDependencies"):
            deps = data.get(key)
            if not isinstance(deps, dict):
                continue
            for dep in list(deps)[:500]:
                target = _lookalike(str(dep), True)
                if target:
                    out.add(rule("supply-chain.typosquat"), _line_with(f, f'"{dep}"'),
                            f"depends on {dep!r}, one typo away from the popular package "
                            f"{target!r}", _raw_line(f, _line_with(f, f'"{dep}"')))


_HOOK_RUNS_CODE = re.compile(
    rf"{FETCH}|\bnode\s+-(?:e|p)\b|\bpython[23]?\s+-c\b|\bbase64\b|\beval\b|https?://|"
    rf"\|\s*(?:ba|z)?sh\b|\b(?:ba|z)?sh\s+-c\b|powershell|\bnc\b|/dev/tcp", re.IGNORECASE)


def _line_with(f: _File, needle: str) -> int:
    for number, line in enumerate(f.raw_lines, start=1):
        if needle in line:
            return number
    return 1


def _npm_hooks(out: _Collector, f: _File) -> None:
    try:
        data = json.loads(f.raw_text)
    except ValueError:
        return
    scripts = data.get("scripts") if isinstance(data, dict) else None
    if not isinstance(scripts, dict):
        return
    for hook in ("preinstall", "install", "postinstall", "prepare", "preuninstall"):
        command = scripts.get(hook)
        if not isinstance(command, str):
            continue
        line = _line_with(f, f'"{hook}"')
        if _HOOK_RUNS_CODE.search(command):
            out.add(rule("supply-chain.install-hook"), line,
                    f"the {hook} hook downloads or runs inline code at install time: "
                    f"{_snippet(command)}", _raw_line(f, line))
        else:
            out.add(rule("supply-chain.install-hook"), line,
                    f"the {hook} hook runs a command at install time: {_snippet(command)}",
                    _raw_line(f, line), severity=M)


_SETUP_SINK = re.compile(r"\b(?:urlopen|urlretrieve|requests\.|httpx\.|urllib\.request|socket\.|"
                         r"os\.system|os\.popen|subprocess|exec\(|eval\()", re.IGNORECASE)


def _setup_py_hooks(out: _Collector, f: _File) -> None:
    hook = re.search(r"cmdclass\s*=", f.norm_text)
    sink = _SETUP_SINK.search(f.norm_text)
    first = sink or hook
    if first is None:
        return
    where = _line_of(f.norm_text, first.start())
    if sink:
        out.add(rule("supply-chain.install-hook"), where,
                "setup.py runs network, shell or exec calls when the package is installed",
                _raw_line(f, where))
    else:
        out.add(rule("supply-chain.install-hook"), where,
                "setup.py overrides an install command (cmdclass)", _raw_line(f, where),
                severity=M)


def _paragraph_spans(f: _File) -> Iterator[tuple[int, int]]:
    """[start, end) index ranges of logical lines separated by blank lines (at most 12)."""
    start = 0
    for index, norm in enumerate(f.norm):
        if not norm.strip():
            if index > start:
                yield start, index
            start = index + 1
        elif index - start >= 12:
            yield start, index + 1
            start = index + 1
    if start < len(f.norm):
        yield start, len(f.norm)


def _delayed_triggers(out: _Collector, f: _File, code: bool) -> None:
    if not code:
        for start, end in _paragraph_spans(f):
            text = " ".join(f.norm[start:end])[:WINDOW]
            trigger = _TRIGGER_PROSE.search(text)
            if trigger and _TRIGGER_ACTION.search(text):
                index = start
                for i in range(start, end):
                    if _TRIGGER_PROSE.search(f.norm[i]):
                        index = i
                        break
                line_no, raw = f.logical[index]
                out.add(rule("delayed-trigger.instructions"), line_no,
                        f"changes what the agent does after a date or a number of uses "
                        f"({_snippet(trigger.group(0))}), together with an unsafe step", raw)
                break
    counter_ok = bool(_COUNTER_STORE.search(f.norm_text)) and bool(
        re.search(r"\+=\s*1\b|\+\s*1\b|\+\+", f.norm_text))
    for index, norm in enumerate(f.norm):
        match = _TRIGGER_CODE.search(norm[:WINDOW])
        if not match:
            continue
        dated = not re.match(r"\w", match.group(0)) or "date" in match.group(0) or \
            "time" in match.group(0)
        if not dated and not counter_ok:
            continue
        if not code and not re.search(r"\bif\b|\[\s|\?", norm):
            continue
        following = "\n".join(f.norm[index:index + 15])
        if _SINK.search(following):
            line_no, raw = f.logical[index]
            out.add(rule("delayed-trigger.code"), line_no,
                    f"a date or use-count condition ({_snippet(match.group(0))}) gates a "
                    f"network, shell or exec call", raw)
            break


def _persuasion_cues(out: _Collector, f: _File) -> None:
    if f.path.lower().endswith(_CODE_EXT) or out.has("prompt-injection.persuasion"):
        return
    kinds: set[int] = set()
    first: int | None = None
    for start, end in _paragraph_spans(f):
        text = " ".join(f.norm[start:end])[:WINDOW]
        for cue, pattern in enumerate(_PERSUASION_CUES):
            if pattern.search(text):
                kinds.add(cue)
                first = start if first is None else first
    if first is None:
        return
    line_no, raw = f.logical[first]
    out.add(rule("prompt-injection.persuasion"), line_no,
            f"pressure on the agent to skip its safeguards ({len(kinds)} kind(s) of "
            f"persuasion): {_snippet(raw)}", raw, severity=C if len(kinds) >= 2 else H)


def _span_soup(out: _Collector, f: _File) -> None:
    """Markdown: inline code spans from different lines joined, as a reader would paste them."""
    if "`" not in f.raw_text:
        return
    pieces: list[tuple[int, int]] = []  # (offset in soup, line)
    soup: list[str] = []
    length = 0
    for line_no, raw in f.logical:
        for span in _CODE_SPAN.finditer(raw):
            piece = _normalise(span.group(1), f.context.variables)
            pieces.append((length, line_no))
            soup.append(piece)
            length += len(piece)
            if len(pieces) >= 2000:
                break
    if len({line for _, line in pieces}) < 2:
        return
    text = "".join(soup)
    for rule_id in _SOUP_RULES:
        rule_ = rule(rule_id)
        for window_start in range(0, len(text), WINDOW - WINDOW_OVERLAP):
            window = text[window_start:window_start + WINDOW]
            match: re.Match[str] | None = None
            for pattern in rule_.compiled:
                match = pattern.search(window)
                if match is not None:
                    break
            if match is None:
                continue
            first = window_start + match.start()
            last = window_start + match.end() - 1
            lines = {ln for off, ln in pieces if first <= off <= last}
            lines.add(max((ln for off, ln in pieces if off <= first), default=1))
            if len(lines) >= 2:
                line_no = min(lines)
                inner = _Collector(f.path, f.context)
                _emit(inner, rule_, line_no, _raw_line(f, line_no),
                      window[match.start():match.end()])
                for item in inner.items.values():
                    out.add(rule(item.rule), line_no, f"(assembled from code spans on lines "
                            f"{', '.join(map(str, sorted(lines)))}) {item.message}",
                            _raw_line(f, line_no), severity=item.severity)
                if any(i.severity >= Severity.HIGH for i in inner.items.values()):
                    out.add(rule("encoded-payload.split-payload"), line_no,
                            f"code spans on lines {', '.join(map(str, sorted(lines)))} join into "
                            f"a command: {_snippet(window[match.start():match.end()])}",
                            _raw_line(f, line_no))
            break


def _fragments(out: _Collector, f: _File, depth: int) -> None:
    """Short base64 pieces in quotes or code spans that decode to a threat only when joined."""
    found: list[tuple[int, str]] = []
    for match in _FRAGMENT.finditer(f.raw_text):
        piece = match.group(1)
        if len(piece) < 40 and (re.search(r"\d|\+|/", piece) or
                                (re.search(r"[a-z]", piece) and re.search(r"[A-Z]", piece))):
            found.append((match.start(), piece))
            if len(found) >= MAX_FRAGMENTS:
                break
    if len(found) < 2:
        return
    start = 0
    while start < len(found) - 1:
        best = None
        joined = found[start][1]
        for end in range(start + 1, len(found)):
            joined += found[end][1]
            if len(joined) > WINDOW:
                break
            decoded = _try_decode("base64", joined)
            if decoded is not None and len(decoded) >= 16:
                best = (end, decoded)
        if best is None:
            start += 1
            continue
        end, decoded = best
        inner = _Collector(f.path)
        _scan_into(inner, _prepare(f.path, decoded), depth + 1)
        serious = [i for i in inner.items.values() if i.severity >= Severity.HIGH]
        if serious:
            line = _line_of(f.raw_text, found[start][0])
            out.add(rule("encoded-payload.split-payload"), line,
                    f"{end - start + 1} base64 pieces (lines {line}-"
                    f"{_line_of(f.raw_text, found[end][0])}) join and decode to text that trips "
                    f"{', '.join(sorted({i.rule for i in serious}))}: {_snippet(decoded)}",
                    _raw_line(f, line))
            for item in serious:
                out.add(rule(item.rule), line, f"(inside joined base64 pieces) {item.message}",
                        _raw_line(f, line), severity=item.severity)
        start = end + 1


_ASSEMBLED_FAMILIES = ("remote-exec", "encoded-payload", "exfiltration", "destructive",
                       "credential-access", "persistence")


def _assembled_elsewhere(out: _Collector, f: _File) -> None:
    """A threat that only exists once another file's variables are filled in."""
    if not f.foreign:
        return
    lines = {f.logical[i][0] for i in f.foreign}
    for item in list(out.items.values()):
        if item.line in lines and item.family in _ASSEMBLED_FAMILIES \
                and item.severity >= Severity.HIGH and item.rule != "encoded-payload.split-payload":
            out.add(rule("encoded-payload.split-payload"), item.line,
                    f"uses variables set in another file of the skill, and together they make "
                    f"{item.rule}", _raw_line(f, item.line or 0))
            return


def _scoped_memory_writes(out: _Collector, f: _File) -> None:
    """A memory or persona skill writing its own memory file, in the open, is its job."""
    tamper = out.has("prompt-injection.agent-config-tamper")
    if not tamper or not _MEMORY_PURPOSE.search(f.context.purpose):
        return
    others = [i for i in out.items.values() if i.severity >= Severity.HIGH
              and i.rule != "prompt-injection.agent-config-tamper"]
    if others:
        return
    index_of = {line_no: i for i, (line_no, _) in enumerate(f.logical)}
    for item in tamper:
        index = index_of.get(item.line or 0)
        if index is None:
            return
        around = "\n".join(f.norm[max(0, index - 6):index + 7])
        if _MEMORY_TARGET_DENY.search(f.norm[index]) or _MEMORY_RED_FLAGS.search(around):
            return
    for item in tamper:
        del out.items[(item.rule, item.line)]
        out.add(rule("prompt-injection.memory-write"), item.line,
                f"writes the agent's own memory or instruction file, which is what this skill "
                f"says it is for: {_snippet(item.excerpt)}", item.excerpt)


# -- binaries ---------------------------------------------------------------------------------

def _binary_findings(path: str, data: bytes, executable: bool) -> list[Finding] | None:
    """Findings for a binary file, or None when the file is text (scan it as text)."""
    out = _Collector(path)
    head = data[:16]
    for magic, kind in _EXEC_MAGIC.items():
        if head.startswith(magic) and (magic != b"MZ" or b"PE\0\0" in data[:1024]
                                       or not _is_text(data)):
            name = path.rsplit("/", 1)[-1].lower()
            ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
            if ext in _EXEC_EXT or kind == "WebAssembly" and ext == ".wasm":
                out.add(rule("binary.executable"), None,
                        f"{kind} executable ({len(data)} bytes)", "")
            else:
                out.add(rule("binary.disguised"), None,
                        f"{kind} executable named {name!r}", "")
            return list(out.items.values())
    for magic, kind in _ARCHIVE_MAGIC.items():
        if head.startswith(magic):
            if kind == "zip" and len(data) > 8 and data[6] & 1:
                out.add(rule("binary.encrypted-archive"), None,
                        "password-protected (encrypted) zip archive", "")
            elif kind in ("7z", "rar") and b"password" in data[:4096].lower():
                out.add(rule("binary.encrypted-archive"), None, f"encrypted {kind} archive", "")
            else:
                out.add(rule("binary.archive"), None, f"{kind} archive ({len(data)} bytes)", "")
            return list(out.items.values())
    if _is_text(data):
        if executable and not data.startswith(b"#!"):
            out.add(rule("binary.exec-bit"), None,
                    "marked executable but has no #! line", "")
            text_findings = list(out.items.values())
            return text_findings + scan_text(path, _decode(data))
        return None
    if any(head.startswith(m) for m in _MEDIA_MAGIC) or head[4:12] in (b"ftypisom", b"ftypmp42") \
            or (head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE", b"AVI ")):
        return []
    out.add(rule("binary.unknown"), None, f"binary content of unknown type ({len(data)} bytes)",
            "")
    return list(out.items.values())


def _is_text(data: bytes) -> bool:
    sample = data[:8192]
    if b"\0" in sample:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start > len(sample) - 4:  # a character cut by the sample's end
            return True
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return control / max(1, len(sample)) < 0.05
