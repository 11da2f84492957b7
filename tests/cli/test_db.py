"""alyx db seed / dump / reset."""
import json
import os
import pty
import subprocess

from conftest import (BADINPUT, BIN, EXAMPLE, NOTFOUND, USAGE, fails, ok,
                      run, sql)


def count(project, table):
    return sql(project / "data" / "alyx.db",
               'SELECT count(*) FROM "%s"' % table)[0][0]


def counts(project):
    return {t: count(project, t) for t in ("users", "posts", "comments")}


def by_id(docs):
    return {d["id"]: d for d in docs}


def test_seed_the_example(blog, seed_data):
    ok("migrate", "apply", cwd=blog)
    res = ok("db", "seed", EXAMPLE / "seed.json", cwd=blog)
    assert "Seeded 11 documents" in res.out
    assert counts(blog) == {k: len(v) for k, v in seed_data.items()}
    res = ok("db", "--seed", "-", "--json", cwd=blog,
             input=json.dumps({"users": [{"email": "new@example.com"}]}))
    assert res.json()["inserted"]["users"] == 1


def test_dump_seed_reset_round_trip(blog_db, seed_data, tmp_path):
    dump1 = tmp_path / "dump1.json"
    res = ok("db", "dump", dump1, cwd=blog_db)
    assert "Dumped" in res.out
    d1 = json.loads(dump1.read_text())
    assert set(d1) == {"users", "posts", "comments"}
    for coll, docs in seed_data.items():
        dumped = by_id(d1[coll])
        assert set(dumped) == {d["id"] for d in docs}
        for doc in docs:
            for k, v in doc.items():
                assert dumped[doc["id"]][k] == v, (coll, doc["id"], k)
    # Defaults were filled in.
    linus = by_id(d1["users"])["5d0c6f3e-8a4b-4c1e-9f2a-0b1c2d3e4f03"]
    assert linus["role"] == "user"
    assert linus["created_at"].endswith("Z")

    # dump to stdout is the same text.
    assert json.loads(ok("db", "dump", "-", cwd=blog_db).out) == d1

    res = ok("db", "reset", "--force", cwd=blog_db)
    assert "Deleted every document" in res.out
    assert counts(blog_db) == {"users": 0, "posts": 0, "comments": 0}
    assert sql(blog_db / "data" / "alyx.db",
               "SELECT count(*) FROM _alyx_changes")[0][0] == 0
    # The schema stays.
    assert ok("migrate", "status", "--json", cwd=blog_db).json()[
        "schema"]["changes"] == []
    empty = json.loads(ok("db", "--dump", "-", cwd=blog_db).out)
    assert empty == {"users": [], "posts": [], "comments": []}

    ok("db", "seed", dump1, cwd=blog_db)
    dump2 = tmp_path / "dump2.json"
    ok("db", "dump", dump2, cwd=blog_db)
    d2 = json.loads(dump2.read_text())
    assert not [f for f in tmp_path.iterdir() if ".tmp-" in f.name]
    for coll in d1:
        assert by_id(d2[coll]) == by_id(d1[coll])
    ok("db", "--reset", "-f", cwd=blog_db)
    assert counts(blog_db)["posts"] == 0


def test_seed_yaml(blog, tmp_path):
    ok("migrate", "apply", cwd=blog)
    f = tmp_path / "seed.yaml"
    f.write_text("""\
users:
  - id: 11111111-1111-4111-8111-111111111111
    email: yaml@example.com
    name: "Yaml User"
posts:
  - title: From YAML
    slug: from-yaml
    content: |
      Two lines
      of text.
    author_id: 11111111-1111-4111-8111-111111111111
    published: true
    view_count: 0x10
    tags: [yaml, "007", 1.5]
""")
    res = ok("db", "seed", f, cwd=blog)
    assert "Seeded 2 documents" in res.out
    post = ok("query", "posts", cwd=blog).json()["docs"][0]
    assert post["published"] is True
    assert post["view_count"] == 16
    assert post["content"] == "Two lines\nof text.\n"
    assert post["tags"] == ["yaml", "007", 1.5]


def test_seed_bad_input_writes_nothing(blog_db, tmp_path):
    before = counts(blog_db)
    bad = tmp_path / "bad.json"
    bad.write_text('{"users": [{"email": "x@example.com"}')
    res = fails(BADINPUT, "INVALID_JSON", "db", "seed", bad, cwd=blog_db)
    assert "Nothing was written" in res.err

    # One invalid document among valid ones: nothing is written.
    bad.write_text(json.dumps({"users": [
        {"email": "fine@example.com"},
        {"email": "not-an-email", "role": "emperor"}]}))
    res = fails(BADINPUT, "VALIDATION_ERROR", "db", "seed", bad,
                cwd=blog_db)
    assert "email" in res.err and "role" in res.err
    assert counts(blog_db) == before

    bad.write_text(json.dumps({"nope": [{"a": 1}]}))
    fails(NOTFOUND, "NOT_FOUND", "db", "seed", bad, cwd=blog_db)

    yml = tmp_path / "bad.yaml"
    yml.write_text("users:\n  - email: a@example.com\n   name: [\n")
    res = fails(BADINPUT, "INVALID_JSON", "db", "seed", yml, cwd=blog_db)
    assert "bad.yaml:" in res.err and "line" in res.err
    assert counts(blog_db) == before

    fails(NOTFOUND, "NOT_FOUND", "db", "seed", tmp_path / "missing.json",
          cwd=blog_db)
    assert counts(blog_db) == before


def test_reset_needs_force_without_a_terminal(blog_db):
    before = counts(blog_db)
    res = fails(USAGE, "USAGE_ERROR", "db", "reset", cwd=blog_db, input="yes\n")
    assert "--force" in res.err
    assert counts(blog_db) == before


def test_db_usage_errors(blog_db):
    fails(USAGE, "USAGE_ERROR", "db", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "db", "seed", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "db", "dump", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "db", "explode", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "db", "seed", "a.json", "--dump", "b.json",
          cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "db", "reset", "extra", cwd=blog_db)
    r = run("db", "dump", "/nonexistent/dir/x.json", cwd=blog_db)
    assert r.code == 1 and "alyx: IO_ERROR:" in r.err, r


def test_reset_asks_on_a_terminal(blog_db):
    def reset_answering(answer):
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen([BIN, "db", "reset"], cwd=blog_db,
                                    stdin=slave, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            os.write(master, answer.encode())
            out, err = proc.communicate(timeout=60)
        finally:
            os.close(master)
            os.close(slave)
        assert "Type 'yes' to continue" in err
        return proc.returncode, out, err

    before = counts(blog_db)
    code, out, err = reset_answering("no\n")
    assert code == 1 and "alyx: ABORTED:" in err
    assert counts(blog_db) == before
    code, out, err = reset_answering("yes\n")
    assert code == 0, err
    assert "Deleted every document" in out
    assert counts(blog_db) == {"users": 0, "posts": 0, "comments": 0}


def test_before_the_first_migrate(blog):
    res = fails(NOTFOUND, "NOT_FOUND", "query", "posts", cwd=blog)
    assert "alyx migrate apply" in res.err
    fails(NOTFOUND, "NOT_FOUND", "db", "dump", "-", cwd=blog)
    assert not (blog / "data").exists()
