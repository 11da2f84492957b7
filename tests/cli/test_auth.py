"""alyx auth create-admin."""
from conftest import BADINPUT, CONFLICT, USAGE, fails, ok, sql

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
