"""The installed distribution's version (``--version``, ``hive_build_info``)."""

from __future__ import annotations

import importlib.metadata

__all__ = ["version"]


def version() -> str:
    try:
        return importlib.metadata.version("hive-supervisor")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"
