"""What people do in the site, end to end in a real headless Chromium (issue 14): sign in
with the form and through a real OpenID provider, search and open a result, read a skill
and browse its files, approve a pending release from the review queue, manage an org's
members and one's tokens, read the audit log with a filter; and a private namespace that
an outsider never sees, on any page.

One seeded server (test_pages_a11y.build_world) and one Chromium serve the whole module.
Each step's page is screenshotted at 1280 and 390 px into $SKILLS_HUB_SHOTS/flows when it is
set (`make screenshots`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from .conftest import skill_md
from .live import free_port
from .oidc_provider import Provider, start_oidc_provider
from .test_pages_a11y import ORG, SKILL, Hub, axe_source, chromium_path, open_hub
from .test_pages_team import PASSWORD

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def op_hub() -> Iterator[tuple[Provider, Hub]]:
    """A real OpenID provider (tests/oidc_provider.py) and the world's server, which trusts
    it: each needs the other's address, so the server's port is chosen first."""
    chromium_path(), axe_source()  # a missing part skips (or fails in CI) before anything
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with start_oidc_provider(url + "/auth/oidc/callback") as op, open_hub(
            "flows", port=port, SKILLS_HUB_PUBLIC_URL=url, SKILLS_HUB_OIDC_ISSUER=op.issuer,
            SKILLS_HUB_OIDC_CLIENT_ID=op.client_id,
            SKILLS_HUB_OIDC_CLIENT_SECRET=op.client_secret) as hub:
        yield op, hub


@pytest.fixture(scope="module")
def hub(op_hub: tuple[Provider, Hub]) -> Hub:
    return op_hub[1]


@pytest.fixture
def browse(hub: Hub) -> Iterator[Any]:
    """browse(who) -> a fresh page of a new browser context signed in as `who` (a username,
    None for nobody), at 1280 px in the light scheme; closed after the test."""
    contexts: list[Any] = []

    def make(who: str | None) -> Any:
        contexts.append(hub.context(who))
        return contexts[-1].new_page()

    yield make
    for context in contexts:
        context.close()


def whoami(page: Any, hub: Hub) -> dict[str, Any]:
    """Who the browser's session is, asked of the API with the browser's own cookies."""
    answer = page.context.request.get(hub.url + "/api/v1/whoami")
    return answer.json() if answer.ok else {}


def main_text(page: Any) -> str:
    return str(page.locator("main").inner_text())


# -- signing in ----------------------------------------------------------------------------


def test_sign_in_with_the_form(hub: Hub, browse: Any) -> None:
    page = browse(None)
    page.goto(hub.url + "/settings/tokens")
    page.wait_for_url("**/login?next=%2Fsettings%2Ftokens")
    hub.shoot(page, "signin-form")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    error = page.get_by_role("alert")
    assert "username or password is wrong" in error.inner_text()
    assert page.get_by_label("Username").input_value() == "rita"
    assert page.get_by_label("Password").input_value() == ""  # never sent back
    hub.shoot(page, "signin-refused")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/settings/tokens")
    assert page.locator("header .who").inner_text() == "Rita"
    assert (whoami(page, hub)["username"], whoami(page, hub)["via"]) == ("rita", "session")
    hub.shoot(page, "signin-done")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(hub.url + "/")
    assert page.locator("header a.sign-in").is_visible() and whoami(page, hub) == {}


def test_sign_in_through_openid_connect(op_hub: tuple[Provider, Hub], browse: Any) -> None:
    op, hub = op_hub
    page = browse(None)
    page.goto(hub.url + "/login?next=/settings")
    hub.shoot(page, "oidc-login")
    page.get_by_role("link", name="sign in with OpenID Connect").click()
    page.wait_for_url(op.issuer + "/**")  # the provider's own sign-in page
    page.locator("input[name=login]").fill("dora")
    page.locator("input[name=password]").fill("any password")
    hub.shoot(page, "oidc-provider")
    page.get_by_role("button", name="Sign-in").click()
    page.locator("input[name=prompt][value=consent]").wait_for(state="attached")
    page.get_by_role("button", name="Continue").click()  # the provider's consent
    page.wait_for_url(hub.url + "/settings")
    me = whoami(page, hub)
    assert (me["username"], me["via"], me["email"]) == ("dora", "session", "dora@example.test")
    assert page.locator("dd.username").inner_text() == "dora"
    hub.shoot(page, "oidc-done")


# -- finding and reading -------------------------------------------------------------------


def test_search_as_you_type_and_open_a_result(hub: Hub, browse: Any) -> None:
    page = browse(None)
    page.goto(hub.url + "/")
    page.locator("main").get_by_role("searchbox").fill("csv")
    first = page.locator("#results li.skill a.name").first
    first.wait_for()
    assert "csv" in page.locator("#results").inner_text().lower()
    hub.shoot(page, "search-as-you-type")
    name = first.inner_text()
    first.click()
    page.wait_for_url(hub.url + "/" + name.replace(" ", ""))
    assert page.locator("h1").first.inner_text().startswith(name.split("/")[-1])
    hub.shoot(page, "search-result-opened")


def test_search_from_the_header_finds_a_private_skill_for_a_member(
        hub: Hub, browse: Any) -> None:
    page = browse("cara")
    page.goto(hub.url + "/")
    box = page.locator("header").get_by_role("searchbox")
    box.fill("weekly status report")
    box.press("Enter")
    page.wait_for_url("**/search?q=weekly+status+report")
    hit = page.locator("li.skill a.name", has_text=f"{ORG}/{SKILL}")
    hit.wait_for()
    hub.shoot(page, "search-page")
    hit.click()
    page.wait_for_url(f"{hub.url}/{ORG}/{SKILL}")


def test_read_a_skill_and_browse_its_files(hub: Hub, browse: Any) -> None:
    page = browse("cara")
    page.goto(f"{hub.url}/{ORG}/{SKILL}")
    assert page.locator("h1").first.inner_text().startswith(f"{SKILL} v1.1.0")
    assert page.locator("#evidence").is_visible() and page.locator("#proposals").is_visible()
    versions = page.locator("ul.versions a[href*='/v/']").all_inner_texts()
    assert [v.strip() for v in versions] == ["v1.1.0", "v1.0.0"]  # 1.2.0 waits for review
    hub.shoot(page, "skill")
    page.locator("ul.files").get_by_role("link", name="scripts/summary.py", exact=True).click()
    page.wait_for_url("**/v/1.1.0/files/scripts/summary.py")
    assert page.locator("h1.file-path").inner_text() == "scripts/summary.py"
    assert page.locator(".file-body .highlight .k").first.inner_text() in ("import", "def")
    hub.shoot(page, "file-code")
    page.locator("nav.file-nav").get_by_role("link", name="references/NOTES.md",
                                             exact=True).click()
    page.wait_for_url("**/files/references/NOTES.md")
    assert page.locator(".markdown strong").inner_text() == "bold"  # rendered, not source
    hub.shoot(page, "file-markdown")
    page.get_by_role("link", name="back to the skill").click()
    page.wait_for_url(f"**/{ORG}/{SKILL}/v/1.1.0")


# -- reviewing -----------------------------------------------------------------------------


def test_a_maintainer_approves_a_pending_release_in_the_review_queue(
        hub: Hub, browse: Any) -> None:
    api = httpx.Client(base_url=hub.url, timeout=30)
    token = api.post("/api/v1/auth/login", json={"username": "bob", "password": PASSWORD,
                                                 "label": "flows"}).json()["token"]
    md = skill_md("standup-digest", description="Writes the daily standup digest for a team.")
    published = api.post(f"/api/v1/namespaces/{ORG}/skills?version=1.0.0",
                         headers={"Authorization": f"Bearer {token}"},
                         files=[("files", ("SKILL.md", md))])
    assert published.status_code in (200, 201, 202), published.text
    assert published.json()["status"] == "pending"
    assert api.get(f"/api/v1/skills/{ORG}/standup-digest",
                   headers={"Authorization": f"Bearer {token}"}).status_code == 404
    page = browse("cara")
    page.goto(hub.url + "/")
    page.locator("header a.review-link").click()
    page.wait_for_url(hub.url + "/review")
    item = page.locator("li.release", has_text=f"{ORG}/standup-digest")
    assert item.locator("dd.author").inner_text() == "bob"
    hub.shoot(page, "review-queue")
    item.get_by_label("Comment").fill("reads well")
    item.get_by_role("button", name="Approve and release v1.0.0").click()
    done = page.locator(f"li.release[data-state=approved]:has-text('{ORG}/standup-digest')")
    done.wait_for()
    assert "Approved by cara" in done.inner_text()
    hub.shoot(page, "review-approved")
    done.locator("a.new-version").click()
    page.wait_for_url(f"{hub.url}/{ORG}/standup-digest/v/1.0.0")
    assert page.locator("h1").first.inner_text().startswith("standup-digest v1.0.0")
    hub.shoot(page, "review-released")
    api.close()


# -- settings ------------------------------------------------------------------------------


def test_an_owner_adds_changes_and_removes_a_member(hub: Hub, browse: Any) -> None:
    page = browse("lead")
    page.goto(f"{hub.url}/settings")
    page.locator("li.org").get_by_role("link", name=ORG).click()
    page.wait_for_url(f"{hub.url}/settings/orgs/{ORG}")
    form = page.locator("form.add-member")
    form.get_by_label("Username").fill("dave")
    form.get_by_label("Role").select_option("reader")
    form.get_by_role("button", name="Add member").click()
    dave = page.locator("li.member[data-member=dave]")
    dave.wait_for()
    assert "reader" in dave.inner_text()
    hub.shoot(page, "members-added")
    dave.get_by_label("Role of dave").select_option("publisher")
    dave.get_by_role("button", name="Change role").click()
    page.wait_for_load_state()
    assert page.locator("li.member[data-member=dave] select").input_value() == "publisher"
    hub.shoot(page, "members-role-changed")
    page.locator("li.member[data-member=dave]").get_by_role(
        "button", name="Remove dave").click()
    page.wait_for_load_state()
    assert page.locator("li.member[data-member=dave]").count() == 0
    hub.shoot(page, "members-removed")


def test_a_token_is_created_shown_once_and_revoked(hub: Hub, browse: Any) -> None:
    page = browse("rita")
    page.goto(f"{hub.url}/settings/tokens")
    page.get_by_label("Label").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("pre.secret").inner_text().strip()
    assert secret.startswith("shub_")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(hub.url + "/api/v1/whoami", headers=bearer).json()["username"] == "rita"
    hub.shoot(page, "token-created")
    page.goto(f"{hub.url}/settings/tokens")
    assert page.locator("pre.secret").count() == 0 and secret not in page.content()
    row = page.locator("tr.token", has_text="laptop")
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_load_state()
    assert "revoked" in page.locator("tr.token", has_text="laptop").inner_text()
    assert httpx.get(hub.url + "/api/v1/whoami", headers=bearer).status_code == 401
    hub.shoot(page, "token-revoked")


def test_an_owner_reads_the_audit_log_with_a_filter(hub: Hub, browse: Any) -> None:
    page = browse("lead")
    page.goto(f"{hub.url}/settings/orgs/{ORG}")
    page.get_by_role("link", name="Audit log").first.click()
    page.wait_for_url(f"**/settings/orgs/{ORG}/audit")
    everything = page.locator("li.event .action").all_inner_texts()
    assert {"org.create", "member.add"} <= set(everything)
    hub.shoot(page, "audit")
    page.get_by_label("Action").fill("member.add")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit?*action=member.add*")
    shown = page.locator("li.event .action").all_inner_texts()
    assert shown and set(shown) == {"member.add"} and len(shown) < len(everything)
    assert page.get_by_label("Action").input_value() == "member.add"
    hub.shoot(page, "audit-filtered")


# -- a private namespace -------------------------------------------------------------------

# Pages an outsider may open: each is a 404 exactly like that of a name that does not exist,
# or a page with no trace of the private namespace's names.
PRIVATE = (
    "/", "/search?q=weekly+status+report", f"/search?namespace={ORG}", "/review",
    "/settings", f"/{ORG}", f"/{ORG}/{SKILL}", f"/{ORG}/{SKILL}/v/1.0.0",
    f"/{ORG}/{SKILL}/v/1.1.0/files/SKILL.md", f"/{ORG}/{SKILL}/proposals/{{proposal}}",
    f"/settings/orgs/{ORG}", f"/settings/orgs/{ORG}/audit",
)
NOBODY_ORG, NOBODY_SKILL = "nothing-here", "no-such-skill"


@pytest.mark.parametrize("who", ["outsider", None], ids=["outsider", "anonymous"])
def test_a_private_namespace_is_invisible_to_an_outsider(
        hub: Hub, browse: Any, who: str | None) -> None:
    page = browse(who)
    seen = []
    for template in PRIVATE:
        path = hub.world.path(template)
        answer = page.goto(hub.url + path)
        assert answer is not None
        hub.shoot(page, f"private-{who or 'anonymous'}-" + (
            re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"))
        if answer.status == 404:
            # exactly the 404 of a namespace and skill that do not exist
            text = main_text(page).replace(SKILL, NOBODY_SKILL).replace(ORG, NOBODY_ORG)
            twin = page.goto(hub.url + path.replace(SKILL, NOBODY_SKILL).replace(
                ORG, NOBODY_ORG))
            assert twin is not None and twin.status == 404
            assert text == main_text(page), (path, text)
            continue
        assert answer.status == 200, (path, answer.status)
        html = page.content()
        # what the visitor typed comes back (the search box, a sign-in's `next`): not a leak
        for echo in {path, quote(path, safe=""), quote(path), *parse_qs(
                urlsplit(path).query).get("namespace", [])}:
            html = html.replace(echo, "")
        seen += [f"{path} shows {name!r}" for name in (
            ORG, SKILL, "standup-digest", hub.world.proposal) if name in html]
    assert not seen
