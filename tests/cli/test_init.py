"""alyx init: templates, the files of a project, refusing to overwrite."""
import shutil

import pytest
import yaml

from conftest import (CONFLICT, EXAMPLE, TEMPLATES, USAGE, columns, fails, ok,
                      sql, user_tables)

TEMPLATE_NAMES = ["basic", "blog", "saas"]


def schema_of(template):
    with open(TEMPLATES / template / "schema.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_init_creates_the_project(tmp_path, template):
    res = ok("init", "proj", "--template", template, cwd=tmp_path)
    p = tmp_path / "proj"
    assert "Created the %s project" % template in res.out
    assert (p / "schema.yaml").read_text() == \
        (TEMPLATES / template / "schema.yaml").read_text()
    cfg = yaml.safe_load((p / "alyx.yaml").read_text())
    assert cfg["server"] == {"host": "127.0.0.1", "port": 8090}
    assert cfg["database"] == {"path": "data/alyx.db"}
    assert cfg["auth"]["jwt"]["secret"] == "${JWT_SECRET}"
    assert "proj" in (p / "alyx.yaml").read_text()     # {{name}} replaced
    assert "{{name}}" not in (p / "alyx.yaml").read_text()
    assert (p / ".gitignore").read_text().splitlines()[-1] == "data/"
    assert (p / "migrations").is_dir()
    assert list((p / "migrations").iterdir()) == []
    assert (p / "functions" / "README.md").is_file()
    assert not (p / "data").exists()


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_each_template_migrates(tmp_path, template):
    ok("init", "proj", "-t", template, cwd=tmp_path)
    p = tmp_path / "proj"
    ok("migrate", "apply", cwd=p)
    db = p / "data" / "alyx.db"
    schema = schema_of(template)
    assert user_tables(db) == set(schema["collections"])
    for name, coll in schema["collections"].items():
        assert set(columns(db, name)) == set(coll["fields"])
    # A second apply has nothing left to do.
    res = ok("migrate", "apply", cwd=p)
    assert "up to date" in res.out


def test_blog_template_is_the_seed_schema(tmp_path):
    """alyx init blog --template blog; alyx migrate apply: the seed's
    users/posts/comments tables, columns, indexes and foreign keys."""
    ok("init", "blog", "--template", "blog", cwd=tmp_path)
    p = tmp_path / "blog"
    ok("migrate", "apply", cwd=p)
    db = p / "data" / "alyx.db"
    assert user_tables(db) == {"users", "posts", "comments"}
    assert columns(db, "users") == [
        "id", "email", "name", "avatar_url", "role", "created_at",
        "updated_at"]
    assert columns(db, "posts") == [
        "id", "title", "slug", "content", "excerpt", "author_id",
        "published", "published_at", "tags", "view_count", "created_at",
        "updated_at"]
    assert columns(db, "comments") == [
        "id", "post_id", "author_id", "content", "created_at"]
    indexes = {r[0] for r in sql(
        db, "SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"idx_posts_published_date", "idx_posts_author_date"} <= indexes
    fks = {(r[2], r[3], r[4], r[6]) for r in sql(
        db, "PRAGMA foreign_key_list(posts)")}
    assert ("users", "author_id", "id", "CASCADE") in fks
    fks = {(r[2], r[3]) for r in sql(db, "PRAGMA foreign_key_list(comments)")}
    assert fks == {("posts", "post_id"), ("users", "author_id")}


def test_init_current_directory(tmp_path):
    d = tmp_path / "here"
    d.mkdir()
    ok("init", "--template", "saas", cwd=d)
    assert (d / "schema.yaml").read_text() == \
        (TEMPLATES / "saas" / "schema.yaml").read_text()
    assert "here" in (d / "alyx.yaml").read_text()


def test_init_odd_names(tmp_path):
    ok("init", "we\nird name", cwd=tmp_path)
    text = (tmp_path / "we\nird name" / "alyx.yaml").read_text()
    assert "we_ird name" in text
    ok("init", "a/b/c", cwd=tmp_path)           # parents are created
    assert (tmp_path / "a" / "b" / "c" / "schema.yaml").is_file()
    ok("init", tmp_path / "abs")                 # absolute: --dir ignored
    assert (tmp_path / "abs" / "alyx.yaml").is_file()


def test_init_with_dir_and_json(tmp_path):
    res = ok("--json", "init", "x", "--dir", tmp_path)
    doc = res.json()
    assert doc["template"] == "basic"
    assert doc["path"] == "%s/x" % tmp_path
    assert set(doc["files"]) == {".gitignore", "alyx.yaml",
                                 "functions/README.md", "schema.yaml",
                                 "migrations/"}
    assert (tmp_path / "x" / "schema.yaml").is_file()


def test_init_refuses_a_non_empty_directory(tmp_path):
    d = tmp_path / "taken"
    d.mkdir()
    (d / "notes.txt").write_text("mine\n")
    res = fails(CONFLICT, "ALREADY_EXISTS", "init", "taken", cwd=tmp_path)
    assert "not an empty directory" in res.err
    assert [f.name for f in d.iterdir()] == ["notes.txt"]
    # Running it twice refuses the second time too.
    ok("init", "p", cwd=tmp_path)
    before = (tmp_path / "p" / "schema.yaml").read_text()
    fails(CONFLICT, "ALREADY_EXISTS", "init", "p", "-t", "blog",
          cwd=tmp_path)
    assert (tmp_path / "p" / "schema.yaml").read_text() == before
    # A file in the way is refused as well.
    (tmp_path / "file").write_text("x")
    fails(CONFLICT, "ALREADY_EXISTS", "init", "file", cwd=tmp_path)


def test_init_bad_template_and_arguments(tmp_path):
    res = fails(USAGE, "USAGE_ERROR", "init", "p", "--template", "wiki",
                cwd=tmp_path)
    assert "basic, blog or saas" in res.err
    assert not (tmp_path / "p").exists()
    fails(USAGE, "USAGE_ERROR", "init", "a", "b", cwd=tmp_path)
    fails(USAGE, "USAGE_ERROR", "init", "p", "--template", cwd=tmp_path)
    fails(USAGE, "USAGE_ERROR", "init", "p", "--frobnicate", cwd=tmp_path)
    fails(USAGE, "USAGE_ERROR", "init", "common", "-t", "common",
          cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_examples_blog_is_the_blog_template(tmp_path):
    """examples/blog is `alyx init blog --template blog` plus seed.json."""
    ok("init", "blog", "--template", "blog", cwd=tmp_path)
    made = tmp_path / "blog"
    for rel in ("alyx.yaml", "schema.yaml", ".gitignore",
                "functions/README.md"):
        assert (EXAMPLE / rel).read_text() == (made / rel).read_text(), rel
    # Ready to run as the README does: migrate, seed, query.
    proj = tmp_path / "example"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("data"))
    ok("--dir", proj, "migrate", "apply")
    res = ok("--dir", proj, "db", "seed", proj / "seed.json")
    assert "users 3, posts 4, comments 4" in res.out
    docs = ok("--dir", proj, "query", "posts", "-f", "published:eq:true",
              "--total").json()
    assert docs["total"] == 3
