"""The nginx configuration that sends public archives without asking the app
(`store.static_archives`), printed by `skills-hub proxy-config` so that an operator, the
tests and `bench/download_bench.py` use the same text.

nginx sends a file only when both hold: its map names the URL (with the sha256 the file's
name carries) and the file exists. Anything else (a private namespace, `latest`, a
version not yet in the map, a HEAD the app would answer the same) falls through to the app.
"""

from __future__ import annotations

from pathlib import Path

from ..store.static_archives import FOLDER
from .api import IMMUTABLE
from .middleware import SECURITY_HEADERS

ARCHIVE_LOCATION = (r"^/api/v1/skills/(?<sh_ns>[a-z0-9][a-z0-9-]*)/(?<sh_name>[a-z0-9][a-z0-9-]*)"
                    r"/versions/(?<sh_version>[0-9A-Za-z][0-9A-Za-z.+-]*)"
                    r"/archive\.(?<sh_fmt>tar\.gz|zip)$")


def nginx_http(folder: Path) -> str:
    """What goes in nginx's `http {}` block: the maps and the download log's format."""
    return f"""\
# skills-hub: public archives sent by nginx (maps rewritten by the app; it reloads nginx)
map_hash_bucket_size 256;   # a key is an archive's URL, up to about 230 bytes
map_hash_max_size 1048576;  # one entry per public version and format
map $uri $skills_hub_sha256 {{ default ""; include {folder}/sha256.map; }}
map $uri $skills_hub_digest {{ default ""; include {folder}/digest.map; }}
log_format skills_hub_downloads '$status $request_method "$http_sec_fetch_dest" $sh_ns/$sh_name';
"""


def nginx_server(folder: Path, repos: Path, upstream: str) -> str:
    """What goes in the `server {}` block in front of the app (`upstream`: the app's
    address as `proxy_pass` takes it, e.g. http://127.0.0.1:8000)."""
    security = "\n".join(f"    add_header {name} \"{value}\";"
                         for name, value in SECURITY_HEADERS.items())
    proxy = (f"proxy_pass {upstream}; proxy_http_version 1.1; "
             'proxy_set_header Connection ""; proxy_set_header Host $http_host;')
    return f"""\
location / {{ {proxy} }}
location @skills_hub {{ {proxy} }}
location ~ "{ARCHIVE_LOCATION}" {{
    root {repos / FOLDER};
    # read the maps now: once try_files finds the file, $uri is the file's path
    set $sh_sha256 $skills_hub_sha256;
    set $sh_digest $skills_hub_digest;
    try_files /$sh_ns/$sh_name/$sh_version/$sh_sha256.$sh_fmt @skills_hub;
    # buffered: one write a second, not one a download (a crash of nginx loses that second)
    access_log {folder}/downloads.log skills_hub_downloads buffer=64k flush=1s;
    types {{ application/gzip gz; application/zip zip; }}
    etag off;
    add_header ETag '"sha256:$sh_sha256"';
    add_header X-Checksum-Sha256 $sh_sha256;
    add_header Digest "sha-256=$sh_digest";
    add_header X-Skill-Version $sh_version;
    add_header Content-Disposition 'attachment; filename="$sh_name-$sh_version.$sh_fmt"';
    add_header Cache-Control "{IMMUTABLE}";
    add_header X-Request-ID $request_id;  # nginx's own id, as the app gives each answer one
{security}
}}
"""
