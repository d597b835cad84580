"""The SQL of the PostgreSQL session store (schema version 1), kept apart from the driver code.

Every statement measures time with the server's clock (``NOW`` below), in unix seconds.
"""

from __future__ import annotations

__all__ = [
    "APPEND",
    "CLEAR_TURNS",
    "CREATE",
    "DELETE",
    "DELETE_EXPIRED",
    "INSERT_TURNS",
    "LEASE_ACQUIRE",
    "LEASE_RELEASE",
    "LEASE_RENEW",
    "LIST",
    "LOAD",
    "MIGRATION_LOCK",
    "PURGE_LEASES",
    "PURGE_SESSIONS",
    "REPLACE",
    "SCHEMA",
    "SCHEMA_TABLE",
    "SCHEMA_VERSION",
    "VERSION",
]

SCHEMA_VERSION = 1

NOW = "extract(epoch FROM clock_timestamp())::float8"
_ALIVE = f"(expires IS NULL OR expires > {NOW})"

# Replicas starting together take turns creating the tables (one lock for the database).
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('claude_proxy_session_schema'))"
SCHEMA_TABLE = """
    CREATE TABLE IF NOT EXISTS claude_proxy_session_schema (version integer NOT NULL)
"""
SCHEMA = [
    """CREATE TABLE claude_proxy_sessions (
        tenant text NOT NULL,
        session_id text COLLATE "C" NOT NULL,
        system json,
        version bigint NOT NULL,
        turns integer NOT NULL,
        created double precision NOT NULL,
        updated double precision NOT NULL,
        expires double precision,
        PRIMARY KEY (tenant, session_id)
    )""",
    """CREATE INDEX claude_proxy_sessions_by_expiry ON claude_proxy_sessions (expires)
        WHERE expires IS NOT NULL""",
    """CREATE TABLE claude_proxy_session_turns (
        tenant text NOT NULL,
        session_id text COLLATE "C" NOT NULL,
        seq integer NOT NULL,
        message json NOT NULL,
        PRIMARY KEY (tenant, session_id, seq),
        FOREIGN KEY (tenant, session_id) REFERENCES claude_proxy_sessions ON DELETE CASCADE
    )""",
    """CREATE TABLE claude_proxy_session_leases (
        tenant text NOT NULL,
        session_id text NOT NULL,
        token text NOT NULL,
        expires double precision NOT NULL,
        PRIMARY KEY (tenant, session_id)
    )""",
]

# One statement, so one snapshot: the session and its turns as of the same moment.
# $1 tenant, $2 session_id
VERSION = f"""
    SELECT version FROM claude_proxy_sessions
    WHERE tenant = $1 AND session_id = $2 AND {_ALIVE}
"""

LOAD = f"""
    SELECT s.system::text AS system, s.version, s.created, s.updated, t.message::text AS message
    FROM claude_proxy_sessions AS s
    LEFT JOIN claude_proxy_session_turns AS t USING (tenant, session_id)
    WHERE s.tenant = $1 AND s.session_id = $2
        AND (s.expires IS NULL OR s.expires > {NOW})
    ORDER BY t.seq
"""

# An expired session counts as absent: make room for a new one of the same id.
DELETE_EXPIRED = f"""
    DELETE FROM claude_proxy_sessions
    WHERE tenant = $1 AND session_id = $2 AND expires <= {NOW}
"""

# $1 tenant, $2 session, $3 system, $4 turns, $5 ttl (NULL: kept). No row: it exists.
CREATE = f"""
    INSERT INTO claude_proxy_sessions
        (tenant, session_id, system, version, turns, created, updated, expires)
    SELECT $1, $2, $3::json, 1, $4, clock.now, clock.now, clock.now + $5::float8
    FROM (SELECT {NOW} AS now) AS clock
    ON CONFLICT (tenant, session_id) DO NOTHING
    RETURNING version, 0 AS first
"""

# $3 expected version, $4 system (NULL: kept), $5 added turns, $6 ttl. No row: conflict.
APPEND = f"""
    UPDATE claude_proxy_sessions SET
        system = coalesce($4::json, system),
        version = version + 1,
        turns = turns + $5,
        updated = {NOW},
        expires = {NOW} + $6::float8
    WHERE tenant = $1 AND session_id = $2 AND version = $3 AND {_ALIVE}
    RETURNING version, turns - $5 AS first
"""

# $3 expected version, $4 turns. No row: conflict. The expiry is kept.
REPLACE = f"""
    UPDATE claude_proxy_sessions SET version = version + 1, turns = $4, updated = {NOW}
    WHERE tenant = $1 AND session_id = $2 AND version = $3 AND {_ALIVE}
    RETURNING version, 0 AS first
"""
CLEAR_TURNS = "DELETE FROM claude_proxy_session_turns WHERE tenant = $1 AND session_id = $2"

# $3 the first one's seq, $4 the messages as JSON text, in order.
INSERT_TURNS = """
    INSERT INTO claude_proxy_session_turns (tenant, session_id, seq, message)
    SELECT $1, $2, $3::integer + (m.ord - 1)::integer, m.message::json
    FROM unnest($4::text[]) WITH ORDINALITY AS m (message, ord)
"""

# NULL: there was none; false: there was one, expired.
DELETE = f"""
    DELETE FROM claude_proxy_sessions WHERE tenant = $1 AND session_id = $2
    RETURNING {_ALIVE}
"""

LIST = f"""
    SELECT session_id, turns, created, updated FROM claude_proxy_sessions
    WHERE tenant = $1 AND session_id > coalesce($2::text, '') AND {_ALIVE}
    ORDER BY session_id
    LIMIT $3
"""

# $3 token, $4 lease seconds. No row: someone else holds a lease that has not run out.
LEASE_ACQUIRE = f"""
    INSERT INTO claude_proxy_session_leases AS l (tenant, session_id, token, expires)
    VALUES ($1, $2, $3, {NOW} + $4::float8)
    ON CONFLICT (tenant, session_id) DO UPDATE
        SET token = excluded.token, expires = excluded.expires
        WHERE l.expires <= {NOW}
    RETURNING token
"""
LEASE_RENEW = f"""
    UPDATE claude_proxy_session_leases SET expires = {NOW} + $4::float8
    WHERE tenant = $1 AND session_id = $2 AND token = $3
    RETURNING token
"""
LEASE_RELEASE = """
    DELETE FROM claude_proxy_session_leases
    WHERE tenant = $1 AND session_id = $2 AND token = $3
"""

PURGE_LEASES = f"DELETE FROM claude_proxy_session_leases WHERE expires <= {NOW}"
# $1 batch size: a few rows per statement, so writers are never held up for long.
PURGE_SESSIONS = f"""
    DELETE FROM claude_proxy_sessions WHERE (tenant, session_id) IN (
        SELECT tenant, session_id FROM claude_proxy_sessions WHERE expires <= {NOW} LIMIT $1
    )
"""
