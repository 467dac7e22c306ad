"""Home and browsing (issue 14): the full listing and a namespace page page with a cursor
until every skill is reached, the three short browse lists, no empty namespace, nothing of a
private namespace for a stranger, and a signed-in person's orgs and review count."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
from starlette.testclient import TestClient

from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle

from .conftest import skill_md, token_principal
from .test_pages_learning import Node, parse
from .test_pages_team import PASSWORD, sign_in

COUNT = 125


def publish_many(registry: Registry, count: int = COUNT) -> set[str]:
    owner = token_principal(registry, "team")
    for i in range(count):
        registry.publish("team", Bundle({"SKILL.md": skill_md(f"skill-{i:03d}")}),
                         principal=owner, version="1.0.0")
    return {f"/team/skill-{i:03d}" for i in range(count)}


def listed(section: Node) -> list[str]:
    return [a.attrs["href"] or "" for a in section.find("a", class_="name")]


def walk(client: TestClient, start: str, section: str | None = None) -> list[str]:
    """Every skill link in the listing, following its "Next" links to the end."""
    seen: list[str] = []
    url: str | None = start
    pages = 0
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        root = parse(response.text)
        part = root.one("section", id=section) if section else root
        seen += listed(part)
        nexts = part.find("a", rel="next")
        assert len(nexts) <= 1
        url = urljoin(start, nexts[0].attrs["href"] or "") if nexts else None
        pages += 1
        assert pages < 20
    return seen


@pytest.fixture
def vault(registry: Registry) -> None:
    """Private org `vault`: lead owns it, cara maintains it, bob publishes; secret-tool 1.0.0
    is released and bob's 1.1.0 waits for review. Org `empty` has no skill at all."""
    for name in ("lead", "bob", "cara"):
        registry.add_user(name, password=PASSWORD, display_name=name.title())
    registry.create_org(registry.account_principal("lead"), "vault")
    registry.create_org(registry.account_principal("lead"), "empty")
    lead = registry.account_principal("lead")
    registry.set_member(lead, "vault", "bob", "publisher")
    registry.set_member(lead, "vault", "cara", "maintainer")
    registry.set_release_policy(lead, "vault", "review", True)
    registry.set_visibility("vault", "private", lead)
    bob, cara = registry.account_principal("bob"), registry.account_principal("cara")
    md = skill_md("secret-tool", description="Does the private thing for the vault team.")
    registry.publish("vault", Bundle({"SKILL.md": md}), principal=bob, version="1.0.0")
    registry.approve_release(cara, pending(registry, "1.0.0"), "fine")
    registry.publish("vault", Bundle({"SKILL.md": md + b"\nMore.\n"}), principal=bob,
                     version="1.1.0")


def pending(registry: Registry, version: str) -> str:
    row = registry.store.releases.pending_release("vault", "secret-tool", version)
    assert row is not None
    return row.id


def test_next_links_reach_every_skill_exactly_once(client: TestClient,
                                                   registry: Registry) -> None:
    expected = publish_many(registry)
    seen = walk(client, "/", "all-skills")
    assert len(seen) == COUNT and set(seen) == expected
    assert "(125)" in parse(client.get("/").text).one("section", id="all-skills").text()
    on_namespace = walk(client, "/team")
    assert len(on_namespace) == COUNT and set(on_namespace) == expected
    # the browse lists' "More" goes to the search page, which pages on with its cursor
    more = parse(client.get("/search?sort=recent").text).one("p", class_="more")
    assert "cursor=" in (more.one("a").attrs["href"] or "")


def test_home_has_three_short_browse_lists_with_more_links(client: TestClient,
                                                           registry: Registry) -> None:
    publish_many(registry, 12)
    root = parse(client.get("/").text)
    for sort in ("recent", "installs", "rating"):
        box = root.one("div", id=f"browse-{sort}")
        assert 1 <= len(listed(box)) <= 10
        more = box.one("p", class_="more")
        href = more.one("a").attrs["href"] or ""
        assert href == f"/search?sort={sort}"
        assert client.get(href).status_code == 200


def test_an_empty_namespace_is_not_listed(client: TestClient, registry: Registry,
                                          vault: None) -> None:
    publish_many(registry, 1)
    links = [a.attrs.get("href") for a in parse(client.get("/").text).find("a")]
    assert "/team" in links and "/empty" not in links
    sign_in(client, "lead")  # the org's owner: still nothing in it to list
    links = [a.attrs.get("href") for a in parse(client.get("/").text).find("a")]
    assert "/vault" in links and "/empty" not in links


def test_a_private_namespace_never_shows_to_a_stranger(client: TestClient,
                                                       registry: Registry,
                                                       vault: None) -> None:
    publish_many(registry, 3)
    for url in ("/", "/?cursor=team/skill-000", "/search?sort=recent",
                "/search?sort=installs", "/search?sort=rating", "/team", "/search?q=vault"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "/vault" not in page.text and "secret-tool" not in page.text, url
    assert client.get("/vault").status_code == 404
    sign_in(client, "cara")
    assert "/vault/secret-tool" in listed(parse(client.get("/").text).one(
        "section", id="all-skills"))


def test_a_signed_in_maintainer_sees_their_orgs_and_the_waiting_count(
        client: TestClient, registry: Registry, vault: None) -> None:
    anonymous = parse(client.get("/").text)
    assert not anonymous.find("section", class_="mine")
    sign_in(client, "cara")
    mine = parse(client.get("/").text).one("section", class_="mine")
    waiting = mine.one("a", href="/review")
    assert waiting.text() == "Waiting for your review: 1"
    orgs = mine.one("ul", class_="orgs")
    assert orgs.one("a", href="/settings/orgs/vault").text() == "vault"
    assert "maintainer" in orgs.text()
    sign_in(client, "bob")  # publishes, reviews nothing: orgs, no waiting line
    mine = parse(client.get("/").text).one("section", class_="mine")
    assert not mine.find("a", href="/review")
    assert "publisher" in mine.one("ul", class_="orgs").text()
