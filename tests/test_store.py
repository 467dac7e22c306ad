"""The git store and index on real repos and real SQLite in tmp_path."""

from __future__ import annotations

import multiprocessing
import subprocess
from pathlib import Path

import pytest
from dulwich.objects import ObjectID
from dulwich.repo import Repo

from skills_hub.access.principal import OPERATOR
from skills_hub.config import Settings
from skills_hub.errors import VersionExists
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.store.gitstore import MAIN, GitStore, Unchanged

from .conftest import skill_md


def bundle(name: str = "hello-world", body: str = "Say hello.",
           extra: dict[str, bytes] | None = None) -> Bundle:
    files = {"SKILL.md": skill_md(name, body=body), **(extra or {})}
    return Bundle(files=files, executables=frozenset(p for p in files if p.endswith(".sh")))


def test_publish_is_one_commit_on_main_and_an_annotated_tag(tmp_path: Path) -> None:
    store = GitStore(tmp_path)
    first = store.publish("team", "hello-world", "1.0.0", bundle(), message="one")
    second = store.publish("team", "hello-world", "1.1.0", bundle(body="Wave."), message="two")
    repo = Repo(str(tmp_path / "team.git"))
    assert repo.refs[MAIN].decode() == second.commit_sha
    assert repo[second.commit_sha.encode()].parents == [first.commit_sha.encode()]
    tag = repo[repo.refs[b"refs/tags/hello-world/v1.0.0"]]
    assert tag.object[1].decode() == first.commit_sha  # annotated tag -> its commit
    assert repo.refs.read_ref(b"HEAD") == b"ref: refs/heads/main"
    assert [(t.name, t.version) for t in sorted(store.tags("team"), key=lambda t: t.version)] \
        == [("hello-world", "1.0.0"), ("hello-world", "1.1.0")]


def test_each_publish_changes_only_its_own_skill_folder(tmp_path: Path) -> None:
    store = GitStore(tmp_path)
    store.publish("team", "alpha", "1.0.0", bundle("alpha"), message="a")
    store.publish("team", "beta", "1.0.0", bundle("beta", extra={"scripts/run.sh": b"echo hi\n"}),
                  message="b")
    files = store.read_tree("team", store.tags("team")[0].tree_sha).files
    assert "SKILL.md" in files
    out = subprocess.run(["git", "--git-dir", str(tmp_path / "team.git"), "show", "--stat",
                          "--format=", "main"], capture_output=True, text=True, check=True)
    assert "skills/beta/" in out.stdout and "skills/alpha" not in out.stdout
    ls = subprocess.run(["git", "--git-dir", str(tmp_path / "team.git"), "ls-tree", "-r",
                         "main"], capture_output=True, text=True, check=True).stdout
    assert "100755 blob" in ls and "skills/beta/scripts/run.sh" in ls


def test_identical_content_is_not_a_new_version(tmp_path: Path) -> None:
    store = GitStore(tmp_path)
    store.publish("team", "hello-world", "1.0.0", bundle(), message="one")
    with pytest.raises(Unchanged):
        store.publish("team", "hello-world", "1.0.1", bundle(), message="again")
    assert len(store.tags("team")) == 1


def test_an_existing_version_is_immutable(tmp_path: Path) -> None:
    store = GitStore(tmp_path)
    store.publish("team", "hello-world", "1.0.0", bundle(), message="one")
    head = store.head("team")
    with pytest.raises(VersionExists):
        store.publish("team", "hello-world", "1.0.0", bundle(body="Other."), message="two")
    assert store.head("team") == head


def test_repair_fast_forwards_main_to_a_tag_left_ahead_by_a_crash(tmp_path: Path) -> None:
    store = GitStore(tmp_path)
    first = store.publish("team", "hello-world", "1.0.0", bundle(), message="one")
    second = store.publish("team", "hello-world", "1.1.0", bundle(body="x"), message="two")
    repo = Repo(str(tmp_path / "team.git"))
    # The state a crash between "tag created" and "main moved" leaves behind.
    assert repo.refs.set_if_equals(MAIN, second.commit_sha.encode(), first.commit_sha.encode())
    assert store.repair("team") == ["hello-world/v1.1.0"]
    assert store.head("team") == second.commit_sha


def _publish_many(home: str, worker: int, count: int) -> None:
    registry = Registry(Settings(home=Path(home), seed=False, semantic="off"))
    registry.store.db.migrate()
    for i in range(count):
        registry.publish("team", bundle(f"skill-{worker}-{i}"), principal=OPERATOR)
    registry.close()


def test_concurrent_publishes_from_two_processes_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "data"
    Registry(Settings(home=home, seed=False, semantic="off")).start()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_publish_many, args=(str(home), w, 15)) for w in range(2)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(120)
        assert proc.exitcode == 0
    store = GitStore(home / "repos")
    assert len(store.tags("team")) == 30
    log = subprocess.run(["git", "--git-dir", str(home / "repos" / "team.git"), "rev-list",
                          "--count", "main"], capture_output=True, text=True, check=True)
    assert log.stdout.strip() == "30"
    fsck = subprocess.run(["git", "--git-dir", str(home / "repos" / "team.git"), "fsck",
                           "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


@pytest.mark.sqlite_only
def test_reindex_rebuilds_the_catalogue_from_git_alone(registry: Registry) -> None:
    registry.publish("team", bundle("alpha"), principal=OPERATOR, version="1.0.0")
    registry.publish("team", bundle("alpha", body="v2"), principal=OPERATOR, version="2.0.0")
    registry.publish("team", bundle("beta"), principal=OPERATOR)
    registry.settings.index_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(registry.settings.index_path) + suffix).unlink(missing_ok=True)
    registry.store.close()
    fresh = Registry(registry.settings)
    report = fresh.start()
    assert report.added == 3
    alpha = fresh.get_skill("team", "alpha", OPERATOR)
    assert alpha.skill.latest_version == "2.0.0"
    assert [v.version for v in alpha.versions] == ["2.0.0", "1.0.0"]
    found = fresh.search("alpha", principal=OPERATOR).results.results
    assert [r.skill.name for r in found] == ["alpha"]
    fresh.close()


def test_startup_reconciles_versions_the_index_missed(registry: Registry) -> None:
    registry.publish("team", bundle("alpha"), principal=OPERATOR, version="1.0.0")
    # A version that reached git but not the index (a crash between the two writes).
    registry.git.publish("team", "alpha", "1.1.0", bundle("alpha", body="new"), message="x")
    assert registry.get_skill("team", "alpha", OPERATOR).skill.latest_version == "1.0.0"
    report = registry.reconcile()
    assert report.added == 1
    assert registry.get_skill("team", "alpha", OPERATOR).skill.latest_version == "1.1.0"


def test_versions_must_increase(registry: Registry) -> None:
    registry.publish("team", bundle(), principal=OPERATOR, version="2.0.0")
    with pytest.raises(VersionExists, match="older than the latest"):
        registry.publish("team", bundle(body="old line"), principal=OPERATOR, version="1.5.0")


def test_version_defaults_to_next_patch_then_metadata_version(registry: Registry) -> None:
    assert registry.publish("team", bundle(), principal=OPERATOR).version == "0.1.0"
    assert registry.publish("team", bundle(body="b"), principal=OPERATOR).version == "0.1.1"
    md = skill_md().replace(b"metadata:\n", b'metadata:\n  version: "3.0.0"\n')
    outcome = registry.publish("team", Bundle(files={"SKILL.md": md}), principal=OPERATOR)
    assert outcome.version == "3.0.0"


@pytest.mark.parametrize("with_c_git", [True, False], ids=["git-repack", "dulwich-fallback"])
def test_maintenance_packs_objects_and_everything_still_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_c_git: bool) -> None:
    store = GitStore(tmp_path)
    for i in range(5):
        store.publish("team", f"skill-{i}", "1.0.0", bundle(f"skill-{i}"), message="m")
    if not with_c_git:
        monkeypatch.setattr("skills_hub.store.gitstore.shutil.which", lambda name: None)
    store.maintain("team")
    assert not list((tmp_path / "team.git" / "objects").glob("??/*"))  # no loose objects
    assert len(store.tags("team")) == 5
    tags = {t.name: t for t in store.tags("team")}
    assert "SKILL.md" in store.read_tree("team", tags["skill-3"].tree_sha).files
    store.publish("team", "skill-0", "1.1.0", bundle("skill-0", body="new"), message="m")
    with pytest.raises(VersionExists):
        store.publish("team", "skill-1", "1.0.0", bundle("skill-1", body="x"), message="m")
    fsck = subprocess.run(["git", "--git-dir", str(tmp_path / "team.git"), "fsck", "--strict"],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


def test_a_publish_cut_off_by_a_crash_is_finished_when_the_version_is_sent_again(
        registry: Registry) -> None:
    """A writer killed between its tag and its catalogue row (on this node or another that
    never comes back) left the version in git only; sending the same publish again is
    answered from what git has, not refused as `already published` of a version the
    catalogue cannot show."""
    registry.publish("team", Bundle({"SKILL.md": skill_md("first")}), principal=OPERATOR)
    base = registry.git.head("team")
    cut = Bundle({"SKILL.md": skill_md("cut-off")})
    registry.git.publish("team", "cut-off", "1.0.0", cut, message="cut off")
    repo = Repo(str(registry.git.path("team")))
    try:  # the kill came before main moved: the tag is one commit ahead of it
        assert base is not None
        assert repo.refs.set_if_equals(MAIN, repo.refs[MAIN], ObjectID(base.encode()))
    finally:
        repo.close()
    again = registry.publish("team", cut, principal=OPERATOR, version="1.0.0")
    assert (again.status, again.version) == ("unchanged", "1.0.0")
    assert registry.get_version("team", "cut-off", "1.0.0", OPERATOR)[1].version == "1.0.0"
    with pytest.raises(VersionExists):  # other content under that version is still refused
        registry.publish("team", Bundle({"SKILL.md": skill_md("cut-off", body="Other.")}),
                         principal=OPERATOR, version="1.0.0")
    assert registry.fsck().clean
