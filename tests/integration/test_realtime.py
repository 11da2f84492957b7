"""GET /api/realtime: the WebSocket protocol against a real alyxd, spoken
to by a raw RFC 6455 client (wsclient.py).  docs/realtime.md describes
the protocol; every message type and error is exercised here, plus
multiplexing, filters becoming true/false, sort+limit windows, resume with
`since`, auth variants and read rules, slow consumers, abrupt
disconnects, subscribe/unsubscribe cycles (ASan checks leaks at stop), and
a randomised model test with writers through REST and through another
process writing the SQLite file."""
import json
import os
import random
import shutil
import sqlite3
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from conftest import SLOW, Server, make_project
from wsclient import WS, Closed, HandshakeRefused, OP_BIN, OP_TEXT

SCHEMA = """\
version: 1
collections:
  items:
    fields:
      id:
        type: uuid
        primary: true
        default: auto
      owner:
        type: string
        index: true
      n:
        type: int
        default: 0
      f:
        type: float
        nullable: true
      flag:
        type: bool
        default: false
      title:
        type: string
      body:
        type: text
        nullable: true
    rules:
      read: "true"
      create: "true"
      update: "true"
      delete: "true"
  notes:
    fields:
      id:
        type: uuid
        primary: true
        default: auto
      owner_id:
        type: string
      public:
        type: bool
        default: false
      n:
        type: int
        default: 0
      body:
        type: string
    rules:
      read: "doc.public == true || auth.id == doc.owner_id"
      create: "true"
      update: "true"
      delete: "true"
  vault:
    fields:
      id:
        type: uuid
        primary: true
        default: auto
      body:
        type: string
    rules:
      create: "true"
"""

CONFIG = """\
server:
  host: 127.0.0.1
  max_body: 1mb
database:
  path: data/alyx.db
realtime:
  poll_interval_ms: 20
  max_subscriptions: 50
  max_message: 8kb
"""


def start(tmp, config=CONFIG, args=()):
    # rules="blog": keep the schema's own rules (conftest opens them).
    return Server(make_project(tmp, config=config, schema=SCHEMA,
                               rules="blog"), args=args)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("rt"))
    yield s
    assert s.stop() == 0


def connect(s, **kw):
    ws = WS(s.host, s.port, timeout=10 * SLOW, **kw)
    hello = ws.recv()
    assert hello["type"] == "connected", hello
    ws.hello = hello
    return ws


def create(s, coll, doc, headers=None):
    st, _, b = s.json("POST", "/api/collections/" + coll, doc, headers)
    assert st == 201, b
    return b


def patch(s, coll, id, doc):
    st, _, b = s.json("PATCH", "/api/collections/%s/%s" % (coll, id), doc)
    assert st == 200, b
    return b


def delete(s, coll, id):
    st, _, b = s.request("DELETE", "/api/collections/%s/%s" % (coll, id))
    assert st == 204, b


def query(s, coll, qs, headers=None):
    st, _, b = s.json("GET", "/api/collections/%s?%s" % (coll, qs),
                      headers=headers)
    assert st == 200, b
    return b["docs"]


def subscribe(ws, rid, coll, **payload):
    payload["collection"] = coll
    m = ws.request({"id": rid, "type": "subscribe", "payload": payload})
    assert m["type"] == "snapshot", m
    return m


def resume(ws, rid, coll, held, **payload):
    """Subscribes with since as a client holding `held` (id -> doc): the
    answer is a snapshot or a resume delta; returns (View, answer)."""
    payload["collection"] = coll
    m = ws.request({"id": rid, "type": "subscribe", "payload": payload})
    assert m["type"] == "snapshot" or (
        m["type"] == "delta" and m["payload"]["resumed"] is True), m
    return View(m, payload.get("sort"), held), m


class View:
    """A subscriber's documents, built only from its messages."""

    def __init__(self, snap, sort=None, held=None):
        p = snap["payload"]
        self.sid = p["subscription_id"]
        self.change_id = p["change_id"]
        self.sort = sort or []
        self.deltas = 0
        if snap["type"] == "snapshot":
            self.docs = {d["id"]: d for d in p["docs"]}
            return
        # A resume delta: applied to what the client held; it may delete
        # or update documents the client does not hold.
        ch = p["changes"]
        self.docs = dict(held or {})
        for i in ch["deletes"]:
            self.docs.pop(i, None)
        for d in ch["inserts"]:
            assert d["id"] not in self.docs, (d["id"], "inserted twice")
            self.docs[d["id"]] = d
        for d in ch["updates"]:
            self.docs[d["id"]] = d

    def apply(self, m):
        assert m["type"] == "delta", m
        p = m["payload"]
        assert p["subscription_id"] == self.sid
        ch = p["changes"]
        for i in ch["deletes"]:
            assert i in self.docs, (i, "deleted but not held")
            del self.docs[i]
        for d in ch["updates"]:
            assert d["id"] in self.docs, (d["id"], "updated but not held")
            self.docs[d["id"]] = d
        for d in ch["inserts"]:
            assert d["id"] not in self.docs, (d["id"], "inserted twice")
            self.docs[d["id"]] = d
        assert p["change_id"] >= self.change_id
        self.change_id = p["change_id"]
        self.deltas += 1

    def ordered(self):
        out = list(self.docs.values())
        out.sort(key=lambda d: d["id"])
        for key in reversed(self.sort):
            desc = key.startswith("-")
            k = key.lstrip("+-")
            # None first ascending (SQLite: NULLs are the smallest).
            out.sort(key=lambda d: (d[k] is not None, d[k]
                                    if d[k] is not None else 0),
                     reverse=desc)
        return out


def pump(ws, views, until, timeout=5):
    """Applies deltas to views (by subscription id) until until() holds."""
    deadline = time.time() + timeout * SLOW
    while not until():
        left = deadline - time.time()
        assert left > 0, "state not reached: %r" % [
            sorted(v.docs) for v in views.values()]
        try:
            m = ws.recv(left)
        except TimeoutError:
            continue
        views[m["payload"]["subscription_id"]].apply(m)


def ids(docs):
    return [d["id"] for d in docs]


# ---- handshake ----------------------------------------------------------

def test_connected_and_plain_get(srv):
    ws = connect(srv)
    p = ws.hello["payload"]
    assert p["client_id"].startswith("client_")
    assert p["user_id"] is None and p["role"] is None
    ws.close()
    assert ws.closed[0] == 1000
    # Without the upgrade: 426 with the error envelope.
    st, h, b = srv.json("GET", "/api/realtime")
    assert st == 426 and b["error"]["code"] == "UPGRADE_REQUIRED"
    assert h["upgrade"].lower() == "websocket"


def test_handshake_refusals(srv):
    with pytest.raises(HandshakeRefused) as e:
        WS(srv.host, srv.port, path="/api/other")
    assert e.value.status == 404
    assert e.value.json()["error"]["code"] == "NOT_FOUND"
    for hdrs, path in (({"Authorization": "Bearer not.a.token"},
                        "/api/realtime"),
                       ({}, "/api/realtime?token=garbage"),
                       ({"Authorization": "Bearer " + "x" * 5000},
                        "/api/realtime")):
        with pytest.raises(HandshakeRefused) as e:
            WS(srv.host, srv.port, path=path, headers=hdrs)
        assert e.value.status == 401, e.value.body
        assert e.value.json()["error"]["code"] == "UNAUTHORIZED"
        assert e.value.headers["www-authenticate"] == "Bearer"
    # The server keeps serving.
    connect(srv).close()


# ---- messages and errors ------------------------------------------------

def test_ping_pong(srv):
    ws = connect(srv)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}
    assert ws.request({"id": 7, "type": "ping"}) == {"id": 7,
                                                      "type": "pong"}
    assert ws.request({"id": "p", "type": "ping"})["type"] == "pong"
    ws.close()


def test_bad_messages(srv):
    ws = connect(srv)

    def err(raw=None, obj=None):
        if raw is not None:
            ws.send_frame(OP_TEXT, raw)
        else:
            ws.send(obj)
        m = ws.recv()
        assert m["type"] == "error", m
        return m

    assert err(raw="not json")["payload"]["code"] == "BAD_REQUEST"
    assert err(raw="[1,2]")["payload"]["code"] == "BAD_REQUEST"
    m = err(obj={"id": "a"})
    assert m["id"] == "a" and m["payload"]["code"] == "BAD_REQUEST"
    m = err(obj={"id": "b", "type": "dance"})
    assert m["id"] == "b" and "unknown message type" in \
        m["payload"]["message"]
    assert "id" not in err(obj={"id": {"x": 1}, "type": "ping"})
    assert err(obj={"id": "x" * 200, "type": "ping"})["payload"][
        "code"] == "BAD_REQUEST"
    m = err(obj={"id": "c", "type": "subscribe", "payload": {}})
    assert m["id"] == "c" and m["payload"]["code"] == "BAD_REQUEST"
    m = err(obj={"id": "d", "type": "subscribe",
                 "payload": {"collection": "nope"}})
    assert m["payload"]["code"] == "NOT_FOUND"
    assert m["payload"]["details"] == {"collection": "nope"}
    m = err(obj={"id": "e", "type": "subscribe", "payload": {
        "collection": "items", "filter": {"nope": {"$eq": 1}}}})
    assert m["id"] == "e" and m["payload"]["code"] == "INVALID_QUERY"
    m = err(obj={"id": "f", "type": "subscribe", "payload": {
        "collection": "items", "filter": {"n": {"$zz": 1}}}})
    assert m["payload"]["code"] == "INVALID_QUERY"
    m = err(obj={"id": "g", "type": "subscribe", "payload": {
        "collection": "items", "offset": 5}})
    assert m["payload"]["code"] == "INVALID_QUERY"
    assert m["payload"]["details"] == {"param": "offset"}
    m = err(obj={"id": "h", "type": "subscribe", "payload": {
        "collection": "items", "limit": 5000}})
    assert m["payload"]["code"] == "INVALID_QUERY"
    m = err(obj={"id": "i", "type": "subscribe", "payload": {
        "collection": "items", "since": -3}})
    assert m["payload"]["code"] == "INVALID_QUERY"
    m = err(obj={"id": "j", "type": "unsubscribe",
                 "payload": {"subscription_id": "sub_999999"}})
    assert m["id"] == "j" and m["payload"]["code"] == "NOT_FOUND"
    m = err(obj={"id": "k", "type": "unsubscribe", "payload": {}})
    assert m["payload"]["code"] == "BAD_REQUEST"
    m = err(obj={"id": "l", "type": "auth", "payload": {}})
    assert m["payload"]["code"] == "BAD_REQUEST"
    m = err(obj={"id": "m", "type": "auth", "payload": {"token": "x.y.z"}})
    assert m["payload"]["code"] == "UNAUTHORIZED"
    # After all that the connection still works.
    assert ws.request({"id": "z", "type": "ping"})["type"] == "pong"
    ws.close()


def test_fragmented_message(srv):
    ws = connect(srv)
    text = json.dumps({"id": "frag", "type": "ping"})
    ws.send_frame(OP_TEXT, text[:5], fin=False)
    ws.send_frame(0, text[5:12], fin=False)
    ws.send_frame(0, text[12:], fin=True)
    assert ws.recv() == {"id": "frag", "type": "pong"}
    ws.close()


def test_binary_frame_closes(srv):
    ws = connect(srv)
    ws.send_frame(OP_BIN, b"\x00\x01")
    with pytest.raises(Closed) as e:
        ws.recv()
    assert e.value.code == 1003


def test_message_too_large(srv):
    ws = connect(srv)
    ws.send({"type": "ping", "pad": "x" * 9000})
    m = ws.recv()
    assert m["type"] == "error" and m["payload"]["code"] == "TOO_LARGE", m
    with pytest.raises(Closed) as e:
        ws.recv()
    assert e.value.code == 1009


def test_subscription_cap(srv):
    ws = connect(srv)
    for i in range(50):
        subscribe(ws, i, "items", filter={"owner": {"$eq": "cap%d" % i}})
    m = ws.request({"id": "over", "type": "subscribe",
                    "payload": {"collection": "items"}})
    assert m["type"] == "error" and m["payload"]["code"] == "TOO_LARGE"
    assert m["payload"]["details"] == {"max_subscriptions": 50}
    ws.close()


# ---- live queries -------------------------------------------------------

def test_multiplexed_filters_true_false(srv):
    ws = connect(srv)
    a = View(subscribe(ws, "a", "items", filter={"owner": {"$eq": "mx"},
                                               "flag": {"$eq": True}}))
    b = View(subscribe(ws, "b", "items", filter={"n": {"$gte": 10}}))
    assert a.sid != b.sid and not a.docs and not b.docs
    views = {a.sid: a, b.sid: b}
    d1 = create(srv, "items", {"owner": "mx", "title": "one", "n": 1})
    d2 = create(srv, "items", {"owner": "mx", "title": "two", "n": 20,
                               "flag": True})
    pump(ws, views, lambda: d2["id"] in a.docs and d2["id"] in b.docs)
    assert d1["id"] not in a.docs and d1["id"] not in b.docs
    # d1 starts matching a (insert), d2 stops matching b (delete).
    patch(srv, "items", d1["id"], {"flag": True})
    patch(srv, "items", d2["id"], {"n": 3})
    pump(ws, views, lambda: d1["id"] in a.docs and d2["id"] not in b.docs
         and a.docs[d2["id"]]["n"] == 3)    # an update in a
    # d1 stops matching a.
    patch(srv, "items", d1["id"], {"owner": "other"})
    pump(ws, views, lambda: d1["id"] not in a.docs)
    delete(srv, "items", d2["id"])
    pump(ws, views, lambda: not a.docs)
    assert ids(query(srv, "items", "filter=owner:eq:mx&filter=flag:eq:true")
               ) == []
    ws.close()


def test_sort_limit_window(srv):
    ws = connect(srv)
    sort = ["-n", "title"]
    v = View(subscribe(ws, "w", "items", filter={"owner": {"$eq": "win"}},
                       sort=sort, limit=3), sort)
    views = {v.sid: v}
    qs = "filter=owner:eq:win&sort=-n,title&limit=3"

    def check():
        want = query(srv, "items", qs)
        pump(ws, views, lambda: v.ordered() == want)

    docs = [create(srv, "items", {"owner": "win", "title": "t%d" % i,
                                  "n": i * 10}) for i in range(6)]
    check()                                     # 50, 40, 30
    patch(srv, "items", docs[0]["id"], {"n": 45})   # enters, pushes 30 out
    check()
    patch(srv, "items", docs[5]["id"], {"n": 1})    # leaves: next comes in
    check()
    delete(srv, "items", docs[4]["id"])             # deleted from the top
    check()
    patch(srv, "items", docs[0]["id"], {"title": "zz"})   # update inside
    check()
    for d in docs:
        if d is not docs[4]:
            delete(srv, "items", d["id"])
    check()
    assert v.docs == {}
    ws.close()


def test_since_resume(srv):
    """A resume gets exactly what was missed, as one delta: current states
    of the documents changed since, deletes for those that stopped
    matching or passing the read rule, nothing for what came and went."""
    flt = {"owner_id": {"$eq": "rs"}, "n": {"$gte": 5}}
    qs = "filter=owner_id:eq:rs&filter=n:gte:5"
    ws = connect(srv)                   # anonymous: public notes only
    a, b, c, d = (create(srv, "notes", {"owner_id": "rs", "n": n,
                                        "public": True, "body": "x"})
                  for n in (5, 6, 7, 8))
    v = View(subscribe(ws, "r", "notes", filter=flt))
    assert sorted(v.docs) == sorted(x["id"] for x in (a, b, c, d))
    last = v.change_id
    ws.close()
    # Missed while away.
    patch(srv, "notes", a["id"], {"n": 10})
    patch(srv, "notes", a["id"], {"n": 11})         # one update, last state
    patch(srv, "notes", b["id"], {"n": 1})          # stops matching
    patch(srv, "notes", c["id"], {"public": False})  # hidden by the rule
    delete(srv, "notes", d["id"])
    e = create(srv, "notes", {"owner_id": "rs", "n": 9, "public": True,
                              "body": "new"})
    f = create(srv, "notes", {"owner_id": "rs", "n": 9, "public": True,
                              "body": "gone"})
    delete(srv, "notes", f["id"])                   # never seen: nothing
    create(srv, "notes", {"owner_id": "rs", "n": 0, "public": True,
                          "body": "no match"})
    ws = connect(srv)
    v2, m = resume(ws, "r2", "notes", v.docs, filter=flt, since=last)
    assert m["type"] == "delta" and m["id"] == "r2", m
    ch = m["payload"]["changes"]
    assert ids(ch["inserts"]) == [e["id"]]
    assert ids(ch["updates"]) == [a["id"]] and ch["updates"][0]["n"] == 11
    assert sorted(ch["deletes"]) == sorted([b["id"], c["id"], d["id"]])
    assert "resync" not in m["payload"]
    want = query(srv, "notes", qs)
    assert sorted(v2.docs) == sorted(ids(want))
    assert all(v2.docs[x["id"]] == x for x in want)
    # Live from there, nothing missed and nothing twice.
    patch(srv, "notes", e["id"], {"n": 20})
    pump(ws, {v2.sid: v2}, lambda: v2.docs[e["id"]]["n"] == 20)
    assert v2.deltas == 1
    # A limit window is not replayed (docs/realtime.md): a snapshot.
    snap = subscribe(ws, "r3", "notes", filter=flt, limit=2,
                     since=v2.change_id)
    assert snap["payload"]["resync"] is False
    # A change id the feed never had: a resync.
    snap = subscribe(ws, "r4", "notes", filter=flt, since=10 ** 12)
    assert snap["payload"]["resync"] is True
    ws.close()


def test_resume_beyond_pruned_feed(tmp_path):
    s = start(tmp_path, config=CONFIG + "  change_retention: 1s\n")
    try:
        ws = connect(s)
        v = View(subscribe(ws, "r", "items", filter={"owner": {"$eq": "p"}}))
        x = create(s, "items", {"owner": "p", "title": "a"})
        pump(ws, {v.sid: v}, lambda: x["id"] in v.docs)
        last = v.change_id
        ws.close()
        time.sleep(1.5)
        # The broker prunes what it has seen once older than 1 s.
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            create(s, "items", {"owner": "q", "title": "later"})
            time.sleep(0.3)
            with sqlite3.connect(db_path(s)) as db:
                (lo,) = db.execute(
                    "SELECT min(id) FROM _alyx_changes").fetchone()
            if lo and lo > last + 1:
                break
        assert lo and lo > last + 1, (lo, last)
        ws = connect(s)
        v2, m = resume(ws, "r2", "items", v.docs,
                       filter={"owner": {"$eq": "p"}}, since=last)
        assert m["type"] == "snapshot" and m["payload"]["resync"] is True
        assert sorted(v2.docs) == [x["id"]]
        ws.close()
    finally:
        assert s.stop() == 0


def test_total_and_expand(srv):
    ws = connect(srv)
    for i in range(3):
        create(srv, "items", {"owner": "tot", "title": "x%d" % i})
    snap = subscribe(ws, "t", "items", filter={"owner": {"$eq": "tot"}},
                     limit=2, total=True)
    assert snap["payload"]["total"] == 3 and len(snap["payload"]["docs"]) == 2
    snap = subscribe(ws, "t2", "items", filter={"owner": {"$eq": "tot"}})
    assert "total" not in snap["payload"]
    ws.close()


def test_unsubscribe_stops_deltas(srv):
    ws = connect(srv)
    v = View(subscribe(ws, "u", "items", filter={"owner": {"$eq": "uns"}}))
    other = View(subscribe(ws, "o", "items",
                           filter={"owner": {"$eq": "uns2"}}))
    m = ws.request({"id": "bye", "type": "unsubscribe",
                    "payload": {"subscription_id": v.sid}})
    assert m == {"id": "bye", "type": "unsubscribed",
                 "payload": {"subscription_id": v.sid}}
    create(srv, "items", {"owner": "uns", "title": "gone"})
    d = create(srv, "items", {"owner": "uns2", "title": "here"})
    m = ws.recv()
    assert m["payload"]["subscription_id"] == other.sid
    assert ids(m["payload"]["changes"]["inserts"]) == [d["id"]]
    # Unsubscribing twice: not found.
    m = ws.request({"id": "again", "type": "unsubscribe",
                    "payload": {"subscription_id": v.sid}})
    assert m["payload"]["code"] == "NOT_FOUND"
    ws.close()


def test_shared_query_many_clients(srv):
    clients = [connect(srv) for _ in range(20)]
    views = []
    for c in clients:
        views.append(View(subscribe(c, "s", "items",
                                    filter={"owner": {"$eq": "shared"}},
                                    sort=["-n"], limit=5), ["-n"]))
    docs = [create(srv, "items", {"owner": "shared", "title": "s%d" % i,
                                  "n": i}) for i in range(8)]
    want = ids(query(srv, "items", "filter=owner:eq:shared&sort=-n&limit=5"))
    assert want == [d["id"] for d in reversed(docs)][:5]
    for c, v in zip(clients, views):
        pump(c, {v.sid: v}, lambda: ids(v.ordered()) == want)
        c.close()


# ---- robustness ---------------------------------------------------------

def test_abrupt_disconnects(srv):
    for i in range(30):
        ws = connect(srv)
        subscribe(ws, "x", "items", filter={"owner": {"$eq": "abrupt"}})
        if i % 3 == 0:
            ws.abort()                       # RST
        elif i % 3 == 1:
            ws.sock.close()                  # FIN, no close frame
        else:
            # Half a frame, then gone.
            ws.sock.sendall(b"\x81\xfe\x10")
            ws.sock.close()
    # Writes after they left reach nobody and harm nothing.
    for i in range(5):
        create(srv, "items", {"owner": "abrupt", "title": "a%d" % i})
    ws = connect(srv)
    v = View(subscribe(ws, "y", "items", filter={"owner": {"$eq": "abrupt"}}))
    assert len(v.docs) == 5
    st, _, b = srv.json("GET", "/health/stats", headers=srv.admin_headers())
    assert st == 200
    rt = b["realtime"]
    assert rt["connections"] >= 1 and rt["subscriptions"] >= 1
    assert rt["accepted"] >= 31 and rt["messages"] >= 31
    st, _, text = srv.request("GET", "/metrics")
    assert st == 200 and b"alyx_realtime_connections " in text
    assert b"alyx_realtime_slow_consumers_total " in text
    ws.close()
    # The connections that went away took their subscriptions along.
    deadline = time.time() + 5 * SLOW
    while True:
        st, _, b = srv.json("GET", "/health/stats",
                            headers=srv.admin_headers())
        if b["realtime"]["subscriptions"] == 0 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert b["realtime"]["subscriptions"] == 0, b["realtime"]


def test_subscribe_unsubscribe_cycles(srv):
    """Thousands of cycles with varied queries; alyxd's ASan/LSan run at
    stop (the module fixture) reports any leak."""
    ws = connect(srv)
    queries = [
        {"filter": {"owner": {"$eq": "cyc"}}},
        {"filter": {"n": {"$gte": 3}}, "sort": ["-n"], "limit": 2},
        {"filter": {"$or": [{"flag": True}, {"n": {"$lt": 0}}]}},
        {"sort": ["title"], "limit": 1, "total": True},
        {"filter": {"owner": {"$in": ["cyc", "x"]}}, "since": 1},
    ]
    create(srv, "items", {"owner": "cyc", "title": "c", "n": 5})
    n = int(os.environ.get("ALYX_RT_CYCLES", "2000"))
    batch = 50
    for start in range(0, n, batch):
        subs = []
        for i in range(start, start + batch):
            q = dict(queries[i % len(queries)])
            q["collection"] = "items"
            ws.send({"id": i, "type": "subscribe", "payload": q})
        for _ in range(batch):
            m = ws.recv()
            assert m["type"] == "snapshot" or \
                m["payload"].get("resumed") is True, m
            subs.append(m["payload"]["subscription_id"])
        for i, sid in enumerate(subs):
            ws.send({"id": "u%d" % i, "type": "unsubscribe",
                     "payload": {"subscription_id": sid}})
        for _ in subs:
            m = ws.recv()
            assert m["type"] in ("unsubscribed", "delta"), m
            while m["type"] == "delta":
                m = ws.recv()
            assert m["type"] == "unsubscribed", m
    # Half-open: subscriptions left for the close to end.
    for i in range(20):
        subscribe(ws, "left%d" % i, "items",
                  filter={"owner": {"$eq": "cyc%d" % i}})
    ws.abort()


def test_many_connections_with_subscriptions_closed_at_stop(tmp_path):
    """Connections and subscriptions still open when the server stops are
    ended (no leak, clean exit)."""
    s = start(tmp_path)
    clients = []
    try:
        for i in range(10):
            ws = connect(s)
            subscribe(ws, "a", "items", filter={"owner": {"$eq": "stop"}})
            subscribe(ws, "b", "notes")
            clients.append(ws)
        create(s, "items", {"owner": "stop", "title": "x"})
    finally:
        assert s.stop() == 0
    for ws in clients:
        with pytest.raises((Closed, OSError, TimeoutError)):
            while True:
                ws.recv(5)


@pytest.mark.parametrize("loop", ["poll", "ev"])
def test_event_loops(tmp_path, loop):
    s = start(tmp_path, args=["--loop", loop, "--threads", "2"])
    try:
        clients = [connect(s) for _ in range(6)]   # over both contexts
        views = [View(subscribe(c, "l", "items",
                                filter={"owner": {"$eq": "loop"}}))
                 for c in clients]
        d = create(s, "items", {"owner": "loop", "title": loop})
        for c, v in zip(clients, views):
            pump(c, {v.sid: v}, lambda: d["id"] in v.docs)
            assert c.request({"id": 1, "type": "ping"})["type"] == "pong"
            c.close()
    finally:
        assert s.stop() == 0


def wait_port(s):
    """The port from the "listening" line of a server started with
    wait=False, without any request to it; returns the start deadline."""
    deadline = time.time() + 20 * SLOW
    while s.port is None and time.time() < deadline:
        for rec in s.log_records():
            if rec.get("msg") == "listening":
                s.port = int(rec["port"])
        time.sleep(0.005)
    return deadline


@pytest.mark.parametrize("loop", ["poll", "ev"])
def test_websockets_at_once_after_start(tmp_path, loop):
    # Each service thread's context must be ready for a WebSocket upgrade
    # before it can accept a connection: handshakes sent the moment the
    # port is announced, before any HTTP request, and spread over four
    # contexts, all get "connected", and none is logged as dropped.  A
    # smoke test of start-up: the race it guards against (a libev context
    # that had not finished starting dropped a handshake) showed in about
    # 1 run in 100 of test_event_loops[ev], and this test did not catch
    # it in 20 runs of that binary.
    s = Server(make_project(tmp_path, config=CONFIG, schema=SCHEMA,
                            rules="blog"),
               args=["--loop", loop, "--threads", "4"], wait=False)
    try:
        wait_port(s)
        assert s.port, s.lines()
        results = [None] * 8

        def one(i):
            try:
                ws = connect(s)
                results[i] = ws.request({"id": i, "type": "ping"})["type"]
                ws.close()
            except Exception as e:  # reported below, with the log
                results[i] = repr(e)

        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(len(results))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert results == ["pong"] * len(results), s.lines()[-20:]
        assert not [r for r in s.log_records()
                    if r.get("msg") == "websocket handshake dropped"]
    finally:
        assert s.stop() == 0


@pytest.mark.skipif(not shutil.which("openssl"), reason="no openssl CLI")
def test_tls_websocket(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    supp = str(Path(__file__).with_name("lsan-openssl.supp"))
    lsan = os.environ.get("LSAN_OPTIONS", "")
    proj = make_project(tmp_path, schema=SCHEMA, rules="blog",
                        config=CONFIG.replace(
        "  max_body: 1mb\n", "  max_body: 1mb\n  tls:\n    cert: %s\n"
        "    key: %s\n" % (cert, key)))
    s = Server(proj, wait=False, env={"LSAN_OPTIONS": (
        lsan + ":" if lsan else "") + "suppressions=" + supp})
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    try:
        deadline = wait_port(s)
        ws = None
        while ws is None and time.time() < deadline:
            try:
                ws = WS(s.host, s.port, tls=ctx, timeout=10 * SLOW)
            except OSError:
                time.sleep(0.1)
        assert ws.recv()["type"] == "connected"
        snap = subscribe(ws, "t", "items")
        assert snap["payload"]["docs"] == []
        assert ws.request({"id": 1, "type": "ping"})["type"] == "pong"
        ws.close()
        assert ws.closed[0] == 1000
    finally:
        assert s.stop() == 0


# ---- authentication -----------------------------------------------------

AUTH_CONFIG = CONFIG + """\
auth:
  jwt:
    secret: realtime-test-secret-0123456789abcdef
    access_ttl: %s
  rate_limit:
    login: 1000/minute
    register: 1000/minute
"""


def register(s, email, password="correct horse battery"):
    st, _, b = s.json("POST", "/api/auth/register",
                      {"email": email, "password": password})
    assert st == 201, b
    return b["access_token"], b["user"]["id"]


def db_path(s):
    return str(s.proj / "data" / "alyx.db")


def other_process(s, sql, args=()):
    """Runs SQL on the project's database from this (another) process."""
    db = sqlite3.connect(db_path(s), timeout=30)
    try:
        db.execute("PRAGMA busy_timeout=30000")
        db.execute(sql, args)
        db.commit()
    finally:
        db.close()


@pytest.fixture(scope="module")
def asrv(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("rtauth"), config=AUTH_CONFIG % "15m")
    yield s
    assert s.stop() == 0


def test_auth_header_param_and_message(asrv):
    tok, uid = register(asrv, "hdr@example.com")
    ws = connect(asrv, headers={"Authorization": "Bearer " + tok})
    assert ws.hello["payload"]["user_id"] == uid
    assert ws.hello["payload"]["role"] == "user"
    ws.close()
    ws = WS(asrv.host, asrv.port, path="/api/realtime?token=" +
            urllib.parse.quote(tok))
    assert ws.recv()["payload"]["user_id"] == uid
    ws.close()
    # Anonymous, then an auth message.
    ws = connect(asrv)
    assert ws.hello["payload"]["user_id"] is None
    m = ws.request({"id": "a", "type": "auth", "payload": {"token": tok}})
    assert m == {"id": "a", "type": "authenticated",
                 "payload": {"user_id": uid, "role": "user"}}
    # The same user again (a refreshed token) is fine with subscriptions.
    subscribe(ws, "s", "items", filter={"owner": {"$eq": "auth"}})
    m = ws.request({"id": "b", "type": "auth", "payload": {"token": tok}})
    assert m["type"] == "authenticated"
    # Another user's token with subscriptions open: refused, unchanged.
    tok2, uid2 = register(asrv, "other@example.com")
    m = ws.request({"id": "c", "type": "auth", "payload": {"token": tok2}})
    assert m["type"] == "error" and m["payload"]["code"] == "CONFLICT"
    # A bad token: refused, the connection keeps its identity.
    m = ws.request({"id": "d", "type": "auth",
                    "payload": {"token": tok[:-3] + "xyz"}})
    assert m["payload"]["code"] == "UNAUTHORIZED"
    ws.close()


def test_token_expiry_ends_subscriptions(tmp_path):
    s = start(tmp_path, config=AUTH_CONFIG % "2s")
    try:
        tok, uid = register(s, "exp@example.com")
        ws = connect(s, headers={"Authorization": "Bearer " + tok})
        v = View(subscribe(ws, "e", "items",
                           filter={"owner": {"$eq": "exp"}}))
        m = ws.recv(timeout=10)
        assert m["type"] == "error", m
        p = m["payload"]
        assert p["code"] == "UNAUTHORIZED" and p["subscription_id"] == v.sid
        assert "expired" in p["message"]
        # Nothing of it follows; new subscriptions are refused...
        create(s, "items", {"owner": "exp", "title": "late"})
        m = ws.request({"id": "n", "type": "subscribe",
                        "payload": {"collection": "items"}})
        assert m["type"] == "error" and m["payload"]["code"] == "UNAUTHORIZED"
        # ... until a fresh token comes.
        st, _, b = s.json("POST", "/api/auth/login", {
            "email": "exp@example.com", "password": "correct horse battery"})
        assert st == 200
        m = ws.request({"id": "a", "type": "auth",
                        "payload": {"token": b["access_token"]}})
        assert m["type"] == "authenticated"
        snap = subscribe(ws, "n2", "items", filter={"owner": {"$eq": "exp"}})
        assert len(snap["payload"]["docs"]) == 1
        ws.close()
    finally:
        assert s.stop() == 0


def test_revoked_account_ends_subscriptions(tmp_path):
    s = start(tmp_path, config=AUTH_CONFIG.replace(
        "  max_message: 8kb\n", "  max_message: 8kb\n  token_check: 200ms\n")
        % "15m")
    try:
        tok, uid = register(s, "gone@example.com")
        ws = connect(s, headers={"Authorization": "Bearer " + tok})
        v = View(subscribe(ws, "g", "items"))
        other_process(s, "DELETE FROM _alyx_users WHERE id = ?", (uid,))
        m = ws.recv(timeout=10)
        assert m["type"] == "error", m
        assert m["payload"]["code"] == "UNAUTHORIZED"
        assert m["payload"]["subscription_id"] == v.sid
        ws.close()
        # A new connection with that token is refused outright.
        with pytest.raises(HandshakeRefused) as e:
            WS(s.host, s.port, headers={"Authorization": "Bearer " + tok})
        assert e.value.status == 401
    finally:
        assert s.stop() == 0


def test_role_change_ends_subscriptions_made_under_the_old_one(tmp_path):
    """An account's role changes under a token that stays valid: at the
    connection's next token check its subscriptions end with AUTH_CHANGED
    (subscription_id, details with who it is now), and what it subscribes
    to next sees the new role, both ways. Without subscriptions the
    connection just takes the new role."""
    s = start(tmp_path, config=AUTH_CONFIG.replace(
        "  max_message: 8kb\n", "  max_message: 8kb\n  token_check: 200ms\n")
        % "15m")
    try:
        for i in range(3):
            create(s, "vault", {"body": "secret %d" % i})
        tok, uid = register(s, "promoted@example.com")
        ws = connect(s, headers={"Authorization": "Bearer " + tok})
        # vault has no read rule: only admins read it.
        v = View(subscribe(ws, "u", "vault"))
        assert v.docs == {}
        other_process(s, "UPDATE _alyx_users SET role = 'admin' WHERE id = ?",
                      (uid,))
        m = ws.recv(timeout=10 * SLOW)
        assert m["type"] == "error", m
        p = m["payload"]
        assert p["code"] == "AUTH_CHANGED" and p["subscription_id"] == v.sid
        assert p["details"] == {"user_id": uid, "role": "admin",
                                "verified": False}, p
        v = View(subscribe(ws, "a", "vault"))
        assert sorted(d["body"] for d in v.docs.values()) == [
            "secret 0", "secret 1", "secret 2"]
        # Deltas flow under the new role.
        create(s, "vault", {"body": "secret 3"})
        pump(ws, {v.sid: v}, lambda: len(v.docs) == 4, timeout=10)
        # Demoted again: the admin's view ends; a new one is empty.
        other_process(s, "UPDATE _alyx_users SET role = 'user' WHERE id = ?",
                      (uid,))
        m = ws.recv(timeout=10 * SLOW)
        while m["type"] == "delta":     # one already on its way
            m = ws.recv(timeout=10 * SLOW)
        assert m["type"] == "error" and \
            m["payload"]["code"] == "AUTH_CHANGED", m
        assert m["payload"]["details"]["role"] == "user"
        assert View(subscribe(ws, "u2", "vault")).docs == {}
        ws.close()
        # No subscription open: no message, the next subscribe sees it.
        ws = connect(s, headers={"Authorization": "Bearer " + tok})
        other_process(s, "UPDATE _alyx_users SET role = 'admin' WHERE id = ?",
                      (uid,))
        deadline = time.time() + 10 * SLOW
        while True:
            v = View(subscribe(ws, "p", "vault"))
            if len(v.docs) == 4:
                break
            assert v.docs == {} and time.time() < deadline
            ws.request({"id": "x", "type": "unsubscribe",
                        "payload": {"subscription_id": v.sid}})
            time.sleep(0.1)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        ws.close()
    finally:
        assert s.stop() == 0


# ---- limits and keepalive -----------------------------------------------

def test_slow_consumer(tmp_path):
    s = start(tmp_path, config=CONFIG.replace(
        "  max_message: 8kb\n", "  max_message: 8kb\n  send_queue: 1mb\n"))
    try:
        slow = WS(s.host, s.port, rcvbuf=4096, timeout=20 * SLOW)
        fast = connect(s)
        slow.send({"id": "s", "type": "subscribe", "payload": {
            "collection": "items", "filter": {"owner": {"$eq": "slow"}},
            "limit": 1000}})
        fv = View(subscribe(fast, "f", "items",
                            filter={"owner": {"$eq": "slow"}}, limit=1000))
        time.sleep(0.3)
        # More than the kernel's socket buffers can hide (tcp_wmem max is
        # typically 4 MiB), while the fast client keeps reading.
        body = "x" * 24000
        errs = []

        def read_fast():
            try:
                pump(fast, {fv.sid: fv}, lambda: len(fv.docs) == 300,
                     timeout=60)
            except Exception as e:      # reported below
                errs.append(e)
        th = threading.Thread(target=read_fast)
        th.start()
        for i in range(300):
            create(s, "items", {"owner": "slow", "title": str(i),
                                "body": body})
        th.join()
        assert not errs, errs
        # The slow one reads what was already on the wire, then the
        # error and the close.
        seen = []
        with pytest.raises(Closed) as e:
            while True:
                seen.append(slow.recv(timeout=20 * SLOW))
        assert e.value.code == 1008, (e.value, seen[-1:])
        bad = [m for m in seen if m["type"] == "error"]
        assert len(bad) == 1 and bad[0]["payload"]["code"] == \
            "SLOW_CONSUMER", bad
        assert seen[-1] is bad[0]
        deltas = [m for m in seen if m["type"] == "delta"]
        assert len(deltas) < 300
        # The server is fine and a reconnect with since gets the state.
        ws = connect(s)
        v, _ = resume(ws, "r", "items", {}, filter={"owner": {"$eq": "slow"}},
                      limit=1000, since=0)
        assert len(v.docs) == 300
        ws.close()
        fast.close()
    finally:
        assert s.stop() == 0


def test_idle_timeout_and_keepalive(tmp_path):
    s = start(tmp_path, config=CONFIG.replace(
        "  max_message: 8kb\n", "  max_message: 8kb\n  idle_timeout: 600ms\n"
        "  ping_interval: 300ms\n"))
    try:
        idle = connect(s)
        busy = connect(s)
        subscribe(busy, "b", "items")
        mute = connect(s, auto_pong=False)
        subscribe(mute, "m", "items")
        # The idle one (no subscription, says nothing) is closed; the busy
        # one answers pings meanwhile and stays.
        closed = None
        end = time.time() + 10 * SLOW
        while time.time() < end and (closed is None or
                                     time.time() < closed + 2):
            if closed is None:
                try:
                    idle.recv(timeout=0.05)
                except TimeoutError:
                    pass
                except Closed as e:
                    closed = time.time()
                    assert e.code == 1001 and "idle" in e.reason
            try:
                busy.recv(timeout=0.05)
            except TimeoutError:
                pass
        assert closed is not None
        assert busy.pings >= 2
        assert busy.request({"id": 1, "type": "ping"})["type"] == "pong"
        busy.close()
        # The mute one (never answers pings) is dropped.
        with pytest.raises(Closed):
            end = time.time() + 10
            while time.time() < end:
                try:
                    mute.recv(timeout=0.5)
                except TimeoutError:
                    pass
        assert mute.pings >= 1
    finally:
        assert s.stop() == 0


def test_connection_cap(tmp_path):
    s = start(tmp_path, config=CONFIG.replace(
        "  max_message: 8kb\n", "  max_message: 8kb\n  max_connections: 3\n"))
    try:
        held = [connect(s) for _ in range(3)]
        with pytest.raises(HandshakeRefused) as e:
            WS(s.host, s.port)
        assert e.value.status == 503
        held.pop().close()
        deadline = time.time() + 5
        while True:
            try:
                held.append(connect(s))
                break
            except HandshakeRefused:
                assert time.time() < deadline
                time.sleep(0.05)
        for ws in held:
            ws.close()
    finally:
        assert s.stop() == 0


# ---- read rules ---------------------------------------------------------

def bearer(tok):
    return {"Authorization": "Bearer " + tok} if tok else {}


def test_read_rule_filters_per_subscriber(asrv):
    s = asrv
    ta, ua = register(s, "ra@example.com")
    tb, ub = register(s, "rb@example.com")
    users = {"anon": None, "a": ta, "b": tb}
    sort = ["-n"]
    clients, views = {}, {}
    for who, tok in users.items():
        ws = connect(s, headers=bearer(tok))
        clients[who] = ws
        views[who] = View(subscribe(ws, who, "notes", sort=sort, limit=3),
                          sort)
    qs = "sort=-n&limit=3"

    def check():
        for who, tok in users.items():
            want = query(s, "notes", qs, headers=bearer(tok))
            v = views[who]
            pump(clients[who], {v.sid: v}, lambda: v.ordered() == want)

    pa = create(s, "notes", {"owner_id": ua, "body": "a private", "n": 5})
    pub = create(s, "notes", {"owner_id": ua, "body": "a public", "n": 4,
                              "public": True})
    pb = create(s, "notes", {"owner_id": ub, "body": "b private", "n": 3})
    check()
    assert pa["id"] in views["a"].docs and pa["id"] not in views["b"].docs
    assert set(views["anon"].docs) == {pub["id"]}
    # Stops passing the rule: a delete for those who lose it, an update for
    # the owner.
    patch(s, "notes", pub["id"], {"public": False})
    check()
    assert pub["id"] not in views["anon"].docs
    assert views["a"].docs[pub["id"]]["public"] is False
    # Starts passing it: an insert.
    patch(s, "notes", pb["id"], {"public": True, "n": 9})
    check()
    assert pb["id"] in views["anon"].docs and pb["id"] in views["a"].docs
    # The window of each reader is the top 3 of what they may read.
    for i in range(4):
        create(s, "notes", {"owner_id": ua, "body": "more", "n": 6 + i})
    check()
    assert len(views["a"].docs) == 3 and len(views["anon"].docs) == 1
    delete(s, "notes", pb["id"])
    check()
    for ws in clients.values():
        ws.close()


def test_no_read_rule_admin_only(asrv):
    s = asrv
    tok, uid = register(s, "plain@example.com")
    atok, aid = register(s, "boss@example.com")
    other_process(s, "UPDATE _alyx_users SET role = 'admin' WHERE id = ?",
                  (aid,))
    create(s, "vault", {"body": "gold"})
    anon = connect(s)
    user = connect(s, headers=bearer(tok))
    admin = connect(s, headers=bearer(atok))
    assert admin.hello["payload"]["role"] == "admin"
    va = View(subscribe(anon, "v", "vault"))
    vu = View(subscribe(user, "v", "vault"))
    vb = View(subscribe(admin, "v", "vault"))
    assert va.docs == {} and vu.docs == {} and len(vb.docs) == 1
    d = create(s, "vault", {"body": "silver"})
    pump(admin, {vb.sid: vb}, lambda: d["id"] in vb.docs)
    # Nothing reaches the others (a ping answers after anything queued).
    for ws in (anon, user):
        m = ws.request({"id": "p", "type": "ping"})
        assert m["type"] == "pong" and not ws.backlog, ws.backlog
    for ws in (anon, user, admin):
        ws.close()


def test_expand_meets_the_referenced_rule(asrv):
    """A subscription's expanded documents meet their own collection's read
    rule, as REST does (the vault has none: only admins see it)."""
    s = asrv
    tok, uid = register(s, "exp2@example.com")
    ws = connect(s, headers=bearer(tok))
    create(s, "notes", {"owner_id": uid, "body": "mine", "n": 1})
    snap = subscribe(ws, "e", "notes", filter={"owner_id": {"$eq": uid}})
    want = query(s, "notes", "filter=owner_id:eq:" + uid,
                 headers=bearer(tok))
    assert ids(snap["payload"]["docs"]) == ids(want)
    ws.close()


# ---- the randomised model test ------------------------------------------

FILTERS = [
    ({}, ""),
    ({"owner": {"$eq": "a"}}, "filter=owner:eq:a"),
    ({"n": {"$gte": 10}}, "filter=n:gte:10"),
    ({"flag": {"$eq": True}}, "filter=flag:eq:true"),
    ({"owner": {"$eq": "b"}, "n": {"$lt": 8}},
     "filter=owner:eq:b&filter=n:lt:8"),
    ({"$or": [{"owner": "c"}, {"n": {"$gt": 15}}]},
     "filter=or(owner:eq:c|n:gt:15)"),
    ({"f": {"$eq": None}}, "filter=f:eq:null"),
    ({"owner": {"$in": ["a", "c"]}}, "filter=owner:in:a,c"),
]
SORTS = [[], ["n"], ["-n"], ["-f", "n"], ["owner", "-n"], ["flag", "f"]]


def random_spec(rnd, coll="items"):
    flt, qs = rnd.choice(FILTERS) if coll == "items" else rnd.choice(
        [({}, ""), ({"n": {"$gte": 5}}, "filter=n:gte:5"),
         ({"public": {"$eq": True}}, "filter=public:eq:true")])
    sort = rnd.choice(SORTS if coll == "items" else [[], ["n"], ["-n"]])
    payload = {"collection": coll, "filter": flt}
    parts = [qs] if qs else []
    if sort:
        payload["sort"] = sort
        parts.append("sort=" + ",".join(sort))
    if rnd.random() < 0.7:
        payload["limit"] = rnd.randint(1, 8)
        parts.append("limit=%d" % payload["limit"])
    return payload, "&".join(parts)


class ModelClient:
    """One WebSocket connection with several live queries, read by its own
    thread; its documents come only from its messages."""

    def __init__(self, s, specs, token=None):
        self.s, self.specs, self.token = s, specs, token
        self.lock = threading.Lock()
        self.views = []
        self.problems = []
        self.resyncs = []
        self.replays = 0
        self.ws = None
        self.th = None
        self.connect(since=None)

    def connect(self, since):
        self.ws = connect(self.s, headers=bearer(self.token))
        views = []
        for i, (payload, qs) in enumerate(self.specs):
            p = dict(payload)
            if since is None:
                snap = self.ws.request({"id": i, "type": "subscribe",
                                        "payload": p})
                assert snap["type"] == "snapshot", snap
                views.append(View(snap, payload.get("sort")))
                continue
            # Resuming: a client holding what its view held.
            p["since"] = since[i]
            v, snap = resume(self.ws, i, p.pop("collection"),
                             self.views[i].docs, **p)
            self.resyncs.append(snap["payload"].get("resync", False))
            self.replays += snap["type"] == "delta"
            views.append(v)
        with self.lock:
            self.views = views
        self.stop = False
        self.th = threading.Thread(target=self.read, daemon=True)
        self.th.start()

    def read(self):
        by_sid = {v.sid: v for v in self.views}
        ws = self.ws
        # Deltas of the first subscriptions that came while the later
        # ones were being made.
        pending = list(ws.backlog)
        ws.backlog.clear()
        while not self.stop:
            if pending:
                m = pending.pop(0)
            else:
                try:
                    m = ws.recv(0.2)
                except TimeoutError:
                    continue
                except (Closed, OSError, ValueError) as e:
                    if not self.stop:
                        self.problems.append(("closed", repr(e)))
                    return
            try:
                with self.lock:
                    by_sid[m["payload"]["subscription_id"]].apply(m)
            except Exception as e:      # collected, asserted by the test
                self.problems.append((repr(e), m))

    def disconnect(self, abrupt):
        self.stop = True
        self.th.join()
        if abrupt:
            self.ws.abort()
        else:
            self.ws.close()

    def reconnect(self, abrupt):
        # The change ids once nothing more is applied: the documents
        # held are the state at exactly those ids.
        self.disconnect(abrupt)
        last = [v.change_id for v in self.views]
        self.connect(since=last)

    def converged(self):
        for v, (payload, qs) in zip(self.views, self.specs):
            want = query(self.s, payload["collection"], qs,
                         headers=bearer(self.token))
            with self.lock:
                have = v.ordered()
            if have != want:
                hi, wi = ids(have), ids(want)
                return False, (payload, qs, "missing", [
                    d for d in want if d["id"] not in hi], "extra", [
                    d for d in have if d["id"] not in wi], "changed", [
                    (d, e) for d in want for e in have
                    if d["id"] == e["id"] and d != e],
                    "order", wi == hi)
        return True, None


@pytest.mark.parametrize("loop", ["poll", "ev"])
def test_random_model_over_websocket(tmp_path, loop):
    seed = int(os.environ.get("ALYX_RT_SEED", "4242"))
    rnd = random.Random(seed)
    s = start(tmp_path, config=AUTH_CONFIG % "15m",
              args=["--loop", loop, "--threads", "2"])
    try:
        tok, uid = register(s, "model@example.com")
        item_ids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4))
                    for _ in range(40)]
        note_ids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4))
                    for _ in range(16)]

        def item_doc(r):
            return {"owner": r.choice("abc"), "n": r.randint(0, 19),
                    "f": r.choice([None, round(r.random() * 10, 2)]),
                    "flag": r.random() < 0.5, "title": "t%d" % r.randint(
                        0, 99)}

        for i in item_ids[:20]:
            d = item_doc(rnd)
            d["id"] = i
            create(s, "items", d)
        clients = []
        for k in range(4):
            specs = [random_spec(rnd) for _ in range(5)]
            clients.append(ModelClient(s, specs))
        # A signed-in client on the rule-filtered collection.
        clients.append(ModelClient(
            s, [random_spec(rnd, "notes") for _ in range(4)], token=tok))

        def rest_writer(wseed, n):
            r = random.Random(wseed)
            for _ in range(n):
                op = r.random()
                if r.random() < 0.25:
                    nid = r.choice(note_ids)
                    body = {"owner_id": r.choice([uid, "someone"]),
                            "public": r.random() < 0.4,
                            "n": r.randint(0, 9), "body": "x"}
                    if op < 0.4:
                        body["id"] = nid
                        s.json("POST", "/api/collections/notes", body)
                    elif op < 0.85:
                        s.json("PATCH", "/api/collections/notes/" + nid,
                               body)
                    else:
                        s.request("DELETE", "/api/collections/notes/" + nid)
                    continue
                iid = r.choice(item_ids)
                if op < 0.35:
                    d = item_doc(r)
                    d["id"] = iid
                    s.json("POST", "/api/collections/items", d)
                elif op < 0.85:
                    s.json("PATCH", "/api/collections/items/" + iid,
                           item_doc(r))
                else:
                    s.request("DELETE", "/api/collections/items/" + iid)

        def sql_writer(wseed, n):
            r = random.Random(wseed)
            db = sqlite3.connect(db_path(s), timeout=30)
            db.execute("PRAGMA busy_timeout=30000")
            for i in range(n):
                iid = r.choice(item_ids)
                op = r.random()
                if op < 0.35:
                    d = item_doc(r)
                    db.execute("INSERT OR IGNORE INTO items (id, owner, n, "
                               "f, flag, title) VALUES (?,?,?,?,?,?)",
                               (iid, d["owner"], d["n"], d["f"],
                                int(d["flag"]), d["title"]))
                elif op < 0.85:
                    db.execute("UPDATE items SET n = ?, f = ? WHERE id = ?",
                               (r.randint(0, 19), r.choice([None, 1.5]),
                                iid))
                else:
                    db.execute("DELETE FROM items WHERE id = ?", (iid,))
                db.commit()
                if i % 8 == 0:
                    time.sleep(0.002)
            db.close()

        for rnd_no in range(3):
            ths = [threading.Thread(target=rest_writer,
                                    args=(seed * 10 + rnd_no * 3 + k, 100))
                   for k in range(2)]
            ths.append(threading.Thread(target=sql_writer,
                                        args=(seed + rnd_no, 100)))
            for th in ths:
                th.start()
            # Meanwhile one client drops and resumes with since.
            time.sleep(0.05)
            clients[rnd_no].reconnect(abrupt=rnd_no % 2 == 1)
            for th in ths:
                th.join()
            for c in clients:
                deadline = time.time() + 15 * SLOW
                ok, why = c.converged()
                while not ok and time.time() < deadline:
                    time.sleep(0.1)
                    ok, why = c.converged()
                assert ok, why
                assert not c.problems, c.problems[:3]
        # Resumes found the feed intact (nothing was pruned).
        resyncs = [r for c in clients for r in c.resyncs]
        assert resyncs and not any(resyncs), resyncs
        deltas = sum(v.deltas for c in clients for v in c.views)
        print("model over WebSocket: seed %d, %d deltas applied after the "
              "last reconnects, %d of %d resumes replayed" % (
                  seed, deltas, sum(c.replays for c in clients),
                  len(resyncs)))
        assert deltas > 50
        for c in clients:
            c.disconnect(abrupt=False)
    finally:
        assert s.stop() == 0
