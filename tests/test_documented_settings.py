"""Every setting is documented once, with the code's default, and nothing documented is unknown.

The code's keys come from the settings dataclasses (the one schema, ``hive.config.sections``);
the documented keys from the tables of docs/configuration.md and the TOML example in the README.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from actors.schema import keys
from hive.config import ChildPolicy, sections

ROOT = Path(__file__).resolve().parents[1]
POLICY_SECTION = "Every [actors.<name>] section"


def known() -> dict[str, dict[str, Any]]:
    """``{section: {key: default}}`` from the code; the policy keys under their own heading."""
    out = {name: {k.name: k.default for k in keys(cls)} for name, cls in sections().items()}
    out[POLICY_SECTION] = {k.name: k.default for k in keys(ChildPolicy)}
    return out


def documented() -> dict[str, dict[str, str]]:
    """``{section: {key: default cell}}`` from docs/configuration.md's tables."""
    out: dict[str, dict[str, str]] = {}
    section = None
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        heading = re.match(r"^## \[?(.+?)\]?$", line)
        if heading:
            section = heading.group(1)
            out.setdefault(section, {})
            continue
        row = re.match(r"^\| `([a-z0-9_]+)` \| (.+?) \|", line)
        if row and section is not None:
            assert row.group(1) not in out[section], f"[{section}] {row.group(1)} documented twice"
            out[section][row.group(1)] = row.group(2)
    return out


def readme_keys() -> dict[str, set[str]]:
    """The keys of the README's TOML example (commented-out ones too)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block, "the README has a TOML example"
    out: dict[str, set[str]] = {}
    section = ""
    for line in block.group(1).splitlines():
        header = re.match(r"^\[([a-z_.]+)\]", line)
        if header:
            section = header.group(1)
            continue
        key = re.match(r"^#?\s*([a-z_]+) = ", line)
        if key and section:
            out.setdefault(section, set()).add(key.group(1))
    return out


def as_toml(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{json.dumps(value)}`"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    return f"`{value!r}`"


def test_every_key_is_documented_and_every_documented_key_is_known() -> None:
    code, docs = known(), documented()
    assert set(docs) == set(code), "sections differ between the code and docs/configuration.md"
    for section, defaults in code.items():
        missing = set(defaults) - set(docs[section])
        unknown = set(docs[section]) - set(defaults)
        assert not missing, f"[{section}] known to the code but undocumented: {sorted(missing)}"
        assert not unknown, f"[{section}] documented but unknown to the code: {sorted(unknown)}"


def test_documented_defaults_are_the_codes() -> None:
    code, docs = known(), documented()
    for section, defaults in code.items():
        for key, default in defaults.items():
            cell = docs[section][key]
            if cell.startswith(("see ", "a table")):
                continue  # a long list or a sub-table, documented where it is explained
            assert cell == as_toml(default), f"[{section}] {key}: docs say {cell}, code has {default!r}"


def test_the_readme_example_uses_known_keys() -> None:
    code = known()
    policy = set(code[POLICY_SECTION])
    for section, names in readme_keys().items():
        assert section in code, f"README: [{section}] is not a section"
        extra = policy if section.startswith("actors.") and section.count(".") == 1 else set()
        unknown = names - set(code[section]) - extra
        assert not unknown, f"README: [{section}] {sorted(unknown)} unknown to the code"
