"""The access matrix: every principal against every visibility, over every interface.

Expected answers come from the table below (the issue's rules), not from `access.policy`:
roles rank reader < publisher < maintainer < owner (the operator is owner everywhere);
public namespaces are read by everyone, internal ones by any signed-in account, private
ones by members only; a token limited to other namespaces reads only public ones. Who may
not read a namespace gets 404 (never 403); an anonymous writer gets 401; a reader lacking
the role or the token scope gets 403.
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, OPERATOR
from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.web.app import create_app
from tests.conftest import skill_md
from tests.live import start_server

ALL = frozenset({"read", "publish", "review", "admin"})
RANK = {None: 0, "reader": 1, "publisher": 2, "maintainer": 3, "owner": 4}
VISIBILITY = {"pub": "public", "int": "internal", "priv": "private"}
SKILL = {"pub": "pubprobe", "int": "intprobe", "priv": "privprobe"}
RULE = "remote-exec.pipe-to-shell"


@dataclass(frozen=True)
class Who:
    """A principal as the table sees it."""

    role: str | None = None       # role on each of pub, int, priv
    signed_in: bool = True
    scopes: frozenset[str] = ALL
    limited: bool = False         # a token limited to another namespace (acme)


PRINCIPALS: dict[str, Who] = {
    "anonymous": Who(signed_in=False, scopes=frozenset()),
    "outsider": Who(),
    "reader": Who("reader"),
    "publisher": Who("publisher"),
    "maintainer": Who("maintainer"),
    "owner": Who("owner"),
    "operator": Who("owner"),
    "owner-read": Who("owner", scopes=frozenset({"read"})),
    "owner-publish": Who("owner", scopes=frozenset({"publish"})),
    "owner-review": Who("owner", scopes=frozenset({"review"})),
    "owner-limited": Who("owner", limited=True),
}

# write -> (least role, token scope, status on success)
WRITES: dict[str, tuple[str | None, str, int]] = {
    "publish": ("publisher", "publish", 201),
    "exception": ("maintainer", "review", 200),
    "visibility": ("owner", "admin", 200),
    "outcomes": (None, "read", 200),
}


def readable(who: Who, ns: str) -> bool:
    vis = VISIBILITY[ns]
    if vis == "public":
        return True
    if who.limited:
        return False
    return (vis == "internal" and who.signed_in) or who.role is not None


def expected_write(who: Who, ns: str, write: str) -> int:
    least, scope, ok = WRITES[write]
    if not who.signed_in:
        return 401
    if not readable(who, ns):
        return 404
    if scope not in who.scopes and not (scope == "read" and who.scopes):  # any scope reads
        return 403
    if write == "outcomes":
        return ok  # evidence goes wherever the caller reads
    if who.limited or RANK[who.role] < RANK[least]:
        return 403
    return ok


# -- the world --------------------------------------------------------------------------


@dataclass
class World:
    settings: Settings
    registry: Registry
    tokens: dict[str, str]            # principal name -> bearer token
    first_version: dict[str, str]     # namespace -> the version published at set-up
    users: dict[str, Any]


def build_world(home: Path) -> World:
    settings = Settings(home=home, seed=False, semantic="off", sandbox="off")
    registry = Registry(settings)
    registry.start()
    users = {name: registry.add_user(name, display_name=name.title(),
                                     email=f"{name}@example.com")
             for name in ("outsider", "reader", "publisher", "maintainer", "maintwo",
                          "owner", "zed")}
    users["operator"] = registry.add_user("operator", operator=True)

    def me(name: str):  # type: ignore[no-untyped-def]
        return registry.signed_in(users[name], "test", ANONYMOUS)

    for org in ("pub", "int", "priv", "acme"):
        registry.create_org(me("owner"), org)
        for name in ("reader", "publisher", "maintainer"):
            registry.set_member(me("owner"), org, name, name)
        registry.set_member(me("owner"), org, "maintwo", "maintainer")
    registry.create_org(me("zed"), "zeta")
    first = {}
    for ns, vis in VISIBILITY.items():
        registry.set_visibility(ns, vis, OPERATOR)
        outcome = registry.publish(ns, Bundle({"SKILL.md": skill_md(SKILL[ns])}),
                                   principal=OPERATOR)
        first[ns] = outcome.version
    registry.publish("zeta", Bundle({"SKILL.md": skill_md("zetaprobe")}), principal=OPERATOR)

    def token(name: str, scopes: frozenset[str] = ALL,
              namespaces: list[str] | None = None) -> str:
        return registry.create_user_token(me(name), label=name, scopes=sorted(scopes),
                                          namespaces=namespaces)[1]

    tokens = {name: token(name) for name in ("outsider", "reader", "publisher", "maintainer",
                                              "owner", "operator")}
    tokens["maintwo"] = token("maintwo")
    tokens["zed"] = token("zed")
    for scope in ("read", "publish", "review"):
        tokens[f"owner-{scope}"] = token("owner", frozenset({scope}))
    tokens["owner-limited"] = token("owner", namespaces=["acme"])
    tokens["reader-read"] = token("reader", frozenset({"read"}))
    return World(settings, registry, tokens, first, users)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("matrix") / "data")
    yield w
    w.registry.close()


@pytest.fixture(scope="module")
def http(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings, world.registry)) as client:
        yield client


def bearer(world: World, who: str) -> dict[str, str]:
    return {} if who == "anonymous" else {"Authorization": f"Bearer {world.tokens[who]}"}


def basic(world: World, who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    raw = base64.b64encode(f"x-token:{world.tokens[who]}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


# -- reads ------------------------------------------------------------------------------


def _status(ok: bool, response: httpx.Response) -> None:
    assert response.status_code == (200 if ok else 404), response.text[:500]


def read_skill(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    _status(ok, c.get(f"/api/v1/skills/{ns}/{name}", headers=h))


def read_archive(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    r = c.get(f"/api/v1/skills/{ns}/{name}/versions/latest/archive.zip", headers=h)
    _status(ok, r)
    if ok:
        assert r.content[:2] == b"PK"


def read_file(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    r = c.get(f"/api/v1/skills/{ns}/{name}/versions/latest/files/SKILL.md", headers=h)
    _status(ok, r)
    if ok:
        assert f"name: {name}".encode() in r.content


def read_report(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    _status(ok, c.get(f"/api/v1/skills/{ns}/{name}/versions/latest/report", headers=h))


def read_list(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    r = c.get("/api/v1/skills", params={"namespace": ns}, headers=h)
    _status(ok, r)
    if ok:
        assert [(s["namespace"], s["name"]) for s in r.json()["skills"]] == [(ns, name)]


def read_search(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    r = c.get("/api/v1/search", params={"q": name, "mode": "keyword"}, headers=h)
    assert r.status_code == 200, r.text
    hits = {(x["namespace"], x["name"]) for x in r.json()["results"]}
    assert ((ns, name) in hits) == ok, hits


def read_namespaces(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    r = c.get("/api/v1/namespaces", headers=h)
    assert r.status_code == 200, r.text
    assert (ns in {n["name"] for n in r.json()["namespaces"]}) == ok


def read_wellknown(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    r = c.get("/.well-known/agent-skills/index.json", headers=h)
    assert r.status_code == 200, r.text
    assert (name in {s["name"] for s in r.json()["skills"]}) == ok


def read_skillssh(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    r = c.get("/api/search", params={"q": name}, headers=h)
    assert r.status_code == 200, r.text
    assert (f"{ns}/{name}" in {s["id"] for s in r.json()["skills"]}) == ok


def read_clawhub(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    _status(ok, c.get(f"/clawhub/api/v1/skills/{name}", headers=h))


def read_marketplace(c: TestClient, h: dict[str, str], ns: str, name: str, ok: bool) -> None:
    r = c.get(f"/{ns}/marketplace.json", headers=h)
    _status(ok, r)
    if ok:
        assert name in {p["name"] for p in r.json()["plugins"]}


READS = {
    "skill": read_skill, "archive": read_archive, "file": read_file, "report": read_report,
    "list": read_list, "search": read_search, "namespaces": read_namespaces,
    "wellknown": read_wellknown, "skillssh": read_skillssh, "clawhub": read_clawhub,
    "marketplace": read_marketplace,
}


@pytest.mark.parametrize("read", sorted(READS))
@pytest.mark.parametrize("ns", sorted(VISIBILITY))
@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_read(world: World, http: TestClient, who: str, ns: str, read: str) -> None:
    READS[read](http, bearer(world, who), ns, SKILL[ns], readable(PRINCIPALS[who], ns))


@pytest.mark.parametrize("ns", sorted(VISIBILITY))
@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_git_info_refs(world: World, http: TestClient, who: str, ns: str) -> None:
    """git sends the token as the Basic password; 401 asks an anonymous git for one."""
    r = http.get(f"/git/{ns}.git/info/refs", params={"service": "git-upload-pack"},
                 headers=basic(world, who))
    if readable(PRINCIPALS[who], ns):
        assert r.status_code == 200, r.text
        assert SKILL[ns].encode() in r.content
    else:
        assert r.status_code == (401 if who == "anonymous" else 404), r.text
        assert SKILL[ns].encode() not in r.content


# -- writes -----------------------------------------------------------------------------


def snapshot(world: World, ns: str) -> dict[str, Any]:
    reg, name = world.registry, SKILL[ns]
    info = reg.store.namespaces.namespace(ns)
    conn = sqlite3.connect(world.settings.index_path)
    try:
        outcomes = conn.execute("SELECT count(*) FROM outcome_reports WHERE namespace = ? "
                                "AND name = ?", (ns, name)).fetchone()[0]
    finally:
        conn.close()
    return {
        "versions": sorted(v.version for v in reg.get_skill(ns, name, OPERATOR).versions),
        "exceptions": sorted((e.rule, e.reason) for e in reg.store.reports.exceptions(ns, name)),
        "visibility": None if info is None else info.visibility,
        "outcomes": outcomes,
    }


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("ns", sorted(VISIBILITY))
@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_write(world: World, http: TestClient, who: str, ns: str, write: str) -> None:
    want = expected_write(PRINCIPALS[who], ns, write)
    h, name, cell = bearer(world, who), SKILL[ns], uuid.uuid4().hex
    base = f"/api/v1/skills/{ns}/{name}"
    before = snapshot(world, ns)
    vis = VISIBILITY[ns]
    other = {"public": "internal", "internal": "private", "private": "public"}[vis]
    try:
        if write == "publish":
            md = skill_md(name, body=f"Say hello, cell {cell}.")
            r = http.post(f"/api/v1/namespaces/{ns}/skills", headers=h,
                          files=[("files", ("SKILL.md", md))])
        elif write == "exception":
            r = http.put(f"{base}/exceptions/{RULE}", headers=h, json={"reason": "x"})
        elif write == "visibility":
            r = http.put(f"/api/v1/namespaces/{ns}/visibility", headers=h,
                         json={"visibility": other})
        else:
            r = http.post(f"{base}/outcomes", headers=h, json={"outcomes": [
                {"id": cell, "version": world.first_version[ns], "outcome": "success"}]})
        assert r.status_code == want, f"{who} {write} {ns}: {r.status_code} {r.text[:500]}"
        after = snapshot(world, ns)
        if want >= 400:
            assert after == before
            return
        changed = {k for k in before if before[k] != after[k]}
        assert changed == {{"publish": "versions", "exception": "exceptions",
                            "visibility": "visibility", "outcomes": "outcomes"}[write]}
        if write == "publish":
            assert r.json()["status"] == "published"
            assert r.json()["version"] in after["versions"]
        elif write == "exception":
            assert (RULE, "x") in after["exceptions"]
        elif write == "visibility":
            assert after["visibility"] == other
        else:
            assert after["outcomes"] == before["outcomes"] + 1
    finally:  # keep cells independent
        reg = world.registry
        if write == "exception" and reg.store.reports.exceptions(ns, name):
            reg.remove_exception(ns, name, RULE, OPERATOR)
        if write == "visibility":
            reg.set_visibility(ns, vis, OPERATOR)


# -- tokens -----------------------------------------------------------------------------


def test_revoked_and_expired_tokens_say_so(world: World, http: TestClient) -> None:
    reg = world.registry
    me = reg.signed_in(world.users["reader"], "test", ANONYMOUS)
    revoked_row, revoked = reg.create_user_token(me, label="to revoke", scopes=["read"])
    expired_row, expired = reg.create_user_token(me, label="to expire", scopes=["read"],
                                                 days=1)
    for secret in (revoked, expired):
        assert http.get("/api/v1/whoami",
                        headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    reg.revoke_token(me, revoked_row.id)
    conn = sqlite3.connect(world.settings.index_path)
    try:
        with conn:
            conn.execute("UPDATE tokens SET expires_at = '2000-01-01T00:00:00+00:00' "
                         "WHERE id = ?", (expired_row.id,))
    finally:
        conn.close()
    for secret, word in ((revoked, "revoked"), (expired, "expired")):
        for path in ("/api/v1/whoami", "/api/v1/skills/priv/privprobe",
                     "/api/v1/skills/pub/pubprobe"):
            r = http.get(path, headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code == 401, (path, r.text)
            assert word in r.text, (path, r.text)
        raw = base64.b64encode(f"x:{secret}".encode()).decode()
        r = http.get("/git/priv.git/info/refs", params={"service": "git-upload-pack"},
                     headers={"Authorization": f"Basic {raw}"})
        assert r.status_code == 401 and word in r.text, r.text


# -- audit ------------------------------------------------------------------------------


def test_audit_log_is_scoped_to_the_caller(world: World, http: TestClient) -> None:
    # one write in an org of each owner, so both have events
    assert http.put(f"/api/v1/skills/pub/{SKILL['pub']}/exceptions/{RULE}",
                    headers=bearer(world, "owner"), json={"reason": "audit"}).status_code == 200
    world.registry.remove_exception("pub", SKILL["pub"], RULE, OPERATOR)
    assert http.put("/api/v1/skills/zeta/zetaprobe/exceptions/" + RULE,
                    headers={"Authorization": f"Bearer {world.tokens['zed']}"},
                    json={"reason": "audit"}).status_code == 200

    def orgs(token: str) -> set[str | None]:
        r = http.get("/api/v1/audit", params={"limit": 1000},
                     headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return {e["org"] for e in r.json()["events"]}

    mine = orgs(world.tokens["owner"])
    assert {"pub", "int", "priv", "acme"} <= mine
    assert mine <= {"pub", "int", "priv", "acme"}, mine
    assert orgs(world.tokens["zed"]) == {"zeta"}
    everything = orgs(world.tokens["operator"])
    assert {"pub", "int", "priv", "acme", "zeta"} <= everything
    for who in ("reader", "publisher", "maintainer", "outsider"):
        r = http.get("/api/v1/audit", headers=bearer(world, who))
        assert r.status_code == 403, (who, r.text)
    assert http.get("/api/v1/audit").status_code == 401
    r = http.get("/api/v1/audit", params={"org": "zeta"}, headers=bearer(world, "owner"))
    assert r.status_code in (403, 404) and "zetaprobe" not in r.text, r.text


# -- required review --------------------------------------------------------------------


def test_required_review_two_person_rule_and_git_trailers(tmp_path: Path) -> None:
    world = build_world(tmp_path / "review")
    reg = world.registry
    try:
        owner = reg.signed_in(world.users["owner"], "test", ANONYMOUS)
        reg.set_release_policy(owner, "priv", "review", True)
        with TestClient(create_app(world.settings, reg)) as http:
            def h(who: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {world.tokens[who]}"}

            name = SKILL["priv"]
            md = skill_md(name, body="Say hello, reviewed.")
            r = http.post("/api/v1/namespaces/priv/skills?version=2.0.0", headers=h("publisher"),
                          files=[("files", ("SKILL.md", md))])
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "pending"
            skill = http.get(f"/api/v1/skills/priv/{name}", headers=h("owner")).json()
            assert "2.0.0" not in {v["version"] for v in skill["versions"]}
            latest = http.get(f"/api/v1/skills/priv/{name}/versions/latest",
                              headers=h("owner")).json()
            assert latest["version"] == world.first_version["priv"]
            index = http.get("/.well-known/agent-skills/index.json", headers=h("owner")).json()
            entry = next(s for s in index["skills"] if s["name"] == name)
            assert "2.0.0" not in entry["url"]
            assert "Say hello, reviewed." not in http.get(
                f"/api/v1/skills/priv/{name}/versions/latest/files/SKILL.md",
                headers=h("owner")).text

            queue = http.get("/api/v1/review", headers=h("maintainer"))
            assert queue.status_code == 200, queue.text
            pending = [x for x in queue.json()["releases"]
                       if x["namespace"] == "priv" and x["name"] == name]
            assert [x["version"] for x in pending] == ["2.0.0"]
            release_id = pending[0]["id"]

            approve = f"/api/v1/releases/{release_id}/approve"
            r = http.post(approve, headers=h("publisher"), json={})
            assert r.status_code == 403, r.text
            # two-person rule: the author, now a maintainer, still cannot approve their own
            reg.set_member(owner, "priv", "publisher", "maintainer")
            r = http.post(approve, headers=h("publisher"), json={})
            assert r.status_code == 403 and "two-person" in r.text, r.text
            reg.set_member(owner, "priv", "publisher", "publisher")
            r = http.post(approve, headers=h("maintainer"), json={"comment": "lgtm"})
            assert r.status_code == 200, r.text
            assert r.json()["release"]["state"] == "approved"
            latest = http.get(f"/api/v1/skills/priv/{name}/versions/latest",
                              headers=h("owner")).json()
            assert latest["version"] == "2.0.0"
            index = http.get("/.well-known/agent-skills/index.json", headers=h("owner")).json()
            entry = next(s for s in index["skills"] if s["name"] == name)
            assert "2.0.0" in entry["url"]
        log = subprocess.run(
            ["git", "--git-dir", str(world.settings.repos_dir / "priv.git"), "log", "-1",
             "--format=%an <%ae>%n%B", f"refs/tags/{name}/v2.0.0"],
            capture_output=True, text=True, check=True).stdout
        assert log.startswith("Publisher <publisher@example.com>\n"), log
        assert "Reviewed-by: Maintainer <maintainer@example.com>" in log, log
    finally:
        reg.close()


# -- a real git clone -------------------------------------------------------------------


@pytest.mark.slow
def test_git_clone_of_a_private_namespace(tmp_path: Path) -> None:
    home = tmp_path / "data"
    world = build_world(home)
    world.registry.close()
    server = start_server(home)
    try:
        url = server.url.replace("http://", "")

        def clone(who: str | None) -> subprocess.CompletedProcess[str]:
            auth = "" if who is None else f"x-token:{world.tokens[who]}@"
            dest = tmp_path / f"clone-{who}"
            return subprocess.run(["git", "clone", f"http://{auth}{url}/git/priv.git",
                                   str(dest)], capture_output=True, text=True, timeout=60)

        ok = clone("reader-read")
        assert ok.returncode == 0, ok.stderr
        assert (tmp_path / "clone-reader-read" / "skills" / SKILL["priv"] / "SKILL.md").exists()
        for who in ("outsider", None):
            failed = clone(who)
            assert failed.returncode != 0, failed.stdout
            assert not (tmp_path / f"clone-{who}" / "skills").exists()
    finally:
        server.stop()
