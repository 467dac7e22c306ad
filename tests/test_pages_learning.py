"""Pages of the learning loop: the skill page's evidence and proposals, the proposal page with
its diff, and review through the page's form by a signed-in maintainer (in-process, and once
in headless Chromium)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.web.pages import diff_lines

from .conftest import send_outcomes, skill_md, token_principal
from .test_proposals import OWNER_STEP, SKILL, STEPS

PAGE = "/team/weekly-report"
SCRIPT_EDIT = {"old_string": "Keep it short.",
               "new_string": "Keep it short. <script>alert('owned')</script>"}
PASSWORD = "correct horse battery staple"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node | str] = []

    def find(self, tag: str, **attrs: str) -> list[Node]:
        """Descendants with this tag whose attributes contain these values (`class_`:
        one of the classes)."""
        found = []
        for child in self.children:
            if isinstance(child, str):
                continue
            classes = (child.attrs.get("class") or "").split()
            if child.tag == tag and all(
                    value in classes if key == "class_" else child.attrs.get(key) == value
                    for key, value in attrs.items()):
                found.append(child)
            found += child.find(tag, **attrs)
        return found

    def one(self, tag: str, **attrs: str) -> Node:
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]

    def text(self) -> str:
        """The text as a reader sees it, whitespace collapsed."""
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join("".join(parts).split())


class Tree(HTMLParser):
    """The page as a tree of Nodes, to assert on elements and their text, not on markup."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        while len(self.stack) > 1 and self.stack.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    return Tree(html).root


@pytest.fixture
def team(registry: Registry) -> str:
    """The maintainer's token; weekly-report 1.0.0 is published in `team`."""
    token = registry.create_token("team")
    md = skill_md("weekly-report", description="Formats the weekly status report.", body=STEPS)
    registry.publish("team", Bundle({"SKILL.md": md}), principal=token_principal(registry, "team"),  # noqa: E501
                     version="1.0.0")
    return token


def add_maintainer(registry: Registry, username: str = "maya") -> None:
    """A person who maintains `team` (a member of its org)."""
    registry.add_user(username, password=PASSWORD, display_name=username.title())
    registry.set_member(token_principal(registry, "team"), "team", username, "maintainer")


def sign_in(client: TestClient, username: str) -> str:
    """A browser session on `client` (the cookie); its CSRF token, which forms carry."""
    client.cookies.clear()  # a new browser, so to speak
    signed = client.post("/api/v1/auth/session",
                         json={"username": username, "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    return str(signed.json()["csrf"])


@pytest.fixture
def maya(registry: Registry, client: TestClient, team: str) -> str:
    """A maintainer of `team`, signed in on `client`: her session's CSRF token."""
    add_maintainer(registry)
    return sign_in(client, "maya")


@pytest.fixture
def agent(registry: Registry) -> dict[str, str]:
    """An agent's token (another namespace): it proposes, it cannot review."""
    return {"Authorization": f"Bearer {registry.create_token('agents')}"}


def propose(client: TestClient, agent: dict[str, str], edits: list[dict[str, Any]],
            **fields: Any) -> str:
    response = client.post(f"{SKILL}/proposals", headers=agent, json={
        "base_version": "1.0.0", "edits": edits,
        "reasoning": "reports were missing owners", "evidence": {"failures": 7}, **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def review(client: TestClient, proposal_id: str, htmx: bool = True,
           **form: str) -> Any:
    return client.post(f"{PAGE}/proposals/{proposal_id}/review", data=form,
                       headers={"HX-Request": "true"} if htmx else {})


def state(registry: Registry, proposal_id: str) -> tuple[str, list[str], str]:
    """The proposal's status, the versions and git's tags: what a refused review keeps."""
    tags = subprocess.run(["git", "tag", "--list"], cwd=registry.git.path("team"),
                          capture_output=True, text=True, check=True).stdout
    detail = registry.get_skill("team", "weekly-report", token_principal(registry, "team"))
    return (registry.store.proposals.get_proposal(proposal_id).status,
            [v.version for v in detail.versions], tags)


def pairs(dl: Node) -> dict[str, str]:
    """A <dl> as {term: description}."""
    return {dt.text(): dd.text() for dt, dd in zip(dl.find("dt"), dl.find("dd"), strict=True)}


def evidence_row(page: Node, version: str) -> list[str]:
    return [td.text() for td in page.one("tr", **{"data-version": version}).find("td")]


def test_the_evidence_section_shows_the_numbers_trust_and_the_active_canary(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str]) -> None:
    send_outcomes(registry, "team", "weekly-report",
                  ["success"] * 40 + ["failure"] * 2 + ["infra_error"], version="1.0.0",
                  clients=5)
    proposal_id = propose(client, agent, [OWNER_STEP])
    registry.review("team", "weekly-report", proposal_id, "accept", "try it",
                    token_principal(registry, "team"), canary_share=0.25)
    send_outcomes(registry, "team", "weekly-report", ["success"] * 3, version="1.0.1")
    summary = registry.outcome_summary("team", "weekly-report", token_principal(registry, "team"))
    ema = {stats.version: stats.ema for stats, _ in summary.versions}

    page = parse(client.get(PAGE).text)
    evidence = page.one("section", id="evidence")
    trust = evidence.one("p", class_="trust-line")
    assert trust.one("span", class_="badge").text() == "verified"
    assert summary.events[0].new == "verified"
    assert summary.events[0].reason in trust.text()  # why: the latest trust event
    # version, successes, failures, infra errors, not counted, EMA, Wilson
    assert evidence_row(evidence, "1.0.0")[:7] == [
        "v1.0.0", "40", "2", "1", "0", f"{ema['1.0.0']:.2f}", "0.866"]
    assert evidence_row(evidence, "1.0.1")[:7] == [
        "v1.0.1", "3", "0", "0", "0", "1.00", "0.526"]
    canary = evidence.one("div", id="canary")
    assert "v1.0.1 to 25% of clients" in canary.one("h3").text()
    numbers = {tr.one("th").text(): [td.text() for td in tr.find("td")]
               for tr in canary.one("tbody").find("tr")}
    assert numbers == {"canary": ["v1.0.1", "3 / 3", "100.0%", "0.526 – 1.000"],
                       "stable": ["v1.0.0", "40 / 42", "95.2%", "0.866 – 0.984"]}
    assert canary.one("p", class_="decision-reason").text() == (
        "wait: waiting for 30 outcomes on each version (canary 3, stable 42)")
    assert [b.text() for b in page.one("ul", class_="versions").find("span", class_="canary")
            ] == ["canary"]


def test_past_canary_decisions_and_deprecations_say_why(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str]) -> None:
    send_outcomes(registry, "team", "weekly-report", ["success"] * 40, version="1.0.0")
    proposal_id = propose(client, agent, [OWNER_STEP])
    registry.review("team", "weekly-report", proposal_id, "accept", "",
                    token_principal(registry, "team"),
                    canary_share=0.5)
    send_outcomes(registry, "team", "weekly-report", ["failure"] * 30, version="1.0.1")
    summary = registry.outcome_summary("team", "weekly-report", token_principal(registry, "team"))
    assert "1.0.1" in summary.deprecated and summary.canaries[0].state == "rolled_back"

    page = parse(client.get(f"{PAGE}/v/1.0.1").text)
    evidence = page.one("section", id="evidence")
    assert not evidence.find("div", id="canary")  # no active canary any more
    past = evidence.one("li", class_="canary")
    assert "v1.0.1 against v1.0.0, 50% of clients: rolled back" in past.text()
    assert past.one("p", class_="decision-reason").text().startswith(
        "roll back: canary shown worse: success rate difference -1.000")
    numbers = {tr.one("th").text(): [td.text() for td in tr.find("td")]
               for tr in past.one("tbody").find("tr")}
    assert numbers["canary"][:3] == ["v1.0.1", "0 / 30", "0.0%"]
    assert numbers["stable"][:3] == ["v1.0.0", "40 / 40", "100.0%"]
    row = evidence_row(evidence, "1.0.1")
    assert row[1:3] == ["0", "30"] and "deprecated" in row[-1]
    assert summary.deprecated["1.0.1"] in row[-1]  # with the reason (a collapsed EMA)
    assert page.one("p", class_="danger").text().startswith("Deprecated: success EMA")
    assert evidence.one("span", class_="badge").text() == summary.trust == "quarantined"


def test_the_proposals_section_lists_the_open_ones_and_counts_the_decided(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str]) -> None:
    empty = parse(client.get(PAGE).text).one("section", id="proposals")
    assert "No open proposals." in empty.text() and "0 decided proposals" in empty.text()
    first = propose(client, agent, [OWNER_STEP])
    second = propose(client, agent, [SCRIPT_EDIT])
    propose(client, agent, [{"old_string": "Send the report.", "new_string": "Mail it."}])
    registry.review("team", "weekly-report", second, "reject", "no scripts",
                    token_principal(registry, "team"))

    section = parse(client.get(PAGE).text).one("section", id="proposals")
    rows = section.one("tbody").find("tr")
    assert len(rows) == 2
    cells = {tr.one("a").attrs["href"]: [td.text() for td in tr.find("td")] for tr in rows}
    assert cells[f"{PAGE}/proposals/{first}"][:5] == [first, "v1.0.0", "v1.0.0", "1",
                                                      "checked"]
    assert f"{PAGE}/proposals/{second}" not in cells
    assert section.one("p", class_="decided-count").text().startswith("1 decided proposal ")


def test_the_proposal_page_shows_the_diff_coloured_and_escaped(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str],
        maya: str) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    proposal_id = propose(client, agent, [OWNER_STEP, SCRIPT_EDIT],
                          reasoning=f"owners were missing {hostile}",
                          evidence={"failures": 7, "samples": [hostile, {"task": "q3"}]})
    response = client.get(f"{PAGE}/proposals/{proposal_id}")
    assert response.status_code == 200
    page = parse(response.text)
    assert not page.find("script", src=None) and not page.find("img")  # nothing ran or loaded
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in response.text
    lines = {(span.attrs["class"], span.text())
             for span in page.one("pre", class_="diff").find("span")}
    assert ("add", "+Keep it short. <script>alert('owned')</script>") in lines
    assert ("del", "-Keep it short.") in lines
    assert ("add", "+2b. Name an owner for each item.") in lines
    assert ("context", "1. Collect the updates.") in lines
    assert ("file", "--- a/SKILL.md") in lines and ("file", "+++ b/SKILL.md") in lines
    assert any(kind == "hunk" for kind, _ in lines)
    facts = pairs(page.one("dl", class_="facts"))
    assert (facts["Written against"], facts["Applies to"]) == ("v1.0.0", "v1.0.0")
    assert facts["Support"] == "1 client token proposed this content"
    reasoning = page.one("section", class_="reasoning").one("p").text()
    assert reasoning == f"owners were missing {hostile}"
    evidence = {tr.one("th").text(): tr.one("td").text()
                for tr in page.one("table", class_="evidence-table").find("tr")}
    assert evidence["failures"] == "7"
    assert evidence["samples"] == f'[ "{hostile}", {{ "task": "q3" }} ]'
    report = page.one("section", id="report")
    assert "Verdict: safe" in report.text()
    assert report.one("a").attrs["href"] == f"{SKILL}/proposals/{proposal_id}"
    status = page.one("section", id="proposal-status")
    assert status.one("span", class_="status").text() == "open"
    form = status.one("form", class_="review")
    assert form.attrs["hx-post"] == f"{PAGE}/proposals/{proposal_id}/review"
    assert form.one("input", name="csrf").attrs["value"] == maya  # the session's, no token
    assert not form.find("input", name="token") and not form.find("input", type="password")


def test_diff_lines_tell_a_removed_dashes_line_from_a_file_header() -> None:
    diff = ("diff --git a/SKILL.md b/SKILL.md\n--- a/SKILL.md\n+++ b/SKILL.md\n@@ -1,2 +1,2 @@\n"
            " keep\n--- a rule\n++ plus\n\\ No newline at end of file\n"
            "diff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n")
    assert [kind for kind, _ in diff_lines(diff)] == [
        "file", "file", "file", "hunk", "context", "del", "add", "note", "file", "file", "file"]
    assert diff_lines("") == []


def test_reviewing_through_the_page_accepts_into_a_new_version(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str],
        maya: str) -> None:
    proposal_id = propose(client, agent, [OWNER_STEP])
    response = review(client, proposal_id, decision="accept", comment="good catch",
                      canary="0.2", csrf=maya)
    assert response.status_code == 200
    assert "<html" not in response.text  # the fragment, swapped in place by htmx
    assert team not in response.text
    status = parse(response.text).one("section", id="proposal-status")
    assert status.one("span", class_="status").text() == "accepted"
    assert not status.find("form")
    decision = pairs(status.one("dl"))
    assert decision["Reviewer"] == "maya" and decision["Comment"] == "good catch"
    assert decision["Version"] == "v1.0.1 canary to 20% of clients · active"
    assert status.one("a", class_="new-version").attrs["href"] == f"{PAGE}/v/1.0.1"
    assert client.get(f"{SKILL}/versions/1.0.1/files/SKILL.md").text.count("2b. Name an owner") == 1
    canary = registry.store.proposals.canaries("team", "weekly-report")[0]
    assert (canary.version, canary.share, canary.state) == ("1.0.1", 0.2, "active")
    # The decided proposal's page shows the decision and no form.
    page = parse(client.get(f"{PAGE}/proposals/{proposal_id}").text)
    assert page.one("span", class_="status").text() == "accepted"
    assert not page.find("form", class_="review")


def test_rejecting_through_the_page_needs_a_comment(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str],
        maya: str) -> None:
    proposal_id = propose(client, agent, [OWNER_STEP])
    before = state(registry, proposal_id)
    missing = review(client, proposal_id, decision="reject", comment="  ", version="3.0.0",
                     csrf=maya)
    assert missing.status_code == 400
    fragment = parse(missing.text)
    error = fragment.one("p", class_="review-error")
    assert error.attrs["data-status"] == "400"
    assert "say why the proposal is rejected" in error.text()
    form = fragment.one("form", class_="review")  # kept, with what was typed
    assert "checked" in form.one("input", value="reject").attrs
    assert form.one("input", name="version").attrs["value"] == "3.0.0"
    assert not form.find("input", name="token") and team not in missing.text
    assert state(registry, proposal_id) == before

    rejected = review(client, proposal_id, decision="reject", comment="owners are optional",
                      csrf=maya)
    status = parse(rejected.text).one("section", id="proposal-status")
    assert status.one("span", class_="status").text() == "rejected"
    assert "owners are optional" in status.text() and not status.find("a", class_="new-version")
    assert registry.store.proposals.get_proposal(proposal_id).comment == "owners are optional"
    assert state(registry, proposal_id)[1:] == before[1:]  # no new version


@pytest.mark.parametrize(("who", "status", "message"), [
    ("outsider", 403, "reviewing in 'team' needs the 'maintainer' role"),
    ("", 401, "reviewing in 'team' needs you to sign in"),
    ("maya without the CSRF token", 403,
     "this request changes state and lacks the session's CSRF token"),
])
def test_a_refused_review_gets_the_message_in_the_fragment_and_changes_nothing(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str],
        who: str, status: int, message: str) -> None:
    proposal_id = propose(client, agent, [OWNER_STEP])
    before = state(registry, proposal_id)
    add_maintainer(registry)
    registry.add_user("outsider", password=PASSWORD)
    csrf = sign_in(client, who.split()[0]) if who else ""
    response = review(client, proposal_id, decision="accept", comment="",
                      csrf=csrf if who == "outsider" else "")
    assert response.status_code == status
    assert "<html" not in response.text and "text/html" in response.headers["content-type"]
    fragment = parse(response.text)
    assert fragment.one("p", class_="review-error").text().startswith(message)
    assert fragment.one("span", class_="status").text() == "open"
    # The form again for the maintainer; for the others what they may do instead.
    assert bool(fragment.find("form")) == who.startswith("maya")
    assert state(registry, proposal_id) == before


def test_a_second_review_is_a_conflict_and_a_plain_post_gets_the_whole_page(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str],
        maya: str) -> None:
    proposal_id = propose(client, agent, [OWNER_STEP])
    accepted = review(client, proposal_id, htmx=False, decision="accept", csrf=maya)
    assert accepted.status_code == 200 and "<html" in accepted.text  # works without JS
    assert parse(accepted.text).one("span", class_="status").text() == "accepted"
    # A stale form (another tab) posts again.
    again = review(client, proposal_id, decision="reject", comment="too late", csrf=maya)
    assert again.status_code == 409
    status = parse(again.text).one("section", id="proposal-status")
    assert status.one("span", class_="status").text() == "accepted"
    assert registry.store.proposals.get_proposal(proposal_id).status == "accepted"


def test_private_namespaces_stay_404_for_anonymous_visitors(
        registry: Registry, client: TestClient, team: str, agent: dict[str, str]) -> None:
    proposal_id = propose(client, agent, [OWNER_STEP])
    registry.set_visibility("team", "private")
    url = f"{PAGE}/proposals/{proposal_id}"
    assert client.get(url).status_code == 404
    assert client.get(url, headers=agent).status_code == 404
    assert review(client, proposal_id, decision="accept").status_code == 404
    registry.add_user("outsider", password=PASSWORD)
    outsider = sign_in(client, "outsider")
    assert client.get(url).status_code == 404
    assert review(client, proposal_id, decision="reject", comment="x",
                  csrf=outsider).status_code == 404
    assert client.get(url, headers={"Authorization": f"Bearer {team}"}).status_code == 200
    # A maintainer's session reviews (and sees the answer).
    add_maintainer(registry)
    maya = sign_in(client, "maya")
    assert client.get(url).status_code == 200
    done = review(client, proposal_id, decision="reject", comment="not now", csrf=maya)
    assert done.status_code == 200 and "not now" in done.text


@pytest.mark.slow
def test_a_maintainer_reviews_a_proposal_in_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    from .live import make_token, start_server

    server = start_server(tmp_path / "data")
    api = httpx.Client(base_url=server.url, timeout=30)
    try:
        maintainer, proposer = make_token(server.home, "team"), make_token(server.home, "agents")
        subprocess.run([sys.executable, "-m", "skills_hub.cli", "user", "add", "maya",
                        "--password-stdin", "--display-name", "Maya", "--home", str(server.home)],
                       input=PASSWORD + "\n", capture_output=True, text=True, check=True)
        assert api.put("/api/v1/orgs/team/members/maya", json={"role": "maintainer"},
                       headers={"Authorization": f"Bearer {maintainer}"}).status_code == 200
        md = skill_md("weekly-report", description="Formats the weekly status report.",
                      body=STEPS)
        assert api.post("/api/v1/namespaces/team/skills?version=1.0.0",
                        headers={"Authorization": f"Bearer {maintainer}"},
                        files=[("files", ("SKILL.md", md))]).status_code == 201
        opened = api.post(f"{SKILL}/proposals", headers={"Authorization": f"Bearer {proposer}"},
                          json={"base_version": "1.0.0", "edits": [OWNER_STEP, SCRIPT_EDIT],
                                "reasoning": "reports were missing owners"})
        assert opened.status_code == 201, opened.text
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            url = f"{server.url}{PAGE}/proposals/{opened.json()['id']}"
            page.goto(url)
            # Not signed in: no form, a sign-in link that comes back here.
            assert page.locator("form.review").count() == 0
            page.locator("#proposal-status a.sign-in").click()
            page.get_by_label("Username").fill("maya")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(url)
            assert page.locator("header .review-link").inner_text() == "Review (1)"
            added = page.locator("pre.diff .add")
            assert added.all_inner_texts() == [
                "+2b. Name an owner for each item.",
                "+Keep it short. <script>alert('owned')</script>"]
            assert page.locator("pre.diff .del").all_inner_texts() == ["-Keep it short."]
            page.evaluate("window.sameDocument = true")  # gone if the page reloads
            status = page.locator("#proposal-status")
            assert page.locator("input[type=password], input[name=token]").count() == 0
            page.get_by_role("radio", name="Reject").check()  # without a comment: refused
            page.get_by_role("textbox", name="Version").fill("1.1.0")
            page.get_by_role("button", name="Submit review").click()
            status.locator(".review-error").wait_for(timeout=10_000)
            error = status.locator(".review-error").inner_text()
            assert "say why the proposal is rejected" in error
            assert page.get_by_role("radio", name="Reject").is_checked()  # what was typed is kept
            assert page.get_by_role("textbox", name="Version").input_value() == "1.1.0"
            page.get_by_label("Accept").check()
            page.get_by_label("Comment").fill("owners help")
            page.get_by_role("textbox", name="Version").fill("")
            page.get_by_role("button", name="Submit review").click()
            status.locator(".status.accepted").wait_for(timeout=30_000)
            assert page.evaluate("window.sameDocument") is True  # swapped in place by htmx
            assert status.locator("a.new-version").inner_text() == "v1.0.1"
            assert page.locator("header .review-link").inner_text() == "Review (0)"
            page.screenshot(path=str(tmp_path / "proposal.png"), full_page=True)
            browser.close()
        assert dialogs == []  # the <script> in the diff never ran
        latest = api.get(f"{SKILL}/versions/latest").json()
        assert latest["version"] == "1.0.1"
        assert "2b. Name an owner" in api.get(f"{SKILL}/versions/1.0.1/files/SKILL.md").text
    finally:
        api.close()
        server.stop()
