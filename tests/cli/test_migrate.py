"""alyx migrate: status, apply, rollback, create, their flag aliases, and
the refusal of destructive schema edits."""
import json
import re
from pathlib import Path

import yaml

from conftest import (MIGRATION, NOTFOUND, USAGE, columns, fails, ok, run, sql,
                      user_tables)


def status(project):
    return ok("migrate", "status", "--json", cwd=project).json()


def create(project, name, *flags):
    res = ok("migrate", *(flags or ("create",)), name, cwd=project)
    m = re.search(r"Created (\S+)", res.out)
    assert m, res
    path = Path(m.group(1))
    if not path.is_absolute():
        path = project / path
    assert path.is_file(), res
    assert path.parent.resolve() == (project / "migrations").resolve()
    assert re.fullmatch(r"\d{3}_%s\.yaml" % name, path.name), path
    return path


RENAME = """\
version: {version}
name: rename_user_name
description: Rename 'name' field to 'display_name' in users

operations:
  - type: rename_field
    collection: users
    from: name
    to: display_name

  - type: sql
    up: |
      UPDATE users SET display_name = 'Anonymous' WHERE display_name IS NULL;
    down: |
      UPDATE users SET display_name = NULL WHERE display_name = 'Anonymous';
"""


def rename_in_schema(project):
    p = project / "schema.yaml"
    text = p.read_text()
    assert text.count("      name:\n") == 1
    p.write_text(text.replace("      name:\n", "      display_name:\n"))


def users(db, col):
    return dict(sql(db, 'SELECT email, "%s" FROM users' % col))


def test_status_of_a_fresh_project(blog):
    st = status(blog)
    assert st["applied"] == [] and st["pending"] == []
    assert st["baseline"] is True       # an empty database
    res = ok("migrate", "status", cwd=blog)
    assert "No migration files." in res.out
    assert "not applied yet" in res.out
    assert "3 collections: users, posts, comments" in res.out
    # status is the default action, and --status its flag form.
    assert ok("migrate", cwd=blog).out.splitlines()[1:] == \
        res.out.splitlines()[1:]
    assert ok("migrate", "--status", "--json", cwd=blog).json() == st


def test_apply_then_status_is_up_to_date(blog):
    res = ok("migrate", "apply", cwd=blog)
    assert "users" in res.out
    db = blog / "data" / "alyx.db"
    assert user_tables(db) == {"users", "posts", "comments"}
    st = status(blog)
    assert st["schema"]["changes"] == [] and st["pending"] == []
    assert "up to date" in ok("migrate", "status", cwd=blog).out


def test_create_numbers_files(blog):
    ok("migrate", "apply", cwd=blog)
    first = create(blog, "add_things")
    second = create(blog, "more_things", "--create")
    assert int(second.name[:3]) == int(first.name[:3]) + 1
    body = yaml.safe_load(first.read_text())
    assert body["name"] == "add_things"
    pending = [m["name"] for m in status(blog)["pending"]]
    assert pending == ["add_things", "more_things"]
    # A fresh file has no operations yet: status says so under its name.
    human = ok("migrate", "status", cwd=blog).out
    assert re.search(r"001_add_things\.yaml  pending\n      ! ", human), human
    assert "not compared" in human
    fails(USAGE, "USAGE_ERROR", "migrate", "create", cwd=blog)
    for bad in ("Bad Name", "9lives", "x" * 100, "a/b"):
        res = fails(USAGE, "MISUSE", "migrate", "create", bad, cwd=blog)
        assert "migration name" in res.err
    assert sorted(f.name for f in (blog / "migrations").iterdir()) == \
        [first.name, second.name]


def test_rename_field_migration_apply_and_rollback(blog_db):
    db = blog_db / "data" / "alyx.db"
    before_names = users(db, "name")
    counts = {t: sql(db, 'SELECT count(*) FROM "%s"' % t)[0][0]
              for t in ("users", "posts", "comments")}
    path = create(blog_db, "rename_user_name")
    version = yaml.safe_load(path.read_text())["version"]
    path.write_text(RENAME.format(version=version))
    rename_in_schema(blog_db)

    st = status(blog_db)
    assert [m["name"] for m in st["pending"]] == ["rename_user_name"]
    human = ok("migrate", "status", cwd=blog_db).out
    assert "rename_user_name" in human and "pending" in human

    res = ok("migrate", "apply", cwd=blog_db)
    assert "rename_user_name" in res.out
    cols = columns(db, "users")
    assert "display_name" in cols and "name" not in cols
    after = users(db, "display_name")
    for email, name in before_names.items():
        assert after[email] == (name if name is not None else "Anonymous")
    for t, n in counts.items():
        assert sql(db, 'SELECT count(*) FROM "%s"' % t)[0][0] == n
    st = status(blog_db)
    assert [m["name"] for m in st["applied"]] == ["rename_user_name"]
    assert st["pending"] == [] and st["schema"]["changes"] == []
    assert not st["applied"][0]["modified"]

    res = ok("migrate", "rollback", cwd=blog_db)
    assert "rename_user_name" in res.out
    cols = columns(db, "users")
    assert "name" in cols and "display_name" not in cols
    assert users(db, "name") == before_names
    for t, n in counts.items():
        assert sql(db, 'SELECT count(*) FROM "%s"' % t)[0][0] == n
    assert [m["name"] for m in status(blog_db)["pending"]] == \
        ["rename_user_name"]

    # The flag forms do the same.
    ok("migrate", "--apply", cwd=blog_db)
    assert "display_name" in columns(db, "users")
    ok("migrate", "--rollback", "1", cwd=blog_db)
    assert "name" in columns(db, "users")
    ok("migrate", "--apply", cwd=blog_db)
    res = ok("migrate", "--rollback=1", "--json", cwd=blog_db)
    assert "name" in columns(db, "users")


def test_rollback_arguments(blog):
    ok("migrate", "apply", cwd=blog)
    for bad in ("0", "-1", "two"):
        fails(USAGE, "USAGE_ERROR", "migrate", "rollback", bad, cwd=blog)
    fails(USAGE, "USAGE_ERROR", "migrate", "apply", "status", cwd=blog)
    fails(USAGE, "USAGE_ERROR", "migrate", "--apply", "--status", cwd=blog)
    fails(USAGE, "USAGE_ERROR", "migrate", "frobnicate", cwd=blog)
    res = fails(NOTFOUND, "NOT_FOUND", "migrate", "rollback", cwd=blog)
    assert "roll back" in res.err


def test_destructive_schema_edit_is_refused(blog_db):
    db = blog_db / "data" / "alyx.db"
    p = blog_db / "schema.yaml"
    original = p.read_text()
    # Remove users.avatar_url and change posts.tags's type.
    edited = original.replace(
        "      avatar_url:\n        type: string\n        nullable: true\n",
        "")
    edited = edited.replace(
        "      tags:\n        type: json\n",
        "      tags:\n        type: text\n")
    assert edited != original
    p.write_text(edited)
    before = sql(db, "SELECT * FROM users ORDER BY id")
    schema_before = sql(db, "SELECT sql FROM sqlite_master ORDER BY name")

    res = fails(MIGRATION, "MIGRATION_REQUIRED", "migrate", "apply",
                cwd=blog_db)
    assert "avatar_url" in res.err
    assert "tags" in res.err
    assert "nothing was changed" in res.err.lower()
    assert res.out == ""
    assert sql(db, "SELECT * FROM users ORDER BY id") == before
    assert sql(db, "SELECT sql FROM sqlite_master ORDER BY name") == \
        schema_before

    st = status(blog_db)
    unsafe = [c for c in st["schema"]["changes"] if not c["safe"]]
    assert len(unsafe) >= 2
    human = ok("migrate", "status", cwd=blog_db).out
    assert "needs a migration file" in human
    # --json errors are one JSON object on stderr.
    res = fails(MIGRATION, None, "migrate", "apply", "--json", cwd=blog_db)
    err = json.loads(res.err)
    assert err["error"]["code"] == "MIGRATION_REQUIRED"
    p.write_text(original)
    ok("migrate", "apply", cwd=blog_db)


def test_failing_migration_changes_nothing(blog_db):
    db = blog_db / "data" / "alyx.db"
    path = create(blog_db, "broken")
    version = yaml.safe_load(path.read_text())["version"]
    path.write_text(RENAME.format(version=version).replace(
        "UPDATE users SET display_name = 'Anonymous'",
        "UPDATE no_such_table SET display_name = 'Anonymous'"))
    rename_in_schema(blog_db)
    before = sql(db, "SELECT * FROM users ORDER BY id")
    res = run("migrate", "apply", cwd=blog_db)
    assert res.code == MIGRATION, res
    assert res.err.startswith("alyx: ")
    assert "name" in columns(db, "users")
    assert "display_name" not in columns(db, "users")
    assert sql(db, "SELECT * FROM users ORDER BY id") == before
    assert status(blog_db)["applied"] == []


def test_edited_applied_migration_is_reported(blog_db):
    path = create(blog_db, "rename_user_name")
    version = yaml.safe_load(path.read_text())["version"]
    path.write_text(RENAME.format(version=version))
    rename_in_schema(blog_db)
    ok("migrate", "apply", cwd=blog_db)
    path.write_text(path.read_text().replace("'Anonymous'", "'Someone'"))
    st = status(blog_db)
    assert st["applied"][0]["modified"] is True
    assert "MODIFIED" in ok("migrate", "status", cwd=blog_db).out


SQL_ONLY = """\
version: {version}
name: {name}
operations:
  - type: sql
    up: |
      UPDATE posts SET view_count = view_count + {n};
    down: |
      UPDATE posts SET view_count = view_count - {n};
"""


def test_rollback_n(blog_db):
    db = blog_db / "data" / "alyx.db"
    views = dict(sql(db, "SELECT slug, view_count FROM posts"))
    for name, n in (("plus_one", 1), ("plus_ten", 10)):
        path = create(blog_db, name)
        version = yaml.safe_load(path.read_text())["version"]
        path.write_text(SQL_ONLY.format(version=version, name=name, n=n))
    res = ok("migrate", "apply", cwd=blog_db)
    assert "plus_one" in res.out and "plus_ten" in res.out
    assert dict(sql(db, "SELECT slug, view_count FROM posts")) == \
        {k: v + 11 for k, v in views.items()}
    res = ok("migrate", "rollback", "2", "--json", cwd=blog_db)
    assert [m["name"] for m in res.json()["rolled_back"]] == \
        ["plus_ten", "plus_one"]
    assert dict(sql(db, "SELECT slug, view_count FROM posts")) == views
    assert [m["name"] for m in status(blog_db)["pending"]] == \
        ["plus_one", "plus_ten"]


def test_edited_applied_migration_blocks_apply(blog_db):
    path = create(blog_db, "plus_one")
    version = yaml.safe_load(path.read_text())["version"]
    path.write_text(SQL_ONLY.format(version=version, name="plus_one", n=1))
    ok("migrate", "apply", cwd=blog_db)
    path.write_text(path.read_text().replace("+ 1", "+ 2"))
    res = fails(MIGRATION, "CHECKSUM_MISMATCH", "migrate", "apply",
                cwd=blog_db)
    assert path.name in res.err or "plus_one" in res.err
