"""Accessibility of every page (issue 14): axe-core, the accessibility checker from npm, run
inside each page in a real headless Chromium at 1280 and 390 px, in the light and the dark
scheme, as the person the page is for; no serious or critical violation.

Also the machinery the browser flows (test_flows.py) share: one seeded world (an org with a
private namespace under required review, a skill with versions, evidence, a proposal, files
and a pending release), a live server on it, Chromium, signed-in browser contexts, and axe.
A page is one row of PAGES; screenshots of each go to $SKILLS_HUB_SHOTS/a11y (`make
screenshots`).

A missing part (Chromium, Playwright, axe-core from `make clients`) fails the tests in CI
(CI=true), where everything must run, and skips them elsewhere with how to install it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from starlette.routing import Match, Route

from skills_hub.config import Settings
from skills_hub.resources import resource_dir
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle

from . import live
from .conftest import send_outcomes, skill_md, token_principal
from .live import CLIENTS, Server, start_server
from .test_demands import plant_demands
from .test_pages_look import CHROMIUM_ARGS, screenshot, shots_folder
from .test_pages_team import PASSWORD

AXE = CLIENTS / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 390)
SCHEMES = ("light", "dark")
SERIOUS = ("serious", "critical")  # the impacts that fail a page
ORG = "northwind"     # its namespace is private, under required review, two-person rule
SKILL = "weekly-report"
# Who is who in the world: an owner, a maintainer, a publisher, a reader, and two people in
# no org (dave is to be added, `outsider` stays out).
PEOPLE = {"lead": "owner", "cara": "maintainer", "bob": "publisher", "rita": "reader",
          "dave": None, "outsider": None}
# The person each kind of visitor in PAGES is.
AS = {"anonymous": None, "owner": "lead", "member": "cara", "reader": "rita",
      "outsider": "outsider"}

STEPS = ("## Steps\n\n1. Collect the updates.\n2. Group them by project.\n"
         "3. Send the report.\n\n## Notes\n\nKeep it short.\n")
SCRIPT = (b'"""Summarise the week\'s updates."""\nimport sys\n\n\n'
          b'def main(path: str) -> int:\n    with open(path) as f:\n'
          b'        return len(f.readlines())  # one update per line\n\n\n'
          b'if __name__ == "__main__":\n    sys.exit(main(sys.argv[1]))\n')
NOTES = b"# Notes\n\nSome **bold** text, a list:\n\n- one\n- two\n\nand a [link](/).\n"


def missing(what: str, how: str) -> NoReturn:
    """A browser test without one of its parts: a failure in CI, where everything must run;
    elsewhere a skip that says how to install the part."""
    message = f"{what} is missing: {how}"
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        missing("chromium", "run `make system-deps` (Debian package chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright", "run `make test` (it installs the test extra)")
    return path


def axe_source() -> str:
    if not AXE.is_file():
        missing(f"axe-core ({AXE})", "run `make clients` (pinned in tests/clients/)")
    return AXE.read_text()


# -- the world -----------------------------------------------------------------------------


@dataclass
class World:
    """What build_world made: ids and versions the pages' paths need."""

    proposal: str = ""
    pending: str = ""     # bob's release of weekly-report 1.2.0, waiting for review
    invitation: str = ""  # a link's secret to join the org as a reader
    released: list[str] = field(default_factory=list)

    def path(self, template: str) -> str:
        return template.format(org=ORG, skill=SKILL, proposal=self.proposal,
                               pending=self.pending, invitation=self.invitation)


def skill_files(note: str = "") -> dict[str, bytes]:
    md = skill_md(SKILL, description="Formats the weekly status report for the team.",
                  body=STEPS + (f"\n{note}\n" if note else ""))
    return {"SKILL.md": md, "scripts/summary.py": SCRIPT, "references/NOTES.md": NOTES}


def build_world(home: Path) -> World:
    """The seed, and org `northwind` owned by lead (cara maintains, bob publishes, rita
    reads; dave and `outsider` are in no org): weekly-report 1.0.0 and 1.1.0 with two weeks
    of outcomes and an open proposal; then northwind becomes private under required review
    with the two-person rule, and bob's 1.2.0 waits for review. Built through the services,
    in-process, before the server starts on the same home."""
    registry = Registry(Settings(home=home, seed=True, semantic="off"))
    registry.start(resource_dir("seed"))
    try:
        for name in PEOPLE:
            registry.add_user(name, password=PASSWORD, display_name=name.title())
        registry.create_org(registry.account_principal("lead"), ORG)
        lead = registry.account_principal("lead")
        for name, role in PEOPLE.items():
            if role not in (None, "owner"):
                registry.set_member(lead, ORG, name, role)
        world = World(released=["1.0.0", "1.1.0"])
        for version in world.released:
            registry.publish(ORG, Bundle(skill_files(f"Release {version}.")), principal=lead,
                             version=version)
        now = datetime.now(UTC)
        for day in range(14, 0, -2):
            version = "1.0.0" if day > 7 else "1.1.0"
            send_outcomes(registry, ORG, SKILL, ["success"] * 6 + ["failure"] * (day % 3),
                          version=version, at=now - timedelta(days=day), clients=3)
        world.proposal = registry.propose(ORG, SKILL, {
            "base_version": "1.1.0", "reasoning": "agents asked for owners twice",
            "evidence": {"failures": 2, "samples": "who owns this item?\nno owner named"},
            "edits": [{"op": "insert_after", "target": "2. Group them by project.\n",
                       "content": "2b. Name an owner for each item.\n"}]},
            token_principal(registry, "agents")).proposal.id
        registry.set_release_policy(lead, ORG, "review", True)
        registry.set_visibility(ORG, "private", lead)
        registry.publish(ORG, Bundle(skill_files("Release 1.2.0 names owners.")),
                         principal=registry.account_principal("bob"), version="1.2.0")
        row = registry.store.releases.pending_release(ORG, SKILL, "1.2.0")
        assert row is not None
        world.pending = row.id
        world.invitation = registry.invite(lead, ORG, "reader")
        plant_demands(registry, ORG)  # demand 1: the registry's, answered; 2: northwind's
        return world
    finally:
        registry.close()


@dataclass
class Hub:
    """A live server on the world, Chromium, and each person's signed-in browser state."""

    server: Server
    world: World
    browser: Any
    axe: str
    shots: Path | None       # only when asked ($SKILLS_HUB_SHOTS): they take a while
    states: dict[str, Any] = field(default_factory=dict)
    pages: dict[str | None, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def context(self, who: str | None, width: int = 1280, scheme: str = "light") -> Any:
        """A browser context signed in as `who` (a username; None: nobody)."""
        context = self.browser.new_context(
            viewport={"width": width, "height": 900}, color_scheme=scheme,
            storage_state=self.state(who) if who else None)
        context.set_default_timeout(15_000)
        return context

    def shoot(self, page: Any, name: str, widths: tuple[int, ...] = WIDTHS) -> None:
        """Screenshots of the page as it is now at each width, when they are asked for."""
        if self.shots is not None:
            screenshot(page, self.shots, name, widths)

    def page(self, who: str | None) -> Any:
        """One page per person for the whole module (its size and scheme set by the test)."""
        if who not in self.pages:
            self.pages[who] = self.context(who).new_page()
        return self.pages[who]

    def state(self, username: str) -> Any:
        """A browser's state after the JSON sign-in (the session cookie the form also
        gives), made once per person, so contexts start signed in without the form."""
        if username not in self.states:
            context = self.browser.new_context()
            answer = context.request.post(self.url + "/api/v1/auth/session",
                                          data={"username": username, "password": PASSWORD})
            assert answer.ok, answer.text()
            self.states[username] = context.storage_state()
            context.close()
        return self.states[username]


@contextmanager
def open_hub(topic: str, *, port: int | None = None, **env: str) -> Iterator[Hub]:
    """The world on a live server (on `port` if given; with `env`'s SKILLS_HUB_* settings),
    and Chromium; screenshots to $SKILLS_HUB_SHOTS/<topic> when it is set. For a
    module-scoped fixture: the environment is made hermetic as conftest.hermetic does."""
    chromium, axe = chromium_path(), axe_source()
    from playwright.sync_api import sync_playwright

    # Screenshots take a while: only when asked for (`make screenshots`).
    asked = bool(os.environ.get("SKILLS_HUB_SHOTS"))
    with live.module_home() as tmp, pytest.MonkeyPatch.context() as patch:
        shots = shots_folder(topic, tmp) if asked else None
        for key, value in env.items():
            patch.setenv(key, value)
        world = build_world(tmp / "data")
        # on `port` when an OpenID provider already redirects there
        server = start_server(tmp / "data", port=port)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                yield Hub(server, world, browser, axe, shots)
                browser.close()
        finally:
            server.stop()


# -- axe -----------------------------------------------------------------------------------

# axe.run over the document less the `exclude` selectors; the serious and critical
# violations, each with the nodes that break it.
AXE_RUN = """async ([exclude, impacts]) => {
  const context = exclude.length ? {include: [document], exclude: exclude.map((s) => [s])}
                                 : document;
  const found = await axe.run(context, {resultTypes: ['violations']});
  return found.violations.filter((v) => impacts.includes(v.impact))
    .map((v) => ({id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
                  nodes: v.nodes.map((n) => ({target: n.target.join(' '), html: n.html,
                                              why: n.failureSummary}))}));
}"""


def axe_violations(page: Any, source: str,
                   exclude: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The page's serious and critical axe violations as (rule id, what to fix: help,
    where as a selector, the element and axe's summary). axe is evaluated into the page over
    the DevTools protocol, so the page's Content-Security-Policy stays as people get it."""
    if page.evaluate("typeof window.axe") != "object":
        page.evaluate(source)
    found = []
    for v in page.evaluate(AXE_RUN, [list(exclude), list(SERIOUS)]):
        nodes = "\n".join(f"    at {n['target']}: {n['html'][:300]}\n      "
                          + (n["why"] or "").replace("\n", "\n      ") for n in v["nodes"])
        found.append((v["id"], f"{v['impact']} {v['id']}: {v['help']} ({v['url']})\n{nodes}"))
    return found


# -- every page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A page as one kind of visitor sees it. `path` may name {org}, {skill}, {proposal} and
    {pending} (World.path); `ready` is what to wait for before checking (a page that builds
    itself with a script); `exclude` are regions axe leaves out, only third-party markup we
    cannot change, each with its reason beside the row."""

    name: str
    path: str
    who: str = "anonymous"  # a key of AS
    status: int = 200
    ready: str = "main"
    exclude: tuple[str, ...] = ()


FILES = "/{org}/{skill}/v/1.1.0/files"
PAGES = (
    Page("home", "/"),
    Page("home-member", "/", "member"),
    Page("search", "/search?q=report", "member"),
    Page("search-anonymous", "/search?q=csv"),
    Page("namespace", "/{org}", "member"),
    Page("skill", "/{org}/{skill}", "member"),
    Page("skill-public", "/examples/csv-analysis"),
    Page("version", "/{org}/{skill}/v/1.0.0", "member"),
    Page("file-markdown", FILES + "/references/NOTES.md", "member"),
    Page("file-skill-md", FILES + "/SKILL.md", "member"),
    Page("file-code", FILES + "/scripts/summary.py", "member"),
    Page("proposal", "/{org}/{skill}/proposals/{proposal}", "member"),
    Page("review", "/review", "member"),
    Page("diff-split", "/{org}/{skill}/diff?from=1.0.0&to=1.1.0&view=split", "member"),
    Page("diff", "/{org}/{skill}/diff/1.0.0...1.1.0", "member"),
    Page("propose", "/{org}/{skill}/propose", "member"),
    Page("publish", "/publish", "member"),
    Page("invitation", "/invite/{invitation}"),
    Page("invitation-signed-in", "/invite/{invitation}", "outsider"),
    # The server has an OpenID Connect issuer configured: the local form and the button.
    Page("login", "/login"),
    Page("settings", "/settings", "owner"),
    Page("tokens", "/settings/tokens", "owner"),
    Page("org", "/settings/orgs/{org}", "owner"),
    Page("org-reader", "/settings/orgs/{org}", "reader"),
    Page("audit", "/settings/orgs/{org}/audit", "owner"),
    Page("demands", "/demands?status=all", "member"),
    Page("demand-answered", "/demands/1"),
    Page("demand-private", "/demands/2", "member"),
    Page("demand-private-to-outsider", "/demands/2", "outsider", status=404),
    Page("not-found", "/no-such/skill-here", status=404),
    Page("private-to-outsider", "/{org}/{skill}", "outsider", status=404),
    # Swagger UI's own markup (vendored, static/swagger-ui-bundle-*.js) is left out; our
    # frame around it is checked. In it axe finds (5.35.0) links nested in each operation's
    # expand button (nested-interactive: upstream swagger-api/swagger-ui#9570, open) and
    # its light palette's method badges, version pills and Authorize button under 4.5:1
    # (color-contrast, upstream #7350); the markup is its own, the colours could be
    # overridden in static/api-docs.css.
    Page("docs", "/docs", ready="#swagger-ui .information-container",
         exclude=("#swagger-ui",)),
)
# GET routes that are no page of their own.
NOT_PAGES = {"/api": "a redirect to /docs"}


# Violations known and left to the owner of the file that causes them: (page, axe rule) ->
# what to fix. An entry that no longer happens fails the test, so this list only shrinks.
KNOWN: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    # An OpenID Connect issuer is configured (never asked here): /login shows its button.
    with open_hub("a11y", SKILLS_HUB_OIDC_ISSUER="https://id.example.test",
                  SKILLS_HUB_OIDC_CLIENT_ID="skills-hub",
                  SKILLS_HUB_OIDC_CLIENT_SECRET="not-used-here") as opened:
        yield opened


@pytest.mark.slow
@pytest.mark.parametrize("row", PAGES, ids=[row.name for row in PAGES])
def test_no_serious_or_critical_axe_violation(hub: Hub, row: Page) -> None:
    page = hub.page(AS[row.who])
    answer = page.goto(hub.url + hub.world.path(row.path))
    assert answer is not None and answer.status == row.status, row
    page.wait_for_selector(row.ready)
    found, known = {}, set()
    for width in WIDTHS:
        for scheme in SCHEMES:
            page.set_viewport_size({"width": width, "height": 900})
            page.emulate_media(color_scheme=scheme)
            hub.shoot(page, f"{row.name}-{scheme}", (width,))
            for rule, text in axe_violations(page, hub.axe, row.exclude):
                if (row.name, rule) in KNOWN:
                    known.add((row.name, rule))
                else:
                    found.setdefault(f"{width} px, {scheme}", []).append(text)
    assert not found, f"{row.name} ({row.path} as {row.who}):\n" + "\n".join(
        f"  {where}:\n" + "\n".join(found[where]) for where in found)
    fixed = {key for key in KNOWN if key[0] == row.name} - known
    assert not fixed, f"fixed, take them out of KNOWN: {sorted(fixed)}"


# Modules of GET routes that answer JSON, git or a redirect to a client, never a page.
NOT_PAGE_MODULES = frozenset({"app", "api", "accounts", "clawhub", "marketplace",
                              "skillssh", "wellknown", "gitserver", "observability",
                              "health"})  # web/health.py: the health schedule's JSON route


def test_every_page_has_a_row(app: Any) -> None:
    """Every GET route of a page is in PAGES (a new page is one more row) or NOT_PAGES."""
    paths = [World(proposal="p1", pending="r1", invitation="i1").path(row.path).split("?")[0]
             for row in PAGES]
    uncovered = []
    for route in app.routes:
        if not isinstance(route, Route) or "GET" not in (route.methods or ()):
            continue
        module = getattr(route.endpoint, "__module__", "").rsplit(".", 1)[-1]
        if module in NOT_PAGE_MODULES or route.path in NOT_PAGES:
            continue
        if not any(route.matches({"type": "http", "path": path, "method": "GET"})[0]
                   == Match.FULL for path in paths):
            uncovered.append(f"{route.path} ({module})")
    assert not uncovered, "pages without a row in PAGES: " + ", ".join(uncovered)
