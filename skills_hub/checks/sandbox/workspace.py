"""The host side of a run: a private workspace (the skill, a throwaway HOME with decoy
credentials) and the support files every sandbox binds (template runner, minimal /etc)."""

from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skills_hub.checks.sandbox.identity import _Identity, _identity
from skills_hub.checks.sandbox.model import _HOST_ETC, SANDBOX_HOME, SANDBOX_UID, SANDBOX_USER, log
from skills_hub.checks.sandbox.process import _HOST_ENV
from skills_hub.skill.bundle import Bundle

# Fake but plausible credentials planted in every sandbox HOME; opening one is a finding.
DECOY_FILES = (
    ".ssh/id_rsa", ".ssh/id_ed25519", ".aws/credentials",
    ".config/gcloud/application_default_credentials.json", ".config/gcloud/credentials.db",
    ".netrc", ".docker/config.json", ".kube/config", ".env", ".git-credentials",
    ".config/gh/hosts.yml", ".pypirc",
    ".config/google-chrome/Default/Login Data", ".config/google-chrome/Default/Cookies",
    ".mozilla/firefox/q8m3x2ka.default-release/logins.json", ".bitcoin/wallet.dat",
)

class _Workspace:
    """A private temporary directory for one run_tests call; removed on exit, always.

    It stays owned by the server (mode 0711: the sandbox user can reach known paths but not
    list or change them). Root never writes into a directory the sandbox user owns: a
    subtree is handed over (give) only once it is complete.
    """

    def __init__(self, bundle: Bundle, identity: _Identity) -> None:
        self.bundle, self.identity = bundle, identity
        self.root = Path(tempfile.mkdtemp(prefix="skills-hub-sandbox-run-",
                                          dir=_workspace_root(identity)))
        self._count = 0

    def __enter__(self) -> _Workspace:
        try:
            self.root.chmod(0o711)
            _write_bundle(self.bundle, self.skill)
        except BaseException:
            _remove_tree(self.root)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        _remove_tree(self.root)

    @property
    def skill(self) -> Path:
        return self.root / "skill"

    def new_dir(self, name: str) -> Path:
        """A fresh directory the sandbox user can pass through."""
        self._count += 1
        path = self.root / f"{name}-{self._count}"
        path.mkdir()
        path.chmod(0o711)
        return path

    def decoys(self, home: Path) -> dict[str, Path]:
        """Write the decoy credential files under home; {"~/.ssh/id_rsa": path}.

        The files belong to the sandbox user (0600, like real keys); folders are 0711.
        """
        placed = {}
        for relative, data in _decoy_contents().items():
            path = home / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o600)
            if self.identity.drop:
                os.lchown(path, self.identity.uid, self.identity.gid)
            placed[f"~/{relative}"] = path
        for folder, _, _ in os.walk(home):
            os.chmod(folder, 0o711)
        return placed

    def write_spec(self, spec: Mapping[str, Any]) -> Path:
        self._count += 1
        path = self.root / f"spec-{self._count}.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        path.chmod(0o644)
        return path

    def give(self, tree: Path) -> None:
        """Hand a finished tree to the sandbox user: its folders 0700, writable by it."""
        for folder, dirs, files in os.walk(tree):
            os.chmod(folder, 0o700)
            if self.identity.drop:
                for name in (*dirs, *files):
                    os.lchown(os.path.join(folder, name), self.identity.uid, self.identity.gid)
        if self.identity.drop:
            os.lchown(tree, self.identity.uid, self.identity.gid)


def _workspace_root(identity: _Identity) -> str:
    """Where run directories go (a seam for tests)."""
    return _scratch_root(identity)


def _scratch_root(identity: _Identity) -> str:
    """The temp dir, if the sandbox user can reach it; /tmp otherwise."""
    base = tempfile.gettempdir()
    if not identity.drop:
        return base
    path = Path(base).resolve()
    reachable = all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))
    return base if reachable else "/tmp"


def _write_bundle(bundle: Bundle, dest: Path) -> None:
    """The skill's files with plain modes: 0755 folders, 0644 files, 0755 executables."""
    dest.mkdir(mode=0o755)
    dest.chmod(0o755)
    for relative, data in bundle.files.items():
        path = dest / relative
        if not path.resolve().is_relative_to(dest.resolve()):
            raise ValueError(f"unsafe path in bundle: {relative!r}")
        for parent in reversed(Path(relative).parents[:-1]):
            folder = dest / parent
            if not folder.exists():
                folder.mkdir()
                folder.chmod(0o755)
        path.write_bytes(data)
        path.chmod(0o755 if relative in bundle.executables else 0o644)


def _remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:  # a test (rlimits mode, non-root server) left read-only folders
        for folder, dirs, _ in os.walk(path):
            for name in dirs:
                target = os.path.join(folder, name)
                if not os.path.islink(target):
                    os.chmod(target, 0o700)
        shutil.rmtree(path, ignore_errors=True)


def _decoy_contents() -> dict[str, bytes]:
    """Fresh fake credentials, plausible enough to be worth stealing."""
    def b64(count: int) -> str:
        return base64.b64encode(os.urandom(count)).decode()

    def pem(count: int) -> bytes:
        body = b64(count)
        lines = "\n".join(body[i:i + 70] for i in range(0, len(body), 70))
        return (f"-----BEGIN OPENSSH PRIVATE KEY-----\n{lines}\n"
                "-----END OPENSSH PRIVATE KEY-----\n").encode()

    token = os.urandom(20).hex()
    key_id = "AKIA" + "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[b % 32] for b in os.urandom(16))
    sqlite = b"SQLite format 3\x00" + os.urandom(4080)
    text = {
        ".aws/credentials": f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key"
                            f" = {b64(30)}\nregion = us-east-1\n",
        ".config/gcloud/application_default_credentials.json": json.dumps({
            "client_id": f"{token[:12]}.apps.googleusercontent.com", "client_secret": b64(18),
            "refresh_token": f"1//{b64(60)}", "type": "authorized_user"}),
        ".netrc": f"machine github.com\n  login user\n  password ghp_{token}\n",
        ".docker/config.json": json.dumps({"auths": {"https://index.docker.io/v1/": {
            "auth": b64(24)}}}),
        ".kube/config": f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: "
                        f"https://10.0.12.4:6443\n  name: prod\nusers:\n- name: admin\n  user:"
                        f"\n    token: {b64(48)}\n",
        ".env": f"OPENAI_API_KEY=sk-proj-{b64(36)}\nDATABASE_URL=postgres://app:{token[:16]}"
                "@db.internal:5432/app\n",
        ".git-credentials": f"https://user:ghp_{token}@github.com\n",
        ".config/gh/hosts.yml": f"github.com:\n    oauth_token: gho_{token}\n    user: user\n",
        ".pypirc": f"[pypi]\nusername = __token__\npassword = pypi-{b64(48)}\n",
        ".mozilla/firefox/q8m3x2ka.default-release/logins.json": json.dumps({"logins": [{
            "hostname": "https://accounts.example.com", "encryptedUsername": b64(40),
            "encryptedPassword": b64(40)}]}),
    }
    binary = {".ssh/id_rsa": pem(1800), ".ssh/id_ed25519": pem(300),
              ".config/gcloud/credentials.db": sqlite,
              ".config/google-chrome/Default/Login Data": sqlite,
              ".config/google-chrome/Default/Cookies": sqlite,
              ".bitcoin/wallet.dat": b"\x00\x00\x00\x00\x01\x00\x00\x00" + os.urandom(8184)}
    contents = {path: data.encode() for path, data in text.items()} | binary
    return {path: contents[path] for path in DECOY_FILES}


_support_lock = threading.Lock()

@functools.cache
def _sandbox_python() -> str | None:
    """A python3 under /usr that the sandbox user can run (not the server's own venv)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(candidate)
        if real.startswith("/usr/") and os.path.isfile(real) \
                and os.stat(real).st_mode & 0o001:
            return candidate
    return None


def _support_dir() -> Path:
    """World-readable files every sandbox binds: the template runner and a minimal /etc.

    Content-addressed under the temp dir, built once per content and reused; checked to be
    ours and not writable by others before use.
    """
    with _support_lock:
        return _build_support_dir()


@functools.cache
def _build_support_dir() -> Path:
    files = _support_files()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (files[name] or b"<dir>") + b"\0")
    digest.update(str(_sandbox_python()).encode())
    base = Path(_scratch_root(_identity()))
    final = base / f"skills-hub-sandbox-support-{os.geteuid()}-{digest.hexdigest()[:16]}"
    if _trusted(final):
        return final
    staging = Path(tempfile.mkdtemp(prefix=".skills-hub-sandbox-support-", dir=base))
    for name, data in sorted(files.items()):
        path = staging / name
        if data is None:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            path.chmod(0o755)
            continue
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
    _precompile(staging / "lib")
    for folder, _, _ in os.walk(staging):
        os.chmod(folder, 0o755)
    try:
        staging.rename(final)
    except OSError:  # another process won the race, or an untrusted directory is in the way
        if _trusted(final):
            _remove_tree(staging)
            return final
        atexit.register(_remove_tree, staging)
        return staging
    return final


def _trusted(path: Path) -> bool:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    return (path.is_dir() and not path.is_symlink() and info.st_uid == os.geteuid()
            and not info.st_mode & 0o022)


def _support_files() -> dict[str, bytes | None]:
    """Relative path -> bytes (None for a folder)."""
    here = Path(__file__).parent.parent / "_sandbox_runner.py"  # checks/_sandbox_runner.py
    files: dict[str, bytes | None] = {"lib/_sandbox_runner.py": here.read_bytes()}
    spec = importlib.util.find_spec("RestrictedPython")
    if spec is not None and spec.submodule_search_locations:
        package = Path(list(spec.submodule_search_locations)[0])
        for source in sorted(package.glob("*.py")):
            files[f"lib/RestrictedPython/{source.name}"] = source.read_bytes()
    files.update(_etc_files())
    return files


def _etc_files() -> dict[str, bytes | None]:
    uid = gid = SANDBOX_UID
    etc: dict[str, bytes | None] = {
        "etc/passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n{SANDBOX_USER}:x:{uid}:{gid}:"
                      f"{SANDBOX_USER}:{SANDBOX_HOME}:/bin/sh\nnobody:x:65534:65534:nobody:"
                      "/nonexistent:/usr/sbin/nologin\n".encode(),
        "etc/group": f"root:x:0:\n{SANDBOX_USER}:x:{gid}:\nnogroup:x:65534:\n".encode(),
        "etc/hosts": b"127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost ip6-loopback\n",
        # TEST-NET-1: unroutable, so every DNS lookup becomes a counted network attempt.
        "etc/resolv.conf": b"nameserver 192.0.2.1\noptions timeout:1 attempts:1\n",
        "etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files dns\n"
                             b"services: files\nprotocols: files\n",
        "etc/hostname": b"sandbox\n",
    }
    for name in _HOST_ETC:  # placeholders to bind the host's files over
        etc[f"etc/{name}"] = None if os.path.isdir(f"/etc/{name}") else b""
    return etc


def _precompile(lib: Path) -> None:
    """Byte-compile the runner's libraries for the sandbox's python (read-only inside)."""
    python = _sandbox_python()
    if python is None:
        return
    try:
        subprocess.run([python, "-E", "-s", "-m", "compileall", "-q", str(lib)], check=False,
                       capture_output=True, timeout=120, env=_HOST_ENV)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("could not precompile the sandbox runner: %s", exc)

