"""Git storage: one bare repo per namespace, the only module that imports dulwich.

A publish is one commit on `main` that replaces `skills/<name>/`, plus an annotated,
create-only tag `<name>/v<version>` pointing at it. Writes to a repo hold a lock that
works across threads and processes; objects are fsynced before any ref moves, and every
ref update is a compare-and-swap whose result is checked.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dulwich.config import ConfigFile
from dulwich.errors import NotGitRepository
from dulwich.object_store import DiskObjectStore
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tag, Tree
from dulwich.refs import DiskRefsContainer, Ref
from dulwich.repo import Repo
from dulwich.server import Backend, UploadPackHandler
from dulwich.web import GunzipFilter, HTTPGitApplication, LimitedInputFilter

from ..errors import HubError, NotFound, VersionExists
from ..skill import semver
from ..skill.bundle import Bundle
from .interfaces import WriteLock

log = logging.getLogger(__name__)

MAIN = Ref(b"refs/heads/main")
TAG_PREFIX = Ref(b"refs/tags/")
SKILLS_DIR = b"skills"
FILE_MODE = 0o100644
EXEC_MODE = 0o100755
DIR_MODE = stat.S_IFDIR
LOCK_FILE = "skills-hub.lock"
# What C git fsyncs in our repos (core.fsync): objects, packs' indexes and the like, refs.
FSYNC = b"objects,derived-metadata,reference"
IDENTITY = b"skills-hub <registry@skills-hub.invalid>"
# Namespaces whose refs and `skills/` listing a store keeps for its writes (`_Kept`).
NAMESPACES_KEPT = 16
# zlib level of the loose objects a write makes: level 1 deflates tree entries (names and
# raw shas) as small as the default level 6 in half the time, and `maintain` repacks them.
LOOSE_COMPRESSION = 1


class StoreConflict(HubError):
    """A ref moved under us although we held the lock: someone bypassed the store."""

    status = 500
    code = "store_conflict"


@dataclass(frozen=True)
class TagInfo:
    """One published version as recorded in git."""

    name: str
    version: str
    tag_sha: str
    commit_sha: str
    tree_sha: str  # the skill's own subtree, skills/<name>
    tagged_at: int


@dataclass(frozen=True)
class StaleLock:
    """A lock file no writer owns (see `GitStore._locked`), found under the namespace lock."""

    path: str  # relative to the repo, e.g. refs/heads/main.lock
    age: float  # seconds since it was last written
    removed: bool


@dataclass(frozen=True)
class TagProblem:
    """A version tag whose commit `main` does not reach."""

    tag: str  # <name>/v<version>
    commit: str
    kind: str  # tag-ahead (one commit ahead of main), orphan-tag, tag-not-on-main (left)
    action: str  # what was done, or with repair off what would be done
    fixed: bool


@dataclass
class Recovery:
    """What `GitStore.recover` found in one namespace, and what it repaired."""

    locks: list[StaleLock] = field(default_factory=list)
    tags: list[TagProblem] = field(default_factory=list)

    @property
    def forwarded(self) -> list[str]:
        return [t.tag for t in self.tags if t.fixed and t.kind == "tag-ahead"]

    @property
    def removed(self) -> list[str]:
        return [t.tag for t in self.tags if t.fixed and t.kind == "orphan-tag"]


@dataclass(frozen=True)
class Published:
    commit_sha: str
    tag_sha: str
    tree_sha: str
    tagged_at: int


WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
CHUNK = 64 * 1024


class Unchanged(Exception):
    """The content equals what `skills/<name>/` on main already holds."""

    def __init__(self, tree_sha: str) -> None:
        super().__init__(tree_sha)
        self.tree_sha = tree_sha


def tag_name(name: str, version: str) -> str:
    return f"{name}/v{version}"


class GitStore:
    """The namespaces' bare repos under `root`."""

    def __init__(self, root: Path, write_lock: WriteLock | None = None) -> None:
        self.root = root
        # Held inside the node's own lock around every write, when the repos are shared by
        # several nodes (a PostgreSQL advisory lock: flock does not hold across machines).
        self.write_lock = write_lock
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # What a write reuses from the namespace's last write (each used under its
        # namespace's lock; the dict itself under `_locks_guard`), most recently used last.
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    # -- namespaces ---------------------------------------------------------------------

    def path(self, namespace: str) -> Path:
        return self.root / f"{namespace}.git"

    def exists(self, namespace: str) -> bool:
        return (self.path(namespace) / "HEAD").is_file()

    def namespaces(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name[:-4] for p in self.root.glob("*.git") if (p / "HEAD").is_file())

    def ensure(self, namespace: str) -> None:
        """Create the namespace's bare repo (HEAD on main, fsync on) if it is missing."""
        if self.exists(namespace):
            return
        with self._locked(namespace, create=True):
            if self.exists(namespace):
                return
            path = self.path(namespace)
            # Built beside its place and renamed into it, so that a crash half-way leaves no
            # half-made repo (dulwich's init refuses a directory that has `refs/` already).
            # What a crash left is abandoned: every creator holds this lock.
            _discard_partial(path)
            building = self.root / f".{namespace}.git.creating"
            if building.exists():
                log.warning("removed %s, left by a crash while it was being created", building)
                shutil.rmtree(building)
            building.mkdir(parents=True)
            repo = Repo.init_bare(str(building), default_branch=b"main")
            config = repo.get_config()
            _set_fsync(config)
            config.set((b"core",), b"logAllRefUpdates", False)
            config.write_to_path()
            repo.close()
            os.rename(building, path)
            _fsync_dir(self.root)

    def open(self, namespace: str) -> Repo:
        try:
            repo = Repo(str(self.path(namespace)))
        except NotGitRepository as exc:
            raise NotFound(f"namespace {namespace!r} does not exist") from exc
        # dulwich fsyncs objects (loose objects, packs and their indexes) only when asked:
        # it reads the deprecated core.fsyncObjectFiles, not git's core.fsync, which the
        # repos' config sets for C git. Asked here, for every write of ours.
        if isinstance(repo.object_store, DiskObjectStore):
            repo.object_store.fsync_object_files = True
            repo.object_store.loose_compression_level = LOOSE_COMPRESSION
        return repo

    # -- writes -------------------------------------------------------------------------

    def publish(self, namespace: str, name: str, version: str, bundle: Bundle, *,
                message: str, author: str | None = None) -> Published:
        """Commit `bundle` as skills/<name>/ on main and tag it `<name>/v<version>`.

        Raises VersionExists if the tag exists, Unchanged if the content is what main has.
        """
        self.ensure(namespace)
        with self._locked(namespace):
            repo = self.open(namespace)
            try:
                return self._publish_locked(repo, self._keep(namespace), name, version, bundle,
                                            message, author)
            finally:
                repo.close()

    def _publish_locked(self, repo: Repo, kept: _Kept, name: str, version: str,
                        bundle: Bundle, message: str, author: str | None) -> Published:
        refs = kept.refs
        head = refs[MAIN] if MAIN in refs else None
        objects, subtree = _bundle_objects(bundle)
        root_tree = _tree(repo, repo[head].tree) if head else Tree()  # type: ignore[attr-defined]
        listing = kept.listing_of(repo, root_tree)
        if listing.subtree(name) == subtree.id:
            raise Unchanged(subtree.id.decode())
        ref = Ref(TAG_PREFIX + tag_name(name, version).encode())
        if ref in refs:
            raise VersionExists(f"{name} {version} is already published; versions are immutable",
                                extra={"version": version})
        _refuse_older(refs, name, version)
        new_listing, skills = listing.with_skill(name, subtree.id)
        new_root = _with_skills(root_tree, skills.id)
        tree_objects = [skills, new_root]
        commit = _commit(new_root.id, [head] if head else [], message, author)
        now = commit.commit_time
        tag = Tag()
        tag.name = tag_name(name, version).encode()
        tag.object = (Commit, commit.id)
        tag.tagger = (author or "").encode() or IDENTITY
        tag.tag_time = now
        tag.tag_timezone = 0
        tag.message = f"{name} {version}\n".encode()
        new_objects = [*objects, *tree_objects, commit, tag]
        self._clear_for_write(repo, [ref, MAIN], new_objects)
        _add_objects(repo, new_objects)
        # The tag is the version's create-only claim; main follows it. A crash between the
        # two leaves a tag one commit ahead of main, which `recover` fast-forwards; a failure
        # between the two takes the tag back, so that the version can be published again.
        if not refs.add_if_new(ref, tag.id):
            raise VersionExists(f"{name} {version} is already published; versions are immutable")
        try:
            moved = (refs.set_if_equals(MAIN, head, commit.id) if head
                     else refs.add_if_new(MAIN, commit.id))
        except Exception:
            if not _untag(refs, ref, tag.id, commit.id):
                raise
            moved = True  # main moved before the error
        if not moved:
            _untag(refs, ref, tag.id, commit.id)
            raise StoreConflict(f"main of {Path(repo.path).name} moved during a locked publish")
        kept.listing = new_listing
        return Published(commit.id.decode(), tag.id.decode(), subtree.id.decode(), now)

    def propose(self, namespace: str, name: str, branch: str, parent_sha: str | None,
                bundle: Bundle, *, message: str, author: str | None = None) -> Published:
        """Commit `bundle` as skills/<name>/ on top of `parent_sha` (a published version's
        commit; None: main's head, or a root commit in an empty repo) on the new branch
        `refs/heads/<branch>`; main is never touched. Proposals and releases under review
        are stored this way.

        The branch is create-only: a second proposal under the same id is a VersionExists.
        """
        ref = Ref(b"refs/heads/" + branch.encode())
        self.ensure(namespace)
        with self._locked(namespace):
            repo = self.open(namespace)
            try:
                if parent_sha is None:
                    parent_sha = repo.refs[MAIN].decode() if MAIN in repo.refs else None
                parent = None if parent_sha is None else repo[ObjectID(parent_sha.encode())]
                if parent is not None and not isinstance(parent, Commit):
                    raise NotFound(f"{parent_sha} is not a commit of {namespace!r}")
                objects, subtree = _bundle_objects(bundle)
                base = _tree(repo, parent.tree) if parent is not None else Tree()
                listing = self._keep(namespace).listing_of(repo, base, keep=False)
                _listing, skills = listing.with_skill(name, subtree.id)
                new_root = _with_skills(base, skills.id)
                trees = [skills, new_root]
                commit = _commit(new_root.id, [parent.id] if parent is not None else [],
                                 message, author)
                self._clear_for_write(repo, [ref], [*objects, *trees, commit])
                _add_objects(repo, [*objects, *trees, commit])
                if not repo.refs.add_if_new(ref, commit.id):
                    raise VersionExists(f"the branch {branch} exists already")
                return Published(commit.id.decode(), "", subtree.id.decode(),
                                 commit.commit_time)
            finally:
                repo.close()

    def repair(self, namespace: str) -> list[str]:
        """Clear stale locks and finish publishes cut off between the tag and the main
        update; returns the tags main was fast-forwarded to. Removes no tag: that needs the
        index (`recover`)."""
        return self.recover(namespace).forwarded

    def recover(self, namespace: str, indexed: Collection[tuple[str, str]] | None = None, *,
                repair: bool = True, every_tag: bool = False) -> Recovery:
        """Undo what a killed writer left in the namespace, under the namespace lock.

        1. Stale lock files (`_lock_files`) are removed: we hold the lock, so no writer owns
           them (see `_locked`).
        2. A tag one commit ahead of main (a publish cut off between its tag and main)
           fast-forwards main, as many times as there are such tags in a row.
        3. A tag main does not reach whose (name, version) `indexed` lacks is an orphan: a
           publish that failed or was killed and then overtaken by another, so it was never
           acknowledged (the index is written after main moves, and main only ever moves
           forward). It is removed, so that the version can be published again. With
           `indexed` None, no tag is removed; a tag main does not reach but the index knows
           is reported and left alone (someone moved main behind the store's back).

        Only the tags `indexed` lacks are looked up in main's history, unless `every_tag`
        (fsck). With `repair` off nothing is written: the result says what would be done.
        """
        recovery = Recovery()
        with self._locked(namespace):
            path = self.path(namespace)
            recovery.locks = self._clear_locks(namespace, _lock_files(path), remove=repair)
            repo = self.open(namespace)
            try:
                if repair:
                    _upgrade_config(repo)
                self._recover_tags(repo, namespace, recovery, indexed, repair, every_tag)
            finally:
                repo.close()
        return recovery

    def _recover_tags(self, repo: Repo, namespace: str, recovery: Recovery,
                      indexed: Collection[tuple[str, str]] | None, repair: bool,
                      every_tag: bool) -> None:
        head = repo.refs[MAIN] if MAIN in repo.refs else None
        pending = sorted(_tag_commits(repo), key=lambda entry: entry[2].tag_time)
        moved = True
        while moved:  # fast-forward through a chain of tags ahead of main
            moved = False
            for entry in pending:
                name, version, _tag, commit = entry
                if commit.parents != ([head] if head else []):
                    continue
                if repair:
                    ok = (repo.refs.set_if_equals(MAIN, head, commit.id) if head
                          else repo.refs.add_if_new(MAIN, commit.id))
                    if not ok:
                        raise StoreConflict(f"main of {namespace} moved during a locked repair")
                    log.warning("fast-forwarded main of %s to %s, left one commit ahead by an "
                                "interrupted publish", namespace, tag_name(name, version))
                recovery.tags.append(TagProblem(
                    tag_name(name, version), commit.id.decode(), "tag-ahead",
                    "one commit ahead of main: "
                    + ("fast-forwarded main to it" if repair else "would fast-forward main"),
                    repair))
                head = commit.id
                pending.remove(entry)
                moved = True
                break
        if indexed is None and not every_tag:
            return
        known = set(indexed or ())
        candidates = [e for e in pending if every_tag or (e[0], e[1]) not in known]
        if not candidates:
            return
        reached, complete = _reaches(repo, head, {e[3].id for e in candidates})
        for name, version, tag, commit in candidates:
            if commit.id in reached:
                continue
            label = tag_name(name, version)
            if indexed is None or (name, version) in known or not complete:
                why = ("the index has this version" if complete
                       else "main's history is incomplete (see git fsck)")
                recovery.tags.append(TagProblem(label, commit.id.decode(), "tag-not-on-main",
                                                f"not on main; left: {why}", False))
                log.error("tag %s of %s is not on main and was left: %s", label, namespace, why)
                continue
            action = "not on main, never acknowledged: " + ("removed" if repair
                                                             else "would remove")
            if repair:
                ref = Ref(TAG_PREFIX + label.encode())
                if not repo.refs.remove_if_equals(ref, tag.id):
                    raise StoreConflict(f"tag {label} of {namespace} moved during a repair")
                log.warning("removed orphan tag %s of %s (commit %s is not on main; the "
                            "publish was never acknowledged)", label, namespace,
                            commit.id.decode()[:12])
            recovery.tags.append(TagProblem(label, commit.id.decode(), "orphan-tag", action,
                                            repair))

    def stale_locks(self, namespace: str, *, remove: bool) -> list[StaleLock]:
        """The lock files no writer owns in the namespace's repo; `remove` deletes them."""
        with self._locked(namespace):
            return self._clear_locks(namespace, _lock_files(self.path(namespace)), remove)

    def git_fsck(self, namespace: str) -> tuple[bool, str] | None:
        """`git fsck --strict` of the namespace (None without C git): (clean, its output).
        Under the namespace lock, so that no write or repack is half-way."""
        git = shutil.which("git")
        if git is None:
            return None
        path = self.path(namespace)
        with self._locked(namespace):
            proc = subprocess.run(
                [git, "--git-dir", str(path), "fsck", "--strict", "--no-dangling",
                 "--no-progress"], capture_output=True, text=True, timeout=3600,
                env={"PATH": os.environ.get("PATH", ""), "GIT_CONFIG_NOSYSTEM": "1",
                     "HOME": str(path)})
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    # -- reads --------------------------------------------------------------------------

    def tags(self, namespace: str) -> list[TagInfo]:
        """Every `<name>/v<version>` tag of the namespace."""
        if not self.exists(namespace):
            return []
        repo = self.open(namespace)
        try:
            return list(self._tags(repo))
        finally:
            repo.close()

    def _tags(self, repo: Repo) -> Iterator[TagInfo]:
        listings: dict[bytes, Tree] = {}  # tags on one commit share its skills/ tree
        for name, version, tag, commit in _tag_commits(repo):
            subtree = _subtree_id(repo, _tree(repo, commit.tree), name, listings)
            if subtree is not None:
                yield TagInfo(name, version, tag.id.decode(), commit.id.decode(),
                              subtree.decode(), tag.tag_time)

    def read_tree(self, namespace: str, tree_sha: str) -> Bundle:
        """The files of a skill subtree (as recorded in TagInfo.tree_sha)."""
        repo = self.open(namespace)
        try:
            files: dict[str, bytes] = {}
            executables: set[str] = set()
            for path, mode, sha in _walk(repo, tree_sha.encode(), b""):
                files[path.decode()] = repo[sha].as_raw_string()
                if mode == EXEC_MODE:
                    executables.add(path.decode())
            return Bundle(files=files, executables=frozenset(executables))
        except KeyError as exc:
            raise NotFound(f"tree {tree_sha} is not in namespace {namespace!r}") from exc
        finally:
            repo.close()

    def head(self, namespace: str) -> str | None:
        repo = self.open(namespace)
        try:
            return repo.refs[MAIN].decode() if MAIN in repo.refs else None
        finally:
            repo.close()

    def copy_to(self, namespace: str, dest: Path) -> dict[str, str]:
        """Copy the namespace's repo to `dest` (which must not exist) under its write lock,
        so that no publish, proposal or repack is half-way in the copy (a backup); returns
        the copy's refs (`refs/...` -> sha). Writers to this namespace wait meanwhile;
        readers do not."""
        if not self.exists(namespace):
            raise NotFound(f"namespace {namespace!r} has no repo")
        with self._locked(namespace):
            shutil.copytree(self.path(namespace), dest, symlinks=True)
        repo = Repo(str(dest))
        try:
            return {ref.decode(): sha.decode() for ref, sha in repo.get_refs().items()
                    if ref.startswith(b"refs/")}
        finally:
            repo.close()

    # -- serving ------------------------------------------------------------------------

    def smart_http_app(self, backend: str = "auto") -> WSGIApp:
        """A read-only git smart-HTTP WSGI app; PATH_INFO is `/<namespace>.git/...`.

        `backend` "git" serves upload-pack with C git (`git upload-pack --stateless-rpc`,
        as `git http-backend` does: several times faster than dulwich on large
        namespaces), "dulwich" with dulwich, "auto" with C git when it is installed.
        dulwich enables receive-pack by default, so its handler table is replaced, not
        updated. git gzips request bodies over 1 KiB (any clone of a namespace with more
        than a few tags), hence the gunzip filter; request bodies are capped. Many small
        writes are coalesced into 64 KiB chunks.
        """
        git = shutil.which("git") if backend in ("auto", "git") else None
        if backend == "git" and git is None:
            raise RuntimeError("the git backend needs the `git` binary on PATH")
        app: WSGIApp
        if git is not None:
            app = _CGitUploadPack(self, git)
        else:
            dulwich_app = HTTPGitApplication(_NamespaceBackend(self))
            dulwich_app.handlers = {b"git-upload-pack": UploadPackHandler}
            app = dulwich_app  # type: ignore[assignment]
        return _coalesce(LimitedInputFilter(GunzipFilter(app)))

    # -- maintenance --------------------------------------------------------------------

    def maintain(self, namespace: str) -> str:
        """Pack loose objects and refs so reads and clones stay fast; returns what ran.

        With C git installed: `git repack -ad` (delta-compressed, ~10x smaller packs that
        dulwich serves without recompressing) and `git pack-refs`. Without it, dulwich packs
        the loose objects (no deltas). Writers are held off by the namespace lock; readers
        go on (git removes only objects the new pack holds). C git inherits the lock, so that
        a repack outliving a killed server still holds off the next one's writers and its
        lock files are not taken for stale ones.
        """
        path = self.path(namespace)
        with self._locked(namespace) as lock_fd:
            self._clear_locks(namespace, _lock_files(path), remove=True)  # pack-refs trips
            git = shutil.which("git")
            if git is None:
                repo = self.open(namespace)
                try:
                    repo.object_store.pack_loose_objects()
                finally:
                    repo.close()
                return "dulwich pack_loose_objects"
            env = {"PATH": os.environ.get("PATH", ""), "GIT_CONFIG_NOSYSTEM": "1",
                   "HOME": str(path)}
            for args in (["repack", "-a", "-d", "-q"], ["pack-refs", "--all", "--prune"]):
                subprocess.run([git, "-c", "core.fsync=all", "--git-dir", str(path), *args],
                               check=True, capture_output=True, env=env, timeout=600,
                               pass_fds=(lock_fd,))
            return "git repack -ad; git pack-refs --all"

    # -- the skills/ listing -------------------------------------------------------------

    def _keep(self, namespace: str) -> _Kept:
        """What writes to `namespace` reuse (see `_Kept`); the caller holds its lock."""
        with self._locks_guard:
            kept = self._kept.get(namespace)
            if kept is None:
                kept = self._kept[namespace] = _Kept(DiskRefsContainer(self.path(namespace)))
            self._kept.move_to_end(namespace)
            while len(self._kept) > NAMESPACES_KEPT:
                self._kept.popitem(last=False)
            return kept

    # -- locking ------------------------------------------------------------------------

    @contextmanager
    def locked(self, namespace: str) -> Iterator[None]:
        """Hold the namespace's write lock (see `_locked`) around something outside git
        that must not interleave with its other holders: the static archives' files and the
        namespace's visibility (`services.catalogue`, `services.accounts`)."""
        with self._locked(namespace):
            yield

    @contextmanager
    def _locked(self, namespace: str, create: bool = False) -> Iterator[int]:
        """A per-namespace lock held across threads (Lock) and processes (flock); yields the
        flock's file descriptor (a child process that inherits it holds the lock too).

        Every write to a namespace's refs, objects and config happens under this lock: the
        store's publish, propose, repair and ensure, and C git's repack and pack-refs in
        `maintain` (which inherit it). Readers (dulwich reads, upload-pack, git fsck) create
        no lock files. So a `*.lock` file found while we hold the lock has no live owner:
        its writer died (kill -9, power loss) between creating it and renaming it into
        place, and it is removed (`_clear_locks`). The kernel drops a flock with the last
        descriptor of its holder, so a killed writer never keeps the namespace locked.
        Anything else that writes into the repos (an operator's `git gc`) must stop the
        server first.
        """
        with self._locks_guard:
            lock = self._locks.setdefault(namespace, threading.Lock())
        with lock:
            self.root.mkdir(parents=True, exist_ok=True)
            # The lock file sits beside the repo so it exists before the repo does.
            lock_path = self.root / f".{namespace}.{LOCK_FILE}"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if self.write_lock is None:
                    yield fd
                else:
                    with self.write_lock.hold(namespace):
                        yield fd
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _clear_locks(self, namespace: str, locks: Iterable[Path], remove: bool
                     ) -> list[StaleLock]:
        """Remove (with `remove`) the given lock files; the caller holds the namespace lock,
        so they are stale by construction (see `_locked`)."""
        path = self.path(namespace)
        found: list[StaleLock] = []
        for lock in locks:
            try:
                age = time.time() - lock.lstat().st_mtime
                if remove:
                    lock.unlink()
            except (FileNotFoundError, IsADirectoryError):
                continue
            rel = lock.relative_to(path).as_posix()
            found.append(StaleLock(rel, round(age, 3), remove))
            if remove:
                log.warning("removed stale lock file %s of namespace %s (age %.1f s; no "
                            "writer holds the namespace lock, so its writer died)",
                            rel, namespace, age)
        return found

    def _clear_for_write(self, repo: Repo, refs: Iterable[bytes],
                         objects: Iterable[ShaFile]) -> None:
        """Before a write, under the namespace lock: remove stale lock files the write would
        trip over (dulwich fails at once on an existing `<file>.lock`). Only the files this
        write takes are looked at (a stat each): walking every ref and fan-out directory
        costs ~30 ms at 1,000 skills, which start-up, `maintain` and fsck pay instead."""
        path = Path(repo.path)
        candidates = [path / "packed-refs.lock", *(path / (r.decode() + ".lock") for r in refs),
                      *(path / "objects" / o.id[:2].decode() / (o.id[2:].decode() + ".lock")
                        for o in objects)]
        stale = [c for c in candidates if os.path.lexists(c)]
        if stale:
            self._clear_locks(path.name[:-4], stale, remove=True)


# Lock files in the repo's top directory: dulwich and C git write `<file>.lock` and rename
# it over `<file>` (git's index.lock and shallow.lock never occur in our bare repos; listed
# because a stray one would stop C git).
_TOP_LOCKS = ("HEAD.lock", "config.lock", "packed-refs.lock", "index.lock", "shallow.lock")


def _lock_files(path: Path) -> list[Path]:
    """Every lock file in the places writers create them: the top directory, refs/ (loose
    refs), objects/xx/ (loose objects) and objects/info/. A bounded walk: never the packs,
    never the whole tree."""
    found = [path / name for name in _TOP_LOCKS if os.path.lexists(path / name)]
    for root, _dirs, files in os.walk(path / "refs"):
        found += [Path(root) / f for f in files if f.endswith(".lock")]
    objects = path / "objects"
    try:
        with os.scandir(objects) as entries:
            dirs = [e.path for e in entries if (len(e.name) == 2 or e.name == "info")
                    and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return found
    for directory in dirs:
        with os.scandir(directory) as names:
            found += [Path(n.path) for n in names if n.name.endswith(".lock")]
    return found


def _reaches(repo: Repo, head: bytes | None, targets: set[bytes]) -> tuple[set[bytes], bool]:
    """Which of the `targets` commits `head` reaches, and whether the walk could read every
    commit it needed (a missing object: False). Stops once all are found."""
    found: set[bytes] = set()
    seen: set[bytes] = set()
    stack = [head] if head else []
    while stack and found != targets:
        sha = stack.pop()
        if sha in seen:
            continue
        seen.add(sha)
        if sha in targets:
            found.add(sha)
        try:
            commit = repo[ObjectID(sha)]
        except KeyError:
            return found, False
        if isinstance(commit, Commit):
            stack.extend(commit.parents)
    return found, True


def _refuse_older(refs: DiskRefsContainer, name: str, version: str) -> None:
    """VersionExists unless `version` is above every version tagged for `name`.

    The service checks this against the catalogue before the write, but two publishes of
    one skill (from two nodes, or two threads of one) both pass that check; under the
    namespace lock, the one that comes second must not put an older version on main."""
    wanted = semver.parse(version)
    if wanted is None:
        return
    tagged = [found for key in refs.keys(base=Ref(TAG_PREFIX + name.encode() + b"/"))
              if key.startswith(b"v") and (found := semver.parse(key[1:].decode())) is not None
              and found.sort_key() >= wanted.sort_key()]
    if tagged:
        newest = max(tagged, key=semver.Version.sort_key)
        how = "equals the existing version" if newest.sort_key() == wanted.sort_key() \
            else "is older than the latest version"
        raise VersionExists(f"{name} {version} {how} {newest}",
                            extra={"hint": f"publish a version above {newest}",
                                   "latest": str(newest)})


def _untag(refs: DiskRefsContainer, ref: Ref, tag_id: bytes, commit_id: bytes) -> bool:
    """After main failed to follow a new tag: True if main moved after all; else take the
    tag back (the version was not published) and return False."""
    try:
        if MAIN in refs and refs[MAIN] == commit_id:
            return True
        refs.remove_if_equals(ref, ObjectID(tag_id))
        log.warning("took back tag %s: main did not follow it", ref.decode())
    except Exception:
        log.exception("could not take back tag %s; start-up or `skills-hub fsck --repair` "
                      "removes it", ref.decode())
    return False


def _discard_partial(path: Path) -> None:
    """Remove a repo directory a crash left before its HEAD was written (an old `ensure`
    made it in place); refuse, loudly, if it holds any ref or object."""
    if not path.exists() or (path / "HEAD").is_file():
        return
    held = [p for sub in ("refs", "objects") for p in (path / sub).rglob("*") if p.is_file()]
    if held:
        raise StoreConflict(f"{path} has no HEAD but holds {len(held)} refs or objects; "
                            "an operator must look at it")
    log.warning("removed %s, a repo left half-created by a crash", path)
    shutil.rmtree(path)


def _set_fsync(config: ConfigFile) -> None:
    """Durable writes by C git (repack, pack-refs): git's `core.fsync` (2.36+; older git
    ignores it), not `core.fsyncObjectFiles`, which git >= 2.36 warns about on every clone."""
    core = config[(b"core",)] if (b"core",) in config else None
    if core is not None and b"fsyncObjectFiles" in core:
        del core[b"fsyncObjectFiles"]
    config.set((b"core",), b"fsync", FSYNC)
    config.set((b"core",), b"fsyncMethod", b"fsync")


def _upgrade_config(repo: Repo) -> None:
    """Bring a repo made by an older version to the current config (`_set_fsync`); its
    caller holds the namespace lock. Writes only when something changes."""
    config = repo.get_config()
    core = config[(b"core",)] if (b"core",) in config else {}
    if (b"fsyncObjectFiles" not in core and core.get(b"fsync") == FSYNC
            and core.get(b"fsyncMethod") == b"fsync"):
        return
    _set_fsync(config)
    config.write_to_path()
    log.info("updated the git config of %s: core.fsync replaces core.fsyncObjectFiles",
             repo.path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tag_commits(repo: Repo) -> Iterator[tuple[str, str, Tag, Commit]]:
    """(skill name, version, tag, commit) for every annotated `<name>/v<version>` tag."""
    for ref, sha in repo.refs.as_dict(TAG_PREFIX).items():
        name, sep, version = ref.decode(errors="replace").rpartition("/v")
        if not sep or "/" in name or not name:
            continue
        tag = repo[sha]
        if not isinstance(tag, Tag):
            continue
        commit = repo[tag.object[1]]
        if isinstance(commit, Commit):
            yield name, version, tag, commit


# Unreviewed content (agents' proposals, releases waiting for review) is never served to
# clones: reviewers read it through the API, which asks the access policy.
HIDDEN_REFS = ("refs/heads/proposals/", "refs/heads/releases/")


class _ServedRepo(Repo):
    """A repo as clones see it: without the hidden refs."""

    def get_refs(self) -> dict[Ref, ObjectID]:
        hidden = tuple(h.encode() for h in HIDDEN_REFS)
        return {ref: sha for ref, sha in super().get_refs().items()
                if not ref.startswith(hidden)}


class _NamespaceBackend(Backend):
    def __init__(self, store: GitStore) -> None:
        self.store = store

    def open_repository(self, path: str | bytes) -> Repo:  # type: ignore[override]
        # dulwich passes str from get_repo but bytes to the service handler.
        name = (path.decode() if isinstance(path, bytes) else path).strip("/")
        if not name.endswith(".git") or "/" in name or not self.store.exists(name[:-4]):
            raise NotGitRepository(f"no namespace at {name}")
        return _ServedRepo(str(self.store.path(name[:-4])))


class _CGitUploadPack:
    """Read-only smart HTTP served by C git's upload-pack, the way `git http-backend` does."""

    _PATH = re.compile(r"^/([a-z0-9][a-z0-9-]*)\.git/(info/refs|git-upload-pack)$")

    def __init__(self, store: GitStore, git: str) -> None:
        self.store = store
        self.git = git

    def __call__(self, environ: dict, start_response: Callable) -> Iterator[bytes]:
        match = self._PATH.match(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD", "GET")
        if not match or not self.store.exists(match.group(1)):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            yield b"no such repository\n"
            return
        repo, what = str(self.store.path(match.group(1))), match.group(2)
        env = {"PATH": os.environ.get("PATH", ""), "GIT_CONFIG_NOSYSTEM": "1", "HOME": repo,
               "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
               # upload-pack hides these refs and, without allowTipSHA1InWant, refuses
               # wants of what only they reach
               "GIT_CONFIG_COUNT": str(len(HIDDEN_REFS)),
               **{k: v for i, ref in enumerate(HIDDEN_REFS)
                  for k, v in ((f"GIT_CONFIG_KEY_{i}", "uploadpack.hideRefs"),
                               (f"GIT_CONFIG_VALUE_{i}", ref.rstrip("/")))}}
        nocache = [("Cache-Control", "no-cache, max-age=0, must-revalidate"),
                   ("Expires", "Fri, 01 Jan 1980 00:00:00 GMT"), ("Pragma", "no-cache")]
        if what == "info/refs" and method == "GET":
            if "service=git-upload-pack" not in environ.get("QUERY_STRING", ""):
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                yield b"only the smart git-upload-pack service is offered\n"
                return
            out = subprocess.run([self.git, "upload-pack", "--stateless-rpc",
                                  "--advertise-refs", repo], env=env, capture_output=True,
                                 check=True, timeout=60).stdout
            start_response("200 OK", [
                ("Content-Type", "application/x-git-upload-pack-advertisement"), *nocache])
            if "version=2" not in env["GIT_PROTOCOL"]:
                yield b"001e# service=git-upload-pack\n0000"
            yield out
            return
        if what == "git-upload-pack" and method == "POST":
            yield from self._upload_pack(environ, start_response, repo, env, nocache)
            return
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
        yield b"method not allowed\n"

    def _upload_pack(self, environ: dict, start_response: Callable, repo: str,
                     env: dict[str, str], headers: list[tuple[str, str]]) -> Iterator[bytes]:
        request = environ["wsgi.input"].read()
        proc = subprocess.Popen([self.git, "upload-pack", "--stateless-rpc", repo], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            assert proc.stdin is not None and proc.stdout is not None
            # upload-pack reads the whole (small) request before it writes anything.
            proc.stdin.write(request)
            proc.stdin.close()
            start_response("200 OK", [
                ("Content-Type", "application/x-git-upload-pack-result"), *headers])
            while chunk := proc.stdout.read(CHUNK):
                yield chunk
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _coalesce(app: WSGIApp) -> WSGIApp:
    def wrapped(environ: dict, start_response: Callable) -> Iterator[bytes]:
        buffer = bytearray()

        def buffered_start(status: str, headers: list, exc_info: object = None) -> Callable:
            write = start_response(status, headers, exc_info)

            def buffered_write(data: bytes) -> None:
                buffer.extend(data)
                if len(buffer) >= CHUNK:
                    write(bytes(buffer))
                    buffer.clear()

            return buffered_write

        result = app(environ, buffered_start)
        try:
            for chunk in result:
                buffer.extend(chunk)
                if len(buffer) >= CHUNK:
                    yield bytes(buffer)
                    buffer.clear()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if buffer:
            yield bytes(buffer)

    return wrapped


def _bundle_objects(bundle: Bundle) -> tuple[list[Blob | Tree], Tree]:
    """Blobs and trees for the bundle's files; returns them and the skill's root tree."""
    objects: list[Blob | Tree] = []
    dirs: dict[str, Tree] = {"": Tree()}
    for path in sorted(bundle.files):
        blob = Blob.from_string(bundle.files[path])
        objects.append(blob)
        parent, _, leaf = path.rpartition("/")
        _ensure_dirs(dirs, parent)
        mode = EXEC_MODE if path in bundle.executables else FILE_MODE
        dirs[parent].add(leaf.encode(), mode, blob.id)
    # Link subtrees bottom-up so each parent records its child's final id.
    for directory in sorted(dirs, key=lambda d: d.count("/") if d else -1, reverse=True):
        if not directory:
            continue
        parent, _, leaf = directory.rpartition("/")
        dirs[parent].add(leaf.encode(), DIR_MODE, ObjectID(dirs[directory].id))
    objects.extend(dirs.values())
    return objects, dirs[""]


def _commit(tree: bytes, parents: list[bytes], message: str, author: str | None) -> Commit:
    commit = Commit()
    commit.tree = ObjectID(tree)
    commit.parents = [ObjectID(p) for p in parents]
    commit.author = (author or "").encode() or IDENTITY  # who published; the registry commits
    commit.committer = IDENTITY
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = message.encode()
    return commit


def _tree(repo: Repo, sha: bytes) -> Tree:
    obj: ShaFile = repo[ObjectID(sha)]
    if not isinstance(obj, Tree):
        raise TypeError(f"{sha!r} is not a tree")
    return obj


def _ensure_dirs(dirs: dict[str, Tree], directory: str) -> None:
    while directory and directory not in dirs:
        dirs[directory] = Tree()
        directory = directory.rpartition("/")[0]


def _subtree_id(repo: Repo, root: Tree, name: str,
                listings: dict[bytes, Tree] | None = None) -> bytes | None:
    """The id of skills/<name> in `root`; `listings` keeps the last skills/ tree read."""
    try:
        skills_mode, skills_id = root[SKILLS_DIR]
        skills = listings.get(skills_id) if listings is not None else None
        if skills is None:
            skills = _tree(repo, skills_id)
            if listings is not None:
                listings.clear()
                listings[skills_id] = skills
        mode, sha = skills[name.encode()]
    except KeyError:
        return None
    return sha if stat.S_ISDIR(mode) and stat.S_ISDIR(skills_mode) else None


def _skills_id(root: Tree) -> bytes | None:
    """The id of `root`'s skills/ directory, None when it has none."""
    if SKILLS_DIR not in root:
        return None
    mode, sha = root[SKILLS_DIR]
    return sha if stat.S_ISDIR(mode) else None


def _with_skills(root: Tree, skills_id: bytes) -> Tree:
    """A copy of `root` whose skills/ is the tree `skills_id` (the root holds a few entries)."""
    new_root = Tree()
    for entry in root.items():
        new_root.add(entry.path, entry.mode, entry.sha)
    new_root.add(SKILLS_DIR, DIR_MODE, ObjectID(skills_id))
    return new_root


class _Kept:
    """What a store keeps between the writes to one namespace, used under its lock.

    `refs`: a refs container whose packed-refs cache lives as long as the file does (a
    container of a freshly opened repo parsed the whole file, every tag of the namespace,
    on each publish: 40 % of a publish at 3,000 skills); dulwich reloads it when
    `pack-refs` replaces the file. `listing`: main's `skills/` as the last write left it."""

    __slots__ = ("listing", "refs")

    def __init__(self, refs: DiskRefsContainer) -> None:
        self.refs = refs
        self.listing: _Listing | None = None

    def listing_of(self, repo: Repo, root: Tree, *, keep: bool = True) -> _Listing:
        """The `skills/` listing of `root`: the kept one when it is that very tree (content
        addressed, so never a stale one after a write behind our back), else read (and
        kept, with `keep`: `root` is main's head)."""
        wanted = _skills_id(root)
        if self.listing is not None and self.listing.tree_id == wanted:
            return self.listing
        listing = _Listing.read(repo, wanted)
        if keep:
            self.listing = listing
        return listing


class _Listing:
    """A `skills/` tree as its entries, in git's order and as the tree object stores them
    (`<mode> <name>\\0<20-byte sha>`), beside their sort keys.

    A publish replaces one skill: it splices that one entry in (a bisect and a list copy)
    and joins the raw entries into the new tree object, which reuses every other skill's
    subtree by id. Reading, parsing and re-sorting every entry into a new dulwich `Tree` on
    each commit made a publish grow with the namespace (~50 ms at 5,000 skills)."""

    __slots__ = ("entries", "keys", "tree_id")

    def __init__(self, tree_id: bytes | None, keys: list[bytes], entries: list[bytes]) -> None:
        self.tree_id = tree_id  # None: no skills/ tree yet
        self.keys = keys  # git's order: a directory sorts as its name followed by "/"
        self.entries = entries

    @classmethod
    def read(cls, repo: Repo, tree_id: bytes | None) -> _Listing:
        """The listing of the tree `tree_id` in `repo` (None: an empty one)."""
        if tree_id is None:
            return cls(None, [], [])
        type_num, raw = repo.object_store.get_raw(ObjectID(tree_id))
        if type_num != Tree.type_num:
            raise TypeError(f"{tree_id!r} is not a tree")
        keys: list[bytes] = []
        entries: list[bytes] = []
        pos = 0
        while pos < len(raw):
            space = raw.index(b" ", pos)
            nul = raw.index(b"\0", space)
            name = raw[space + 1:nul]
            keys.append(name + b"/" if stat.S_ISDIR(int(raw[pos:space], 8)) else name)
            entries.append(raw[pos:nul + 21])
            pos = nul + 21
        return cls(tree_id, keys, entries)

    def subtree(self, name: str) -> bytes | None:
        """The hex id of the directory `name`, None when there is none."""
        key = name.encode() + b"/"
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            return self.entries[i][-20:].hex().encode()
        return None

    def with_skill(self, name: str, subtree_id: bytes) -> tuple[_Listing, ShaFile]:
        """A copy whose directory `name` is `subtree_id` (hex), and its new tree object."""
        keys, entries = list(self.keys), list(self.entries)
        raw_name = name.encode()
        for key in (raw_name + b"/", raw_name):  # whatever held the name before
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                del keys[i], entries[i]
        i = bisect_left(keys, raw_name + b"/")
        keys.insert(i, raw_name + b"/")
        entries.insert(i, b"%o %s\0" % (DIR_MODE, raw_name) + bytes.fromhex(subtree_id.decode()))
        tree = _SerializedTree(b"".join(entries))
        return _Listing(tree.id, keys, entries), tree


class _SerializedTree(ShaFile):
    """A tree object given as its serialized entries (a `_Listing`'s, already in git's
    order) and written as given: dulwich's `Tree` parses every entry into a dict first,
    240 ms at 50,000 skills. Only written and hashed, never read through."""

    __slots__ = ()
    type_name = Tree.type_name
    type_num = Tree.type_num

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.set_raw_string(raw)

    def _deserialize(self, chunks: list[bytes]) -> None:
        pass  # nothing to parse: the entries are only written

    def _serialize(self) -> list[bytes]:
        return list(self._chunked_text or ())


def _walk(repo: Repo, tree_id: bytes, prefix: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    for entry in repo[tree_id].items():  # type: ignore[attr-defined]
        path = prefix + entry.path
        if stat.S_ISDIR(entry.mode):
            yield from _walk(repo, entry.sha, path + b"/")
        else:
            yield path, entry.mode, entry.sha


def _add_objects(repo: Repo, objects: Iterable[ShaFile]) -> None:
    """Write `objects` as loose objects, durably: dulwich fsyncs each file (`open` asks it
    to), then the directory entries are fsynced, and only the new ones: the fan-out
    directories that received a file, and objects/ itself when one of them is new. An
    object already there loose (a blob unchanged since the last version) is only touched
    by dulwich, which writes no entry."""
    objects_dir = Path(repo.path) / "objects"
    touched: set[str] = set()
    created = False
    for obj in objects:
        prefix, rest = obj.id[:2].decode(), obj.id[2:].decode()
        if not os.path.lexists(objects_dir / prefix / rest):
            touched.add(prefix)
            created = created or not os.path.isdir(objects_dir / prefix)
        repo.object_store.add_object(obj)
    for directory in [*(objects_dir / p for p in sorted(touched)), *([objects_dir] * created)]:
        _fsync_dir(directory)
