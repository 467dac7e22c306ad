"""Accounts, orgs and roles, tokens, sessions and invitations, pending releases and the
audit log in SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
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
from .db import Table


class Users(Table):
    """People and service accounts."""

    def add_user(self, username: str, *, display_name: str = "", email: str = "",
                 password_hash: str | None = None, operator: bool = False,
                 kind: str = "user", org: str | None = None,
                 oidc: tuple[str, str] | None = None,
                 personal_namespace: bool = True) -> UserRow:
        """A new account; a person's account also gets its personal namespace row."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO users (username, display_name, email, kind, org, password_hash, "
                "is_operator, oidc_issuer, oidc_subject, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (username, display_name, email, kind, org, password_hash, int(operator),
                 oidc[0] if oidc else None, oidc[1] if oidc else None, now_iso()))
            user_id = int(cur.lastrowid or 0)
            if org is not None:
                conn.execute("INSERT INTO org_members (org, user_id, role, added_at) "
                             "VALUES (?, ?, 'reader', ?)", (org, user_id, now_iso()))
            if personal_namespace:
                conn.execute(
                    "INSERT INTO namespaces (name, visibility, created_at, owner_user) "
                    "VALUES (?, 'public', ?, ?)", (username, now_iso(), user_id))
        user = self.user_by_id(user_id)
        assert user is not None
        return user

    def user(self, username: str) -> UserRow | None:
        row = self._conn().execute(f"SELECT {_USER} FROM users WHERE username = ?",
                                   (username,)).fetchone()
        return _user(row) if row else None

    def user_by_id(self, user_id: int) -> UserRow | None:
        row = self._conn().execute(f"SELECT {_USER} FROM users WHERE id = ?",
                                   (user_id,)).fetchone()
        return _user(row) if row else None

    def user_by_oidc(self, issuer: str, subject: str) -> UserRow | None:
        row = self._conn().execute(
            f"SELECT {_USER} FROM users WHERE oidc_issuer = ? AND oidc_subject = ?",
            (issuer, subject)).fetchone()
        return _user(row) if row else None

    def users(self, kind: str | None = None) -> list[UserRow]:
        rows = self._conn().execute(
            f"SELECT {_USER} FROM users WHERE (? IS NULL OR kind = ?) ORDER BY username",
            (kind, kind)).fetchall()
        return [_user(r) for r in rows]

    def set_password(self, user_id: int, password_hash: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                         (password_hash, user_id))

    def set_operator(self, user_id: int, operator: bool) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE users SET is_operator = ? WHERE id = ?",
                         (int(operator), user_id))

    def name_taken(self, name: str) -> bool:
        """Users, orgs and namespaces share one space of names."""
        row = self._conn().execute(
            "SELECT 1 FROM users WHERE username = ? UNION ALL "
            "SELECT 1 FROM orgs WHERE name = ? UNION ALL "
            "SELECT 1 FROM namespaces WHERE name = ? LIMIT 1", (name, name, name)).fetchone()
        return row is not None


class Orgs(Table):
    """Orgs and their members' roles."""

    def add_org(self, name: str, owner_id: int | None, display_name: str = "",
                namespace: bool = True) -> None:
        """The org, its first owner and (unless it exists) its namespace of the same name."""
        with self._tx() as conn:
            conn.execute("INSERT INTO orgs (name, display_name, created_at) VALUES (?, ?, ?)",
                         (name, display_name, now_iso()))
            if owner_id is not None:
                conn.execute("INSERT INTO org_members (org, user_id, role, added_at) "
                             "VALUES (?, ?, 'owner', ?)", (name, owner_id, now_iso()))
            if namespace:
                conn.execute("INSERT OR IGNORE INTO namespaces (name, visibility, created_at) "
                             "VALUES (?, 'public', ?)", (name, now_iso()))
                conn.execute("UPDATE namespaces SET owner_org = ?, owner_user = NULL "
                             "WHERE name = ?", (name, name))
        self.generation.bump()

    def org_exists(self, name: str) -> bool:
        return self._conn().execute("SELECT 1 FROM orgs WHERE name = ?",
                                    (name,)).fetchone() is not None

    def delete_org(self, name: str) -> None:
        """The org, its members, invitations and service accounts; its namespaces stay,
        owned by nobody (the operator's to hand on), with their skills and history."""
        with self._tx() as conn:
            conn.execute("UPDATE namespaces SET owner_org = NULL, visibility = 'private' "
                         "WHERE owner_org = ?", (name,))
            conn.execute("UPDATE tokens SET revoked_at = ? WHERE revoked_at IS NULL AND "
                         "user_id IN (SELECT id FROM users WHERE kind = 'service' AND org = ?)",
                         (now_iso(), name))
            conn.execute("UPDATE users SET disabled_at = ? WHERE kind = 'service' AND org = ?",
                         (now_iso(), name))
            conn.execute("DELETE FROM orgs WHERE name = ?", (name,))
        self.generation.bump()

    def orgs_of(self, user_id: int) -> list[tuple[str, str]]:
        rows = self._conn().execute(
            "SELECT org, role FROM org_members WHERE user_id = ? ORDER BY org",
            (user_id,)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def members(self, org: str) -> list[MemberRow]:
        rows = self._conn().execute(
            "SELECT m.org, m.user_id, u.username, u.display_name, u.kind, m.role, m.added_at "
            "FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.org = ? "
            "ORDER BY u.username", (org,)).fetchall()
        return [MemberRow(*r) for r in rows]

    def member_role(self, org: str, user_id: int) -> str | None:
        row = self._conn().execute(
            "SELECT role FROM org_members WHERE org = ? AND user_id = ?",
            (org, user_id)).fetchone()
        return str(row[0]) if row else None

    def set_member(self, org: str, user_id: int, role: str, *,
                   keep_an_owner: bool = True) -> bool:
        """Add or change a member; False (nothing changed) when it would leave no owner."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO org_members (org, user_id, role, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (org, user_id) DO UPDATE SET role = excluded.role",
                (org, user_id, role, now_iso()))
            if keep_an_owner and not _has_owner(conn, org):
                raise KeepOwner
        return True

    def remove_member(self, org: str, user_id: int) -> bool:
        """False when the member is not there; raises when it would leave no owner."""
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM org_members WHERE org = ? AND user_id = ?",
                               (org, user_id))
            if cur.rowcount and not _has_owner(conn, org):
                raise KeepOwner
        return bool(cur.rowcount)

    def roles_of(self, user_id: int) -> dict[str, str]:
        """namespace -> role for every namespace the account has a role on."""
        rows = self._conn().execute(
            "SELECT n.name, m.role FROM org_members m "
            "JOIN namespaces n ON n.owner_org = m.org WHERE m.user_id = ? "
            "UNION ALL SELECT name, 'owner' FROM namespaces WHERE owner_user = ?",
            (user_id, user_id)).fetchall()
        return {r[0]: r[1] for r in rows}


class Tokens(Table):
    """Personal access tokens (sha256 stored)."""

    def add_token(self, user_id: int, token_sha256: str, prefix: str, label: str,
                  scopes: Iterable[str], namespaces: Iterable[str] | None,
                  expires_at: str | None) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO tokens (user_id, token_sha256, prefix, label, scopes, "
                "namespaces_json, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, token_sha256, prefix, label, " ".join(sorted(scopes)),
                 None if namespaces is None else json.dumps(sorted(namespaces)),
                 now_iso(), expires_at))
        return int(cur.lastrowid or 0)

    def token(self, token_sha256: str) -> TokenRow | None:
        row = self._conn().execute(
            f"SELECT {_TOKEN} FROM tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_sha256 = ?", (token_sha256,)).fetchone()
        return _token(row) if row else None

    def token_by_id(self, token_id: int) -> TokenRow | None:
        row = self._conn().execute(
            f"SELECT {_TOKEN} FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?",
            (token_id,)).fetchone()
        return _token(row) if row else None

    def tokens(self, user_ids: Iterable[int]) -> list[TokenRow]:
        ids = sorted(set(user_ids))
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        rows = self._conn().execute(
            f"SELECT {_TOKEN} FROM tokens t JOIN users u ON u.id = t.user_id "
            f"WHERE t.user_id IN ({marks}) ORDER BY t.id", ids).fetchall()
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: int) -> bool:
        with self._tx() as conn:
            cur = conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND "
                               "revoked_at IS NULL", (now_iso(), token_id))
        return bool(cur.rowcount)

    def touch_token(self, token_id: int, at: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (at, token_id))


class Sessions(Table):
    """Browser sessions, sign-in flows, invitations."""

    def add_session(self, id_sha256: str, user_id: int, csrf: str, expires_at: str,
                    address: str, user_agent: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO sessions (id_sha256, user_id, csrf, created_at, expires_at, "
                "address, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (id_sha256, user_id, csrf, now_iso(), expires_at, address, user_agent[:300]))

    def session(self, id_sha256: str) -> tuple[int, str, str] | None:
        """(user id, csrf token, expiry) of a session."""
        row = self._conn().execute(
            "SELECT user_id, csrf, expires_at FROM sessions WHERE id_sha256 = ?",
            (id_sha256,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def delete_session(self, id_sha256: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE id_sha256 = ?", (id_sha256,))

    def add_flow(self, state: str, kind: str, data: dict[str, Any], expires_at: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM auth_flows WHERE expires_at < ?", (now_iso(),))
            conn.execute("INSERT INTO auth_flows (state, kind, data_json, created_at, "
                         "expires_at) VALUES (?, ?, ?, ?, ?)",
                         (state, kind, json.dumps(data), now_iso(), expires_at))

    def take_flow(self, state: str, kind: str) -> dict[str, Any] | None:
        """The flow's data, once (it is deleted), unless expired."""
        with self._tx() as conn:
            row = conn.execute("SELECT data_json, expires_at FROM auth_flows WHERE state = ? "
                               "AND kind = ?", (state, kind)).fetchone()
            conn.execute("DELETE FROM auth_flows WHERE state = ?", (state,))
        if row is None or row[1] < now_iso():
            return None
        data: dict[str, Any] = json.loads(row[0])
        return data

    def add_invitation(self, id_sha256: str, org: str, role: str, email: str,
                       created_by: int | None, expires_at: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO invitations (id_sha256, org, role, email, created_by, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (id_sha256, org, role, email, created_by, now_iso(), expires_at))

    def invitation(self, id_sha256: str) -> InvitationRow | None:
        row = self._conn().execute(
            "SELECT id_sha256, org, role, email, created_by, created_at, expires_at, "
            "accepted_at FROM invitations WHERE id_sha256 = ?", (id_sha256,)).fetchone()
        return InvitationRow(*row) if row else None

    def accept_invitation(self, id_sha256: str, user_id: int) -> bool:
        """Mark it used and add the member, once; False if it was used meanwhile."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE invitations SET accepted_at = ?, accepted_by = ? "
                "WHERE id_sha256 = ? AND accepted_at IS NULL", (now_iso(), user_id, id_sha256))
            if not cur.rowcount:
                return False
            org, role = conn.execute("SELECT org, role FROM invitations WHERE id_sha256 = ?",
                                     (id_sha256,)).fetchone()
            conn.execute(
                "INSERT INTO org_members (org, user_id, role, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (org, user_id) DO UPDATE SET role = excluded.role "
                "WHERE org_members.role != 'owner'", (org, user_id, role, now_iso()))
        return True


class Releases(Table):
    """Releases waiting for review and their decisions."""

    def add_release(self, row: ReleaseRow) -> None:
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO releases ({_RELEASE}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.namespace, row.name, row.version, row.state, row.author_id,
                 row.author, row.commit_sha, row.tree_sha, row.content_sha256, row.verdict,
                 json.dumps(row.report), row.created_at, row.decided_at, row.decided_by,
                 row.comment))

    def release(self, release_id: str) -> ReleaseRow | None:
        row = self._conn().execute(f"SELECT {_RELEASE} FROM releases WHERE id = ?",
                                   (release_id,)).fetchone()
        return _release(row) if row else None

    def pending_release(self, namespace: str, name: str, version: str) -> ReleaseRow | None:
        row = self._conn().execute(
            f"SELECT {_RELEASE} FROM releases WHERE namespace = ? AND name = ? AND "
            "version = ? AND state = 'pending'", (namespace, name, version)).fetchone()
        return _release(row) if row else None

    def releases(self, namespaces: Iterable[str], state: str | None = "pending",
                 name: str | None = None) -> list[ReleaseRow]:
        names = sorted(set(namespaces))
        if not names:
            return []
        marks = ", ".join("?" for _ in names)
        rows = self._conn().execute(
            f"SELECT {_RELEASE} FROM releases WHERE namespace IN ({marks}) "
            "AND (? IS NULL OR state = ?) AND (? IS NULL OR name = ?) "
            "ORDER BY created_at, id", [*names, state, state, name, name]).fetchall()
        return [_release(r) for r in rows]

    def decide_release(self, release_id: str, state: str, by: str, comment: str) -> bool:
        """Compare-and-set from pending; False when it was decided meanwhile."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE releases SET state = ?, decided_at = ?, decided_by = ?, comment = ? "
                "WHERE id = ? AND state = 'pending'",
                (state, now_iso(), by, comment, release_id))
        return bool(cur.rowcount)

    def decided_page(self, namespace: str, *, name: str | None, since: str | None,
                     until: str | None, after: tuple[str, str] | None,
                     limit: int) -> list[ReleaseRow]:
        """A keyset page of a namespace's decided releases (see `store.evidence`)."""
        sql, params = page_query("?", f"SELECT {_RELEASE} FROM releases", RELEASE_KEY,
                                 namespace, name=name, since=since, until=until, after=after,
                                 limit=limit, where=("state != 'pending'",))
        return [_release(r) for r in self._conn().execute(sql, params).fetchall()]


class Audit(Table):
    """The audit log."""

    def audit(self, event: NewAudit) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO audit_log (at, actor, actor_id, action, target, org, namespace, "
                "address, user_agent, request_id, detail_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            clauses.append(f"org IN ({', '.join('?' for _ in names)})")
            params.extend(names)
        for column, value in (("actor", actor), ("action", action)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("at >= ?")
            params.append(since)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        where = " AND ".join(clauses) or "1"
        rows = self._conn().execute(
            "SELECT id, at, actor, action, target, org, namespace, address, user_agent, "
            f"request_id, detail_json FROM audit_log WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, limit]).fetchall()
        return [AuditRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                         json.loads(r[10])) for r in rows]


def _has_owner(conn: sqlite3.Connection, org: str) -> bool:
    return conn.execute("SELECT 1 FROM org_members m JOIN users u ON u.id = m.user_id "
                        "WHERE m.org = ? AND m.role = 'owner' AND u.disabled_at IS NULL",
                        (org,)).fetchone() is not None


def _user(row: sqlite3.Row) -> UserRow:
    data = dict(row)
    data["is_operator"] = bool(data["is_operator"])
    return UserRow(**data)


def _token(row: sqlite3.Row) -> TokenRow:
    data = tuple(row)
    namespaces = None if data[6] is None else frozenset(json.loads(data[6]))
    return TokenRow(data[0], data[1], data[2], data[3], data[4], frozenset(data[5].split()),
                    namespaces, data[7], data[8], data[9], data[10])


def _release(row: sqlite3.Row) -> ReleaseRow:
    data = dict(row)
    data["report"] = json.loads(data.pop("report_json"))
    return ReleaseRow(**data)
