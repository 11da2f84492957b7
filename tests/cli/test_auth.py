"""alyx auth create-admin and reset-password."""
import hashlib
import urllib.parse

from conftest import BADINPUT, CONFLICT, NOTFOUND, USAGE, fails, ok, sql

PW = "Admin-Pass-42\n"


def test_create_admin_from_stdin(blog_db):
    res = ok("auth", "create-admin", "Root@Example.com", "--password-stdin",
             cwd=blog_db, input=PW)
    assert "Created admin Root@Example.com" in res.out
    db = blog_db / "data" / "alyx.db"
    rows = sql(db, "SELECT id, email, role, verified, password_hash "
               "FROM _alyx_users")
    assert len(rows) == 1
    uid, email, role, verified, pw_hash = rows[0]
    assert (email, role, verified) == ("root@example.com", "admin", 1)
    assert pw_hash.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    assert "Admin-Pass-42" not in pw_hash
    # The account is also the users document, with the same id.
    assert sql(db, "SELECT role, email FROM users WHERE id=?", uid) == [
        ("admin", "root@example.com")]


def test_create_admin_json_and_conflict(blog_db):
    user = ok("--json", "auth", "create-admin", "ops@example.com",
              "--password-stdin", cwd=blog_db, input=PW).json()
    assert user["role"] == "admin" and user["verified"] is True
    assert user["email"] == "ops@example.com"
    assert "password" not in user and "password_hash" not in user
    fails(CONFLICT, "CONFLICT", "auth", "create-admin", "ops@example.com",
          "--password-stdin", cwd=blog_db, input=PW)


def test_create_admin_refuses_bad_input(blog_db):
    # The password policy applies (min_length 8 by default).
    res = fails(BADINPUT, "VALIDATION_ERROR", "auth", "create-admin",
                "weak@example.com", "--password-stdin", cwd=blog_db,
                input="short\n")
    assert "password" in res.err
    fails(BADINPUT, "VALIDATION_ERROR", "auth", "create-admin",
          "not-an-email", "--password-stdin", cwd=blog_db, input=PW)
    fails(BADINPUT, None, "auth", "create-admin", "e@example.com",
          "--password-stdin", cwd=blog_db, input="")
    # No terminal and no --password-stdin: a usage error.
    fails(USAGE, None, "auth", "create-admin", "e@example.com",
          cwd=blog_db, input="Admin-Pass-42\n")
    fails(USAGE, None, "auth", cwd=blog_db)
    fails(USAGE, None, "auth", "make-admin", "x@example.com", cwd=blog_db)
    fails(USAGE, None, "auth", "create-admin", cwd=blog_db)
    assert sql(blog_db / "data" / "alyx.db",
               "SELECT count(*) FROM _alyx_users") == [(0,)]


def test_reset_password_prints_a_one_time_link(blog_db):
    ok("auth", "create-admin", "Root@Example.com", "--password-stdin",
       cwd=blog_db, input=PW)
    res = ok("auth", "reset-password", "ROOT@example.com", cwd=blog_db)
    link = res.out.strip()
    assert "\n" not in link
    u = urllib.parse.urlsplit(link)
    assert u.path == "/reset-password"      # auth.email.reset_url default
    token = urllib.parse.parse_qs(u.query)["token"][0]
    assert len(token) == 43
    assert "root@example.com" in res.err and "valid until" in res.err
    db = blog_db / "data" / "alyx.db"
    # Stored only as its SHA-256, with the account and an expiry.
    rows = sql(db, "SELECT token_hash, kind, user_id FROM _alyx_auth_tokens")
    uid = sql(db, "SELECT id FROM _alyx_users")[0][0]
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), "reset",
                     uid)]
    # A newer link replaces the older one; --json gives the details.
    out = ok("--json", "auth", "reset-password", "root@example.com",
             cwd=blog_db).json()
    assert out["email"] == "root@example.com"
    assert out["link"].startswith("/reset-password?token=")
    assert out["expires_at"].endswith("Z")
    assert len(sql(db, "SELECT 1 FROM _alyx_auth_tokens")) == 1
    # The link goes where alyx.yaml says.
    cfg = blog_db / "alyx.yaml"
    cfg.write_text(cfg.read_text() + "  email:\n    reset_url: "
                   "https://app.example.com/reset?x=1\n")
    link = ok("auth", "reset-password", "root@example.com",
              cwd=blog_db).out.strip()
    assert link.startswith("https://app.example.com/reset?x=1&token=")


def test_reset_password_errors(blog_db):
    fails(NOTFOUND, "NOT_FOUND", "auth", "reset-password",
          "nobody@example.com", cwd=blog_db)
    fails(BADINPUT, "VALIDATION_ERROR", "auth", "reset-password",
          "not-an-email", cwd=blog_db)
    fails(USAGE, None, "auth", "reset-password", cwd=blog_db)
    fails(USAGE, None, "auth", "reset-password", "a@example.com",
          "--password-stdin", cwd=blog_db)
    assert sql(blog_db / "data" / "alyx.db",
               "SELECT count(*) FROM _alyx_auth_tokens") == [(0,)]
