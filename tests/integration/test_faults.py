"""Real faults answer 500 with the error envelope and are logged with the
request id; the server keeps serving everything else."""

import sqlite3

from conftest import Server, make_project


def test_table_dropped_behind_the_servers_back_is_a_logged_500(tmp_path):
    proj = make_project(tmp_path)
    s = Server(proj)
    try:
        st, _, _ = s.json("GET", "/api/collections/comments")
        assert st == 200
        # Another process breaks the database under the running server:
        # the schema says `comments` exists, SQLite says it does not.
        db = sqlite3.connect(str(proj / "data" / "alyx.db"))
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("DROP TABLE comments")
        db.commit()
        db.close()
        st, h, body = s.json("GET", "/api/collections/comments",
                             headers={"X-Request-Id": "fault-test-1"})
        assert st == 500
        assert body["error"]["code"] == "INTERNAL_ERROR"
        assert "comments" in body["error"]["message"]
        assert body["request_id"] == "fault-test-1"
        assert h["x-request-id"] == "fault-test-1"
        # Everything else still works.
        st, _, body = s.json("GET", "/api/collections/users")
        assert st == 200 and body["docs"] == []
        st, _, _ = s.json("GET", "/health/live")
        assert st == 200
    finally:
        assert s.stop() == 0
    errors = [r for r in s.log_records()
              if r.get("level") == "error" and r.get("status") == 500]
    assert errors, "\n".join(s.lines())
    assert errors[0]["request_id"] == "fault-test-1"
