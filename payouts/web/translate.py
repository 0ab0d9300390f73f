"""Translations and the locale, looked up once per request instead of once per message.

Flask-Babel's gettext (and the template callables it installs) find the app, the request
context, the locale and the catalogue again for every message, and the money filters chose the
locale again for every amount. The claim page, the portal's busiest, asks for about eighty
messages and a dozen amounts: those lookups were a fifth of its time. The locale is still
chosen by the app's selector (through Flask-Babel, which keeps it for the request); the
catalogue and the locale are kept on flask.g, which lives exactly as long as the request's app
context. ``gettext`` here behaves as Flask-Babel's: views import it as ``_``. Nothing here
switches language within a request (flask_babel.force_locale or refresh would not reach this
cache); a change of language is a new request (/lang/<code> redirects).
"""

from __future__ import annotations

from flask import g
from flask_babel import get_locale, get_translations
from jinja2 import Environment

_CATALOGUE = "_payouts_catalogue"
_LOCALE = "_payouts_locale"


def catalogue():  # type: ignore[no-untyped-def]
    """The request's translations (a babel.support.Translations)."""
    found = g.get(_CATALOGUE)
    if found is None:
        found = get_translations()
        setattr(g, _CATALOGUE, found)
    return found


def locale() -> str:
    """The request's locale code ("ja" or "en"), as Flask-Babel chose it."""
    found = g.get(_LOCALE)
    if found is None:
        found = str(get_locale() or "ja")
        setattr(g, _LOCALE, found)
    return found


def gettext(string: str, **variables: object) -> str:
    """The message in the request's language, %-formatted with ``variables`` if any."""
    translated = catalogue().ugettext(string)
    return translated % variables if variables else translated


def install(env: Environment) -> None:
    """Replace Flask-Babel's per-call lookups in ``env`` (call after Babel's init_app)."""
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: catalogue().ugettext(s),
        ngettext=lambda s, p, n: catalogue().ungettext(s, p, n),
        pgettext=lambda c, s: catalogue().upgettext(c, s),
        npgettext=lambda c, s, p, n: catalogue().unpgettext(c, s, p, n),
        newstyle=True,
    )
