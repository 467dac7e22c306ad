"""Comparing two versions of a skill (issue 14): /{namespace}/{name}/diff/{old}...{new}, per
file (added, removed, changed, renamed, mode changed, binary), unified and side by side,
escaped, capped, read through the access policy; the skill page's compare form and links."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.web import diffs
from skills_hub.web.diffs import FileChange, compare

from .conftest import token_principal
from .test_pages import Elements
from .test_pages_learning import Node, parse
from .test_pages_look import CHROMIUM_ARGS, CONTRAST_JS, UNLABELLED_JS
from .test_pages_team import PASSWORD, sign_in

DIFF = "/team/tool/diff"
# read now: the autouse `hermetic` fixture clears SKILLS_HUB_* before each test
SHOTS = os.environ.get("SKILLS_HUB_SHOTS")


def skill_md(extra: str = "") -> bytes:
    return ("---\nname: tool\ndescription: Formats the weekly report for the team.\n---\n"
            f"# Tool\n\nStep one.\nStep two.\n{extra}").encode()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(100))
OLD = Bundle({"SKILL.md": skill_md(), "scripts/run.sh": b"echo hi\n",
              "scripts/calc.py": b"x = 1\ny = 2\nz = 3\n", "notes/old.md": b"gone soon\n",
              "docs/guide.md": b"the guide\n", "logo.png": PNG})
NEW = Bundle({"SKILL.md": skill_md("Step <script>alert(1)</script> three.\n"),
              "scripts/run.sh": b"echo hi\n", "scripts/calc.py": b"x = 1\ny = 20\nz = 3\nw = 4",
              "docs/manual.md": b"the guide\n", "logo.png": PNG + bytes(50),
              "references/new.md": b"<b>brand</b> new\n"},
             executables=frozenset({"scripts/run.sh"}))


@pytest.fixture
def tool(registry: Registry) -> None:
    """team/tool 1.0.0 (OLD) and 1.1.0 (NEW)."""
    owner = token_principal(registry, "team")
    registry.publish("team", OLD, principal=owner, version="1.0.0")
    registry.publish("team", NEW, principal=owner, version="1.1.0")


def sections(root: Node) -> dict[str, Node]:
    """Each file's section by its path."""
    return {section.one("code", id=f"{section.attrs['id']}-name").text(): section
            for section in root.find("section", class_="diff-file")}


def status(section: Node) -> str:
    return section.one("h2").one("span", class_="status").text()


def cells(row: Node) -> list[str]:
    return [td.text() for td in row.find("td")]


def test_each_changed_file_has_its_status_counts_and_summary_link(
        client: TestClient, tool: None) -> None:
    page = client.get(f"{DIFF}/1.0.0...1.1.0")
    assert page.status_code == 200, page.text
    root = parse(page.text)
    found = sections(root)
    assert {path: status(s) for path, s in found.items()} == {
        "SKILL.md": "changed", "scripts/calc.py": "changed", "logo.png": "changed",
        "notes/old.md": "removed", "references/new.md": "added",
        "docs/manual.md": "renamed", "scripts/run.sh": "mode changed"}
    summary = root.one("ol", class_="diff-summary").find("li")
    assert [li.one("a").text() for li in summary] == sorted(found)
    for li in summary:  # each summary entry links to its file's section
        target = (li.one("a").attrs["href"] or "")[1:]
        assert sections(root)[li.one("a").text()].attrs["id"] == target
    calc = found["scripts/calc.py"]
    assert calc.one("span", class_="add-count").text() == "+2"
    assert calc.one("span", class_="del-count").text() == "−1"
    assert "1 line" not in root.one("p", class_="diff-stats").text()
    assert "7 files changed" in root.one("p", class_="diff-stats").text()
    assert "4 lines added" in root.one("p", class_="diff-stats").text()
    assert "no newline at end of file" in calc.text()
    assert "renamed from docs/guide.md" in found["docs/manual.md"].text()
    assert "mode 100644 → 100755 (now executable)" in found["scripts/run.sh"].text()
    assert "Binary, 110 bytes → 160 bytes" in found["logo.png"].text()
    assert not found["logo.png"].find("table")
    assert "v1.0.0 (" in root.one("p", class_="diff-order").text()
    assert "is the older version" in root.one("p", class_="diff-order").text()


def test_the_unified_view_numbers_lines_and_escapes_file_content(
        client: TestClient, tool: None) -> None:
    page = client.get(f"{DIFF}/1.0.0...1.1.0", params={"view": "unified"})
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<b>brand" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    calc = sections(parse(page.text))["scripts/calc.py"].one("table", class_="unified")
    rows = [(row.attrs.get("class"), cells(row)) for row in calc.find("tr")[1:]]
    assert rows == [
        ("hunk", ["@@ -1,3 +1,4 @@"]),
        ("context", ["1", "1", "x = 1"]), ("del", ["2", "", "-y = 2"]),
        ("add", ["", "2", "+y = 20"]), ("context", ["3", "3", "z = 3"]),
        ("add", ["", "4", "+w = 4no newline at end of file"])]
    html = Elements(page.text)
    assert html.select("a", href=f"{DIFF}/1.0.0...1.1.0?view=split")
    assert html.select("a", href=f"{DIFF}/1.0.0...1.1.0", **{"aria-current": "page"})
    assert not [attrs for _, attrs in html.found if "style" in attrs]  # the CSP's rule


def test_the_side_by_side_view_pairs_removed_and_added_lines(
        client: TestClient, tool: None) -> None:
    page = client.get(f"{DIFF}/1.0.0...1.1.0?view=split")
    assert page.status_code == 200
    root = parse(page.text)
    table = sections(root)["scripts/calc.py"].one("table", class_="split")
    rows = [cells(row) for row in table.one("tbody").find("tr")]
    assert rows[0] == ["@@ -1,3 +1,4 @@"]
    assert rows[1] == ["1", "x = 1", "1", "x = 1"]
    assert rows[2] == ["2", "-y = 2", "2", "+y = 20"]  # the changed line, side by side
    assert rows[4] == ["", "", "4", "+w = 4no newline at end of file"]
    assert "&lt;script&gt;" in page.text and "<script>alert" not in page.text
    assert Elements(page.text).select("a", href=f"{DIFF}/1.0.0...1.1.0?view=split",
                                      **{"aria-current": "page"})
    # the compare form keeps the view
    form = root.one("form", class_="diff-pick")
    assert form.one("input", name="view").attrs["value"] == "split"


def test_either_order_works_and_says_which_is_older(client: TestClient, tool: None) -> None:
    page = client.get(f"{DIFF}/1.1.0...1.0.0")
    assert page.status_code == 200
    root = parse(page.text)
    order = root.one("p", class_="diff-order").text()
    assert "v1.1.0" in order and "is the newer version" in order and "older v1.0.0" in order
    assert root.one("p", class_="diff-order").one("a").attrs["href"] == f"{DIFF}/1.0.0...1.1.0"
    found = sections(root)
    assert status(found["notes/old.md"]) == "added"  # going back, it comes back
    assert status(found["references/new.md"]) == "removed"
    assert status(found["docs/guide.md"]) == "renamed"
    assert "(no longer executable)" in found["scripts/run.sh"].text()
    calc = found["scripts/calc.py"]
    assert (calc.one("span", class_="add-count").text(),
            calc.one("span", class_="del-count").text()) == ("+1", "−2")


def test_identical_versions_say_so(client: TestClient, registry: Registry,
                                   tool: None) -> None:
    same = parse(client.get(f"{DIFF}/1.0.0...1.0.0").text)
    assert "nothing differs" in same.one("p", class_="diff-identical").text()
    assert not same.find("section", class_="diff-file")
    owner = token_principal(registry, "team")
    registry.publish("team", OLD, principal=owner, version="1.2.0")  # back to 1.0.0's files
    page = client.get(f"{DIFF}/1.0.0...1.2.0")
    assert page.status_code == 200
    assert parse(page.text).one("p", class_="diff-identical").text() == \
        "v1.0.0 and v1.2.0 have identical files."
    assert client.get(f"{DIFF}/1.0.0...latest").status_code == 200  # latest is 1.2.0


def test_an_unknown_version_is_a_404_page_naming_it(client: TestClient, tool: None) -> None:
    page = client.get(f"{DIFF}/1.0.0...9.9.9")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    root = parse(page.text)
    assert root.one("p", class_="error").text() == "team/tool has no version '9.9.9'"
    assert "1.1.0, 1.0.0" in root.one("p", class_="hint").text()
    assert client.get("/team/nothing/diff/1.0.0...1.1.0").status_code == 404


@pytest.mark.parametrize("url, code", [
    (f"{DIFF}/1.0.0", 404), (f"{DIFF}/...", 404), (f"{DIFF}/1.0.0...", 404),
    (f"{DIFF}/...1.0.0", 404), (f"{DIFF}/1.0.0....1.1.0", 404),
    (f"{DIFF}/%3Cscript%3E...1.0.0", 404), (f"{DIFF}/1.0.0...{'9' * 5000}", 404),
    (f"{DIFF}/1.0.0...1.1.0%00", 404), (f"{DIFF}/..%2F..%2Fetc...1.0.0", 404),
    (f"{DIFF}/1.0.0...1.1.0?view=sideways", 400), (f"{DIFF}?from=1.0.0", 400),
    (f"{DIFF}?to=1.0.0&view=split", 400), (f"{DIFF}?from=1.0.0&to=1.1.0&view=x", 400),
    ("/docs/tool/diff/1.0.0...1.1.0", 404), ("/admin/tool/diff/1.0.0...1.1.0", 404),
])
def test_bad_version_text_is_a_clear_error_never_a_500(client: TestClient, tool: None,
                                                       url: str, code: int) -> None:
    page = client.get(url, follow_redirects=False)
    assert page.status_code == code, page.text
    assert "text/html" in page.headers["content-type"]
    assert "<script>" not in page.text.split("</head>", 1)[1]
    assert len(page.text) < 20_000  # a long version is quoted cut, not whole


def test_the_compare_form_redirects_to_the_comparison(client: TestClient, tool: None) -> None:
    answer = client.get(DIFF, params={"from": "1.0.0", "to": "1.1.0", "view": "split"},
                        follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{DIFF}/1.0.0...1.1.0?view=split"
    plain = client.get(DIFF, params={"from": "1.1.0", "to": "1.0.0"}, follow_redirects=False)
    assert plain.headers["location"] == f"{DIFF}/1.1.0...1.0.0"


def test_the_skill_page_has_a_compare_form_and_diff_links(client: TestClient,
                                                          registry: Registry,
                                                          tool: None) -> None:
    registry.publish("team", Bundle({**NEW.files, "extra.md": b"more\n"}),
                     principal=token_principal(registry, "team"), version="1.2.0")
    root = parse(client.get("/team/tool").text)
    links = [a.attrs["href"] for a in root.find("a", class_="diff-link")]
    assert links == [f"{DIFF}/1.1.0...1.2.0", f"{DIFF}/1.0.0...1.1.0"]  # none on the first
    form = root.one("aside").one("form", class_="diff-pick")
    assert form.attrs["action"] == DIFF and form.attrs.get("method") == "get"
    chosen = {select.attrs["name"]: [o.attrs["value"] for o in select.find("option")
                                     if "selected" in o.attrs]
              for select in form.find("select")}
    assert chosen == {"from": ["1.1.0"], "to": ["1.2.0"]}  # the shown version, the one before
    assert [(label.text(), label.attrs["for"]) for label in form.find("label")] == [
        ("From", "diff-from"), ("To", "diff-to")]
    assert [select.attrs["id"] for select in form.find("select")] == ["diff-from", "diff-to"]
    older = parse(client.get("/team/tool/v/1.0.0").text).one("aside").one("form")
    assert [[o.attrs["value"] for o in s.find("option") if "selected" in o.attrs]
            for s in older.find("select")] == [["1.0.0"], ["1.1.0"]]
    for href in links:
        assert client.get(href or "").status_code == 200


def test_one_version_has_no_compare_form(client: TestClient, registry: Registry) -> None:
    registry.publish("team", OLD, principal=token_principal(registry, "team"),
                     version="1.0.0")
    root = parse(client.get("/team/tool").text)
    assert not root.find("form", class_="diff-pick") and not root.find("a", class_="diff-link")


@pytest.fixture
def hidden(registry: Registry) -> None:
    """Private org `hidden`: lead owns it, mia is a member; `outsider` is not. tool 1.0.0
    and 1.1.0 are released there."""
    for name in ("lead", "mia", "outsider"):
        registry.add_user(name, password=PASSWORD, display_name=name.title())
    registry.create_org(registry.account_principal("lead"), "hidden")
    lead = registry.account_principal("lead")
    registry.set_member(lead, "hidden", "mia", "reader")
    registry.set_visibility("hidden", "private", lead)
    lead = registry.account_principal("lead")
    registry.publish("hidden", OLD, principal=lead, version="1.0.0")
    registry.publish("hidden", NEW, principal=lead, version="1.1.0")


def test_a_private_skill_is_404_to_an_outsider_and_shown_to_a_member(
        client: TestClient, hidden: None) -> None:
    urls = ["/hidden/tool/diff/1.0.0...1.1.0", "/hidden/tool/diff/1.0.0...1.1.0?view=split",
            "/hidden/tool/diff/1.0.0...9.9.9", "/hidden/tool/diff/nonsense",
            "/hidden/tool/diff?from=1.0.0&to=1.1.0", "/hidden/tool/diff?from=1.0.0"]
    for who in (None, "outsider"):
        if who:
            sign_in(client, who)
        for url in urls:
            page = client.get(url, follow_redirects=False)
            assert page.status_code == 404, (who, url)
            assert "calc.py" not in page.text and "weekly" not in page.text, (who, url)
            # the same answer as for a namespace that does not exist
            assert parse(page.text).one("p", class_="error").text() == \
                "namespace 'hidden' does not exist", (who, url)
    sign_in(client, "mia")
    page = client.get("/hidden/tool/diff/1.0.0...1.1.0")
    assert page.status_code == 200
    assert "scripts/calc.py" in sections(parse(page.text))


def test_a_member_may_compare_a_version_waiting_for_review(
        client: TestClient, registry: Registry, hidden: None) -> None:
    lead = registry.account_principal("lead")
    registry.set_member(lead, "hidden", "mia", "publisher")
    registry.set_release_policy(lead, "hidden", "review", False)
    mia = registry.account_principal("mia")
    assert registry.publish("hidden", Bundle({**NEW.files, "later.md": b"later\n"}),
                            principal=mia, version="1.2.0").status == "pending"
    sign_in(client, "mia")
    page = client.get("/hidden/tool/diff/1.1.0...1.2.0")
    assert page.status_code == 200
    assert status(sections(parse(page.text))["later.md"]) == "added"
    sign_in(client, "outsider")
    assert client.get("/hidden/tool/diff/1.1.0...1.2.0").status_code == 404


# -- the caps ---------------------------------------------------------------------------------


def lines(n: int, word: str) -> bytes:
    return "".join(f"{word} {i}\n" for i in range(n)).encode()


def test_a_file_over_the_size_cap_is_not_compared(client: TestClient, registry: Registry,
                                                  tool: None) -> None:
    big = b"# data\n" + b"a line of data that fills the file\n" * 16_000  # > 512 KiB
    assert len(big) > diffs.MAX_FILE_BYTES
    registry.publish("team", Bundle({**NEW.files, "data.txt": big}),
                     principal=token_principal(registry, "team"), version="1.2.0")
    registry.publish("team", Bundle({**NEW.files, "data.txt": big + b"one more\n"}),
                     principal=token_principal(registry, "team"), version="1.3.0")
    page = client.get(f"{DIFF}/1.2.0...1.3.0")
    assert page.status_code == 200
    data = sections(parse(page.text))["data.txt"]
    assert "Too large to show" in data.text() and not data.find("table")
    raw = [a.attrs["href"] for a in data.one("p", class_="diff-note").find("a")]
    assert raw == ["/api/v1/skills/team/tool/versions/1.2.0/files/data.txt",
                   "/api/v1/skills/team/tool/versions/1.3.0/files/data.txt"]
    assert client.get(raw[1] or "").content.endswith(b"one more\n")


def test_long_diffs_are_capped_per_file_and_per_page() -> None:
    old = Bundle({f"f{i}.txt": lines(900, "old") for i in range(5)} |
                 {"long.txt": lines(diffs.MAX_FILE_DIFF_LINES, "old")})
    new = Bundle({f"f{i}.txt": lines(900, "new") for i in range(5)} |
                 {"long.txt": lines(diffs.MAX_FILE_DIFF_LINES, "new")})
    changes: dict[str, FileChange] = {c.path: c for c in compare(old, new)}
    assert changes["long.txt"].too_large and not changes["long.txt"].lines
    assert changes["long.txt"].added == diffs.MAX_FILE_DIFF_LINES  # still counted
    shown = [changes[f"f{i}.txt"] for i in range(5)]
    assert [bool(c.lines) for c in shown] == [True, True, True, False, False]
    assert sum(len(c.lines) for c in changes.values()) <= diffs.MAX_PAGE_LINES
    assert all(c.too_large for c in shown[3:])


def test_a_page_compares_a_bounded_number_of_lines() -> None:
    """Files whose diffs are too long to show still cost difflib time: past
    MAX_PAGE_COMPARED lines (both sides) the page compares no more files."""
    n = 10_000  # lines a side: each file costs 2 * (n + 1) (the last line, unterminated)
    old = Bundle({f"f{i}.txt": lines(n, f"old{i}") for i in range(8)})
    new = Bundle({f"f{i}.txt": lines(n, f"new{i}") for i in range(8)})
    changes = compare(old, new)
    compared = [c for c in changes if c.added is not None]
    assert len(compared) == diffs.MAX_PAGE_COMPARED // (2 * (n + 1)) == 2
    assert all(c.added == n and "more than this page shows" in (c.too_large or "")
               for c in compared)
    assert all(c.too_large == "this page has already compared as much as it shows at once"
               for c in changes[2:])


def test_the_split_rows_keep_every_line_once() -> None:
    old = Bundle({"a.txt": b"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"})
    new = Bundle({"a.txt": b"1\nb\n3\n5\n6\nx\ny\nz\n8\n9\n10\n11\n"})
    (change,) = compare(old, new)
    rows = change.split
    left = [r.left.text for r in rows if r.left is not None]
    right = [r.right.text for r in rows if r.right is not None]
    assert left == [line.text for line in change.lines if line.kind in ("del", "context")]
    assert right == [line.text for line in change.lines if line.kind in ("add", "context")]
    assert all(r.left is None or r.left.kind != "add" for r in rows)
    assert all(r.right is None or r.right.kind != "del" for r in rows)


# -- in Chromium ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_diff_page_in_chromium_fits_a_phone_in_both_schemes(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    from .live import make_token, start_server

    shots = Path(SHOTS or tempfile.mkdtemp(prefix="shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    server = start_server(tmp_path / "data")
    try:
        auth = {"Authorization": f"Bearer {make_token(tmp_path / 'data', 'team')}"}
        wide_line = b"a_very_long_identifier_without_any_space_" * 6 + b"\n"
        for version, bundle, extra in (("1.0.0", OLD, b""), ("1.1.0", NEW, wide_line)):
            files = {**bundle.files, "scripts/calc.py": bundle.files["scripts/calc.py"] + extra}
            answer = httpx.post(
                f"{server.url}/api/v1/namespaces/team/skills?version={version}", headers=auth,
                files=[("files", (path, data)) for path, data in files.items()],
                data={"executable": sorted(bundle.executables)}, timeout=60)
            assert answer.status_code in (200, 201), answer.text
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            problems: list[str] = []
            for scheme in ("light", "dark"):
                for width in (1280, 390):
                    context = browser.new_context(viewport={"width": width, "height": 900},
                                                  color_scheme=scheme)
                    page = context.new_page()
                    for view in ("unified", "split"):
                        page.goto(f"{server.url}{DIFF}/1.0.0...1.1.0?view={view}")
                        assert page.locator("section.diff-file").count() == 7
                        scroll = page.evaluate("document.documentElement.scrollWidth")
                        if scroll > width:
                            problems.append(f"{view} {width} {scheme}: {scroll}")
                        inside = page.evaluate("""() => [...document.querySelectorAll(
                            '.diff-scroll')].filter((e) => e.scrollWidth > e.clientWidth)
                            .length""")
                        if inside:  # lines wrap: both sides of a split stay in sight
                            problems.append(f"{view} {width} {scheme}: {inside} tables scroll")
                        problems += [f"{view} {scheme}: {low}"
                                     for low in page.evaluate(CONTRAST_JS)]
                        problems += page.evaluate(UNLABELLED_JS)
                        page.screenshot(path=str(shots / f"diff-{view}-{width}-{scheme}.png"),
                                        full_page=True)
                    page.goto(f"{server.url}/team/tool")  # the compare form, as a person uses it
                    page.screenshot(path=str(shots / f"diff-skill-{width}-{scheme}.png"),
                                    full_page=True)
                    page.get_by_label("From", exact=True).select_option("1.0.0")
                    page.get_by_label("To", exact=True).select_option("1.1.0")
                    page.get_by_role("button", name="Compare").click()
                    page.wait_for_url(f"**{DIFF}/1.0.0...1.1.0")
                    page.get_by_role("link", name="Side by side").click()
                    page.wait_for_url(f"**{DIFF}/1.0.0...1.1.0?view=split")
                    assert page.locator("table.split").count() == 4
                    context.close()
            browser.close()
        assert not problems
    finally:
        server.stop()
