# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Passwords out of SQL text before the text leaves the controller code (findings, lint, results).

The SQL a migration runs stays as written (it must still execute); what is shown of it is not:
the string literal after ``PASSWORD`` (``CREATE/ALTER ROLE|USER ... [ENCRYPTED] PASSWORD '...'``,
``OPTIONS (password '...')`` of a user mapping or a foreign server, ``ADD``/``SET password`` in
their ``ALTER``) and every string literal that is a libpq connection string or URI carrying a
password (``dblink_connect('... password=...')``, ``'postgresql://u:pw@h/db'``) becomes ``'***'``.

Tokens come from PostgreSQL's own scanner (pglast), never from a regular expression over the raw
text: a password keyword inside a comment, an identifier or another literal does not count, and a
literal is replaced whole whatever its quoting (``'...'``, ``E'...'``, ``U&'...'``, ``$tag$...$tag$``).
Text the scanner cannot read (an unterminated literal) that may hold a password is not shown at all.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from typing import Any, Iterable

# pglast's scanner is imported when a text first needs it: most texts never mention a password, and a
# run that only reads cached parses starts without the parser.
HAS_PGLAST = importlib.util.find_spec("pglast") is not None

MASK = "'***'"
HIDDEN = "<statement not shown: it may hold a password>"
_STRINGS = {"SCONST", "USCONST"}
# A libpq connection string ("host=h password=pw") or URI ("postgres://user:pw@host/db") with a password.
_CONNINFO = re.compile(r"(?i)(?:^|[\s'])password\s*=|[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@")
MIN_SCRUB = 4  # a bare value shorter than this is not scrubbed from free text (its quoted literal is)


def _candidate(sql: str) -> bool:
    """A cheap test: most statements hold nothing to scan for."""
    return "://" in sql or "passw" in sql.lower()


def _literal_value(token: str) -> str:
    """The content of a string literal token, as near as the text shows it."""
    if token.startswith("$"):
        tag_end = token.index("$", 1) + 1
        return token[tag_end:-tag_end]
    if token[:1] in "eE":
        token = token[1:]
    elif token[:2].upper() == "U&":
        token = token[2:]
    return token[1:-1].replace("''", "'")


def secret_spans(sql: str) -> list[tuple[int, int]] | None:
    """(start, end) character offsets of the literals to hide; None when the scanner cannot read the text."""
    if not _candidate(sql):
        return []
    if not HAS_PGLAST:  # pragma: no cover
        return None
    import pglast.parser as _pg  # pylint: disable=import-outside-toplevel  # see HAS_PGLAST

    try:
        tokens = _pg.scan(sql)
    except Exception:  # an unterminated literal or comment: pglast raises its own error types
        return None
    spans: list[tuple[int, int]] = []
    previous_is_password = False
    for token in tokens:
        start, end = token.start, token.end + 1
        if token.name in _STRINGS:
            text = sql[start:end]
            if previous_is_password or _CONNINFO.search(_literal_value(text)):
                spans.append((start, end))
            continue  # consecutive literals after PASSWORD ('a' 'b' on two lines) are one value
        word = sql[start:end]
        previous_is_password = token.name == "PASSWORD" or (
            token.name == "IDENT" and word.strip('"').lower() == "password"
        )
    return spans


def has_secret(sql: str) -> bool:
    """Whether the text holds a password literal (or cannot be read well enough to tell)."""
    spans = secret_spans(sql)
    return spans is None or bool(spans)


def redact(sql: str) -> str:
    """The text with each password literal replaced by ``'***'``."""
    spans = secret_spans(sql)
    if spans is None:
        return HIDDEN
    for start, end in reversed(spans):
        sql = sql[:start] + MASK + sql[end:]
    return sql


def secrets(sql: str) -> dict[str, str]:
    """The password literals of the text, as written and as their content, each with what replaces it
    in free text (an error message, a log line)."""
    found: dict[str, str] = {}
    for start, end in secret_spans(sql) or ():
        token = sql[start:end]
        value = _literal_value(token)
        if len(value) >= MIN_SCRUB:
            found.setdefault(value, "***")
        found[token] = MASK
    return found


# What hides the password literals of some texts: (text -> its redacted form, secret -> its mask).
Redaction = tuple[dict[str, str], dict[str, str]]


def redaction_of(texts: Iterable[str]) -> Redaction:
    """The redaction of some SQL texts: each text holding a password literal, with its redacted form
    (or HIDDEN when the scanner cannot read it), and the literals to hide in any other text."""
    replacements: dict[str, str] = {}
    found: dict[str, str] = {}
    for text in texts:
        if text in replacements or not _candidate(text):
            continue
        spans = secret_spans(text)
        if spans is None:
            replacements[text] = HIDDEN
        elif spans:
            replacements[text] = redact(text)
            found.update(secrets(text))
    return replacements, found


def migration_redaction(migration: Any) -> Redaction:
    """The redaction of a migration's statements, forward and rollback (a _model.Migration)."""
    texts = [s.sql for s in migration.forward.statements]
    if migration.rollback is not None:
        texts.extend(s.sql for s in migration.rollback.statements)
    return redaction_of(texts)


class Redactor:
    """Hides the password literals of some SQL texts wherever they show up in a result.

    A value equal to one of the texts becomes its redacted form; any other string loses every
    literal (and literal content) those texts hold.
    """

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.replacements, found = redaction_of(texts)
        # Longest first: a literal goes whole before its content is looked for.
        self.secrets = sorted(found.items(), key=lambda item: len(item[0]), reverse=True)

    @classmethod
    def merged(cls, parts: Iterable[Redaction]) -> Redactor:
        """One redactor from the redactions of several texts, found before (the parse cache keeps
        each migration's, so a run over unchanged files scans nothing)."""
        redactor = cls()
        found: dict[str, str] = {}
        for replacements, secrets_found in parts:
            redactor.replacements.update(replacements)
            found.update(secrets_found)
        redactor.secrets = sorted(found.items(), key=lambda item: len(item[0]), reverse=True)
        return redactor

    def __bool__(self) -> bool:
        return bool(self.replacements)

    def text(self, value: str) -> str:
        if value in self.replacements:
            return self.replacements[value]
        for secret, mask in self.secrets:
            if secret in value:
                value = value.replace(secret, mask)
        return value

    def apply(self, value: Any) -> Any:
        """The value (a result: dicts, lists, strings) with every password literal hidden."""
        if not self:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.apply(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.apply(item) for item in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # ansible-core 2.19 keeps a failed module's message in an ErrorSummary (result["exception"]) too.
            changes = {}
            for f in dataclasses.fields(value):
                if f.init:
                    item = getattr(value, f.name)
                    hidden = self.apply(item)
                    if hidden is not item and hidden != item:
                        changes[f.name] = hidden
            return dataclasses.replace(value, **changes) if changes else value
        return value
