"""Marking text for translation without depending on Flask-Babel.

The domain stays free of the web stack, yet some of its text (stress-test scenario names and
descriptions) is shown to people. ``N_`` marks such a string for extraction
(``pybabel extract -k N_``) and returns it unchanged; templates translate it when shown.
"""

from __future__ import annotations


def N_(message: str) -> str:  # noqa: N802 - the conventional name extraction looks for
    return message
