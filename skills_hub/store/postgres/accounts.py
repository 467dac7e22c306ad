"""Accounts, orgs and roles, tokens, sessions and invitations, pending releases and the
audit log in PostgreSQL: what `store.sqlite.accounts` does, with the same results and
errors.

Two places differ in how, not in what. SQLite's BEGIN IMMEDIATE runs one writer at a
time; under PostgreSQL's READ COMMITTED a change of members first locks its org's row, so
that two owners demoting each other at once cannot both see the other still an owner.
And the one-use rows (invitations, sign-in flows) are spent by one UPDATE or DELETE whose
WHERE the second of two racing requests no longer matches.

A unique, foreign-key or check violation surfaces as the driver's `psycopg.IntegrityError`
subclass where SQLite raises `sqlite3.IntegrityError`, after the transaction rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...domain import (
    AuditRow,
    InvitationRow,
    KeepOwner,
    MemberRow,
    NewAudit,
    ReleaseRow,
    TokenRow,
    UserRow,
    now_iso,
)
from ..columns import _RELEASE, _TOKEN, _USER
from ..evidence import RELEASE_KEY, page_query
from .db import Conn, Table, nul_misses

_AUDIT = ("id, at, actor, action, target, org, namespace, address, user_agent, request_id, "
          "detail_json")

Row = tuple[Any, ...]


class _Store(Table):
    """A `Table` with one-statement reads. A lookup by text holding a NUL finds nothing,
    as in SQLite (`db.nul_misses`): names, states and digests come from requests."""

    @nul_misses(lambda: None)
    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        with self._read() as conn:
            return conn.execute(sql, params).fetchone()

    @nul_misses(list)
    def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        with self._read() as conn:
            return conn.execute(sql, params).fetchall()


class Users(_Store):
    """People and service accounts."""

    def add_user(self, username: str, *, display_name: str = "", email: str = "",
                 password_hash: str | None = None, operator: bool = False,
                 kind: str = "user", org: str | None = None,
                 oidc: tuple[str, str] | None = None,
                 personal_namespace: bool = True) -> UserRow:
        """A new account; a person's account also gets its personal namespace row."""
        with self._tx() as conn:
            row = conn.execute(
                "INSERT INTO users (username, display_name, email, kind, org, password_hash, "
                "is_operator, oidc_issuer, oidc_subject, created_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_USER}",
                (username, display_name, email, kind, org, password_hash, int(operator),
                 oidc[0] if oidc else None, oidc[1] if oidc else None, now_iso())).fetchone()
            assert row is not None
            user = _user(row)
            if org is not None:
                conn.execute("INSERT INTO org_members (org, user_id, role, added_at) "
                             "VALUES (%s, %s, 'reader', %s)", (org, user.id, now_iso()))
            if personal_namespace:
                conn.execute(
                    "INSERT INTO namespaces (name, visibility, created_at, owner_user) "
                    "VALUES (%s, 'public', %s, %s)", (username, now_iso(), user.id))
        return user

    def user(self, username: str) -> UserRow | None:
        row = self._one(f"SELECT {_USER} FROM users WHERE username = %s", (username,))
        return _user(row) if row else None

    def user_by_id(self, user_id: int) -> UserRow | None:
        row = self._one(f"SELECT {_USER} FROM users WHERE id = %s", (user_id,))
        return _user(row) if row else None

    def user_by_oidc(self, issuer: str, subject: str) -> UserRow | None:
        row = self._one(f"SELECT {_USER} FROM users WHERE oidc_issuer = %s "
                        "AND oidc_subject = %s", (issuer, subject))
        return _user(row) if row else None

    def users(self, kind: str | None = None) -> list[UserRow]:
        if kind is None:
            rows = self._all(f"SELECT {_USER} FROM users ORDER BY username")
        else:
            rows = self._all(f"SELECT {_USER} FROM users WHERE kind = %s ORDER BY username",
                             (kind,))
        return [_user(r) for r in rows]

    def set_password(self, user_id: int, password_hash: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE users SET password_hash = %s WHERE id = %s",
                         (password_hash, user_id))

    def set_operator(self, user_id: int, operator: bool) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE users SET is_operator = %s WHERE id = %s",
                         (int(operator), user_id))

    def name_taken(self, name: str) -> bool:
        """Users, orgs and namespaces share one space of names."""
        return self._one(
            "SELECT 1 FROM users WHERE username = %(name)s UNION ALL "
            "SELECT 1 FROM orgs WHERE name = %(name)s UNION ALL "
            "SELECT 1 FROM namespaces WHERE name = %(name)s LIMIT 1",
            {"name": name}) is not None


class Orgs(_Store):
    """Orgs and their members' roles."""

    def add_org(self, name: str, owner_id: int | None, display_name: str = "",
                namespace: bool = True) -> None:
        """The org, its first owner and (unless it exists) its namespace of the same name."""
        with self._tx() as conn:
            conn.execute("INSERT INTO orgs (name, display_name, created_at) "
                         "VALUES (%s, %s, %s)", (name, display_name, now_iso()))
            if owner_id is not None:
                conn.execute("INSERT INTO org_members (org, user_id, role, added_at) "
                             "VALUES (%s, %s, 'owner', %s)", (name, owner_id, now_iso()))
            if namespace:
                conn.execute("INSERT INTO namespaces (name, visibility, created_at) "
                             "VALUES (%s, 'public', %s) ON CONFLICT DO NOTHING",
                             (name, now_iso()))
                conn.execute("UPDATE namespaces SET owner_org = %s, owner_user = NULL "
                             "WHERE name = %s", (name, name))
        self.generation.bump()

    def org_exists(self, name: str) -> bool:
        return self._one("SELECT 1 FROM orgs WHERE name = %s", (name,)) is not None

    def delete_org(self, name: str) -> None:
        """The org, its members, invitations and service accounts; its namespaces stay,
        owned by nobody (the operator's to hand on), with their skills and history."""
        with self._tx() as conn:
            _lock_org(conn, name)
            conn.execute("UPDATE namespaces SET owner_org = NULL, visibility = 'private' "
                         "WHERE owner_org = %s", (name,))
            conn.execute("UPDATE tokens SET revoked_at = %s WHERE revoked_at IS NULL AND "
                         "user_id IN (SELECT id FROM users WHERE kind = 'service' "
                         "AND org = %s)", (now_iso(), name))
            conn.execute("UPDATE users SET disabled_at = %s WHERE kind = 'service' "
                         "AND org = %s", (now_iso(), name))
            conn.execute("DELETE FROM orgs WHERE name = %s", (name,))
        self.generation.bump()

    def orgs_of(self, user_id: int) -> list[tuple[str, str]]:
        rows = self._all("SELECT org, role FROM org_members WHERE user_id = %s ORDER BY org",
                         (user_id,))
        return [(r[0], r[1]) for r in rows]

    def members(self, org: str) -> list[MemberRow]:
        rows = self._all(
            "SELECT m.org, m.user_id, u.username, u.display_name, u.kind, m.role, m.added_at "
            "FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.org = %s "
            "ORDER BY u.username", (org,))
        return [MemberRow(*r) for r in rows]

    def member_role(self, org: str, user_id: int) -> str | None:
        row = self._one("SELECT role FROM org_members WHERE org = %s AND user_id = %s",
                        (org, user_id))
        return str(row[0]) if row else None

    def set_member(self, org: str, user_id: int, role: str, *,
                   keep_an_owner: bool = True) -> bool:
        """Add or change a member; False (nothing changed) when it would leave no owner."""
        with self._tx() as conn:
            _lock_org(conn, org)
            conn.execute(
                "INSERT INTO org_members (org, user_id, role, added_at) "
                "VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (org, user_id) DO UPDATE SET role = EXCLUDED.role",
                (org, user_id, role, now_iso()))
            if keep_an_owner and not _has_owner(conn, org):
                raise KeepOwner
        return True

    def remove_member(self, org: str, user_id: int) -> bool:
        """False when the member is not there; raises when it would leave no owner."""
        with self._tx() as conn:
            _lock_org(conn, org)
            removed = conn.execute("DELETE FROM org_members WHERE org = %s AND user_id = %s",
                                   (org, user_id)).rowcount
            if removed and not _has_owner(conn, org):
                raise KeepOwner
        return bool(removed)

    def roles_of(self, user_id: int) -> dict[str, str]:
        """namespace -> role for every namespace the account has a role on."""
        rows = self._all(
            "SELECT n.name, m.role FROM org_members m "
            "JOIN namespaces n ON n.owner_org = m.org WHERE m.user_id = %(id)s "
            "UNION ALL SELECT name, 'owner' FROM namespaces WHERE owner_user = %(id)s",
            {"id": user_id})
        return {r[0]: r[1] for r in rows}


class Tokens(_Store):
    """Personal access tokens (sha256 stored)."""

    def add_token(self, user_id: int, token_sha256: str, prefix: str, label: str,
                  scopes: Iterable[str], namespaces: Iterable[str] | None,
                  expires_at: str | None) -> int:
        with self._tx() as conn:
            row = conn.execute(
                "INSERT INTO tokens (user_id, token_sha256, prefix, label, scopes, "
                "namespaces_json, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (user_id, token_sha256, prefix, label, " ".join(sorted(scopes)),
                 None if namespaces is None else json.dumps(sorted(namespaces)),
                 now_iso(), expires_at)).fetchone()
        assert row is not None
        return int(row[0])

    def token(self, token_sha256: str) -> TokenRow | None:
        row = self._one(f"SELECT {_TOKEN} FROM tokens t JOIN users u ON u.id = t.user_id "
                        "WHERE t.token_sha256 = %s", (token_sha256,))
        return _token(row) if row else None

    def token_by_id(self, token_id: int) -> TokenRow | None:
        row = self._one(f"SELECT {_TOKEN} FROM tokens t JOIN users u ON u.id = t.user_id "
                        "WHERE t.id = %s", (token_id,))
        return _token(row) if row else None

    def tokens(self, user_ids: Iterable[int]) -> list[TokenRow]:
        ids = sorted(set(user_ids))
        if not ids:
            return []
        rows = self._all(f"SELECT {_TOKEN} FROM tokens t JOIN users u ON u.id = t.user_id "
                         "WHERE t.user_id = ANY(%s) ORDER BY t.id", (ids,))
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: int) -> bool:
        with self._tx() as conn:
            revoked = conn.execute("UPDATE tokens SET revoked_at = %s WHERE id = %s AND "
                                   "revoked_at IS NULL", (now_iso(), token_id)).rowcount
        return bool(revoked)

    def touch_token(self, token_id: int, at: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE tokens SET last_used_at = %s WHERE id = %s", (at, token_id))


class Sessions(_Store):
    """Browser sessions, sign-in flows, invitations."""

    def add_session(self, id_sha256: str, user_id: int, csrf: str, expires_at: str,
                    address: str, user_agent: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO sessions (id_sha256, user_id, csrf, created_at, expires_at, "
                "address, user_agent) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (id_sha256, user_id, csrf, now_iso(), expires_at, address, user_agent[:300]))

    def session(self, id_sha256: str) -> tuple[int, str, str] | None:
        """(user id, csrf token, expiry) of a session."""
        row = self._one("SELECT user_id, csrf, expires_at FROM sessions WHERE id_sha256 = %s",
                        (id_sha256,))
        return (row[0], row[1], row[2]) if row else None

    def delete_session(self, id_sha256: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE id_sha256 = %s", (id_sha256,))

    def add_flow(self, state: str, kind: str, data: dict[str, Any], expires_at: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM auth_flows WHERE expires_at < %s", (now_iso(),))
            conn.execute("INSERT INTO auth_flows (state, kind, data_json, created_at, "
                         "expires_at) VALUES (%s, %s, %s, %s, %s)",
                         (state, kind, json.dumps(data), now_iso(), expires_at))

    @nul_misses(lambda: None)
    def take_flow(self, state: str, kind: str) -> dict[str, Any] | None:
        """The flow's data, once (it is deleted), unless expired."""
        # One DELETE: of two requests racing for the flow, only one gets its row back.
        # A flow asked for as another kind is spent too, as in SQLite.
        with self._tx() as conn:
            row = conn.execute("DELETE FROM auth_flows WHERE state = %s "
                               "RETURNING kind, data_json, expires_at", (state,)).fetchone()
        if row is None or row[0] != kind or row[2] < now_iso():
            return None
        data: dict[str, Any] = json.loads(row[1])
        return data

    def add_invitation(self, id_sha256: str, org: str, role: str, email: str,
                       created_by: int | None, expires_at: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO invitations (id_sha256, org, role, email, created_by, "
                "created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (id_sha256, org, role, email, created_by, now_iso(), expires_at))

    def invitation(self, id_sha256: str) -> InvitationRow | None:
        row = self._one(
            "SELECT id_sha256, org, role, email, created_by, created_at, expires_at, "
            "accepted_at FROM invitations WHERE id_sha256 = %s", (id_sha256,))
        return InvitationRow(*row) if row else None

    def accept_invitation(self, id_sha256: str, user_id: int) -> bool:
        """Mark it used and add the member, once; False if it was used meanwhile."""
        with self._tx() as conn:
            # A second request waits for the first's row lock, then finds it accepted.
            row = conn.execute(
                "UPDATE invitations SET accepted_at = %s, accepted_by = %s "
                "WHERE id_sha256 = %s AND accepted_at IS NULL RETURNING org, role",
                (now_iso(), user_id, id_sha256)).fetchone()
            if row is None:
                return False
            conn.execute(
                "INSERT INTO org_members (org, user_id, role, added_at) "
                "VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (org, user_id) DO UPDATE SET role = EXCLUDED.role "
                "WHERE org_members.role <> 'owner'", (row[0], user_id, row[1], now_iso()))
        return True


class Releases(_Store):
    """Releases waiting for review and their decisions."""

    def add_release(self, row: ReleaseRow) -> None:
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO releases ({_RELEASE}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (row.id, row.namespace, row.name, row.version, row.state, row.author_id,
                 row.author, row.commit_sha, row.tree_sha, row.content_sha256, row.verdict,
                 json.dumps(row.report), row.created_at, row.decided_at, row.decided_by,
                 row.comment))

    def release(self, release_id: str) -> ReleaseRow | None:
        row = self._one(f"SELECT {_RELEASE} FROM releases WHERE id = %s", (release_id,))
        return _release(row) if row else None

    def pending_release(self, namespace: str, name: str, version: str) -> ReleaseRow | None:
        row = self._one(f"SELECT {_RELEASE} FROM releases WHERE namespace = %s AND "
                        "name = %s AND version = %s AND state = 'pending'",
                        (namespace, name, version))
        return _release(row) if row else None

    def releases(self, namespaces: Iterable[str], state: str | None = "pending",
                 name: str | None = None) -> list[ReleaseRow]:
        names = sorted(set(namespaces))
        if not names:
            return []
        clauses: list[str] = ["namespace = ANY(%s)"]
        params: list[Any] = [names]
        for column, value in (("state", state), ("name", name)):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        rows = self._all(f"SELECT {_RELEASE} FROM releases WHERE {' AND '.join(clauses)} "
                         "ORDER BY created_at, id", params)
        return [_release(r) for r in rows]

    def decide_release(self, release_id: str, state: str, by: str, comment: str) -> bool:
        """Compare-and-set from pending; False when it was decided meanwhile."""
        with self._tx() as conn:
            decided = conn.execute(
                "UPDATE releases SET state = %s, decided_at = %s, decided_by = %s, "
                "comment = %s WHERE id = %s AND state = 'pending'",
                (state, now_iso(), by, comment, release_id)).rowcount
        return bool(decided)

    @nul_misses(list)
    def decided_page(self, namespace: str, *, name: str | None, since: str | None,
                     until: str | None, after: tuple[str, str] | None,
                     limit: int) -> list[ReleaseRow]:
        """A keyset page of a namespace's decided releases (see `store.evidence`)."""
        sql, params = page_query("%s", f"SELECT {_RELEASE} FROM releases", RELEASE_KEY,
                                 namespace, name=name, since=since, until=until, after=after,
                                 limit=limit, where=("state <> 'pending'",))
        return [_release(r) for r in self._all(sql, params)]


class Audit(_Store):
    """The audit log."""

    def audit(self, event: NewAudit) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO audit_log (at, actor, actor_id, action, target, org, namespace, "
                "address, user_agent, request_id, detail_json) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (now_iso(), event.actor, event.actor_id, event.action, event.target, event.org,
                 event.namespace, event.address, event.user_agent[:300], event.request_id,
                 json.dumps(event.detail, sort_keys=True)))

    def audit_events(self, *, orgs: Iterable[str] | None, actor: str | None = None,
                     action: str | None = None, since: str | None = None,
                     before_id: int | None = None, limit: int = 100) -> list[AuditRow]:
        """Newest first; `orgs` None: every event (the operator's view)."""
        clauses: list[str] = []
        params: list[Any] = []
        if orgs is not None:
            names = sorted(set(orgs))
            if not names:
                return []
            clauses.append("org = ANY(%s)")
            params.append(names)
        for condition, value in (("actor = %s", actor), ("action = %s", action),
                                 ("at >= %s", since), ("id < %s", before_id)):
            if value is not None:
                clauses.append(condition)
                params.append(value)
        where = " AND ".join(clauses) or "TRUE"
        rows = self._all(f"SELECT {_AUDIT} FROM audit_log WHERE {where} "
                         "ORDER BY id DESC LIMIT %s", [*params, limit])
        return [AuditRow(*_replaced(r, 10, json.loads)) for r in rows]


def _lock_org(conn: Conn, org: str) -> None:
    """Hold the org's row until the transaction ends: its changes of members take turns,
    each seeing the owners the one before left (a missing org locks nothing)."""
    conn.execute("SELECT 1 FROM orgs WHERE name = %s FOR NO KEY UPDATE", (org,))


def _has_owner(conn: Conn, org: str) -> bool:
    return conn.execute("SELECT 1 FROM org_members m JOIN users u ON u.id = m.user_id "
                        "WHERE m.org = %s AND m.role = 'owner' AND u.disabled_at IS NULL "
                        "LIMIT 1", (org,)).fetchone() is not None


def _replaced(row: Row, index: int, convert: Callable[[Any], Any]) -> list[Any]:
    """The row's values with the one at `index` converted."""
    values = list(row)
    values[index] = convert(values[index])
    return values


def _user(row: Row) -> UserRow:
    return UserRow(*_replaced(row, 7, bool))  # is_operator is stored as 0/1


def _token(row: Row) -> TokenRow:
    namespaces = None if row[6] is None else frozenset(json.loads(row[6]))
    return TokenRow(row[0], row[1], row[2], row[3], row[4], frozenset(row[5].split()),
                    namespaces, row[7], row[8], row[9], row[10])


def _release(row: Row) -> ReleaseRow:
    return ReleaseRow(*_replaced(row, 11, json.loads))
