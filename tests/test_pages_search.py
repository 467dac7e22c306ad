"""The search page (issue 14): facets with counts, paging, keyboard navigation, the mode and
the score breakdown.

In-process: facet counts against a real registry with several namespaces, tags, verdicts
and trust levels equal what each facet's own search returns; a private namespace is never
counted for an outsider and is for a member; facet links keep the other filters; paging
reaches every result once; bad filters are a 400 page. In Chromium (slow): typing, the
keys, a facet click, paging with back and forward, no sideways scrolling at 390 px.
Screenshots (1280 and 390 px, light and dark) go to $SKILLS_HUB_SHOTS when it is set.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, OPERATOR, Principal
from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle

from .test_pages_learning import Node, parse
from .test_pages_look import CHROMIUM_ARGS, CONTRAST_JS, UNLABELLED_JS
from .test_pages_team import PASSWORD, sign_in

SHELLY = b"import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
FRAGMENT = {"HX-Request": "true"}

# (namespace, name, tags, description); `vault` is private, cara is its member.
CATALOGUE = [
    ("team", "csv-chart", "csv, charts", "Draws a chart from a CSV file."),
    ("team", "csv-report", "csv, reports", "Writes a weekly report from CSV rows."),
    ("team", "lint-python", "python, lint", "Lints Python code before a commit."),
    ("team", "docker-deploy", "docker", "Deploys a Docker image to the staging host."),
    ("team", "csv-blocked", "csv", "A CSV helper that was blocked as spam."),
    ("data", "csv-clean", "csv, cleaning", "Cleans a CSV file; trims, dedupes and fixes dates."),
    ("data", "csv-merge", "CSV", "Merges two CSV files on a key column."),
    ("data", "sql-report", "sql, reports", "Writes a report from an SQL query."),
    ("vault", "csv-secret", "csv, secret", "Does the private CSV thing for the vault team."),
]
CAUTION = {("team", "csv-report")}       # a shell=True script: the checks flag it
VERIFIED = {("data", "csv-clean")}
BLOCKED = {("team", "csv-blocked")}


def skill_md(name: str, description: str, tags: str, extra: str = "") -> bytes:
    return (f"---\nname: {name}\ndescription: {description}\nlicense: Apache-2.0\n"
            f"metadata:\n  tags: \"{tags}\"\n---\n# {name}\n\n{description}\n{extra}").encode()


def build_catalogue(registry: Registry, many: int = 0) -> None:
    """The CATALOGUE, with `vault` private (lead owns it, cara reads it, bob is an outsider),
    and `many` more skills in `bulk` that all match "bulk"."""
    for user in ("lead", "cara", "bob"):
        registry.add_user(user, password=PASSWORD, display_name=user.title())
    for org in ("team", "data", "vault", "bulk"):
        registry.create_org(registry.account_principal("lead"), org)
    lead = registry.account_principal("lead")  # now with its roles in the new orgs
    registry.set_member(lead, "vault", "cara", "reader")
    registry.set_visibility("vault", "private", lead)
    for namespace, name, tags, description in CATALOGUE:
        files = {"SKILL.md": skill_md(name, description, tags)}
        if (namespace, name) in CAUTION:
            files["scripts/run.py"] = SHELLY
        registry.publish(namespace, Bundle(files), principal=lead)
        if (namespace, name) in VERIFIED:
            registry.store.outcomes.change_trust(namespace, name, "community", "verified", "test",
                                                 "test")
        if (namespace, name) in BLOCKED:
            registry.set_trust(namespace, name, "blocked", "spam", OPERATOR)
    for i in range(many):
        registry.publish("bulk", Bundle({"SKILL.md": skill_md(
            f"bulk-{i:03d}", f"Bulk helper number {i} for the paging tests.",
            "bulk, " + ("even" if i % 2 == 0 else "odd"))}), principal=lead)


@pytest.fixture
def catalogue(registry: Registry) -> Registry:
    build_catalogue(registry)
    return registry


# -- reading the page --------------------------------------------------------------------


def fragment(client: TestClient, url: str) -> Node:
    response = client.get(url, headers=FRAGMENT)
    assert response.status_code == 200, response.text
    assert "<html" not in response.text
    return parse(response.text).one("div", id="results")


def result_links(root: Node) -> list[str]:
    found = root.find("ul", id="result-list")
    return [a.attrs["href"] or "" for a in found[0].find("a", class_="name")] if found else []


def every_result(client: TestClient, url: str) -> list[str]:
    """Every result of a search, following its Next links to the end."""
    seen: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        root = fragment(client, next_url)
        seen += result_links(root)
        nexts = root.find("a", rel="next")
        next_url = urljoin(url, nexts[0].attrs["href"] or "") if nexts else None
        assert len(seen) < 1000
    return seen


@dataclass(frozen=True)
class Facet:
    key: str
    value: str
    count: int
    href: str
    on: bool


def facets(root: Node) -> list[Facet]:
    out = []
    for link in root.find("a", class_="facet-value"):
        key, value = (link.attrs["data-focus"] or "").split("=", 1)
        count = int(link.one("span", class_="n").text())
        out.append(Facet(key, value, count, link.attrs["href"] or "",
                         link.attrs.get("aria-current") == "true"))
    return out


def query_of(href: str) -> dict[str, str]:
    parts = urlsplit(href)
    assert parts.path == "/search", href
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def service_names(registry: Registry, principal: Principal, query: str, **filters: str
                  ) -> list[str]:
    """What the search service returns for the same search, every page of it."""
    names, cursor = [], None
    while True:
        page = registry.search(query, principal=principal, limit=100, cursor=cursor,
                               **filters)  # type: ignore[arg-type]
        names += [f"/{r.skill.namespace}/{r.skill.name}" for r in page.results.results]
        if (cursor := page.next_cursor) is None:
            return names


# -- facets ------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "csv", "report", "csv&tag=csv", "csv&namespace=team"])
def test_each_facet_count_is_what_choosing_it_returns(client: TestClient,
                                                      catalogue: Registry, query: str) -> None:
    root = fragment(client, f"/search?q={query}")
    shown = facets(root)
    assert shown, "no facet offered"
    results = every_result(client, f"/search?q={query}")
    for facet in shown:
        assert facet.count > 0
        narrowed = every_result(client, facet.href) if not facet.on else results
        assert len(narrowed) == facet.count, facet
        assert len(set(narrowed)) == len(narrowed)
        assert set(narrowed) <= set(results) or not facet.on
    # the namespace counts add up to every result; nothing outside the results is counted
    by_namespace = Counter(href.split("/")[1] for href in results)
    assert {f.value: f.count for f in shown if f.key == "namespace"} == dict(by_namespace)
    total = parse(client.get(f"/search?q={query}").text).one("p", id="result-count").text()
    assert re.match(rf"^{len(results)} results?\b", total), total


def test_counts_match_the_service_and_leave_out_empty_values(client: TestClient,
                                                           catalogue: Registry) -> None:
    shown = {(f.key, f.value): f.count for f in facets(fragment(client, "/search?q=csv"))}
    for (key, value), count in shown.items():
        assert len(service_names(catalogue, ANONYMOUS, "csv", **{key: value})) == count
    assert shown[("namespace", "team")] == 2 and shown[("namespace", "data")] == 2
    assert shown[("tag", "csv")] == 4            # "CSV" is the same tag as "csv"
    assert shown[("verdict", "caution")] == 1 and shown[("trust", "verified")] == 1
    # no value with no result: nothing dangerous, nothing blocked, no private namespace
    assert ("verdict", "dangerous") not in shown and ("trust", "blocked") not in shown
    assert ("namespace", "vault") not in shown and ("tag", "secret") not in shown
    assert ("namespace", "bulk") not in shown


def test_a_private_namespace_is_counted_only_for_its_members(client: TestClient,
                                                            catalogue: Registry) -> None:
    for who in (None, "bob"):
        if who:
            sign_in(client, who)
        page = client.get("/search?q=csv")
        assert page.status_code == 200
        assert "vault" not in page.text and "secret" not in page.text, who
        shown = {(f.key, f.value): f.count for f in facets(fragment(client, "/search?q=csv"))}
        assert shown[("tag", "csv")] == 4
        # asking for the private namespace by name finds what a missing one finds: nothing
        for namespace in ("vault", "no-such-namespace"):
            root = fragment(client, f"/search?q=csv&namespace={namespace}")
            assert not result_links(root) and not facets(root)
    assert client.get("/vault").status_code == 404  # bob is signed in: still an outsider
    sign_in(client, "cara")
    shown = {(f.key, f.value): f.count for f in facets(fragment(client, "/search?q=csv"))}
    assert shown[("namespace", "vault")] == 1 and shown[("tag", "csv")] == 5
    assert shown[("tag", "secret")] == 1
    assert every_result(client, "/search?q=csv&namespace=vault") == ["/vault/csv-secret"]
    cara = catalogue.account_principal("cara")
    assert len(service_names(catalogue, cara, "csv")) == 5


def test_facet_links_keep_the_query_the_other_filters_the_sort_and_the_mode(
        client: TestClient, catalogue: Registry) -> None:
    url = "/search?q=csv&tag=csv&sort=recent&mode=keyword"
    root = parse(client.get(url).text)
    for facet in facets(root):
        fields = query_of(facet.href)
        assert fields["q"] == "csv" and fields["sort"] == "recent"
        assert fields["mode"] == "keyword" and "cursor" not in fields
        if facet.key == "tag":     # the chosen tag, alone in its facet: its link removes it
            assert facet.on and "tag" not in fields
        else:
            assert fields["tag"] == "csv" and fields[facet.key] == facet.value
    chosen = [f for f in facets(root) if f.on]
    assert [(f.key, f.value) for f in chosen] == [("tag", "csv")]
    assert {f.key for f in facets(root)} == {"namespace", "tag", "verdict", "trust"}
    chip = root.one("a", class_="filter-chip")
    assert "Tag: csv" in chip.text()
    assert query_of(chip.attrs["href"] or "") == {"q": "csv", "sort": "recent",
                                                  "mode": "keyword"}
    # the chosen filter travels with the form, so typing and the sort keep it
    hidden = root.one("input", type="hidden", name="tag")
    assert hidden.attrs["value"] == "csv" and hidden.attrs["form"] == "search-form"
    assert root.one("form", id="search-form")
    # picking a second facet shows two chips and a way to clear them all
    two = parse(client.get(url + "&namespace=data").text)
    assert len(two.find("a", class_="filter-chip")) == 2
    clear = query_of(two.one("a", class_="filter-clear").attrs["href"] or "")
    assert clear == {"q": "csv", "sort": "recent", "mode": "keyword"}


def test_the_mode_and_the_score_breakdown_stay(client: TestClient,
                                               catalogue: Registry) -> None:
    root = fragment(client, "/search?q=csv+chart")
    assert root.one("span", class_="mode").text() == "keyword"
    scores = root.find("details", class_="score")
    assert len(scores) == len(result_links(root)) >= 1
    assert "relevance" in scores[0].text() and "bm25" in scores[0].text()
    page = parse(client.get("/search?q=csv&mode=semantic").text)
    mode = page.one("select", name="mode")
    assert [o.attrs.get("value") for o in mode.find("option") if "selected" in o.attrs] == \
        ["semantic"]
    assert page.one("span", class_="mode").text().startswith("keyword")  # model is off


# -- paging ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/search?q=bulk", "/search?q=bulk&sort=installs",
                                 "/search?namespace=bulk", "/search?namespace=bulk&sort=rating",
                                 "/search?q=bulk&tag=even"])
def test_paging_reaches_every_result_exactly_once(client: TestClient, registry: Registry,
                                                  url: str) -> None:
    build_catalogue(registry, many=120)
    expected = service_names(registry, ANONYMOUS, **_search_args(url))
    seen = every_result(client, url)
    assert len(seen) == len(expected) == len(set(seen))
    assert set(seen) == set(expected) and len(seen) >= 60


def _search_args(url: str) -> dict[str, str]:
    fields = query_of(url)
    return {"query": fields.pop("q", ""), **fields}


def test_pages_say_where_they_are_and_go_back_and_forth(client: TestClient,
                                                       registry: Registry) -> None:
    build_catalogue(registry, many=120)
    first = fragment(client, "/search?q=bulk&sort=recent&mode=keyword")
    assert first.one("p", id="result-count").text().startswith("Results 1–50 of 120")
    assert not first.find("a", rel="prev")
    second_url = first.one("a", rel="next").attrs["href"] or ""
    fields = query_of(second_url)
    assert (fields["q"], fields["sort"], fields["mode"]) == ("bulk", "recent", "keyword")
    second = fragment(client, second_url)
    assert second.one("p", id="result-count").text().startswith("Results 51–100 of 120")
    assert second.one("span", class_="position").text() == "51–100 of 120"
    third = fragment(client, second.one("a", rel="next").attrs["href"] or "")
    assert third.one("p", id="result-count").text().startswith("Results 101–120 of 120")
    assert not third.find("a", rel="next")
    back = fragment(client, third.one("a", rel="prev").attrs["href"] or "")
    assert result_links(back) == result_links(second)
    back_to_first = back.one("a", rel="prev").attrs["href"] or ""
    assert "cursor" not in query_of(back_to_first)
    assert result_links(fragment(client, back_to_first)) == result_links(first)


def test_the_fragment_the_full_page_and_a_history_restore(client: TestClient,
                                                          catalogue: Registry) -> None:
    part = client.get("/search?q=csv", headers=FRAGMENT)
    assert "<html" not in part.text and 'id="results"' in part.text
    assert "HX-Request" in part.headers["vary"]
    restore = client.get("/search?q=csv", headers={**FRAGMENT,
                                                    "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text and 'id="search-box"' in restore.text
    page = parse(client.get("/search?q=csv").text)
    assert page.find("script", src="/static/search.js")
    box = page.one("input", id="search-box")
    assert box.attrs["hx-replace-url"] == "true" and box.attrs["aria-controls"] == "results"
    assert page.one("p", id="search-status").attrs["aria-live"] == "polite"
    for link in page.find("a", class_="facet-value"):
        assert link.attrs["hx-get"] == link.attrs["href"] and link.attrs["hx-push-url"] == "true"
    assert client.get("/static/search.js").status_code == 200


@pytest.mark.parametrize("query, message", [
    ("verdict=bogus", "verdict"), ("trust=famous", "trust"), ("sort=best", "sort"),
    ("mode=psychic", "mode"), ("cursor=!!", "cursor"), ("tag=a,b", "tag"),
    ("q=" + "x" * 1001, "longer than"),
])
def test_a_bad_filter_is_a_clear_400_page(client: TestClient, catalogue: Registry,
                                          query: str, message: str) -> None:
    for headers in ({}, FRAGMENT):
        page = client.get(f"/search?{query}", headers=headers)
        assert page.status_code == 400, (query, page.status_code)
        assert "text/html" in page.headers["content-type"]
        error = parse(page.text).one("p", class_="error")
        assert message in error.text(), error.text()


def test_a_cursor_of_another_search_is_refused(client: TestClient, registry: Registry) -> None:
    build_catalogue(registry, many=60)
    nxt = fragment(client, "/search?q=bulk").one("a", rel="next").attrs["href"] or ""
    cursor = query_of(nxt)["cursor"]
    page = client.get("/search", params={"q": "bulk", "tag": "even", "cursor": cursor})
    assert page.status_code == 400 and "another search" in page.text


# -- in Chromium ---------------------------------------------------------------------------


@dataclass
class Browser:
    url: str
    browser: Any
    shots: Path

    def page(self, width: int = 1280, scheme: str = "light") -> Any:
        context = self.browser.new_context(viewport={"width": width, "height": 900},
                                           color_scheme=scheme)
        return context.new_page()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    from .live import module_home, start_server

    with module_home() as tmp:
        shots = Path(os.environ.get("SKILLS_HUB_SHOTS") or Path(tmp) / "shots")
        shots.mkdir(parents=True, exist_ok=True)
        home = Path(tmp) / "data"
        registry = Registry(Settings(home=home, seed=False, semantic="off"))
        registry.start()
        build_catalogue(registry, many=70)
        registry.close()
        server = start_server(home)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
                yield Browser(server.url, browser, shots)
                browser.close()
        finally:
            server.stop()


def type_query(page: Any, text: str) -> None:
    box = page.locator("#search-box")
    box.fill("")
    box.press_sequentially(text, delay=20)
    page.wait_for_function("(q) => new URL(location.href).searchParams.get('q') === q", arg=text)
    page.wait_for_function("(q) => document.querySelector('#result-count')"
                           " && document.querySelector('#result-count').textContent.includes(q)",
                           arg=text)


def showing(page: Any, start: str) -> None:
    """Wait until the results' count starts with `start` (a function, not a string: the
    page's CSP forbids the eval a string predicate needs on every poll)."""
    page.wait_for_function("(s) => (document.getElementById('result-count') || {})"
                           ".textContent?.startsWith(s)", arg=start)


def active(page: Any) -> str:
    return str(page.evaluate("""() => { const e = document.activeElement;
        return e.id || e.getAttribute('href') || e.tagName.toLowerCase(); }"""))


@pytest.mark.slow
def test_typing_shows_results_and_the_keys_move_through_them(chromium: Browser) -> None:
    page = chromium.page()
    page.goto(chromium.url + "/search")
    type_query(page, "csv")
    links = page.locator("#result-list a.name")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert "/team/csv-chart" in hrefs and "/vault/csv-secret" not in hrefs
    page.wait_for_function("() => document.getElementById('search-status').textContent")
    assert "results for “csv”" in page.locator("#search-status").inner_text()
    assert page.locator("details.facets").get_attribute("open") is not None  # wide: open
    page.locator("#search-box").press("ArrowDown")
    assert active(page) == hrefs[0]
    page.keyboard.press("ArrowDown")
    assert active(page) == hrefs[1]
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert active(page) == "search-box"
    page.keyboard.press("End")              # in the box End stays in the text
    assert active(page) == "search-box"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("End")
    assert active(page) == hrefs[-1]
    page.keyboard.press("Escape")
    assert active(page) == "search-box"
    page.locator("h1").click()
    page.keyboard.press("/")
    assert active(page) == "search-box"
    assert page.locator("#search-box").input_value() == "csv"   # "/" was not typed
    page.locator("header input[type=search]").focus()          # another field: "/" is text
    page.keyboard.type("a/b")
    assert page.locator("header input[type=search]").input_value().endswith("a/b")
    page.locator("#search-box").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{hrefs[0]}")
    assert page.locator("article > h1").inner_text().startswith(hrefs[0].rsplit("/", 1)[1])
    page.context.close()


@pytest.mark.slow
def test_a_facet_narrows_and_its_chip_widens_again(chromium: Browser) -> None:
    page = chromium.page()
    page.goto(chromium.url + "/search?q=csv&sort=recent")
    before = page.locator("#result-list a.name").count()
    facet = page.locator('a.facet-value[data-focus="namespace=data"]')
    count = int(facet.locator(".n").inner_text())
    facet.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**namespace=data**")
    page.wait_for_function("(n) => document.querySelectorAll('#result-list a.name').length === n",
                           arg=count)
    hrefs = page.eval_on_selector_all("#result-list a.name", "(as) => as.map(a => a.pathname)")
    assert count < before and all(h.startswith("/data/") for h in hrefs)
    assert "sort=recent" in page.url and "q=csv" in page.url
    chosen = page.locator('a.facet-value[data-focus="namespace=data"]')
    assert chosen.get_attribute("aria-current") == "true"
    assert active(page) == chosen.get_attribute("href")   # focus stays on the facet
    type_query(page, "csv clean")                          # typing keeps the filter
    assert "namespace=data" in page.url
    page.locator("a.filter-chip").click()
    page.wait_for_function("() => !location.search.includes('namespace=')")
    page.wait_for_function("() => !document.querySelector('a.filter-chip')")
    page.context.close()


@pytest.mark.slow
def test_next_and_previous_pages_with_back_and_forward(chromium: Browser) -> None:
    page = chromium.page()
    page.goto(chromium.url + "/search?q=bulk")
    first = page.locator("#result-list a.name").first.get_attribute("href")
    assert page.locator("#result-count").inner_text().startswith("Results 1–50 of 70")
    page.locator("a[rel=next]").click()
    page.wait_for_url("**cursor=**")
    showing(page, "Results 51–70")
    second = page.locator("#result-list a.name").first.get_attribute("href")
    assert second != first
    page.go_back()
    page.wait_for_function("() => !location.search.includes('cursor=')")
    showing(page, "Results 1–50")
    assert page.locator("#result-list a.name").first.get_attribute("href") == first
    page.go_forward()
    showing(page, "Results 51–70")
    page.locator("a[rel=prev]").click()
    showing(page, "Results 1–50")
    assert "cursor" not in page.url
    page.context.close()


@pytest.mark.slow
def test_the_page_fits_a_phone_reads_in_both_schemes_and_is_labelled(
        chromium: Browser) -> None:
    problems = []
    views = {"csv": "/search?q=csv", "chosen": "/search?q=csv&tag=csv&namespace=team",
             "paged": "/search?q=bulk", "none": "/search?q=zzzz"}
    for scheme in ("light", "dark"):
        for width in (390, 1280):
            page = chromium.page(width, scheme)
            for name, path in views.items():
                page.goto(chromium.url + path)
                details = page.locator("details.facets")
                if details.count():
                    is_open = details.get_attribute("open") is not None
                    assert is_open == (width == 1280), (name, width)
                    if width == 390:
                        page.locator("details.facets > summary").click()
                scroll, inner = page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]")
                if scroll > inner:
                    problems.append(f"{name} at {width} px, {scheme}: {scroll} > {inner}")
                if low := page.evaluate(CONTRAST_JS):
                    problems.append(f"{name} {width} {scheme} contrast: {low}")
                if unlabelled := page.evaluate(UNLABELLED_JS):
                    problems.append(f"{name}: unlabelled {unlabelled}")
                page.screenshot(path=str(chromium.shots / f"search-{name}-{width}-{scheme}.png"),
                                full_page=True)
            page.context.close()
    assert not problems
