"""The cluster actor and its engine: several daemons on one NATS server with JetStream.

``actor`` (the supervised actor that owns the NATS connection), ``settings`` (the ``[cluster]``
schema), ``lease`` (the leader lease in a key-value bucket: election, renewal, step-down, the
epoch), ``link`` (the connection's own asyncio loop on a thread, behind the circuit breaker).
Nothing here runs unless ``[cluster] nats_url`` is set: the embedded default is one process.
"""

from __future__ import annotations

__all__: list[str] = []
