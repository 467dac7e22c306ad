"""What every compatibility interface shares: the flat-name scope (ClawHub slugs,
well-known names) and archives with the files at the root."""

from __future__ import annotations

import zipfile
from hashlib import sha256
from io import BytesIO

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS
from skills_hub.config import Settings
from skills_hub.errors import AmbiguousName, NotFound
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle, from_targz, from_zip
from skills_hub.web.app import create_app

from .conftest import skill_md, token_principal


def publish(registry: Registry, namespace: str, name: str,
            extra: dict[str, bytes] | None = None,
            description: str = "Formats the weekly status report for the team.") -> None:
    registry.create_token(namespace)
    files = {"SKILL.md": skill_md(name, description=description), **(extra or {})}
    registry.publish(namespace, Bundle(files), principal=token_principal(registry, namespace))


def test_a_bare_name_resolves_in_its_scope_and_ambiguity_is_an_error(registry: Registry) -> None:
    publish(registry, "alpha", "weekly-report")
    publish(registry, "beta", "weekly-report")
    publish(registry, "beta", "only-here")
    assert registry.flat_skill("only-here", ANONYMOUS).namespace == "beta"
    assert registry.flat_skill("weekly-report", ANONYMOUS, "alpha").namespace == "alpha"
    with pytest.raises(AmbiguousName) as caught:
        registry.flat_skill("weekly-report", ANONYMOUS)
    assert caught.value.status == 409
    assert caught.value.extra["candidates"] == ["alpha/weekly-report", "beta/weekly-report"]
    assert "/<namespace>/.well-known/skills/" in caught.value.extra["hint"]
    with pytest.raises(NotFound):
        registry.flat_skill("nobody-has-it", ANONYMOUS)
    with pytest.raises(NotFound):
        registry.flat_skill("only-here", ANONYMOUS, "alpha")


def test_the_flat_catalogue_lists_unique_names_and_names_the_ambiguous(
        registry: Registry) -> None:
    publish(registry, "alpha", "weekly-report")
    publish(registry, "beta", "weekly-report")
    publish(registry, "beta", "only-here")
    everywhere = registry.flat_catalogue(ANONYMOUS)
    assert [(s.namespace, s.name) for s in everywhere.skills] == [("beta", "only-here")]
    assert everywhere.ambiguous == {"weekly-report": ["alpha/weekly-report",
                                                      "beta/weekly-report"]}
    scoped = registry.flat_catalogue(ANONYMOUS, "beta")
    assert [s.name for s in scoped.skills] == ["only-here", "weekly-report"]
    assert scoped.ambiguous == {}


def test_private_namespaces_stay_out_of_the_flat_scope_unless_readable(
        registry: Registry) -> None:
    publish(registry, "alpha", "weekly-report")
    registry.create_token("secret", private=True)
    publish(registry, "secret", "weekly-report")
    # Anonymous callers do not see the private skill, so the name is not ambiguous to them.
    assert registry.flat_skill("weekly-report", ANONYMOUS).namespace == "alpha"
    assert [s.namespace for s in registry.flat_catalogue(ANONYMOUS).skills] == ["alpha"]
    with pytest.raises(AmbiguousName):
        registry.flat_skill("weekly-report", token_principal(registry, "secret"))
    with pytest.raises(NotFound):
        registry.flat_skill("weekly-report", ANONYMOUS, "secret")


def test_root_layout_archives_hold_the_same_files_with_the_same_fingerprint(
        registry: Registry) -> None:
    publish(registry, "alpha", "weekly-report", {"scripts/run.py": b"print('ok')\n"})
    limits = Settings(registry.settings.home).limits
    row, folder_zip = registry.archive("alpha", "weekly-report", "latest", "zip", ANONYMOUS)
    _, root_zip = registry.archive("alpha", "weekly-report", "latest", "zip", ANONYMOUS,
                                   at_root=True)
    _, root_tgz = registry.archive("alpha", "weekly-report", "latest", "tar.gz", ANONYMOUS,
                                   at_root=True)
    names = zipfile.ZipFile(BytesIO(root_zip.data)).namelist()
    assert names == ["SKILL.md", "scripts/run.py"]
    assert zipfile.ZipFile(BytesIO(folder_zip.data)).namelist() == [
        "weekly-report/SKILL.md", "weekly-report/scripts/run.py"]
    assert folder_zip.sha256 != root_zip.sha256
    for archive in (folder_zip, root_zip):
        assert from_zip(archive.data, limits).content_hash() == row.content_sha256
    assert from_targz(root_tgz.data, limits).content_hash() == row.content_sha256
    again = registry.archive("alpha", "weekly-report", row.version, "zip", ANONYMOUS,
                             at_root=True)[1]
    assert again.data == root_zip.data


def test_the_public_url_setting_is_read_without_its_trailing_slash() -> None:
    settings = Settings.from_env({"SKILLS_HUB_PUBLIC_URL": "https://skills.example.org/"})
    assert settings.public_url == "https://skills.example.org"
    assert Settings.from_env({}).public_url is None


def test_one_version_has_the_same_bytes_and_digests_through_every_route(
        registry: Registry) -> None:
    """Native API, ClawHub download and resolve, well-known indexes, the marketplace and
    git all describe the same version with the same bytes, digests and fingerprint."""
    extra = {"scripts/run.py": b"print('ok')\n", "references/notes.md": b"# Notes\n"}
    publish(registry, "alpha", "weekly-report", extra)
    row = registry.get_version("alpha", "weekly-report", "latest", ANONYMOUS)[1]
    with TestClient(create_app(registry.settings, registry)) as client:
        native = client.get("/api/v1/skills/alpha/weekly-report/versions/latest").json()
        assert (native["version"], native["content_sha256"]) == (row.version,
                                                                 row.content_sha256)
        files = {f["path"]: client.get(
            f"/api/v1/skills/alpha/weekly-report/versions/{row.version}/files/{f['path']}"
        ).content for f in native["files"]}
        assert {p: sha256(d).hexdigest() for p, d in files.items()} == {
            f["path"]: f["sha256"] for f in native["files"]}
        limits = registry.settings.limits
        native_zip = client.get(native["archives"]["zip"]["url"]).content
        assert dict(from_zip(native_zip, limits).files) == files

        clawhub_zip = client.get("/clawhub/api/v1/download",
                                 params={"slug": "weekly-report", "version": row.version})
        index = {e["name"]: e for e in
                 client.get("/.well-known/agent-skills/index.json").json()["skills"]}
        well_known_zip = client.get(index["weekly-report"]["url"].replace(
            "http://testserver", ""))
        assert clawhub_zip.content == well_known_zip.content
        digest = sha256(clawhub_zip.content).hexdigest()
        assert index["weekly-report"]["digest"] == f"sha256:{digest}"
        assert clawhub_zip.headers["x-checksum-sha256"] == digest
        assert dict(from_zip(clawhub_zip.content, limits).files) == files

        claw = client.get(f"/clawhub/api/v1/skills/weekly-report/versions/{row.version}")
        assert claw.json()["version"]["fingerprint"] == row.content_sha256
        resolved = client.get("/clawhub/api/v1/resolve",
                              params={"slug": "weekly-report", "hash": row.content_sha256})
        assert resolved.json()["match"]["version"] == row.version

        legacy = client.get("/.well-known/skills/index.json").json()["skills"]
        assert {p: client.get(f"/.well-known/skills/weekly-report/{p}").content
                for p in legacy[0]["files"]} == files

        plugin = client.get("/alpha/marketplace.json").json()["plugins"][0]
        assert (plugin["version"], plugin["source"]["sha"]) == (row.version, row.commit_sha)

    tag = next(t for t in registry.git.tags("alpha") if t.version == row.version)
    assert tag.commit_sha == row.commit_sha
    assert registry.git.read_tree("alpha", tag.tree_sha).content_hash() == row.content_sha256
