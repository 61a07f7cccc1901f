"""The pieces behind :mod:`supervisor` (private: import every name from ``supervisor``).

``errors`` and ``specs`` are the vocabulary, ``clock`` and ``backoff`` the time, ``watch`` the
death watch (the one module that touches pykka's private API), and ``core`` the supervisor
actor, the tree, addresses and child contexts, which depend on each other as OTP's
``supervisor.erl`` keeps them together.
"""

__all__: list[str] = []


