"""Real peers for tests: programs the daemon talks to in production, started for real.

Fakes hide the quirks that matter (rate limits, slow-downs, odd start-up lines, teardown
leaks); these helpers start the real thing, each in its own throw-away state folder.
"""
