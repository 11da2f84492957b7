"""alyx doc create / get / update / delete."""
import json

from conftest import (BADINPUT, CONFLICT, NOTFOUND, USAGE, fails, ok, sql)

ADA = "5d0c6f3e-8a4b-4c1e-9f2a-0b1c2d3e4f01"


def test_create_get_update_delete(blog_db, tmp_path):
    doc = ok("doc", "create", "users", "--data",
             '{"email":"kay@example.com","name":"Alan Kay"}',
             cwd=blog_db).json()
    assert doc["email"] == "kay@example.com"
    assert doc["role"] == "user"
    assert len(doc["id"]) == 36
    assert doc["created_at"].endswith("Z")
    got = ok("doc", "get", "users", doc["id"], cwd=blog_db).json()
    assert got == doc
    got = ok("doc", "get", "users", doc["id"], "--fields", "email",
             cwd=blog_db).json()
    assert got["email"] == "kay@example.com"
    assert set(got) <= {"id", "email"}      # the key always comes along

    f = tmp_path / "patch.json"
    f.write_text('{"name": "Alan C. Kay"}')
    upd = ok("doc", "update", "users", doc["id"], "--data", "@%s" % f,
             cwd=blog_db).json()
    assert upd["name"] == "Alan C. Kay" and upd["email"] == doc["email"]
    upd = ok("doc", "update", "users", doc["id"], "-d", "-", "--pretty",
             cwd=blog_db, input='{"role": "moderator"}').json()
    assert upd["role"] == "moderator"

    res = ok("doc", "delete", "users", doc["id"], cwd=blog_db)
    assert "Deleted users %s" % doc["id"] in res.out
    fails(NOTFOUND, "NOT_FOUND", "doc", "get", "users", doc["id"],
          cwd=blog_db)
    fails(NOTFOUND, "NOT_FOUND", "doc", "delete", "users", doc["id"],
          cwd=blog_db)


def test_get_with_expand(blog_db):
    post = ok("doc", "get", "posts", "8e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a01",
              "--expand", "author_id", cwd=blog_db).json()
    assert post["expand"]["author_id"]["id"] == ADA


def test_delete_cascades(blog_db):
    db = blog_db / "data" / "alyx.db"
    res = ok("doc", "delete", "users", ADA, "--json", cwd=blog_db)
    assert res.json() == {"deleted": ADA}
    assert sql(db, "SELECT count(*) FROM posts WHERE author_id = ?",
               ADA)[0][0] == 0
    assert sql(db, "SELECT count(*) FROM comments WHERE author_id = ?",
               ADA)[0][0] == 0


def test_write_errors(blog_db):
    res = fails(BADINPUT, "VALIDATION_ERROR", "doc", "create", "users",
                "--data", json.dumps({"email": "nope", "name": "x" * 101,
                                      "role": "king"}), cwd=blog_db)
    for field in ("email", "name", "role"):
        assert field in res.err
    res = fails(BADINPUT, None, "doc", "create", "users",
                "--data", '{"email":"nope"}', "--json", cwd=blog_db)
    err = json.loads(res.err)["error"]
    assert err["details"]["fields"][0]["field"] == "email"
    fails(BADINPUT, "INVALID_JSON", "doc", "create", "users", "--data",
          '{"email": ', cwd=blog_db)
    fails(BADINPUT, "INVALID_JSON", "doc", "create", "users", "--data",
          '[1, 2]', cwd=blog_db)
    fails(CONFLICT, "CONFLICT", "doc", "create", "users", "--data",
          '{"email":"ada@example.com"}', cwd=blog_db)
    fails(CONFLICT, "CONFLICT", "doc", "create", "posts", "--data",
          json.dumps({"title": "t", "slug": "s", "content": "c",
                      "author_id": "00000000-0000-4000-8000-000000000000"}),
          cwd=blog_db)
    fails(NOTFOUND, "NOT_FOUND", "doc", "create", "nope", "--data", "{}",
          cwd=blog_db)
    fails(NOTFOUND, "NOT_FOUND", "doc", "update", "users",
          "00000000-0000-4000-8000-000000000000", "--data", "{}",
          cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "doc", "create", "users", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "doc", "get", "users", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "doc", "delete", "users", "x", "--data",
          "{}", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "doc", "fetch", "users", "x", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "doc", cwd=blog_db)
