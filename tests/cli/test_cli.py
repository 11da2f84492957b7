"""The CLI as a whole: --help everywhere, --version, exit codes for usage
errors, directories that are not projects and invalid project files."""
import json
import re

import pytest

from conftest import BADPROJECT, NOPROJECT, ROOT, USAGE, fails, ok, run

HELP = [
    [], ["init"], ["migrate"], ["migrate", "status"], ["migrate", "apply"],
    ["migrate", "rollback"], ["migrate", "create"], ["db"], ["db", "seed"],
    ["db", "dump"], ["db", "reset"], ["query"], ["query", "posts"], ["doc"],
    ["doc", "create"], ["doc", "get"], ["doc", "update"], ["doc", "delete"],
    ["dev"], ["serve"], ["version"],
]


@pytest.mark.parametrize("cmd", HELP, ids=lambda c: " ".join(c) or "alyx")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_everywhere(tmp_path, cmd, flag):
    # In a directory that is not a project: --help never needs one.
    res = ok(*cmd, flag, cwd=tmp_path)
    assert res.out.startswith("Usage: alyx"), res
    if cmd:
        assert ("alyx %s" % cmd[0]) in res.out
    assert res.err == ""


def test_help_command(tmp_path):
    assert ok("help", cwd=tmp_path).out == ok("--help", cwd=tmp_path).out
    assert ok("help", "migrate", cwd=tmp_path).out == \
        ok("migrate", "--help", cwd=tmp_path).out
    fails(USAGE, "USAGE_ERROR", "help", "nope", cwd=tmp_path)


def test_top_level_help_lists_commands_and_exit_codes(tmp_path):
    out = ok("--help", cwd=tmp_path).out
    for cmd in ("init", "dev", "serve", "migrate", "db", "query", "doc"):
        assert re.search(r"^  %s\b" % cmd, out, re.M), cmd
    assert "Exit codes" in out


def test_version(tmp_path):
    for args in (["--version"], ["-V"], ["version"]):
        out = ok(*args, cwd=tmp_path).out
        assert re.fullmatch(r"alyx (\d+\.\d+\.\d+) \(compiled with libalyx "
                            r"\1, linked with libalyx \d+\.\d+\.\d+\)\n",
                            out), out


def test_usage_errors(tmp_path):
    res = run(cwd=tmp_path)
    assert res.code == USAGE and "Usage: alyx" in res.err
    fails(USAGE, "USAGE_ERROR", "frobnicate", cwd=tmp_path)
    fails(USAGE, "USAGE_ERROR", "--frobnicate", cwd=tmp_path)
    fails(USAGE, "USAGE_ERROR", "--dir", cwd=tmp_path)
    res = fails(USAGE, "USAGE_ERROR", "migrate", "--nope", cwd=tmp_path)
    assert "alyx migrate --help" in res.err
    res = fails(USAGE, None, "--json", "query", "--nope", cwd=tmp_path)
    assert json.loads(res.err)["error"]["code"] == "USAGE_ERROR"


def test_not_a_project(tmp_path):
    for args in (["migrate", "status"], ["query", "posts"],
                 ["db", "dump", "-"], ["doc", "get", "users", "x"],
                 ["dev"], ["serve"]):
        res = fails(NOPROJECT, "NOT_A_PROJECT", *args, cwd=tmp_path)
        assert "alyx init" in res.err
    fails(NOPROJECT, "NOT_A_PROJECT", "--dir", tmp_path / "missing",
          "migrate", "status")
    fails(NOPROJECT, "NOT_A_PROJECT", "migrate", "status", "-C",
          tmp_path / "missing")


def test_dir_option_before_and_after_the_command(blog):
    a = ok("--dir", blog, "migrate", "status", "--json").json()
    b = ok("migrate", "status", "--json", "--dir", blog).json()
    c = ok("-C", str(blog), "migrate", "status", "--json").json()
    d = ok("migrate", "status", "--json", "--dir=%s" % blog).json()
    assert a == b == c == d


def test_invalid_schema_names_the_place(blog):
    p = blog / "schema.yaml"
    p.write_text(p.read_text().replace("type: text", "type: novel", 1))
    res = fails(BADPROJECT, "SCHEMA_ERROR", "migrate", "apply", cwd=blog)
    assert "schema.yaml" in res.err
    assert "novel" in res.err
    assert re.search(r"line|:\d+:\d+", res.err)


def test_invalid_config(blog):
    (blog / "alyx.yaml").write_text("server:\n  port: [1, 2\n")
    fails(BADPROJECT, "CONFIG_ERROR", "migrate", "status", cwd=blog)


def test_every_flag_is_documented(tmp_path):
    """Every long option a --help mentions appears in docs/cli.md."""
    doc = (ROOT / "docs" / "cli.md").read_text()
    flags = set()
    for cmd in (["--help"], ["init", "-h"], ["migrate", "-h"], ["db", "-h"],
                ["query", "-h"], ["doc", "-h"], ["dev", "-h"],
                ["serve", "-h"]):
        flags |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)",
                                ok(*cmd, cwd=tmp_path).out))
    assert len(flags) > 20
    missing = sorted(f for f in flags
                     if not re.search(re.escape(f) + r"(?![\w-])", doc))
    assert missing == []
