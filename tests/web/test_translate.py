"""Translations looked up once per request: the same language as Flask-Babel picks, fewer lookups."""

from __future__ import annotations

import flask_babel

from payouts.web import translate


def test_gettext_follows_the_requests_language(app):  # type: ignore[no-untyped-def]
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert translate.gettext("Approved") == "Approved"
        assert translate.locale() == "en"
        assert translate.gettext("Claim #%(id)s", id=7) == "Claim #7"
    with app.test_request_context("/", headers={"Accept-Language": "ja"}):
        japanese = flask_babel.gettext("Approved")
        assert japanese != "Approved"  # the catalogue is really Japanese
        assert translate.gettext("Approved") == japanese
        assert translate.locale() == "ja"
        assert translate.gettext("Claim #%(id)s", id=7) == flask_babel.gettext("Claim #%(id)s", id=7)


def test_a_page_looks_its_catalogue_up_once(app, monkeypatch):  # type: ignore[no-untyped-def]
    calls = []
    real = translate.get_translations

    def counting():  # type: ignore[no-untyped-def]
        calls.append(1)
        return real()

    monkeypatch.setattr(translate, "get_translations", counting)
    page = app.test_client().get("/login", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "<h1>Sign in</h1>" in page.text
    assert len(calls) == 1
    calls.clear()
    japanese = app.test_client().get("/login", headers={"Accept-Language": "ja"})
    assert japanese.status_code == 200 and "<h1>Sign in</h1>" not in japanese.text
    assert len(calls) == 1
