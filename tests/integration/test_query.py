"""The REST query syntax against the blog example: every filter operator,
sort, limit, offset, after cursors, expand, fields and total."""
import urllib.parse

import pytest

from conftest import Server, make_project

USERS = [
    {"id": "00000000-0000-4000-8000-000000000001", "email": "ada@ex.com",
     "name": "Ada", "role": "admin"},
    {"id": "00000000-0000-4000-8000-000000000002", "email": "grace@ex.com",
     "name": "Grace", "role": "moderator"},
    {"id": "00000000-0000-4000-8000-000000000003", "email": "linus@ex.com",
     "name": None},
]


def post(i, **kw):
    d = {"id": "10000000-0000-4000-8000-%012d" % i,
         "title": "Post %02d" % i, "slug": "post-%02d" % i,
         "content": "content %d" % i,
         "author_id": USERS[i % 3]["id"],
         "published": i % 2 == 0,
         "view_count": i * 10,
         "tags": ["even" if i % 2 == 0 else "odd", "t%d" % (i % 3)],
         "created_at": "2026-01-%02dT10:00:00.000Z" % (i + 1)}
    d.update(kw)
    return d


POSTS = [post(i) for i in range(12)]
POSTS[3]["title"] = "Hello, World & friends"
POSTS[4]["title"] = "100% + more"


@pytest.fixture(scope="module")
def qs(tmp_path_factory):
    s = Server(make_project(tmp_path_factory.mktemp("query")))
    reqs = [{"method": "POST", "url": "/api/collections/users", "body": u}
            for u in USERS]
    reqs += [{"method": "POST", "url": "/api/collections/posts", "body": p}
             for p in POSTS]
    reqs.append({"method": "POST", "url": "/api/collections/comments",
                 "body": {"post_id": POSTS[0]["id"],
                          "author_id": USERS[1]["id"],
                          "content": "Nice"}})
    st, _, body = s.json("POST", "/api/batch", {"requests": reqs})
    assert st == 200, body
    yield s
    assert s.stop() == 0


def q(s, coll, *params):
    query = "&".join(params)
    st, h, body = s.json("GET", "/api/collections/%s?%s" % (coll, query))
    assert st == 200, (query, body)
    return body


def ids(body):
    return [d["id"][-2:] for d in body["docs"]]


def titles(body):
    return sorted(d["title"] for d in body["docs"])


def expect(pred):
    return sorted(p["title"] for p in POSTS if pred(p))


def test_eq_ne(qs):
    assert titles(q(qs, "posts", "filter=published:eq:true", "limit=100")) \
        == expect(lambda p: p["published"])
    assert titles(q(qs, "posts", "filter=published:ne:true", "limit=100")) \
        == expect(lambda p: not p["published"])
    b = q(qs, "users", "filter=email:eq:grace@ex.com")
    assert [d["name"] for d in b["docs"]] == ["Grace"]


def test_ranges(qs):
    for op, f in (("gt", lambda v: v > 50), ("gte", lambda v: v >= 50),
                  ("lt", lambda v: v < 50), ("lte", lambda v: v <= 50)):
        got = titles(q(qs, "posts", "filter=view_count:%s:50" % op,
                       "limit=100"))
        assert got == expect(lambda p: f(p["view_count"])), op
    got = titles(q(qs, "posts",
                   "filter=created_at:gte:2026-01-05T00:00:00.000Z",
                   "filter=created_at:lt:2026-01-08T00:00:00.000Z"))
    assert got == ["100% + more", "Post 05", "Post 06"]


def test_filters_and_together(qs):
    got = titles(q(qs, "posts", "filter=published:eq:true",
                   "filter=view_count:gt:30", "limit=100"))
    assert got == expect(lambda p: p["published"] and p["view_count"] > 30)


def test_like_in_contains(qs):
    got = titles(q(qs, "posts", "filter=title:like:post%201%25", "limit=100"))
    assert got == expect(lambda p: p["title"].lower().startswith("post 1"))
    got = titles(q(qs, "posts", "filter=slug:in:post-01,post-05,nope"))
    assert got == ["Post 01", "Post 05"]
    got = titles(q(qs, "posts", "filter=tags:contains:even", "limit=100"))
    assert got == expect(lambda p: "even" in p["tags"])
    got = titles(q(qs, "posts", "filter=content:contains:nt%201", "limit=100"))
    assert got == expect(lambda p: "nt 1" in p["content"])


def test_url_decoding_of_values(qs):
    # Values with & , space, + and % arrive decoded exactly once.
    v = urllib.parse.quote("Hello, World & friends", safe="")
    got = q(qs, "posts", "filter=title:eq:" + v)
    assert [d["title"] for d in got["docs"]] == ["Hello, World & friends"]
    v = urllib.parse.quote("100% + more", safe="")
    got = q(qs, "posts", "filter=title:eq:" + v)
    assert [d["title"] for d in got["docs"]] == ["100% + more"]
    got = q(qs, "posts", "filter=title:eq:Post+00")
    assert [d["title"] for d in got["docs"]] == ["Post 00"]


def test_parameter_forms(qs):
    # More parameters than the HTTP layer hands over decoded (16; only
    # filter may repeat) take the query-string path: the same answer.
    pub = expect(lambda p: p["published"])
    many = ["filter=view_count:gte:0"] * 17 + ["filter=published:eq:true",
                                               "limit=100"]
    assert titles(q(qs, "posts", *many)) == pub
    assert titles(q(qs, "posts", *many[16:])) == pub
    # An empty pair is skipped; an '=' after the first is the value's.
    assert titles(q(qs, "posts", "filter=published:eq:true", "",
                    "limit=100")) == pub
    assert q(qs, "posts", "filter=title:eq:a=b")["docs"] == []
    # Errors name the parameter either way.
    for extra in ([], ["filter=view_count:gte:0"] * 17):
        st, _, body = qs.json("GET", "/api/collections/posts?" + "&".join(
            extra + ["limit=0"]))
        assert st == 400, body
        assert body["error"]["code"] == "INVALID_QUERY"
        assert "limit" in body["error"]["message"]


def test_sort(qs):
    b = q(qs, "posts", "sort=-view_count", "limit=100")
    assert [d["view_count"] for d in b["docs"]] == sorted(
        (p["view_count"] for p in POSTS), reverse=True)
    b = q(qs, "posts", "sort=published,-created_at", "limit=100")
    want = sorted(POSTS, key=lambda p: (p["published"],
                                        -int(p["created_at"][8:10])))
    assert [d["id"] for d in b["docs"]] == [p["id"] for p in want]


def test_limit_offset_total(qs):
    b = q(qs, "posts", "sort=view_count", "limit=3", "offset=2",
          "total=true")
    assert [d["view_count"] for d in b["docs"]] == [20, 30, 40]
    assert b["total"] == len(POSTS)
    b = q(qs, "posts", "filter=published:eq:true", "limit=1", "total=true")
    assert b["total"] == len([p for p in POSTS if p["published"]])
    assert "total" not in q(qs, "posts", "limit=1")


def test_after_cursor_pages_through_everything(qs):
    seen = []
    params = ["sort=-created_at", "limit=5"]
    for _ in range(10):
        b = q(qs, "posts", *params)
        seen += [d["id"] for d in b["docs"]]
        if "next" not in b:
            break
        params = ["sort=-created_at", "limit=5",
                  "after=" + urllib.parse.quote(b["next"], safe="")]
    want = [p["id"] for p in sorted(POSTS, key=lambda p: p["created_at"],
                                    reverse=True)]
    assert seen == want


def test_expand_and_nested_expand(qs):
    b = q(qs, "posts", "filter=slug:eq:post-01", "expand=author_id")
    doc = b["docs"][0]
    assert doc["expand"]["author_id"]["email"] == USERS[1]["email"]
    b = q(qs, "comments", "expand=post_id,post_id.author_id")
    c = b["docs"][0]
    assert c["expand"]["post_id"]["slug"] == "post-00"
    post = c["expand"]["post_id"]
    assert post["expand"]["author_id"]["id"] == USERS[0]["id"]


def test_fields(qs):
    b = q(qs, "posts", "fields=id,title", "limit=2")
    assert all(set(d) == {"id", "title"} for d in b["docs"])


def test_bad_queries(qs):
    for bad in ("filter=view_count:gt:abc", "filter=title", "sort=nope",
                "limit=-1", "offset=x", "after=garbage!!",
                "expand=title", "fields=nope", "filter=tags:zz:1"):
        st, _, body = qs.json("GET", "/api/collections/posts?" + bad)
        assert st == 400, (bad, body)
        assert body["error"]["code"] == "INVALID_QUERY", (bad, body)
