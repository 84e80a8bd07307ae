"""User errors vs bugs.

A `BeamcError` is something the user can fix (a typo in a recipe, a missing file, a bad
value): the CLI prints its one-line message and exits with status 2. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BeamcError(Exception):
    """An error the user can fix; its message is one clear line."""

    exit_code = 2


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown_choice(kind: str, name: str, known: Iterable[str]) -> BeamcError:
    """Error for a name that is not among the known ones, listing them."""
    known = sorted(known)
    return BeamcError(
        f"unknown {kind} '{name}'{did_you_mean(name, known)}; known: {', '.join(known) or '(none)'}"
    )
