"""Fixtures for the black-box tests of the `alyx` CLI.

ALYX_BIN names the binary under test (meson sets it); ALYX_SOURCE_ROOT the
source tree (for the templates and examples/blog).
"""
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("ALYX_SOURCE_ROOT",
                           Path(__file__).resolve().parents[2]))
BIN = os.environ.get("ALYX_BIN", str(ROOT / "build" / "cli" / "alyx"))
TEMPLATES = ROOT / "cli" / "templates"
EXAMPLE = ROOT / "examples" / "blog"

# Exit codes (docs/cli.md).
OK, FAIL, USAGE, NOPROJECT, BADPROJECT, MIGRATION, BADINPUT, NOTFOUND, \
    CONFLICT = range(9)


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (
            self.code, self.out, self.err)


def run(*args, cwd=None, input=None, env=None, timeout=120):
    """Runs alyx with the arguments; returns a Result."""
    e = dict(os.environ)
    if env:
        e.update(env)
    proc = subprocess.run([BIN] + [str(a) for a in args], cwd=cwd,
                          input=input, env=e, capture_output=True,
                          text=True, timeout=timeout)
    res = Result(proc)
    # A sanitizer report is a failure whatever the exit code says.
    assert "ERROR: AddressSanitizer" not in res.err, res
    assert "ERROR: LeakSanitizer" not in res.err, res
    assert "runtime error:" not in res.err, res
    return res


def ok(*args, **kw):
    res = run(*args, **kw)
    assert res.code == OK, res
    return res


def fails(code, name, *args, **kw):
    """Runs alyx expecting exit `code` and "alyx: NAME:" on stderr."""
    res = run(*args, **kw)
    assert res.code == code, res
    if name:
        assert ("alyx: %s:" % name) in res.err, res
    return res


def tables(db):
    con = sqlite3.connect(str(db))
    try:
        return {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


def user_tables(db):
    return {t for t in tables(db)
            if not t.startswith("_alyx_") and not t.startswith("sqlite_")}


def sql(db, query, *params):
    con = sqlite3.connect(str(db))
    try:
        return con.execute(query, params).fetchall()
    finally:
        con.close()


def columns(db, table):
    return [r[1] for r in sql(db, 'PRAGMA table_info("%s")' % table)]


@pytest.fixture
def blog(tmp_path):
    """A fresh blog project (not migrated) at tmp_path/blog."""
    ok("init", "blog", "--template", "blog", cwd=tmp_path)
    return tmp_path / "blog"


@pytest.fixture
def blog_db(blog):
    """The blog project, migrated and seeded with examples/blog/seed.json."""
    ok("migrate", "apply", cwd=blog)
    ok("db", "seed", EXAMPLE / "seed.json", cwd=blog)
    return blog


@pytest.fixture
def seed_data():
    with open(EXAMPLE / "seed.json") as fh:
        return json.load(fh)
