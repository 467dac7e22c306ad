"""Append-only schema migrations for index.db. Never edit one that has shipped: add the next."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = tuple[str, Callable[[sqlite3.Connection], None]]


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run `;`-separated statements inside the caller's transaction (executescript commits)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


def m001_catalogue(conn: sqlite3.Connection) -> None:
    _script(conn,
        """
        CREATE TABLE namespaces (
            name TEXT PRIMARY KEY,
            visibility TEXT NOT NULL DEFAULT 'public'
                CHECK (visibility IN ('public', 'private')),
            created_at TEXT NOT NULL
        );
        CREATE TABLE skills (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL REFERENCES namespaces(name),
            name TEXT NOT NULL,
            latest_version TEXT NOT NULL,
            description TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            downloads INTEGER NOT NULL DEFAULT 0,
            UNIQUE (namespace, name)
        );
        CREATE TABLE versions (
            id INTEGER PRIMARY KEY,
            skill_id INTEGER NOT NULL REFERENCES skills(id) ON DELETE CASCADE,
            version TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            tag_sha TEXT NOT NULL,
            tree_sha TEXT NOT NULL,
            content_sha256 TEXT NOT NULL,
            description TEXT NOT NULL,
            frontmatter_json TEXT NOT NULL,
            files_json TEXT NOT NULL,
            published_at TEXT NOT NULL,
            UNIQUE (skill_id, version)
        );
        CREATE INDEX versions_content ON versions(content_sha256);
        CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            token_sha256 TEXT NOT NULL UNIQUE,
            label TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            last_used_at TEXT
        );
        CREATE VIRTUAL TABLE skills_fts USING fts5(
            name, description, tags, body, tokenize = 'porter unicode61'
        );
        """
    )


def m002_checks(conn: sqlite3.Connection) -> None:
    # Reports are keyed by (namespace, name, version), not by versions.id, so that a
    # catalogue rebuild from git (`reindex`) keeps them: tags are immutable, and the
    # content digest guards against a version that was replaced under the same name.
    _script(conn,
        """
        CREATE TABLE reports (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            content_sha256 TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('safe', 'caution', 'dangerous')),
            report_json TEXT NOT NULL,
            pipeline TEXT NOT NULL,
            checked_at TEXT NOT NULL,
            PRIMARY KEY (namespace, name, version)
        );
        CREATE TABLE report_history (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            old_verdict TEXT,
            new_verdict TEXT NOT NULL,
            pipeline TEXT NOT NULL,
            reason TEXT NOT NULL,
            changed_at TEXT NOT NULL
        );
        CREATE INDEX report_history_version ON report_history(namespace, name, version);
        CREATE TABLE rule_exceptions (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            rule TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (namespace, name, rule)
        );
        """
    )


def m003_search(conn: sqlite3.Connection) -> None:
    # Embeddings are keyed by the digest of (model, embedded text), never by skill: an
    # unchanged text is never embedded twice, and a reindex from git finds its vectors.
    # The FTS table is rebuilt with prefix indexes for search-as-you-type. The epoch moves
    # when skills are deleted or the catalogue rebuilt (ids may be reused): other server
    # processes then reload their vector matrix instead of patching it.
    _script(conn,
        """
        ALTER TABLE skills ADD COLUMN embed_sha256 TEXT;
        ALTER TABLE skills ADD COLUMN trust TEXT NOT NULL DEFAULT 'community';
        CREATE INDEX skills_updated ON skills(updated_at);
        CREATE INDEX skills_name ON skills(name);
        CREATE TABLE embeddings (
            text_sha256 TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            vector BLOB NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE catalogue_epoch (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            epoch INTEGER NOT NULL
        );
        INSERT INTO catalogue_epoch (id, epoch) VALUES (1, 0);
        CREATE TABLE outcome_totals (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            successes REAL NOT NULL DEFAULT 0,
            failures REAL NOT NULL DEFAULT 0,
            as_of TEXT NOT NULL,
            PRIMARY KEY (namespace, name, version)
        );
        CREATE VIRTUAL TABLE skills_fts_new USING fts5(
            name, description, tags, body, tokenize = 'porter unicode61', prefix = '2 3'
        );
        INSERT INTO skills_fts_new (rowid, name, description, tags, body)
            SELECT rowid, name, description, tags, body FROM skills_fts;
        DROP TABLE skills_fts;
        ALTER TABLE skills_fts_new RENAME TO skills_fts
        """
    )


def m004_outcomes(conn: sqlite3.Connection) -> None:
    """Agents' outcome reports, per-version statistics, clients and trust.

    Trust lives in `skill_trust` (with every change in `trust_events`) so that a full
    reindex, which rebuilds `skills`, keeps it; `skills.trust` is its copy for search.
    """
    _script(conn,
        """
        CREATE TABLE outcome_reports (
            reporter TEXT NOT NULL,
            report_id TEXT NOT NULL,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            outcome TEXT NOT NULL,
            failure_kind TEXT,
            score REAL,
            signals_json TEXT NOT NULL,
            agent TEXT,
            model TEXT,
            client TEXT NOT NULL,
            at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (reporter, report_id)
        );
        CREATE INDEX outcome_reports_version ON outcome_reports(namespace, name, version);
        CREATE TABLE version_stats (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            successes INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            infra_errors INTEGER NOT NULL DEFAULT 0,
            score_sum REAL NOT NULL DEFAULT 0,
            scored INTEGER NOT NULL DEFAULT 0,
            ema REAL,
            last_at TEXT,
            PRIMARY KEY (namespace, name, version)
        );
        CREATE TABLE skill_clients (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            client TEXT NOT NULL,
            successes INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (namespace, name, client)
        );
        CREATE TABLE skill_trust (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            trust TEXT NOT NULL,
            PRIMARY KEY (namespace, name)
        );
        CREATE TABLE trust_events (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            old TEXT NOT NULL,
            new TEXT NOT NULL,
            reason TEXT NOT NULL,
            actor TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX trust_events_skill ON trust_events(namespace, name, id)
        """
    )


def m005_proposals(conn: sqlite3.Connection) -> None:
    """Refinement proposals (their content is a commit on refs/heads/proposals/<name>/<id>),
    the clients that support each, namespace review policy, canary releases."""
    _script(conn,
        """
        CREATE TABLE proposals (
            id TEXT PRIMARY KEY,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            base_version TEXT NOT NULL,
            applies_to TEXT NOT NULL,
            status TEXT NOT NULL,
            proposer TEXT NOT NULL,
            proposer_namespace TEXT,
            edits_json TEXT NOT NULL,
            evidence_json TEXT NOT NULL,
            reasoning TEXT NOT NULL,
            content_sha256 TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            tree_sha TEXT NOT NULL,
            verdict TEXT NOT NULL,
            report_json TEXT NOT NULL,
            support INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            decided_at TEXT,
            decided_by TEXT,
            comment TEXT,
            version TEXT
        );
        CREATE INDEX proposals_skill ON proposals(namespace, name, status);
        CREATE INDEX proposals_proposer ON proposals(proposer, created_at);
        CREATE TABLE proposal_support (
            proposal_id TEXT NOT NULL REFERENCES proposals(id),
            proposer TEXT NOT NULL,
            evidence_json TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (proposal_id, proposer)
        );
        ALTER TABLE namespaces ADD COLUMN review_policy TEXT NOT NULL DEFAULT 'review';
        CREATE TABLE canaries (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            stable_version TEXT NOT NULL,
            share REAL NOT NULL,
            state TEXT NOT NULL,
            started_at TEXT NOT NULL,
            decided_at TEXT,
            decision_json TEXT,
            PRIMARY KEY (namespace, name, version)
        );
        CREATE INDEX canaries_active ON canaries(namespace, name, state);
        CREATE TABLE version_health (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (namespace, name, version)
        )
        """
    )


def m006_client_counts(conn: sqlite3.Connection) -> None:
    """Distinct successful clients per skill as a counter (trust reads it on every post)."""
    _script(conn,
        """
        CREATE TABLE skill_client_counts (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            clients INTEGER NOT NULL,
            PRIMARY KEY (namespace, name)
        );
        INSERT INTO skill_client_counts (namespace, name, clients)
            SELECT namespace, name, count(*) FROM skill_clients WHERE successes > 0
            GROUP BY namespace, name
        """
    )


def m007_teams(conn: sqlite3.Connection) -> None:
    """Accounts, orgs and roles, scoped user tokens, sessions, invitations, the audit log,
    pending releases; namespaces get an owner, `internal` visibility and a release policy.

    Each namespace token of before becomes a token of a service account `<ns>.legacy`,
    owner of an org `<ns>` that now owns the namespace: the rights it had, no expiry."""
    _script(conn,
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            display_name TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'service')),
            org TEXT,
            password_hash TEXT,
            is_operator INTEGER NOT NULL DEFAULT 0,
            oidc_issuer TEXT,
            oidc_subject TEXT,
            created_at TEXT NOT NULL,
            disabled_at TEXT,
            UNIQUE (oidc_issuer, oidc_subject)
        );
        CREATE TABLE orgs (
            name TEXT PRIMARY KEY,
            display_name TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE TABLE org_members (
            org TEXT NOT NULL REFERENCES orgs(name) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            role TEXT NOT NULL
                CHECK (role IN ('reader', 'publisher', 'maintainer', 'owner')),
            added_at TEXT NOT NULL,
            PRIMARY KEY (org, user_id)
        );
        CREATE INDEX org_members_user ON org_members(user_id);
        CREATE TABLE namespaces_new (
            name TEXT PRIMARY KEY,
            visibility TEXT NOT NULL DEFAULT 'public'
                CHECK (visibility IN ('public', 'internal', 'private')),
            created_at TEXT NOT NULL,
            review_policy TEXT NOT NULL DEFAULT 'review',
            owner_user INTEGER REFERENCES users(id),
            owner_org TEXT REFERENCES orgs(name) ON DELETE SET NULL,
            release_policy TEXT NOT NULL DEFAULT 'direct'
                CHECK (release_policy IN ('direct', 'review')),
            two_person INTEGER NOT NULL DEFAULT 0,
            CHECK (owner_user IS NULL OR owner_org IS NULL)
        );
        INSERT INTO orgs (name, created_at)
            SELECT DISTINCT n.name, n.created_at FROM namespaces n
            JOIN tokens t ON t.namespace = n.name;
        INSERT INTO namespaces_new (name, visibility, created_at, review_policy, owner_org)
            SELECT name, visibility, created_at, review_policy,
                   (SELECT o.name FROM orgs o WHERE o.name = namespaces.name)
            FROM namespaces;
        DROP TABLE namespaces;
        ALTER TABLE namespaces_new RENAME TO namespaces;
        CREATE INDEX namespaces_visibility ON namespaces(visibility);
        CREATE INDEX namespaces_owner_org ON namespaces(owner_org);
        CREATE INDEX namespaces_owner_user ON namespaces(owner_user);
        INSERT INTO users (username, display_name, kind, org, created_at)
            SELECT name || '.legacy', 'tokens of ' || name || ' from before accounts',
                   'service', name, created_at FROM orgs;
        INSERT INTO org_members (org, user_id, role, added_at)
            SELECT u.org, u.id, 'owner', u.created_at FROM users u WHERE u.kind = 'service';
        CREATE TABLE tokens_new (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            token_sha256 TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            scopes TEXT NOT NULL,
            namespaces_json TEXT,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            last_used_at TEXT,
            revoked_at TEXT
        );
        INSERT INTO tokens_new (id, user_id, token_sha256, prefix, label, scopes,
                                namespaces_json, created_at, last_used_at)
            SELECT t.id, u.id, t.token_sha256, 'shub_', t.label,
                   'read publish review admin', json_array(t.namespace), t.created_at,
                   t.last_used_at
            FROM tokens t JOIN users u ON u.username = t.namespace || '.legacy';
        DROP TABLE tokens;
        ALTER TABLE tokens_new RENAME TO tokens;
        CREATE INDEX tokens_user ON tokens(user_id);
        CREATE TABLE sessions (
            id_sha256 TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            csrf TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            address TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE invitations (
            id_sha256 TEXT PRIMARY KEY,
            org TEXT NOT NULL REFERENCES orgs(name) ON DELETE CASCADE,
            role TEXT NOT NULL,
            email TEXT NOT NULL DEFAULT '',
            created_by INTEGER REFERENCES users(id),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            accepted_at TEXT,
            accepted_by INTEGER REFERENCES users(id)
        );
        CREATE TABLE auth_flows (
            state TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            data_json TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            actor_id INTEGER,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            org TEXT,
            namespace TEXT,
            address TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '',
            request_id TEXT NOT NULL DEFAULT '',
            detail_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_org ON audit_log(org, id);
        CREATE INDEX audit_namespace ON audit_log(namespace, id);
        CREATE TABLE releases (
            id TEXT PRIMARY KEY,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('pending', 'approved', 'rejected', 'withdrawn')),
            author_id INTEGER REFERENCES users(id),
            author TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            tree_sha TEXT NOT NULL,
            content_sha256 TEXT NOT NULL,
            verdict TEXT NOT NULL,
            report_json TEXT NOT NULL,
            created_at TEXT NOT NULL,
            decided_at TEXT,
            decided_by TEXT,
            comment TEXT
        );
        CREATE UNIQUE INDEX releases_pending ON releases(namespace, name, version)
            WHERE state = 'pending';
        CREATE INDEX releases_state ON releases(namespace, state)
        """
    )
    for event in ("UPDATE", "DELETE"):  # `_script` splits on `;`, which a trigger holds
        conn.execute(f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON "
                     "audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")



def m008_outcome_days(conn: sqlite3.Connection) -> None:
    """Counted outcome reports per skill, UTC day and version as a counter: the skill page's
    evidence chart reads twelve weeks of it (grouping the reports themselves cost ~20-80 ms
    at 10,000 reports)."""
    _script(conn,
        """
        CREATE TABLE outcome_days (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            day TEXT NOT NULL,
            version TEXT NOT NULL,
            successes INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (namespace, name, day, version)
        ) WITHOUT ROWID;
        INSERT INTO outcome_days (namespace, name, day, version, successes, failures)
            SELECT namespace, name, date(at), version, sum(outcome = 'success'),
                   sum(outcome = 'failure')
            FROM outcome_reports WHERE outcome != 'infra_error'
            GROUP BY namespace, name, date(at), version
        """
    )


def m009_browse_orders(conn: sqlite3.Connection) -> None:
    """Indexes in the orders an empty search lists skills by, so a page is read from the
    index instead of sorting the catalogue: installs (`BROWSE_ORDERS`), and the quality
    order of skills without outcomes (installs capped at `index.INSTALLS_CAP`, then
    namespace and name; the rating sort merges the rated skills into it)."""
    _script(conn,
        """
        CREATE INDEX skills_installs ON skills(downloads DESC, updated_at DESC, id DESC);
        CREATE INDEX skills_unrated ON skills(min(downloads, 10000) DESC, namespace, name)
        """
    )


def m010_rate_buckets(conn: sqlite3.Connection) -> None:
    """Rate limits every process of a home shares (outcome reports per token, sign-in
    failures per account and address): a token bucket per key, its level as of `since`
    (seconds since the epoch). Rows are transient; a full bucket's row may be deleted."""
    _script(conn, """
        CREATE TABLE rate_buckets (
            key TEXT PRIMARY KEY,
            level REAL NOT NULL,
            since REAL NOT NULL
        ) WITHOUT ROWID;
    """)


def m013_evidence_export(conn: sqlite3.Connection) -> None:
    """The evidence export's keyset orders (`store.evidence`): a namespace's outcome reports
    by time, its proposals by creation, its releases by decision, so each page of an export
    is a range scan of an index instead of a sort of the namespace's rows."""
    _script(conn, """
        CREATE INDEX outcome_reports_export ON outcome_reports(namespace, at, reporter,
                                                               report_id);
        CREATE INDEX proposals_export ON proposals(namespace, created_at, id);
        CREATE INDEX releases_export ON releases(namespace, decided_at, id);
    """)


def m014_outcome_guards(conn: sqlite3.Connection) -> None:
    """Evidence that is hard to game (`store.guards`, docs/LEARNING.md): a report's task
    (hashed) and why it is stored but not counted (`discount`: author, repeat_task,
    client_cap; NULL: counted), each version's count of such reports, each client's
    counted reports per version (the cap's counter, filled from the reports so far), and
    who published each version (reporter keys; versions published before are unknown)."""
    _script(conn, """
        ALTER TABLE outcome_reports ADD COLUMN task_key TEXT;
        ALTER TABLE outcome_reports ADD COLUMN discount TEXT;
        CREATE INDEX outcome_reports_task ON outcome_reports(namespace, name, version,
                                                             reporter, task_key)
            WHERE task_key IS NOT NULL;
        ALTER TABLE version_stats ADD COLUMN discounted INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE version_clients (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            client TEXT NOT NULL,
            counted INTEGER NOT NULL,
            PRIMARY KEY (namespace, name, version, client)
        ) WITHOUT ROWID;
        INSERT INTO version_clients (namespace, name, version, client, counted)
            SELECT namespace, name, version, client, count(*) FROM outcome_reports
            WHERE outcome != 'infra_error' GROUP BY namespace, name, version, client;
        CREATE TABLE version_authors (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            author TEXT NOT NULL,
            PRIMARY KEY (namespace, name, version, author)
        ) WITHOUT ROWID
    """)


def m015_task_vectors(conn: sqlite3.Connection) -> None:
    """Reported tasks' embeddings (`learning.tasks`): per task_key and model, the float32
    unit vector of the task's text and what may be shown of it (`label`, NULL when the
    secret rules found something). Evidence per kind of task is read from outcome_reports
    by task_key, so only the vectors are new."""
    _script(conn, """
        CREATE TABLE task_vectors (
            task_key TEXT NOT NULL,
            model TEXT NOT NULL,
            vector BLOB NOT NULL,
            label TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (task_key, model)
        ) WITHOUT ROWID
    """)


def m012_demands(conn: sqlite3.Connection) -> None:
    """Gap answers (`demand_asks`: the query, its float32 embedding, an opaque asker key,
    the namespace searched in or NULL for the whole registry) clustered into demands
    (`demands`: the sum of the members' unit vectors, counts, the representative phrasing,
    and the skill version that answered it). `services.demands` writes them."""
    _script(conn, """
        CREATE TABLE demands (
            id INTEGER PRIMARY KEY,
            scope TEXT,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
            representative TEXT NOT NULL,
            model TEXT NOT NULL,
            centroid BLOB NOT NULL,
            asks INTEGER NOT NULL DEFAULT 0,
            askers INTEGER NOT NULL DEFAULT 0,
            first_asked TEXT NOT NULL,
            last_asked TEXT NOT NULL,
            closed_at TEXT,
            answer_namespace TEXT,
            answer_name TEXT,
            answer_version TEXT,
            answer_similarity REAL
        );
        CREATE INDEX demands_open ON demands(status, scope);
        CREATE INDEX demands_order ON demands(askers DESC, asks DESC, last_asked DESC, id DESC);
        CREATE TABLE demand_asks (
            id INTEGER PRIMARY KEY,
            demand_id INTEGER NOT NULL REFERENCES demands(id) ON DELETE CASCADE,
            query TEXT NOT NULL,
            vector BLOB NOT NULL,
            model TEXT NOT NULL,
            asker TEXT NOT NULL,
            scope TEXT,
            asked_at TEXT NOT NULL
        );
        CREATE INDEX demand_asks_demand ON demand_asks(demand_id, asker);
        CREATE INDEX demand_asks_asker ON demand_asks(asker, demand_id);
    """)


def m011_health_schedule(conn: sqlite3.Connection) -> None:
    """Scheduled health checks (services.health): the lease that makes one process the
    scheduler, each version's last check and claim (keyed like `reports`, so a reindex
    keeps them), and the log of checks the hourly budget is counted from. Times are
    seconds since the epoch."""
    _script(conn, """
        CREATE TABLE health_lease (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at REAL NOT NULL,
            taken_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE health_state (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            fingerprint TEXT,
            checked_at REAL,
            downloads INTEGER,
            ema REAL,
            claimed_by TEXT,
            claimed_until REAL,
            PRIMARY KEY (namespace, name, version)
        ) WITHOUT ROWID;
        CREATE TABLE health_checks (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            holder TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            priority REAL NOT NULL,
            reasons TEXT NOT NULL,
            old_verdict TEXT,
            new_verdict TEXT NOT NULL,
            health TEXT NOT NULL,
            note TEXT NOT NULL,
            ms REAL NOT NULL,
            downloads INTEGER NOT NULL,
            ema REAL
        );
        CREATE INDEX health_checks_at ON health_checks(at);
    """)


MIGRATIONS: list[Migration] = [
    ("m001_catalogue", m001_catalogue),
    ("m002_checks", m002_checks),
    ("m003_search", m003_search),
    ("m004_outcomes", m004_outcomes),
    ("m005_proposals", m005_proposals),
    ("m006_client_counts", m006_client_counts),
    ("m007_teams", m007_teams),
    ("m008_outcome_days", m008_outcome_days),
    ("m009_browse_orders", m009_browse_orders),
    ("m010_rate_buckets", m010_rate_buckets),
    ("m011_health_schedule", m011_health_schedule),
    ("m012_demands", m012_demands),
    ("m013_evidence_export", m013_evidence_export),
    ("m014_outcome_guards", m014_outcome_guards),
    ("m015_task_vectors", m015_task_vectors),
]


def pending(conn: sqlite3.Connection) -> list[str]:
    """The migrations not yet applied to this database, in order."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                          "AND name = 'migrations'").fetchone()
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")} if exists else set()
    return [name for name, _ in MIGRATIONS if name not in done]


def apply(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded, in order, each in its own transaction.

    `conn` must be in autocommit mode (isolation_level=None).
    """
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    # A migration may rebuild a table that others reference (SQLite cannot alter a CHECK):
    # foreign keys are off while migrating (the pragma is a no-op inside a transaction) and
    # each migration's result is checked with foreign_key_check before it commits.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        return _apply(conn)
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def _apply(conn: sqlite3.Connection) -> list[str]:
    applied = []
    for name, step in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")  # a second process starting at once waits here
        if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
            conn.execute("COMMIT")
            continue
        try:
            step(conn)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise sqlite3.IntegrityError(f"{name} broke foreign keys: {broken[:5]}")
            conn.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                         (name, datetime.now(UTC).isoformat()))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(name)
    return applied
