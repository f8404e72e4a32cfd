"""Database connections around waits on the network.

With a connection pool (DATABASE_POOL_MAX_SIZE), a thread that is about to wait on a provider
(a rate-limit slot, then the call itself: hundreds of milliseconds at a real Stripe) hands its
connection back first, so a worker's threads share a few connections instead of holding one
each while they wait. The next query takes one from the pool again. Without a pool the
connection is kept: closing it would mean a new TCP and authentication handshake per wait.
"""

from django.db import connection


def connection_release_before_wait() -> bool:
    """Return this thread's connection to the pool unless a transaction is open (a provider is
    never called inside one; tests run inside one). True when it was returned."""
    if connection.connection is None or connection.in_atomic_block:
        return False
    if not getattr(connection, "pool", None):  # SQLite has no pool; PostgreSQL without one
        return False
    connection.close()
    return True
