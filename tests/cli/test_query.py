"""alyx query: filters, sort, limit/offset/after, expand, fields, total,
and the errors of bad queries."""
import json

from conftest import (BADINPUT, NOTFOUND, USAGE, fails, ok)

ADA = "5d0c6f3e-8a4b-4c1e-9f2a-0b1c2d3e4f01"
GRACE = "5d0c6f3e-8a4b-4c1e-9f2a-0b1c2d3e4f02"
LINUS = "5d0c6f3e-8a4b-4c1e-9f2a-0b1c2d3e4f03"


def q(project, coll, *args):
    return ok("query", coll, *args, cwd=project).json()


def slugs(res):
    return [d["slug"] for d in res["docs"]]


def test_everything_and_filters(blog_db):
    assert len(q(blog_db, "posts")["docs"]) == 4
    assert sorted(slugs(q(blog_db, "posts", "--filter",
                          "published:eq:true"))) == \
        ["analytical-engine", "first-bug", "just-a-hobby"]
    assert sorted(slugs(q(blog_db, "posts", "-f", "view_count:gt:100"))) == \
        ["analytical-engine", "just-a-hobby"]
    # Filters AND together.
    assert slugs(q(blog_db, "posts", "-f", "published:eq:true",
                   "-f", "author_id:eq:" + GRACE)) == ["first-bug"]
    assert sorted(slugs(q(blog_db, "posts", "--filter",
                          "author_id:in:%s,%s" % (ADA, LINUS)))) == \
        ["analytical-engine", "just-a-hobby"]
    assert slugs(q(blog_db, "posts", "-f", "title:like:%bug%")) == \
        ["first-bug"]
    assert slugs(q(blog_db, "posts", "-f", "tags:contains:history")) == \
        ["analytical-engine"]
    # Values with colons (timestamps) pass through whole.
    assert sorted(slugs(q(blog_db, "posts", "-f",
                          "published_at:gt:2026-02-01T00:00:00.000Z"))) == \
        ["first-bug", "just-a-hobby"]
    assert slugs(q(blog_db, "posts", "-f", "view_count:lte:64",
                   "--sort", "view_count")) == \
        ["compilers-for-everyone", "first-bug"]


def test_values_are_url_encoded(blog_db):
    title = "Tom & Jerry: 100% + more=fun, ok?"
    ok("doc", "create", "posts", "--data", json.dumps({
        "title": title, "slug": "tom-jerry", "content": "c",
        "author_id": ADA}), cwd=blog_db)
    assert slugs(q(blog_db, "posts", "-f", "title:eq:" + title)) == \
        ["tom-jerry"]
    assert slugs(q(blog_db, "posts", "-f", "title:ne:" + title,
                   "-f", "slug:eq:first-bug")) == ["first-bug"]


def test_sort_limit_offset_after(blog_db):
    order = ["just-a-hobby", "analytical-engine", "first-bug",
             "compilers-for-everyone"]
    assert slugs(q(blog_db, "posts", "--sort", "-view_count")) == order
    assert slugs(q(blog_db, "posts", "-s", "-view_count", "-l", "2",
                   "--offset", "1")) == order[1:3]
    page1 = q(blog_db, "posts", "--sort=-view_count", "--limit=2")
    assert slugs(page1) == order[:2]
    assert "next" in page1
    page2 = q(blog_db, "posts", "--sort=-view_count", "--limit=2",
              "--after", page1["next"])
    assert slugs(page2) == order[2:]
    assert "next" not in page2
    # Several sort keys.
    assert slugs(q(blog_db, "posts", "--sort", "author_id,-created_at")) == \
        ["analytical-engine", "compilers-for-everyone", "first-bug",
         "just-a-hobby"]


def test_expand_fields_total(blog_db):
    res = q(blog_db, "posts", "-f", "slug:eq:first-bug", "--expand",
            "author_id")
    assert res["docs"][0]["expand"]["author_id"]["email"] == \
        "grace@example.com"
    res = q(blog_db, "comments", "-e", "post_id.author_id", "--sort",
            "created_at", "--limit", "1")
    post = res["docs"][0]["expand"]["post_id"]
    assert post["slug"] == "analytical-engine"
    assert post["expand"]["author_id"]["email"] == "ada@example.com"
    res = q(blog_db, "posts", "--fields", "id,title", "--limit", "1")
    assert set(res["docs"][0]) <= {"id", "title"}
    assert "title" in res["docs"][0]
    res = q(blog_db, "posts", "--total", "--limit", "1")
    assert res["total"] == 4 and len(res["docs"]) == 1
    assert "total" not in q(blog_db, "posts", "--limit", "1")
    res = q(blog_db, "posts", "--total", "-f", "published:eq:false")
    assert res["total"] == 1


def test_pretty(blog_db):
    compact = ok("query", "users", "--sort", "email", cwd=blog_db).out
    pretty = ok("query", "users", "--sort", "email", "--pretty",
                cwd=blog_db).out
    assert compact.count("\n") == 1
    assert pretty.count("\n") > 10
    assert json.loads(pretty) == json.loads(compact)
    assert '\n  "docs": [\n' in pretty


def test_query_errors(blog_db):
    res = fails(NOTFOUND, "NOT_FOUND", "query", "nope", cwd=blog_db)
    assert "nope" in res.err
    res = fails(BADINPUT, "INVALID_QUERY", "query", "posts", "-f",
                "nosuchfield:eq:1", cwd=blog_db)
    assert "nosuchfield" in res.err
    fails(BADINPUT, "INVALID_QUERY", "query", "posts", "-f",
          "title:almost:x", cwd=blog_db)
    fails(BADINPUT, "INVALID_QUERY", "query", "posts", "-f", "title",
          cwd=blog_db)
    fails(BADINPUT, "INVALID_QUERY", "query", "posts", "-f",
          "view_count:gt:many", cwd=blog_db)
    fails(BADINPUT, "INVALID_QUERY", "query", "posts", "--limit", "lots",
          cwd=blog_db)
    fails(BADINPUT, "INVALID_QUERY", "query", "posts", "--sort",
          "-nothing", cwd=blog_db)
    fails(BADINPUT, "INVALID_QUERY", "query", "posts", "--expand", "title",
          cwd=blog_db)
    fails(BADINPUT, "INVALID_QUERY", "query", "posts", "--after", "zzz",
          cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "query", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "query", "posts", "users", cwd=blog_db)
    fails(USAGE, "USAGE_ERROR", "query", "posts", "--filter", cwd=blog_db)
    res = fails(BADINPUT, None, "query", "posts", "-f", "x:eq:1", "--json",
                cwd=blog_db)
    assert json.loads(res.err)["error"]["code"] == "INVALID_QUERY"
