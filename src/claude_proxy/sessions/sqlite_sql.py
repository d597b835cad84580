"""The SQL of the SQLite session store (schema version 1), kept apart from the driver code.

Times are unix seconds from the gateway's clock: every process sharing the file runs on
the same host, so they share the clock too.
"""

from __future__ import annotations

__all__ = [
    "APPEND",
    "CLEAR_TURNS",
    "CREATE",
    "CURRENT",
    "DELETE",
    "DELETE_ONE",
    "INSERT_TURN",
    "LEASE_ACQUIRE",
    "LEASE_RELEASE",
    "LEASE_RENEW",
    "LIST",
    "LOAD",
    "PURGE_LEASES",
    "PURGE_SESSIONS",
    "REPLACE",
    "SCHEMA",
    "SCHEMA_TABLE",
    "SCHEMA_VERSION",
    "VERSION",
]

SCHEMA_VERSION = 1

SCHEMA_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
SCHEMA = [
    """CREATE TABLE sessions (
        tenant TEXT NOT NULL,
        session_id TEXT NOT NULL,
        system TEXT,
        version INTEGER NOT NULL,
        turns INTEGER NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        expires REAL,
        PRIMARY KEY (tenant, session_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX sessions_by_expiry ON sessions (expires) WHERE expires IS NOT NULL",
    """CREATE TABLE turns (
        tenant TEXT NOT NULL,
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (tenant, session_id, seq),
        FOREIGN KEY (tenant, session_id) REFERENCES sessions (tenant, session_id)
            ON DELETE CASCADE
    ) WITHOUT ROWID""",
    """CREATE TABLE leases (
        tenant TEXT NOT NULL,
        session_id TEXT NOT NULL,
        token TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (tenant, session_id)
    ) WITHOUT ROWID""",
]

# One statement, so one snapshot: the session and its turns as of the same commit.
# (tenant, session_id, now)
LOAD = """
    SELECT s.system, s.version, s.created, s.updated, t.message
    FROM sessions AS s LEFT JOIN turns AS t USING (tenant, session_id)
    WHERE s.tenant = ? AND s.session_id = ? AND (s.expires IS NULL OR s.expires > ?)
    ORDER BY t.seq
"""

# (tenant, session_id, now)
VERSION = """
    SELECT version FROM sessions
    WHERE tenant = ? AND session_id = ? AND (expires IS NULL OR expires > ?)
"""

# (tenant, session_id)
CURRENT = "SELECT version, turns, expires FROM sessions WHERE tenant = ? AND session_id = ?"
DELETE_ONE = "DELETE FROM sessions WHERE tenant = ? AND session_id = ?"
CLEAR_TURNS = "DELETE FROM turns WHERE tenant = ? AND session_id = ?"

# (tenant, session_id, system, turns, created, updated, expires)
CREATE = "INSERT INTO sessions VALUES (?, ?, ?, 1, ?, ?, ?, ?)"
# (system or NULL: kept, added turns, updated, expires, tenant, session_id)
APPEND = """
    UPDATE sessions SET system = coalesce(?, system), version = version + 1,
        turns = turns + ?, updated = ?, expires = ?
    WHERE tenant = ? AND session_id = ?
"""
# (turns, updated, tenant, session_id): the expiry is kept
REPLACE = """
    UPDATE sessions SET version = version + 1, turns = ?, updated = ?
    WHERE tenant = ? AND session_id = ?
"""
# (tenant, session_id, seq, message)
INSERT_TURN = "INSERT INTO turns (tenant, session_id, seq, message) VALUES (?, ?, ?, ?)"

# (tenant, session_id): the expiry of the session deleted, if there was one
DELETE = "DELETE FROM sessions WHERE tenant = ? AND session_id = ? RETURNING expires"

# (tenant, after, now, limit)
LIST = """
    SELECT session_id, turns, created, updated FROM sessions
    WHERE tenant = ? AND session_id > ? AND (expires IS NULL OR expires > ?)
    ORDER BY session_id LIMIT ?
"""

# (tenant, session_id, token, expires, now): no row when a live lease is someone else's
LEASE_ACQUIRE = """
    INSERT INTO leases VALUES (?, ?, ?, ?)
    ON CONFLICT (tenant, session_id) DO UPDATE
        SET token = excluded.token, expires = excluded.expires
        WHERE leases.expires <= ?
    RETURNING token
"""
# (expires, tenant, session_id, token): no row when the token lost the lease
LEASE_RENEW = """
    UPDATE leases SET expires = ?
    WHERE tenant = ? AND session_id = ? AND token = ?
    RETURNING token
"""
# (tenant, session_id, token)
LEASE_RELEASE = "DELETE FROM leases WHERE tenant = ? AND session_id = ? AND token = ?"

# (now)
PURGE_LEASES = "DELETE FROM leases WHERE expires <= ?"
# (now, batch size): their turns go with them (ON DELETE CASCADE)
PURGE_SESSIONS = """
    DELETE FROM sessions WHERE (tenant, session_id) IN (
        SELECT tenant, session_id FROM sessions WHERE expires <= ? LIMIT ?
    ) RETURNING 1
"""
