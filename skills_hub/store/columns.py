"""The catalogue's columns and joins: standard SQL text both backends' stores share
(`store.sqlite`, `store.postgres`), so a row type and its columns change in one place."""

from __future__ import annotations

BROWSE_ORDERS = {
    "recent": "s.updated_at DESC, s.id DESC",
    "installs": "s.downloads DESC, s.updated_at DESC, s.id DESC",
    "name": "s.namespace, s.name",
}


_SKILL_COLUMNS = ("id, namespace, name, latest_version, description, tags, created_at, "
                  "updated_at, downloads, trust")


# The latest version's verdict comes from its report ("unchecked" until one exists).
_REPORT_JOIN = ("LEFT JOIN reports r ON r.namespace = s.namespace "
                "AND r.name = s.name AND r.version = s.latest_version")


_SKILL_FROM = "skills s " + _REPORT_JOIN


_VERSION_COLUMNS = ("skill_id, version, commit_sha, tag_sha, tree_sha, content_sha256, "
                    "description, frontmatter_json, files_json, published_at")


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


_SKILL_SELECT = (_prefixed("s", _SKILL_COLUMNS)
                 + ", coalesce(r.verdict, 'unchecked') AS verdict")


_NAMESPACE = ("name, visibility, created_at, owner_user, owner_org, release_policy, "
              "two_person, review_policy")


_PROPOSAL_COLUMNS = ("id, namespace, name, base_version, applies_to, status, proposer, "
                     "proposer_namespace, edits_json, evidence_json, reasoning, content_sha256, "
                     "commit_sha, tree_sha, verdict, report_json, support, created_at, "
                     "decided_at, decided_by, comment, version")

_USER = ("id, username, display_name, email, kind, org, password_hash, is_operator, "
         "oidc_issuer, oidc_subject, created_at, disabled_at")
_TOKEN = ("t.id, t.user_id, u.username, t.prefix, t.label, t.scopes, t.namespaces_json, "
          "t.created_at, t.expires_at, t.last_used_at, t.revoked_at")
_RELEASE = ("id, namespace, name, version, state, author_id, author, commit_sha, tree_sha, "
            "content_sha256, verdict, report_json, created_at, decided_at, decided_by, comment")
