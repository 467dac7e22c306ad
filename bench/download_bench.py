"""Archive downloads against a real server, beside the app's health route and nginx.

With `wrk` (8 keep-alive connections, 2 threads) against a throwaway home holding one
published skill:

a. the archive URL served by the app (`archive.tar.gz` and `archive.zip`);
b. the app's `/api/v1/health` (the reference the archive aim is set against);
c. nginx serving the same archive bytes as a static file;
d. nginx in front of a second app process started with `SKILLS_HUB_ACCEL_REDIRECT`: the
   app answers with the headers only and nginx sends the file from `<home>/cache/archives`
   (plus the health route through the same nginx, the proxy's own cost);
e. nginx in front of a third app process started with `SKILLS_HUB_STATIC_ARCHIVES`, with
   `skills-hub proxy-config`'s text (`web/proxy.py`): after the first download and the
   app's next sync, nginx sends the public archive by itself and the app counts it from
   nginx's log.

It prints requests/s, latency (p50/p99) and the load average beside each figure, the
ratios against the aims (archive >= 80 % of health; through the proxy equal to nginx),
checks that the bytes and the ETag/digest headers through nginx equal the app's, and
that the download counts come out right once flushed (every completed archive GET
counted; a request cut off when wrk stops may be counted too). Nothing is asserted.
A missing `wrk` or `nginx` is reported with how to install it, not a crash.

    .venv/bin/python bench/download_bench.py [--duration S] [--connections C]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skills_hub.access.principal import OPERATOR  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from skills_hub.skill.bundle import from_files  # noqa: E402
from skills_hub.web.proxy import nginx_http, nginx_server  # noqa: E402
from tests.live import free_port, start_server  # noqa: E402

NAMESPACE, NAME, VERSION = "bench", "weekly-report", "1.0.0"
ACCEL_PREFIX = "/_skills_hub_archives/"
AIM_VS_HEALTH = 0.80
INSTALL = "apt-get install -y wrk nginx-light"
FORMATS = ("tar.gz", "zip")
UNCOUNTED = {"Sec-Fetch-Dest": "image"}  # the bench's own checks are not downloads
SKILL_MD = """---
name: weekly-report
description: Builds the weekly sales report from the warehouse tables as a table and a chart.
---
# Weekly report

Run `scripts/report.py` with the week number; it prints a markdown table.
"""


@dataclass
class Run:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    load: float
    cpu_us: float | None  # the app process's CPU time per request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    wrk, nginx = shutil.which("wrk"), shutil.which("nginx") or _sbin("nginx")
    if wrk is None:
        print(f"wrk is not installed; this benchmark needs it: {INSTALL}")
        return
    if nginx is None:
        print(f"nginx is not installed: the nginx rows are skipped ({INSTALL})")
    with tempfile.TemporaryDirectory(prefix="download-bench-") as tmp:
        bench(Path(tmp), wrk, nginx, args.duration, args.connections)


def bench(tmp: Path, wrk: str, nginx: str | None, duration: int, connections: int) -> None:
    home = tmp / "home"
    publish(home)
    os.environ.pop("SKILLS_HUB_ACCEL_REDIRECT", None)
    app = start_server(home)
    os.environ["SKILLS_HUB_ACCEL_REDIRECT"] = ACCEL_PREFIX
    accel_app = start_server(home)  # a second process on the same home
    os.environ.pop("SKILLS_HUB_ACCEL_REDIRECT")
    static_app = None
    if nginx is not None:  # a third, whose public archives nginx sends itself
        root = tmp / "nginx"
        os.environ["SKILLS_HUB_STATIC_ARCHIVES"] = str(root / "skills-hub")
        os.environ["SKILLS_HUB_PROXY_RELOAD"] = \
            f"{nginx} -p {root} -c {root / 'nginx.conf'} -s reload"
        static_app = start_server(home)
        os.environ.pop("SKILLS_HUB_STATIC_ARCHIVES")
        os.environ.pop("SKILLS_HUB_PROXY_RELOAD")
    proxy = None
    try:
        def measure(label: str, url: str, pid: int | None = None) -> Run:
            return wrk_run(wrk, label, url, duration, connections, pid)

        paths = {fmt: archive_path(fmt) for fmt in FORMATS}
        before = downloads(app.url)
        runs = [measure("app /api/v1/health", app.url + "/api/v1/health", app.process.pid)]
        counted = 0
        for fmt in FORMATS:
            run = measure(f"app archive.{fmt}", app.url + paths[fmt], app.process.pid)
            runs.append(run)
            counted += run.requests
        if nginx is not None and static_app is not None:
            proxy = Nginx(nginx, tmp / "nginx", home, accel_app.url, app.url, paths,
                          static_app.url)
            runs.append(measure("nginx proxy -> app /api/v1/health",
                                proxy.proxy_url + "/api/v1/health", accel_app.process.pid))
            for fmt in FORMATS:
                runs.append(measure(f"nginx static archive.{fmt}",
                                    proxy.static_url + f"/archive.{fmt}"))
                runs.append(measure(f"nginx static archive.{fmt}, the app's headers",
                                    proxy.static_url + f"/same-headers/archive.{fmt}"))
                run = measure(f"nginx + X-Accel-Redirect archive.{fmt}",
                              proxy.proxy_url + paths[fmt], accel_app.process.pid)
                runs.append(run)
                counted += run.requests
            check_same(app.url, proxy.proxy_url, paths)
            fast = fast_path(proxy.fast_url, paths)
            for fmt in FORMATS:
                run = measure(f"nginx fast path archive.{fmt}", proxy.fast_url + paths[fmt],
                              static_app.process.pid)
                runs.append(run)
                fast += run.requests
            check_same(app.url, proxy.fast_url, paths, "fast path")
            counted += fast
        # the servers flush their counts every second; the third reads nginx's log every 5 s
        time.sleep(6.0 if proxy is not None else 2.0)
        report(runs)
        check_counts(app.url, before, counted, sum(1 for r in runs if "archive" in r.label
                                                   and "static" not in r.label) * connections)
    finally:
        if proxy is not None:
            proxy.stop()
        for server in (app, accel_app, static_app):
            if server is not None:
                server.stop()


def fast_path(fast_url: str, paths: dict[str, str]) -> int:
    """Download each archive once through the fast path (the app answers and writes the
    file), then wait until nginx sends them itself (the app's next sync); returns the
    downloads made (the waiting requests are not installs)."""
    for path in paths.values():
        httpx.get(fast_url + path).raise_for_status()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all("last-modified" in httpx.get(fast_url + p, headers=UNCOUNTED).headers
               for p in paths.values()):
            return len(paths)
        time.sleep(0.2)
    raise RuntimeError("nginx did not start sending the archives itself within 30 s")


def publish(home: Path) -> None:
    registry = Registry(Settings(home=home, seed=False, semantic="off"))
    registry.start()
    script = b"import sys\nprint('| week | sales |')\nprint('|---|---|')\n" * 20
    bundle = from_files([("SKILL.md", SKILL_MD.encode(), False),
                         ("scripts/report.py", script, True),
                         ("reference.md", b"Columns: week, region, sales.\n" * 40, False)])
    registry.publish(NAMESPACE, bundle, principal=OPERATOR, version=VERSION)
    registry.close()


def archive_path(fmt: str) -> str:
    return f"/api/v1/skills/{NAMESPACE}/{NAME}/versions/{VERSION}/archive.{fmt}"


def downloads(url: str) -> int:
    body = httpx.get(f"{url}/api/v1/skills/{NAMESPACE}/{NAME}", timeout=10).json()
    return int(body["downloads"])


# -- wrk ---------------------------------------------------------------------------------

def wrk_run(wrk: str, label: str, url: str, duration: int, connections: int,
            pid: int | None) -> Run:
    load = os.getloadavg()[0]
    cpu = _cpu_seconds(pid)
    out = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    requests = int(_find(r"(\d+) requests in", out))
    cpu_us = None if pid is None else (_cpu_seconds(pid) - cpu) / max(requests, 1) * 1e6
    errors = int(_find(r"Non-2xx or 3xx responses: (\d+)", out, "0"))
    run = Run(label, float(_find(r"Requests/sec:\s+([\d.]+)", out)),
              _ms(_find(r"\s50%\s+([\d.]+\w+)", out)), _ms(_find(r"\s99%\s+([\d.]+\w+)", out)),
              requests, errors, load, cpu_us)
    cpu_text = "" if cpu_us is None else f"  app CPU {cpu_us:5.0f} us/req"
    print(f"  {label:<42} {run.rps:>9,.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
          f"p99 {run.p99_ms:6.2f} ms{cpu_text}  load {load:.2f}"
          + (f"  {errors} errors" if errors else ""), flush=True)
    return run


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _find(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match is None:
        if default is None:
            raise RuntimeError(f"wrk printed no {pattern!r}:\n{text}")
        return default
    return match.group(1)


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


# -- nginx -------------------------------------------------------------------------------

class Nginx:
    """nginx in the foreground on two free ports: static files, and a proxy to the app that
    serves X-Accel-Redirect from the home's archive files (the README's snippet)."""

    def __init__(self, binary: str, root: Path, home: Path, accel_url: str, app_url: str,
                 paths: dict[str, str], static_app_url: str) -> None:
        static = root / "static"
        static.mkdir(parents=True)
        for fmt, path in paths.items():  # the very bytes the app serves
            data = httpx.get(app_url + path, headers=UNCOUNTED).content
            (static / f"archive.{fmt}").write_bytes(data)
        static_port, proxy_port, fast_port = free_port(), free_port(), free_port()
        self.static_url = f"http://127.0.0.1:{static_port}"
        self.proxy_url = f"http://127.0.0.1:{proxy_port}"
        self.fast_url = f"http://127.0.0.1:{fast_port}"
        folder = root / "skills-hub"
        same_headers = "\n".join(
            f"            add_header {name} \"{_quoted(value)}\";" for name, value in
            httpx.get(app_url + paths["tar.gz"], headers=UNCOUNTED).headers.items()
            if name not in PROXY_HEADERS and name not in ("content-type", "content-length"))
        user = "user root root;" if os.geteuid() == 0 else ""  # workers must read tmp files
        conf = root / "nginx.conf"
        conf.write_text(f"""
{user}
worker_processes auto;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    types {{ application/gzip gz; application/zip zip; }}
    sendfile on; tcp_nopush on;
    server {{
        listen 127.0.0.1:{static_port};
        location / {{ root {static}; }}
        location /same-headers/ {{  # the same file with the app's headers, as constants
            alias {static}/;
            etag off;
{same_headers}
        }}
    }}
    upstream skills_hub {{ server {accel_url.removeprefix("http://")}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://skills_hub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
        location {ACCEL_PREFIX} {{
            internal;
            alias {home}/cache/archives/;
            etag off;
            add_header ETag $upstream_http_etag;
            add_header X-Checksum-Sha256 $upstream_http_x_checksum_sha256;
            add_header Digest $upstream_http_digest;
            add_header X-Skill-Version $upstream_http_x_skill_version;
            add_header Content-Security-Policy $upstream_http_content_security_policy;
            add_header X-Content-Type-Options $upstream_http_x_content_type_options;
            add_header X-Frame-Options $upstream_http_x_frame_options;
            add_header Referrer-Policy $upstream_http_referrer_policy;
        }}
    }}
{nginx_http(folder)}
    server {{
        listen 127.0.0.1:{fast_port};
{nginx_server(folder, home / "repos", static_app_url)}
    }}
}}
""")
        self.process = subprocess.Popen([binary, "-p", str(root), "-c", str(conf)],
                                        stderr=subprocess.PIPE)
        for url in (self.static_url, self.proxy_url + "/api/v1/health",
                    self.fast_url + "/api/v1/health"):
            _wait_for(url, self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("nginx exited: " + (process.stderr.read().decode()
                                                   if process.stderr else ""))
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"nginx did not answer at {url}")


# -- results -----------------------------------------------------------------------------

# What the proxy may set itself; every other header of the app's answer must come through.
PROXY_HEADERS = {"date", "server", "connection", "keep-alive", "content-length",
                 "last-modified", "accept-ranges", "x-request-id"}  # (new for every request)


def check_same(app_url: str, proxy_url: str, paths: dict[str, str],
               how: str = "X-Accel-Redirect") -> None:
    """The bytes and headers through the proxy equal what the app sends itself."""
    for fmt, path in paths.items():
        direct = httpx.get(app_url + path, headers=UNCOUNTED)
        served = httpx.get(proxy_url + path, headers=UNCOUNTED)
        differ = [h for h in direct.headers if h not in PROXY_HEADERS
                  and direct.headers.get(h) != served.headers.get(h)]
        same = direct.content == served.content and not differ
        print(f"  {how} archive.{fmt}: "
              + ("bytes and headers equal the app's" if same else
                 f"DIFFERENT (bytes equal: {direct.content == served.content}, "
                 f"headers differing: {differ})"))


def report(runs: list[Run]) -> None:
    by = {r.label: r for r in runs}
    health = by["app /api/v1/health"]
    print(f"\nAims (load now {os.getloadavg()[0]:.2f}):")
    for fmt in FORMATS:
        app = by[f"app archive.{fmt}"]
        ratio = app.rps / health.rps
        print(f"  app archive.{fmt} / app health: {ratio:6.1%} "
              f"(aim >= {AIM_VS_HEALTH:.0%}: {'met' if ratio >= AIM_VS_HEALTH else 'missed'})")
        static, accel = by.get(f"nginx static archive.{fmt}"), \
            by.get(f"nginx + X-Accel-Redirect archive.{fmt}")
        if static is None or accel is None:
            continue
        proxied = by["nginx proxy -> app /api/v1/health"]
        print(f"  X-Accel-Redirect archive.{fmt} / nginx static: {accel.rps / static.rps:6.1%} "
              f"(aim: equal); / the app's health through the same nginx: "
              f"{accel.rps / proxied.rps:6.1%}")
        fast = by.get(f"nginx fast path archive.{fmt}")
        if fast is not None:
            ratio = fast.rps / static.rps
            print(f"  nginx fast path archive.{fmt} / nginx static: {ratio:6.1%} (aim: equal; "
                  f"{'met' if ratio >= 0.9 else 'missed'} at 90 %)")


def check_counts(url: str, before: int, completed: int, in_flight: int,
                 what: str = "Download count after the flush") -> None:
    """Every completed archive GET is counted once flushed; a request wrk cut off at the
    end of a run may have been served (and counted) too, at most one per connection."""
    counted = downloads(url) - before
    ok = completed <= counted <= completed + in_flight
    print(f"\n{what} (the app's and, from its log, nginx's): {counted:,} counted for "
          f"{completed:,} completed "
          f"GETs (up to {in_flight} more may be cut-off requests): {'right' if ok else 'WRONG'}")


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name
    return str(path) if path.exists() else None


if __name__ == "__main__":
    main()
