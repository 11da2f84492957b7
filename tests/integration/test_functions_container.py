"""Functions over HTTP with the container runner (docs/functions.md,
"Container runner"): alyxd with `functions.runner: container` against the
fake Engine API of the unit tests (tests/unit/functions/fake_engine.py,
which runs each "container" as a child process): the blog example's
createPost (Node) and create_post (Python) end to end with ctx.db, the
admin list, and a 503 once the engine is gone.  The real-engine tests
(podman) are in tests/unit/functions/test-container.c."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, Server, make_project
from test_functions import CONFIG, admin_token, create_post, invoke

pytestmark = pytest.mark.skipif(shutil.which("node") is None or
                                shutil.which("python3") is None,
                                reason="node and python3 are needed")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    sock = str(tmp_path_factory.mktemp("eng") / "engine.sock")
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "unit" /
                                              "functions" / "fake_engine.py"),
                          sock, "alyx-node:local", "alyx-python:local"],
                         stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    p.sock = sock
    yield p
    if p.poll() is None:
        p.terminate()
        p.wait()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, engine):
    config = CONFIG + "  runner: container\n  container_socket: %s\n" % \
        engine.sock
    proj = make_project(tmp_path_factory.mktemp("fnc"), config)
    shutil.copytree(ROOT / "examples" / "blog" / "functions",
                    proj / "functions")
    s = Server(proj)
    s.proj = proj
    yield s
    assert s.stop() == 0


def test_create_post_node_in_container(srv):
    create_post(srv, "createPost")


def test_create_post_python_in_container(srv):
    create_post(srv, "create_post")


def test_admin_list_shows_the_container_runner(srv):
    tok = admin_token(srv, "admin-ctr@example.com")
    st, _, b = srv.json("GET", "/api/admin/functions",
                        headers={"Authorization": "Bearer " + tok})
    assert st == 200, b
    assert b["runner"] == "container" and b["sandbox"] == "container"
    assert b["pools"] and all(p["instances"] >= 1 for p in b["pools"])


def test_engine_gone_is_503(srv, engine):
    st, _, b = srv.json("POST", "/api/auth/register",
                        {"email": "late@example.com",
                         "password": "Correct-Horse-9"})
    assert st == 201, b
    tok = b["access_token"]
    engine.terminate()
    engine.wait()
    # The warm container died with its engine; a call that found it dead
    # fails (500, EXECUTOR_EXITED) or goes on to a replacement, which
    # cannot be made: 503 naming the engine's socket.
    for _ in range(3):
        st, _, b = invoke(srv, "createPost", {"title": "t", "content": "c"},
                          tok)
        assert st in (500, 503), b
        if st == 503:
            break
    assert st == 503, b
    assert b["error"]["code"] == "UNAVAILABLE"
    assert engine.sock in b["error"]["message"]
