"""A publish costs about the same in a namespace of thousands of skills as in an empty one
(issue 15), and the shortcuts that make it so write exactly the trees git expects.

`bench/registry_bench.py` measures the speed; here only a generous ratio is asserted, on
real repos, with C git's `fsck --strict` and `skills-hub fsck` as the judges."""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from dulwich.objects import Blob, Commit, Tree

from skills_hub.access.principal import OPERATOR
from skills_hub.cli import main
from skills_hub.config import Settings
from skills_hub.errors import VersionExists
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.store.gitstore import DIR_MODE, FILE_MODE, MAIN, GitStore, _Listing

from .conftest import skill_md

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs C git")
BIG = 5000


def bundle(name: str, body: str = "Say hello.") -> Bundle:
    return Bundle(files={"SKILL.md": skill_md(name, body=body)}, executables=frozenset())


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=300)


def listed(repo: Path) -> list[str]:
    out = git("--git-dir", str(repo), "ls-tree", "--name-only", "main", "skills/").stdout
    return [line.removeprefix("skills/") for line in out.split()]


def fill(store: GitStore, namespace: str, count: int) -> None:
    """Put `count` skills on main of `namespace` in one commit, written as one pack: a
    namespace as thousands of publishes leave it (after a repack), built in a second."""
    store.ensure(namespace)
    repo = store.open(namespace)
    try:
        objects: list[Blob | Tree | Commit] = []
        skills = Tree()
        for i in range(count):
            name = f"filler-{i:05d}"
            blob = Blob.from_string(skill_md(name, f"Filler skill {i} of a large namespace."))
            folder = Tree()
            folder.add(b"SKILL.md", FILE_MODE, blob.id)
            skills.add(name.encode(), DIR_MODE, folder.id)
            objects += [blob, folder]
        root = Tree()
        root.add(b"skills", DIR_MODE, skills.id)
        commit = Commit()
        commit.tree, commit.parents = root.id, []
        commit.author = commit.committer = b"filler <filler@skills-hub.invalid>"
        commit.author_time = commit.commit_time = 1_700_000_000
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"fill\n"
        repo.object_store.add_objects([(o, None) for o in [*objects, skills, root, commit]])
        assert repo.refs.add_if_new(MAIN, commit.id)
    finally:
        repo.close()


def test_the_spliced_listing_is_the_tree_dulwich_sorts() -> None:
    """Names that are prefixes of each other sort as git sorts directories ("a-b" before
    "a" before "a0"); every splice gives the very tree a full rebuild gives."""
    rng = random.Random(15)
    listing = _Listing(None, [], [])
    rebuilt = Tree()
    for step in range(2000):
        name = "".join(rng.choice("ab-0z") for _ in range(rng.randint(1, 4)))
        subtree = Blob.from_string(str(step).encode()).id
        listing, tree = listing.with_skill(name, subtree)
        rebuilt.add(name.encode(), DIR_MODE, subtree)
        assert tree.id == rebuilt.id and tree.as_raw_string() == rebuilt.as_raw_string()
        assert listing.subtree(name) == subtree
    assert listing.subtree("not-there") is None


@needs_git
def test_prefix_names_make_a_tree_git_fsck_accepts(tmp_path: Path) -> None:
    store = GitStore(tmp_path / "repos")
    names = ["a", "a-b", "a0", "ab", "a-b-c", "b", "a-"[:1] + "z"]
    for name in names:
        store.publish("team", name, "1.0.0", bundle(name), message=f"{name}\n")
    fsck = git("--git-dir", str(store.path("team")), "fsck", "--strict")
    assert fsck.returncode == 0, fsck.stderr
    assert listed(store.path("team")) == sorted(names, key=lambda n: n + "/")


def test_two_stores_writing_one_namespace_never_lose_a_skill(tmp_path: Path) -> None:
    """Each store keeps its last listing; after the other store's write main's tree is not
    that one any more, so it is read again (two server processes on one data folder)."""
    first, second = GitStore(tmp_path / "repos"), GitStore(tmp_path / "repos")
    names = [f"skill-{i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        (first if i % 3 else second).publish("team", name, "1.0.0", bundle(name),
                                             message=f"{name}\n")
    first.publish("team", names[0], "1.1.0", bundle(names[0], "Again."), message="again\n")
    assert listed(first.path("team")) == names
    assert {t.name for t in second.tags("team")} == set(names)


@needs_git
def test_a_version_packed_by_maintain_is_still_refused(tmp_path: Path) -> None:
    """The kept refs container sees the packed-refs file `git pack-refs` writes."""
    store = GitStore(tmp_path / "repos")
    store.publish("team", "alpha", "1.0.0", bundle("alpha"), message="one\n")
    store.publish("team", "beta", "1.0.0", bundle("beta"), message="two\n")
    store.maintain("team")
    assert not (store.path("team") / "refs" / "tags" / "alpha").exists()  # now packed
    with pytest.raises(VersionExists):
        store.publish("team", "alpha", "1.0.0", bundle("alpha", "Changed."), message="x\n")
    store.publish("team", "alpha", "1.0.1", bundle("alpha", "Changed."), message="y\n")
    assert {(t.name, t.version) for t in store.tags("team")} == {
        ("alpha", "1.0.0"), ("beta", "1.0.0"), ("alpha", "1.0.1")}


@needs_git
def test_a_publish_among_5000_skills_costs_about_what_it_costs_in_an_empty_namespace(
        settings: Settings) -> None:
    registry = Registry(settings)
    registry.start()
    try:
        fill(registry.git, "big", BIG)
        took: dict[str, list[float]] = {"small": [], "big": []}
        for i in range(12):  # alternating, so that both see the same machine load
            for namespace in ("small", "big"):
                start = time.perf_counter()
                out = registry.publish(namespace, bundle(f"new-skill-{i:02d}"),
                                       principal=OPERATOR)
                took[namespace].append(time.perf_counter() - start)
                assert out.status == "published"
        small, big = (statistics.median(took[n]) for n in ("small", "big"))
        print(f"\npublish median: empty namespace {small * 1e3:.1f} ms, "
              f"{BIG} skills {big * 1e3:.1f} ms")
        assert big < 3 * small, (small, big)
        assert len(listed(registry.git.path("big"))) == BIG + 12
    finally:
        registry.close()
    fsck = git("--git-dir", str(settings.repos_dir / "big.git"), "fsck", "--strict")
    assert fsck.returncode == 0, fsck.stderr
    result = CliRunner().invoke(main, ["fsck", "--home", str(settings.home)])
    assert result.exit_code == 0, result.output


def test_shell_blocks_checked_together_are_reported_as_each_alone() -> None:
    """`bash -n` runs for a skill's shell blocks at once; the findings are the ones that
    checking each file on its own gives (same lines, same messages, same order)."""
    from skills_hub.checks import syntax

    markdown = ("# Tools\n\n```bash\necho fine\n```\n\n```sh\nif true; then\n```\n\n"
                "```shell\nfor x in; do echo $x\n```\n\n```bash\necho fine\n```\n")
    files = {"SKILL.md": markdown.encode(), "run.sh": b"echo (\n", "ok.sh": b"echo ok\n"}
    together = syntax.check_syntax(Bundle(files=files, executables=frozenset()))
    alone = [f for path in sorted(files)
             for f in syntax._check_file(path, files[path].decode())]
    assert together == alone
    assert [(f.file, f.line) for f in together] == [("SKILL.md", 9), ("SKILL.md", 13),
                                                    ("run.sh", 1)]
