"""The command table, its parser and its grammar."""

from __future__ import annotations

import re

import pytest

from actors.claude_flow import AGENT_TYPES
from actors.speech.commands import (
    COMMAND_KINDS,
    Command,
    all_utterances,
    jsgf_grammar,
    parse_command,
)
from actors.speech.lexicon import dictionary_text


@pytest.mark.parametrize(("text", "kind", "agent"), [
    ("spawn a coder agent", "spawn_agent", "coder"),
    ("Spawn an Analyst agent!", "spawn_agent", "analyst"),
    ("spawn a analyst agent", "spawn_agent", "analyst"),
    ("  SPAWN   the optimizer agent. ", "spawn_agent", "optimizer"),
    ("spawn generic agent", "spawn_agent", "generic"),
    ("Start a swarm.", "start_swarm", None),
    ("start swarm", "start_swarm", None),
    ("show swarm status?", "swarm_status", None),
    ("Show the swarm status", "swarm_status", None),
    ("list agents", "list_agents", None),
    ("LIST AGENTS!!", "list_agents", None),
    ("stop all swarms", "stop_swarms", None),
    ("Stop all swarms, please".removesuffix(", please"), "stop_swarms", None),
])
def test_variants_parse(text: str, kind: str, agent: str | None) -> None:
    assert parse_command(text) == Command(kind, agent, text.strip())


@pytest.mark.parametrize("text", ["", "   ", "hello", "spawn a pilot agent", "spawn a coder", "stop swarms",
                                  "list all the agents now", "spawn a coder agent please"])
def test_other_text_is_not_a_command(text: str) -> None:
    assert parse_command(text) is None


def test_every_canonical_utterance_parses_to_its_phrase() -> None:
    utterances = all_utterances()
    assert len(utterances) == len(AGENT_TYPES) + len(COMMAND_KINDS) - 1
    kinds = set()
    for u in utterances:
        command = parse_command(u)
        assert command is not None and command.phrase == u
        kinds.add(command.kind)
    assert kinds == set(COMMAND_KINDS)
    assert parse_command("spawn an analyst agent").phrase == "spawn an analyst agent"  # type: ignore[union-attr]


def _expand(expr: str) -> set[str]:
    """Every sentence a (small, tokenised) JSGF expression with ( | ) and rule refs generates."""
    tokens = re.findall(r"\(|\)|\||[^\s()|]+", expr)
    pos = 0

    def alternatives() -> set[str]:
        nonlocal pos
        options = sequence()
        while pos < len(tokens) and tokens[pos] == "|":
            pos += 1
            options |= sequence()
        return options

    def sequence() -> set[str]:
        nonlocal pos
        out = {""}
        while pos < len(tokens) and tokens[pos] not in ("|", ")"):
            if tokens[pos] == "(":
                pos += 1
                part = alternatives()
                assert tokens[pos] == ")"
                pos += 1
            else:
                part = {tokens[pos]}
                pos += 1
            out = {f"{a} {b}".strip() for a in out for b in part}
        return out

    return alternatives()


def test_the_grammar_generates_exactly_the_commands() -> None:
    grammar = jsgf_grammar()
    assert grammar.startswith("#JSGF V1.0;")
    rules = dict(re.findall(r"^(?:public )?<(\w+)> = (.*);$", grammar, re.MULTILINE))
    top = rules.pop("command")
    sentences = set()
    for ref in re.findall(r"<(\w+)>", top):
        sentences |= _expand(rules[ref])
    assert sentences == set(all_utterances())


def test_every_grammar_word_has_a_pronunciation() -> None:
    words = {w for u in all_utterances() for w in u.split()}
    entries = {line.split()[0].split("(")[0] for line in dictionary_text(words).splitlines()}
    assert entries == words
