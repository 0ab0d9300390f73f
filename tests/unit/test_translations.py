"""The Japanese catalogue covers every UI string in the sources.

A fresh extraction (the same command as payouts/translations/README.md) runs into a temporary
.pot; every msgid it finds must have a non-empty, non-fuzzy Japanese msgstr, and the %(name)s
placeholders of each translation must be exactly those of its msgid. A new ``_()`` / ``_l()``
string without a translation therefore fails the build: run the commands in the README.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "payouts" / "translations"
JA_PO = TRANSLATIONS / "ja" / "LC_MESSAGES" / "messages.po"
EN_PO = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"

# Named placeholders such as %(name)s or %(count)d; "%%" is a literal percent sign.
PLACEHOLDER = re.compile(r"%\([^)]*\)[#0 +-]*\d*(?:\.\d+)?[a-zA-Z]")


def _pybabel() -> list[str]:
    script = Path(sys.executable).parent / "pybabel"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "babel.messages.frontend"]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    done = subprocess.run(
        [
            *_pybabel(), "--quiet", "extract",
            "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "-k", "N_",
            "--no-location", "--sort-output", "--omit-header",
            "-o", str(pot), ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(f"pybabel extract failed:\n{done.stderr}")
    with pot.open("rb") as f:
        return read_po(f)


@pytest.fixture(scope="module")
def japanese() -> Catalog:
    with JA_PO.open("rb") as f:
        return read_po(f, locale="ja")


def _ids(catalog: Catalog) -> list[Message]:
    return [m for m in catalog if m.id]


def _forms(value: str | tuple[str, ...] | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _label(msgid: str | tuple[str, ...]) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def test_extraction_finds_the_ui_strings(extracted: Catalog) -> None:
    ids = {_label(m.id) for m in _ids(extracted)}
    # A sanity check that the extractor still reads both Python and Jinja sources.
    assert "Username" in ids  # payouts/web/auth/views.py (lazy_gettext)
    assert "Sign in" in ids  # templates/auth/login.html


def test_every_extracted_msgid_is_translated_into_japanese(
    extracted: Catalog, japanese: Catalog
) -> None:
    missing, empty, fuzzy = [], [], []
    for source in _ids(extracted):
        entry = japanese.get(source.id, source.context)
        if entry is None:
            missing.append(_label(source.id))
        elif any(not s.strip() for s in _forms(entry.string)):
            empty.append(_label(source.id))
        elif entry.fuzzy:
            fuzzy.append(_label(source.id))
    hint = "update the catalogues: see payouts/translations/README.md"
    assert not missing, f"not in the ja catalogue ({hint}): {missing}"
    assert not empty, f"empty ja msgstr ({hint}): {empty}"
    assert not fuzzy, f"fuzzy ja msgstr, review it and drop the flag: {fuzzy}"


def test_japanese_placeholders_match_the_msgid(japanese: Catalog) -> None:
    wrong = []
    for message in _ids(japanese):
        # Sets, not counts: a plural msgid's singular form may leave out the number.
        expected = {p for form in _forms(message.id) for p in PLACEHOLDER.findall(form)}
        for translation in _forms(message.string):
            if translation and set(PLACEHOLDER.findall(translation)) != expected:
                wrong.append((_label(message.id), translation))
    assert not wrong, f"placeholders differ from the msgid: {wrong}"


def test_english_catalogue_exists_for_the_same_ids(japanese: Catalog) -> None:
    with EN_PO.open("rb") as f:
        english = read_po(f, locale="en")
    assert {m.id for m in _ids(english)} >= {m.id for m in _ids(japanese)}
