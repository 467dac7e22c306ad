"""Public archives nginx sends by itself (`store.static_archives`, `web/proxy.py`): the
files exist only while their namespace is public, the maps name what nginx may send with
the app's headers, and nginx's own downloads are counted from its log. The last tests run
the real nginx (Debian's nginx-light, installed by `make system-deps`) in front of a real
server."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from skills_hub.access.principal import ANONYMOUS, OPERATOR
from skills_hub.cli import main
from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.services import registry as registry_module
from skills_hub.store.static_archives import FOLDER, archive_url
from skills_hub.web.proxy import nginx_http, nginx_server

from .live import free_port, start_server
from .test_downloads import SAME_HEADERS, downloads, publish

URL = "/api/v1/skills/team/hello-world/versions/{version}/archive.{fmt}"


@pytest.fixture
def static(settings: Settings, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A registry with the setting whose syncs are the test's own (the one at start
    aside: its thread waits an hour)."""
    monkeypatch.setattr(registry_module, "STATIC_SYNC_SECONDS", 3600.0)
    registry = Registry(replace(settings, static_archives=tmp_path / "proxy",
                                proxy_reload=f"echo reloaded >> {tmp_path / 'reloads'}"))
    registry.start()
    publish(registry)
    yield registry
    registry.close()


def files(registry: Registry) -> list[str]:
    root = registry.settings.repos_dir / FOLDER
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def sync(registry: Registry) -> tuple[int, bool, int]:
    report = registry.static_archives.sync(registry.store.catalogue)
    assert report is not None
    return report.entries, report.changed, report.counted


def maps(registry: Registry) -> tuple[str, str]:
    folder = registry.settings.static_archives
    assert folder is not None
    return (folder / "sha256.map").read_text(), (folder / "digest.map").read_text()


# -- files and maps ------------------------------------------------------------------------

def test_a_public_download_leaves_a_file_that_the_next_sync_maps(static: Registry,
                                                                 tmp_path: Path) -> None:
    _, archive = static.archive("team", "hello-world", "0.1.0", "tar.gz", ANONYMOUS)
    assert files(static) == [f"team/hello-world/0.1.0/{archive.sha256}.tar.gz"]
    path = static.settings.repos_dir / FOLDER / files(static)[0]
    assert path.read_bytes() == archive.data and path.stat().st_mode & 0o777 == 0o644
    assert sync(static) == (1, True, 0)
    url = URL.format(version="0.1.0", fmt="tar.gz")
    digest = base64.b64encode(hashlib.sha256(archive.data).digest()).decode()
    assert maps(static) == (f"{url} {archive.sha256};\n", f'{url} "{digest}";\n')
    assert sync(static) == (1, False, 0)  # nothing new: no rewrite, no reload
    # once at start (the empty maps), once for the new entry
    assert (tmp_path / "reloads").read_text() == "reloaded\n" * 2


def test_only_exact_versions_of_the_native_layout_get_files(static: Registry) -> None:
    static.archive("team", "hello-world", "latest", "zip", ANONYMOUS)
    static.archive("team", "hello-world", "0.1.0", "zip", ANONYMOUS, at_root=True)
    assert files(static) == []
    static.archive("team", "hello-world", "0.1.0", "zip", ANONYMOUS, count=False)
    assert len(files(static)) == 1  # the version's JSON computes its digests: eager is fine


@pytest.mark.parametrize("visibility", ["private", "internal"])
def test_a_namespace_that_is_not_public_gets_no_file(static: Registry, visibility: str) -> None:
    static.set_visibility("team", visibility)
    static.archive("team", "hello-world", "0.1.0", "tar.gz", OPERATOR)
    assert files(static) == []


def test_going_private_removes_the_files_before_it_returns(static: Registry) -> None:
    publish(static, version="0.2.0")
    for version in ("0.1.0", "0.2.0"):
        for fmt in ("tar.gz", "zip"):
            static.archive("team", "hello-world", version, fmt, ANONYMOUS)
    publish(static, namespace="other")
    static.archive("other", "hello-world", "0.1.0", "zip", ANONYMOUS)
    assert sync(static)[0] == 5
    static.set_visibility("team", "private")
    assert [f.split("/")[0] for f in files(static)] == ["other"]
    assert sync(static)[:2] == (1, True)
    assert "/team/" not in maps(static)[0]
    static.set_visibility("team", "public")  # back: files come again as people download
    assert len(files(static)) == 1
    static.archive("team", "hello-world", "0.2.0", "zip", ANONYMOUS)
    assert len(files(static)) == 2


def test_a_node_without_the_setting_still_removes_them(static: Registry,
                                                       settings: Settings) -> None:
    static.archive("team", "hello-world", "0.1.0", "zip", ANONYMOUS)
    plain = Registry(settings)  # another node: shares the repos, has no proxy folder
    try:
        assert not plain.static_archives.enabled
        plain.archive("team", "hello-world", "0.1.0", "tar.gz", ANONYMOUS)
        assert len(files(static)) == 1  # it writes none itself
        plain.set_visibility("team", "private")
        assert files(static) == []
    finally:
        plain.close()


def test_one_sync_at_a_time_on_a_node(static: Registry) -> None:
    folder = static.settings.static_archives
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".sync.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert static.static_archives.sync(static.store.catalogue) is None


# -- counts from the proxy's log -----------------------------------------------------------

def test_the_proxys_downloads_are_counted_once_by_the_apps_rule(static: Registry) -> None:
    folder = static.settings.static_archives
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "downloads.log"
    url = "team/hello-world"
    static.downloads.flush()
    before = downloads(static)
    log.write_text(f'200 GET "-" {url}\n'            # a client: counted
                   f'200 GET "document" {url}\n'     # a person's click: counted
                   f'200 GET "image" {url}\n'        # a page's subresource: not
                   f'200 HEAD "-" {url}\n'           # not a download
                   f'304 GET "-" {url}\n'            # (nginx answers 304 to If-Modified-Since)
                   f'200 GET "-" ../../etc/passwd\n'  # not a skill
                   f'200 GET "-" {url[:8]}')         # a line still being written: waits
    assert sync(static)[2] == 2
    assert downloads(static) == before + 2
    assert sync(static)[2] == 0  # read once
    with open(log, "a") as out:
        out.write(url[8:] + "\n")
    assert sync(static)[2] == 1 and downloads(static) == before + 3
    log.write_text(f'200 GET "-" {url}\n')  # truncated by a rotation (copytruncate)
    assert sync(static)[2] == 1
    log.rename(folder / "downloads.log.1")  # rotated (moved away, nginx reopens): a new
    log.write_text(f'200 GET "-" {url}\n' * 3)  # file is read from its start
    assert sync(static)[2] == 3 and downloads(static) == before + 7


# -- the real nginx ------------------------------------------------------------------------

def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if found is None:
        pytest.fail("nginx is missing: run `make system-deps` (Debian: nginx-light)")
    return found


class Nginx:
    """nginx in the foreground with `skills-hub proxy-config`'s text, in front of `app`."""

    def __init__(self, root: Path, folder: Path, repos: Path, app: str) -> None:
        self.binary, self.root = _nginx(), root
        self.url = f"http://127.0.0.1:{free_port()}"
        user = "user root root;" if os.geteuid() == 0 else ""  # workers read the tmp files
        (root / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
{nginx_http(folder)}
    server {{
        listen {self.url.removeprefix("http://")};
{nginx_server(folder, repos, app)}
    }}
}}
""")

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.process.kill()
        raise RuntimeError("nginx did not start: " + self.process.communicate()[1].decode())

    def command(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.root), "-c", str(self.root / "nginx.conf"), *extra]

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=30)


def _from_nginx(answer: httpx.Response) -> bool:
    """nginx's static module adds these; the app never does."""
    return "last-modified" in answer.headers and answer.headers.get("accept-ranges") == "bytes"


def _until(check: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_nginx_sends_public_archives_itself_and_never_a_private_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, folder, root = tmp_path / "home", tmp_path / "proxy", tmp_path / "nginx"
    folder.mkdir()
    root.mkdir()
    for name in ("sha256.map", "digest.map"):  # `skills-hub proxy-config` makes them
        (folder / name).touch()
    registry = Registry(Settings(home=home, seed=False, semantic="off"))
    registry.start()
    publish(registry)
    token = registry.create_token("team")
    registry.close()
    port = free_port()
    nginx = Nginx(root, folder, home / "repos", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SKILLS_HUB_STATIC_ARCHIVES", str(folder))
    monkeypatch.setenv("SKILLS_HUB_PROXY_RELOAD", " ".join(nginx.command("-s", "reload")))
    proxied = start_server(home, port=port)  # the node behind nginx, with the setting
    nginx.start()
    try:
        urls = [nginx.url + URL.format(version="0.1.0", fmt=fmt) for fmt in ("tar.gz", "zip")]
        first = [httpx.get(url) for url in urls]
        assert [a.status_code for a in first] == [200, 200]
        assert not any(_from_nginx(a) for a in first)  # no file yet: the app answered
        _until(lambda: _from_nginx(httpx.get(urls[1], headers={"Sec-Fetch-Dest": "image"})))
        for url in urls:  # the same bytes and headers as the app's own answer
            direct = httpx.get(proxied.url + url.removeprefix(nginx.url),  # the app itself
                               headers={"Sec-Fetch-Dest": "image"})
            sent = httpx.get(url)
            assert _from_nginx(sent) and sent.content == direct.content
            assert {h: sent.headers[h] for h in SAME_HEADERS} \
                == {h: direct.headers[h] for h in SAME_HEADERS}
            for header in ("content-security-policy", "x-frame-options",
                           "x-content-type-options", "referrer-policy"):
                assert sent.headers[header] == direct.headers[header]
            assert httpx.head(url).status_code == 200
        for _ in range(5):
            assert _from_nginx(httpx.get(urls[0]))
        # 2 by the app, 2 + 5 by nginx (HEAD and the image fetches are not installs)
        _until(lambda: httpx.get(proxied.url + "/api/v1/skills/team/hello-world")
               .json()["downloads"] == 9)
        changed = httpx.put(proxied.url + "/api/v1/namespaces/team/visibility",
                            json={"visibility": "private"},
                            headers={"Authorization": f"Bearer {token}"})
        assert changed.status_code == 200, changed.text
        for url in urls:  # at once, before any sync: nginx has no file left to send
            assert httpx.get(url).status_code == 404
            owner = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
            assert owner.status_code == 200 and not _from_nginx(owner)
    finally:
        nginx.stop()
        proxied.stop()
    assert archive_url("team", "hello-world", "0.1.0", "zip") == URL.format(
        version="0.1.0", fmt="zip")


def test_proxy_config_prints_the_snippet_and_makes_empty_maps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = CliRunner().invoke(main, ["proxy-config", "--home", str(tmp_path / "home")])
    assert refused.exit_code == 2 and "SKILLS_HUB_STATIC_ARCHIVES" in refused.output
    monkeypatch.setenv("SKILLS_HUB_STATIC_ARCHIVES", str(tmp_path / "proxy"))
    done = CliRunner().invoke(main, ["proxy-config", "--home", str(tmp_path / "home"),
                                     "--upstream", "http://127.0.0.1:9000"])
    assert done.exit_code == 0, done.output
    assert f"include {tmp_path}/proxy/sha256.map;" in done.output
    assert f"root {tmp_path}/home/repos/{FOLDER};" in done.output
    assert "proxy_pass http://127.0.0.1:9000;" in done.output
    assert (tmp_path / "proxy" / "sha256.map").read_text() == ""


def test_a_version_the_catalogue_drops_loses_its_file(static: Registry) -> None:
    """`reconcile` drops a version git no longer has (a repo put back from an older copy):
    nginx must stop sending it as the app does."""
    publish(static, version="0.2.0")
    for version in ("0.1.0", "0.2.0"):
        static.archive("team", "hello-world", version, "zip", ANONYMOUS)
    repo = static.git.path("team")
    subprocess.run(["git", "--git-dir", str(repo), "tag", "-d", "hello-world/v0.2.0"],
                   check=True, capture_output=True)
    assert static.reconcile().removed == 1
    assert [f.split("/")[2] for f in files(static)] == ["0.1.0"]
