"""HubClient: the native JSON API of a skills-hub server (/api/v1), over httpx."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from skills_hub import __version__
from skills_hub.errors import Problem
from skills_hub.skill.bundle import Bundle, to_targz

from .errors import ServerError, Unreachable

DEFAULT_SERVER = "http://127.0.0.1:8000"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True)
class Download:
    """An archive's bytes and the digest and version the server declared for them."""

    data: bytes
    sha256: str | None  # the X-Checksum-Sha256 header
    version: str | None  # the X-Skill-Version header


class HubClient:
    """One registry server. Pass `http` to reuse a client (tests pass the in-process app)."""

    def __init__(self, server: str, token: str | None = None,
                 http: httpx.Client | None = None) -> None:
        self.server = normalize_server(server)
        self.token = token
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=TIMEOUT, follow_redirects=True)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- routes -------------------------------------------------------------------------

    def namespaces(self) -> list[dict[str, Any]]:
        """The namespaces the caller may read, with their skill counts."""
        return list(self._json("GET", "/namespaces")["namespaces"])

    def whoami(self) -> str:
        """The namespace the token publishes to."""
        return str(self._json("GET", "/whoami")["namespace"])

    def whoami_info(self) -> dict[str, Any]:
        """Who the token is: {username, kind, display_name, email, operator, via, scopes,
        namespaces, orgs: [{org, role}], roles: {namespace: role}, namespace}."""
        return self._json("GET", "/whoami")

    def list_skills(self, namespace: str | None = None, *, limit: int = 50,
                    cursor: str | None = None) -> dict[str, Any]:
        """One page: {skills, total, next_cursor}."""
        params = _params(namespace=namespace, limit=limit, cursor=cursor)
        return self._json("GET", "/skills", params=params)

    def iter_skills(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Every skill, following next_cursor."""
        cursor: str | None = None
        while True:
            page = self.list_skills(namespace, limit=200, cursor=cursor)
            yield from page["skills"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def search(self, query: str, *, mode: str | None = None, namespace: str | None = None,
               tag: str | None = None, trust: str | None = None, verdict: str | None = None,
               updated_since: str | None = None, sort: str | None = None, limit: int = 20,
               cursor: str | None = None) -> dict[str, Any]:
        """Search: {query, mode, requested_mode, semantic, results, next_cursor, gap}.

        Each result has name, namespace, version, description, score, score_parts, verdict,
        trust and install.
        """
        params = _params(q=query, mode=mode, namespace=namespace, tag=tag, trust=trust,
                         verdict=verdict, updated_since=updated_since, sort=sort, limit=limit,
                         cursor=cursor)
        return self._json("GET", "/search", params=params)

    def gaps(self, query: str, *, namespace: str | None = None) -> dict[str, Any]:
        """{gap, best_similarity, threshold, closest}: whether no skill is near the task.

        Raises RemoteError (status 503, code semantic_unavailable) while the server's
        embedding model is loading.
        """
        return self._json("GET", "/gaps", params=_params(q=query, namespace=namespace))

    def demands(self, *, status: str | None = None, namespace: str | None = None,
                mine: bool = False, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        """The demand list: {demands, next_offset}, most distinct askers first."""
        return self._json("GET", "/demands", params=_params(
            status=status, namespace=namespace, mine="true" if mine else None, limit=limit,
            offset=offset or None))

    def demand(self, demand_id: int | str) -> dict[str, Any]:
        """One demand with its phrasings; once closed, `answer` names the skill version."""
        return self._json("GET", f"/demands/{quote(str(demand_id), safe='')}")

    def skill(self, namespace: str, name: str) -> dict[str, Any]:
        """A skill with all its versions, newest first."""
        return self._json("GET", _skill_path(namespace, name))

    def version(self, namespace: str, name: str, version: str = "latest",
                client_id: str | None = None) -> dict[str, Any]:
        """One version with its files, frontmatter and archive digests. For `latest`, a
        `client_id` lets the server place this client in an active canary."""
        params = _params(client_id=client_id) if version == "latest" else {}
        return self._json("GET", _version_path(namespace, name, version), params=params)

    def file(self, namespace: str, name: str, version: str, path: str) -> bytes:
        """The raw bytes of one file of a version."""
        url = _version_path(namespace, name, version) + "/files/" + quote(path)
        return self._request("GET", url).content

    def archive(self, namespace: str, name: str, version: str,
                fmt: str = "tar.gz") -> Download:
        """A version's deterministic archive and the digest the server sent with it."""
        url = _version_path(namespace, name, version) + f"/archive.{quote(fmt)}"
        response = self._request("GET", url)
        return Download(response.content, response.headers.get("x-checksum-sha256"),
                        response.headers.get("x-skill-version"))

    def report(self, namespace: str, name: str, version: str = "latest") -> dict[str, Any]:
        """The checks report of a version: verdict, findings (rule, file, line, hint)."""
        return self._json("GET", _version_path(namespace, name, version) + "/report")

    def exceptions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The reviewed exceptions of a skill."""
        body = self._json("GET", _skill_path(namespace, name) + "/exceptions")
        return list(body["exceptions"])

    def set_exception(self, namespace: str, name: str, rule: str,
                      reason: str) -> dict[str, Any]:
        """Record a reviewed exception (needs the namespace's token): {rule, reason, changes}."""
        return self._json("PUT", _skill_path(namespace, name) + f"/exceptions/{quote(rule)}",
                          json={"reason": reason})

    def remove_exception(self, namespace: str, name: str, rule: str) -> dict[str, Any]:
        return self._json("DELETE", _skill_path(namespace, name) + f"/exceptions/{quote(rule)}")

    def report_outcomes(self, namespace: str, name: str,
                        reports: list[dict[str, Any]]) -> dict[str, Any]:
        """Send outcome reports (each with a unique `id`, `version`, `outcome`; see the
        server's API reference); batches of up to 1000 in one request. Returns
        {recorded, repeated, trust, trust_change, versions}."""
        return self._json("POST", _skill_path(namespace, name) + "/outcomes",
                          json={"outcomes": reports})

    def outcomes(self, namespace: str, name: str) -> dict[str, Any]:
        """A skill's evidence: per-version counts, EMA, Wilson bound, trust history."""
        return self._json("GET", _skill_path(namespace, name) + "/outcomes")

    def set_trust(self, namespace: str, name: str, trust: str, reason: str) -> dict[str, Any]:
        """Block a skill (`blocked`) or lift the block (`community`); owner only."""
        return self._json("PUT", _skill_path(namespace, name) + "/trust",
                          json={"trust": trust, "reason": reason})

    def propose(self, namespace: str, name: str, base_version: str, edits: list[Any], *,
                evidence: dict[str, Any] | None = None, reasoning: str = "") -> dict[str, Any]:
        """Propose edits to a skill (both edit formats); returns the proposal."""
        return self._json("POST", _skill_path(namespace, name) + "/proposals", json={
            "base_version": base_version, "edits": edits, "evidence": evidence or {},
            "reasoning": reasoning})

    def proposals(self, namespace: str, name: str | None = None, *, status: str | None = None,
                  mine: bool = False) -> list[dict[str, Any]]:
        """A skill's (or, without name, a namespace's) proposals; `mine`: the caller's."""
        path = (_skill_path(namespace, name) if name
                else f"/namespaces/{quote(namespace, safe='')}") + "/proposals"
        body = self._json("GET", path, params=_params(status=status, mine="1" if mine else None))
        return list(body["proposals"])

    def proposal(self, namespace: str, name: str, proposal_id: str) -> dict[str, Any]:
        """One proposal with its diff and checks report."""
        return self._json("GET", _skill_path(namespace, name) + f"/proposals/{quote(proposal_id)}")

    def review(self, namespace: str, name: str, proposal_id: str, decision: str,
               comment: str = "", *, version: str | None = None,
               canary: float | None = None) -> dict[str, Any]:
        """Accept or reject a proposal (a maintainer's token)."""
        body: dict[str, Any] = {"decision": decision, "comment": comment}
        if version:
            body["version"] = version
        if canary is not None:
            body["canary"] = canary
        return self._json("POST", _skill_path(namespace, name)
                          + f"/proposals/{quote(proposal_id)}/review", json=body)

    def set_policy(self, namespace: str, policy: str) -> dict[str, Any]:
        return self._json("PUT", f"/namespaces/{quote(namespace, safe='')}/policy",
                          json={"policy": policy})

    def resolve(self, namespace: str, name: str, client_id: str | None = None) -> dict[str, Any]:
        """The version `latest` means for this client (stable or canary)."""
        return self._json("GET", _skill_path(namespace, name) + "/resolve",
                          params=_params(client_id=client_id))

    def publish(self, namespace: str, bundle: Bundle, version: str | None = None,
                dry_run: bool = False) -> dict[str, Any]:
        """Upload a bundle as a deterministic tar.gz; the result has status
        "published", "unchanged" or (a namespace that requires review, HTTP 202) "pending"
        with the `release` that waits for a maintainer. The archive keeps the folder name,
        so the server checks that it matches the skill's name. With `dry_run` nothing is
        stored: status "checked" (with `for_review`) or "unchanged", and the full report."""
        body = to_targz(bundle, bundle.root_name)
        answer = self._json("POST", f"/namespaces/{quote(namespace, safe='')}/skills",
                            params=_params(version=version, dry_run="true" if dry_run
                                           else None), content=body,
                            headers={"Content-Type": "application/gzip"})
        return _with_release_fields(answer)

    # -- accounts and tokens --------------------------------------------------------------

    def login(self, username: str, password: str, *, label: str | None = None,
              days: int | None = None, scopes: list[str] | None = None) -> dict[str, Any]:
        """Exchange a username and password for a new token: {token, token_info}."""
        body = _params(username=username, password=password, label=label, days=days,
                       scopes=scopes or None)
        return self._json("POST", "/auth/login", json=body)

    def device_start(self) -> dict[str, Any]:
        """Start a device sign-in: {device_code, user_code, verification_uri,
        verification_uri_complete, interval, expires_in}. 404 when it is not configured."""
        return self._json("POST", "/auth/device", json={})

    def device_token(self, device_code: str, label: str | None = None,
                     scopes: list[str] | None = None) -> dict[str, Any]:
        """Poll a device sign-in: {token, token_info} once approved, else
        {status: "authorization_pending" | "slow_down"}; 401 when expired or denied."""
        return self._json("POST", "/auth/device/token",
                          json=_params(device_code=device_code, label=label,
                                       scopes=scopes or None))

    def users(self) -> list[dict[str, Any]]:
        """Every account (operator)."""
        return list(self._json("GET", "/users")["users"])

    def add_user(self, username: str, *, password: str | None = None,
                 display_name: str | None = None, email: str | None = None,
                 operator: bool = False) -> dict[str, Any]:
        """Create an account (operator): {username}."""
        body = _params(username=username, password=password, display_name=display_name,
                       email=email, operator=operator or None)
        return self._json("POST", "/users", json=body)

    def tokens(self, org: str | None = None) -> list[dict[str, Any]]:
        """The caller's tokens, or (an org owner) the tokens of an org's service accounts."""
        path = f"/orgs/{quote(org, safe='')}/tokens" if org else "/tokens"
        return list(self._json("GET", path)["tokens"])

    def create_token(self, *, label: str | None = None, scopes: list[str] | None = None,
                     namespaces: list[str] | None = None, days: int | None = None,
                     account: str | None = None) -> dict[str, Any]:
        """A new token for the caller (or `account`, an ORG.NAME service account):
        {token, token_info}. The secret is only ever in this answer."""
        body = _params(label=label, scopes=scopes or None, namespaces=namespaces or None,
                       days=days, account=account)
        return self._json("POST", "/tokens", json=body)

    def revoke_token(self, token_id: str | int) -> dict[str, Any]:
        """Revoke a token: {token_info}."""
        return self._json("DELETE", f"/tokens/{quote(str(token_id), safe='')}")

    # -- orgs -----------------------------------------------------------------------------

    def create_org(self, name: str, display_name: str | None = None) -> dict[str, Any]:
        """Create an org (and its namespace), owned by the caller: {org, namespace}."""
        return self._json("POST", "/orgs", json=_params(name=name, display_name=display_name))

    def delete_org(self, name: str) -> dict[str, Any]:
        return self._json("DELETE", _org_path(name))

    def members(self, org: str) -> list[dict[str, Any]]:
        """An org's members: username, display_name, kind, role, added_at."""
        return list(self._json("GET", _org_path(org) + "/members")["members"])

    def set_member(self, org: str, username: str, role: str) -> dict[str, Any]:
        """Add a member or change their role: {member}."""
        return self._json("PUT", _org_path(org) + f"/members/{quote(username, safe='')}",
                          json={"role": role})

    def remove_member(self, org: str, username: str) -> dict[str, Any]:
        return self._json("DELETE", _org_path(org) + f"/members/{quote(username, safe='')}")

    def add_service_account(self, org: str, name: str,
                            role: str | None = None) -> dict[str, Any]:
        """A service account of the org (no password; it gets tokens): {username, role}."""
        return self._json("POST", _org_path(org) + "/service-accounts",
                          json=_params(name=name, role=role))

    def invite(self, org: str, *, role: str | None = None, email: str | None = None,
               days: int | None = None) -> dict[str, Any]:
        """An invitation to the org: {secret, url, role}."""
        return self._json("POST", _org_path(org) + "/invitations",
                          json=_params(role=role, email=email, days=days))

    def accept_invitation(self, secret: str, *, username: str | None = None,
                          password: str | None = None, display_name: str | None = None,
                          email: str | None = None) -> dict[str, Any]:
        """Join an org: as the caller, or as a new account (username, password): {username}."""
        body = _params(username=username, password=password, display_name=display_name,
                       email=email)
        return self._json("POST", f"/invitations/{quote(secret, safe='')}/accept", json=body)

    # -- namespaces, releases and review --------------------------------------------------

    def namespace_settings(self, namespace: str) -> dict[str, Any]:
        """{name, visibility, owner, release_policy, two_person, review_policy}."""
        return self._json("GET", _namespace_path(namespace) + "/settings")

    def set_visibility(self, namespace: str, visibility: str) -> dict[str, Any]:
        """public, internal (signed-in accounts) or private (members)."""
        return self._json("PUT", _namespace_path(namespace) + "/visibility",
                          json={"visibility": visibility})

    def set_release_policy(self, namespace: str, policy: str,
                           two_person: bool = False) -> dict[str, Any]:
        """`direct` publishes at once; `review` holds each version for a maintainer."""
        return self._json("PUT", _namespace_path(namespace) + "/release-policy",
                          json={"policy": policy, "two_person": two_person})

    def releases(self, namespace: str, *, state: str | None = None,
                 mine: bool = False) -> list[dict[str, Any]]:
        """A namespace's releases (pending, approved, rejected); `mine`: the caller's."""
        params = _params(state=state, mine="1" if mine else None)
        body = self._json("GET", _namespace_path(namespace) + "/releases", params=params)
        return list(body["releases"])

    def review_queue(self, namespace: str | None = None) -> dict[str, Any]:
        """What waits for the caller's review: {releases, proposals}, each with its diff."""
        return self._json("GET", "/review", params=_params(namespace=namespace))

    def release(self, release_id: str) -> dict[str, Any]:
        """A release with its diff, the current version and the checks report."""
        return self._json("GET", _release_path(release_id))

    def approve_release(self, release_id: str, comment: str = "") -> dict[str, Any]:
        """Publish a pending release (a maintainer): the release."""
        body = self._json("POST", _release_path(release_id) + "/approve",
                          json=_params(comment=comment or None))
        return dict(body.get("release") or body)

    def reject_release(self, release_id: str, comment: str) -> dict[str, Any]:
        """Refuse a pending release, saying why: the release."""
        body = self._json("POST", _release_path(release_id) + "/reject",
                          json={"comment": comment})
        return dict(body.get("release") or body)

    # -- audit ----------------------------------------------------------------------------

    def audit(self, *, org: str | None = None, actor: str | None = None,
              action: str | None = None, since: str | None = None,
              cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """One page of audit events, newest first: {events, next_cursor}."""
        params = _params(org=org, actor=actor, action=action, since=since, cursor=cursor,
                         limit=limit)
        return self._json("GET", "/audit", params=params)

    def audit_jsonl(self, *, org: str | None = None, actor: str | None = None,
                    action: str | None = None, since: str | None = None,
                    cursor: str | None = None,
                    limit: int | None = None) -> tuple[str, str | None]:
        """One page of audit events as JSON lines, and the next cursor (or None)."""
        params = _params(org=org, actor=actor, action=action, since=since, cursor=cursor,
                         limit=limit, format="jsonl")
        response = self._request("GET", "/audit", params=params)
        return response.text, response.headers.get("x-next-cursor") or None

    # -- evidence export ----------------------------------------------------------------

    def export_evidence(self, *, namespace: str | None = None, skill: str | None = None,
                        since: str | None = None, until: str | None = None,
                        tiers: list[str] | None = None,
                        kinds: list[str] | None = None) -> Iterator[str]:
        """The evidence export's JSON lines as the server streams them, in text chunks (not
        split at lines). An error answer raises before the first chunk."""
        params = {**_params(namespace=namespace, skill=skill, since=since, until=until),
                  "tier": list(tiers or []), "kind": list(kinds or [])}
        headers = {"User-Agent": f"skills-hub/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            with self.http.stream("GET", self.server + "/api/v1/evidence", params=params,
                                  headers=headers) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                yield from response.iter_text()
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the registry at {self.server}: "
                              f"{exc or type(exc).__name__}") from exc

    # -- transport ----------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise ServerError(response.status_code, "bad_response",
                              f"{self.server} did not answer with JSON; is it a "
                              "skills-hub server?") from exc
        if not isinstance(body, dict):
            raise ServerError(response.status_code, "bad_response",
                              f"{self.server} answered with unexpected JSON")
        return body

    def _request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> httpx.Response:
        url = self.server + "/api/v1" + path
        all_headers = {"User-Agent": f"skills-hub/{__version__}", **(headers or {})}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.http.request(method, url, headers=all_headers, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the registry at {self.server}: "
                              f"{exc or type(exc).__name__}",
                              extra={"hint": "check --server, SKILLS_HUB_URL or "
                                             "`skills-hub login`"}) from exc
        if response.is_error:
            raise error_from_response(response)
        return response


def error_from_response(response: httpx.Response) -> ServerError:
    """A ServerError from an error response: the JSON {code, message, problems?, hint?}
    when the server sent it, else the status line and the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        text = response.text.strip()[:200]
        return ServerError(response.status_code, "http_error",
                           f"HTTP {response.status_code} from {response.url}"
                           + (f": {text}" if text else ""))
    problems = [_problem(p) for p in body.get("problems") or [] if isinstance(p, dict)]
    extra = {k: v for k, v in body.items() if k not in {"code", "message", "problems"}}
    return ServerError(response.status_code, str(body.get("code") or "http_error"),
                       str(body["message"]), problems=problems,
                       hint=str(body.get("hint") or ""), extra=extra)


def normalize_server(server: str) -> str:
    """The server URL without a trailing slash; a bare host gets http://."""
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "http://" + server
    return server


def _with_release_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A publish answer with `name` and `version` filled in from a pending release."""
    release = body.get("release")
    if isinstance(release, dict):
        body.setdefault("name", release.get("name"))
        body.setdefault("version", release.get("version"))
    return body


def _problem(raw: dict[str, Any]) -> Problem:
    return Problem(str(raw.get("field", "")), str(raw.get("message", "")),
                   str(raw.get("hint") or ""), str(raw.get("severity") or "error"))


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _skill_path(namespace: str, name: str) -> str:
    return f"/skills/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _org_path(org: str) -> str:
    return f"/orgs/{quote(org, safe='')}"


def _namespace_path(namespace: str) -> str:
    return f"/namespaces/{quote(namespace, safe='')}"


def _release_path(release_id: str) -> str:
    return f"/releases/{quote(str(release_id), safe='')}"


def _version_path(namespace: str, name: str, version: str) -> str:
    return _skill_path(namespace, name) + f"/versions/{quote(version, safe='')}"
