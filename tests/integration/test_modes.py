"""Server modes: the libev loop, one thread, TLS from a cert/key pair."""
import http.client
import json
import threading

import pytest

from conftest import Server, make_project, tls_cert, tls_server


def smoke(s, conn_factory=None):
    st, _, body = s.json("GET", "/")
    assert st == 200 and body["name"] == "alyx"
    st, _, u = s.json("POST", "/api/collections/users",
                      {"email": "mode@example.com"})
    assert st == 201, u
    st, _, got = s.json("GET", "/api/collections/users/" + u["id"])
    assert got == u
    errs = []

    def work(t):
        try:
            c = s.conn()
            for i in range(50):
                st, _, _ = s.json("GET", "/api/collections/users?limit=5",
                                  conn=c)
                assert st == 200
            c.close()
        except Exception as e:      # reported below
            errs.append(e)
    ths = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    assert not errs, errs


@pytest.mark.parametrize("args", [["--loop", "ev"], ["--threads", "1"],
                                  ["--threads", "3", "--loop", "poll"]])
def test_loop_and_thread_modes(tmp_path, args):
    s = Server(make_project(tmp_path), args=args)
    try:
        smoke(s)
        st, _, stats = s.json("GET", "/health/stats",
                              headers=s.admin_headers())
        if "--threads" in args:
            assert stats["threads"] == int(args[args.index("--threads")
                                                + 1])
        if "ev" in args:
            assert stats["loop"] == "ev"
    finally:
        assert s.stop() == 0


def test_tls(tmp_path):
    cert, key = tls_cert(tmp_path)
    proj = make_project(tmp_path, config="""\
server:
  tls:
    cert: %s
    key: %s
database:
  path: data/alyx.db
""" % (cert, key))
    s, _ = tls_server(proj, cert)
    try:
        s.wait_ready()
        smoke(s)
        # Plain HTTP on the TLS port is refused.
        c = http.client.HTTPConnection(s.host, s.port, timeout=5)
        with pytest.raises((OSError, http.client.HTTPException)):
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            assert r.status >= 400
            raise OSError("answered with an error")
    finally:
        assert s.stop() == 0


def test_tls_bad_files_refuse_to_start(tmp_path):
    proj = make_project(tmp_path, config="""\
server:
  tls:
    cert: /nonexistent/cert.pem
    key: /nonexistent/key.pem
""")
    s = Server(proj, wait=False)
    assert s.proc.wait(30) == 4
    assert "TLS" in "\n".join(s.lines())
    s.stop()
