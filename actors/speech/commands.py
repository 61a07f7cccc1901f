"""The voice command set: one table that both the parser and the recogniser's grammar use.

Recognition is only reliable on a closed vocabulary (pocketsphinx mis-hears open speech, even
synthetic), so the JSGF grammar handed to the recogniser is generated from :data:`PHRASES`,
and :func:`parse_command` reads transcripts against the same table: a command added here is
both recognised and understood, with nothing to keep in sync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from actors.claude_flow import AGENT_TYPES

__all__ = [
    "AGENT_SLOT",
    "COMMAND_KINDS",
    "PHRASES",
    "Command",
    "all_utterances",
    "grammar_words",
    "jsgf_grammar",
    "parse_command",
]


AGENT_SLOT = "{agent}"
# kind -> canonical phrase; AGENT_SLOT stands for one of AGENT_TYPES.
PHRASES: dict[str, str] = {
    "spawn_agent": "spawn a {agent} agent",
    "start_swarm": "start a swarm",
    "swarm_status": "show swarm status",
    "list_agents": "list agents",
    "stop_swarms": "stop all swarms",
}
COMMAND_KINDS = tuple(PHRASES)
# Words a speaker (or a recogniser) may add or swap without changing the command.
_ARTICLES = frozenset({"a", "an", "the"})
_NON_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Command:
    """A recognised command: its kind, the agent type for ``spawn_agent``, and the text heard."""

    kind: str
    agent_type: str | None
    text: str

    @property
    def phrase(self) -> str:
        """The canonical wording, e.g. ``"spawn an analyst agent"``."""
        return _canonical(self.kind, self.agent_type)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _canonical(kind: str, agent_type: str | None) -> str:
    phrase = PHRASES[kind]
    if agent_type is None:
        return phrase
    # "a {agent}" takes "an" before a vowel: "spawn an analyst agent".
    return phrase.replace(f"a {AGENT_SLOT}", f"{_article(agent_type)} {agent_type}").replace(AGENT_SLOT, agent_type)


def all_utterances() -> tuple[str, ...]:
    """Every command in its canonical wording (one per agent type for ``spawn_agent``)."""
    out: list[str] = []
    for kind, phrase in PHRASES.items():
        if AGENT_SLOT in phrase:
            out.extend(_canonical(kind, agent) for agent in AGENT_TYPES)
        else:
            out.append(phrase)
    return tuple(out)


def _words(text: str) -> list[str]:
    """Lower-case words without punctuation or articles."""
    return [w for w in _NON_WORD.split(text.lower()) if w and w not in _ARTICLES]


def _pattern(phrase: str) -> list[str]:
    """A phrase's article-free words, with the agent slot kept as its own token."""
    return [w for w in phrase.split() if w not in _ARTICLES]


def parse_command(text: str) -> Command | None:
    """The command ``text`` says, or ``None``.

    Tolerates case, punctuation, extra spaces and any article ("a", "an", "the", or none):
    ``"Spawn an Analyst agent!"`` and ``"spawn analyst agent"`` are the same command.
    """
    words = _words(text)
    for kind, phrase in PHRASES.items():
        pattern = _pattern(phrase)
        if len(pattern) != len(words):
            continue
        agent: str | None = None
        for want, got in zip(pattern, words, strict=True):
            if want == AGENT_SLOT and got in AGENT_TYPES:
                agent = got
            elif want != got:
                break
        else:
            return Command(kind, agent, text.strip())
    return None


def grammar_words() -> frozenset[str]:
    """Every word the grammar can produce (the recogniser needs a pronunciation for each)."""
    return frozenset(w for u in all_utterances() for w in u.split())


def jsgf_grammar() -> str:
    """A JSGF grammar whose public rule ``<command>`` matches exactly :func:`all_utterances`.

    The agent slot is split by article so the grammar never offers "a analyst": fewer wrong
    paths for the recogniser to choose.
    """
    rules: list[str] = []
    refs: list[str] = []
    for kind, phrase in PHRASES.items():
        refs.append(f"<{kind}>")
        if AGENT_SLOT not in phrase:
            rules.append(f"<{kind}> = {phrase};")
            continue
        before, after = phrase.split(AGENT_SLOT)
        head = " ".join(_pattern(before))  # the article is chosen per agent type below
        groups = []
        for article in ("a", "an"):
            agents = [a for a in AGENT_TYPES if _article(a) == article]
            if agents:
                groups.append(f"({article} ({' | '.join(agents)}))")
        body = " ".join(p for p in (head, f"({' | '.join(groups)})", after.strip()) if p)
        rules.append(f"<{kind}> = {body};")
    return "\n".join([
        "#JSGF V1.0;",
        "grammar hive_commands;",
        f"public <command> = {' | '.join(refs)};",
        *rules,
        "",
    ])
