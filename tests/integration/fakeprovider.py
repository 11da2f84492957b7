"""A fake OAuth provider (GitHub- and Google-shaped) and email webhook
receiver on loopback, for the auth integration tests.

Endpoints, under /github and /google:
  GET  /authorize   records the request, answers 302 to redirect_uri with a
                    fresh code and the state (the user "consents")
  POST /token       code exchange: checks client id/secret, redirect_uri,
                    the PKCE S256 verifier and that the code is unused;
                    GitHub answers a bad code with 200 {"error": ...},
                    Google with 400
  GET  /user (github), /userinfo (google), /user/emails (github)
                    the profile set in `users[provider]` for the token
  POST /hook        records an email webhook (body, raw bytes, headers) in
                    `hooks`
`mode[provider]` switches failures on: "token500", "slow" (sleeps past
alyx's timeout), "garbage" (non-JSON token answer).
"""
import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENTS = {"github": ("gh-client", "gh-secret"),
           "google": ("gg-client", "gg-secret")}


class Fake:
    def __init__(self):
        self.codes = {}       # code -> {provider, challenge, redirect_uri, used}
        self.tokens = {}      # access token -> provider
        self.users = {"github": {}, "google": {}}
        self.emails = []      # GitHub's /user/emails answer
        self.hooks = []
        self.authorize_args = []
        self.mode = {}
        self.hook_status = 200
        self.lock = threading.Lock()
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send(self, status, body=None, headers=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                prov, _, rest = u.path.lstrip("/").partition("/")
                if rest == "authorize":
                    return fake.authorize(self, prov, q)
                tok = self.headers.get("Authorization", "")[7:]
                with fake.lock:
                    owner = fake.tokens.get(tok)
                if owner != prov:
                    return self.send(401, {"message": "Bad credentials"})
                if fake.mode.get(prov) == "slow_user":
                    time.sleep(3)
                if rest in ("user", "userinfo"):
                    return self.send(200, fake.users[prov])
                if rest == "user/emails":
                    return self.send(200, fake.emails)
                self.send(404, {"message": "not found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                prov, _, rest = self.path.lstrip("/").partition("/")
                if self.path == "/hook":
                    with fake.lock:
                        fake.hooks.append(
                            {"body": json.loads(raw), "raw": raw,
                             "content_type": self.headers["Content-Type"],
                             "headers": {k.lower(): v for k, v in
                                         self.headers.items()}})
                    return self.send(fake.hook_status, {})
                if rest == "token":
                    return fake.token(self, prov,
                                      dict(urllib.parse.parse_qsl(
                                          raw.decode())),
                                      self.headers)
                self.send(404, {"message": "not found"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def authorize(self, h, prov, q):
        with self.lock:
            self.authorize_args.append(dict(q, provider=prov))
            code = secrets.token_urlsafe(12)
            self.codes[code] = {"provider": prov,
                                "challenge": q.get("code_challenge"),
                                "method": q.get("code_challenge_method"),
                                "redirect_uri": q.get("redirect_uri"),
                                "client_id": q.get("client_id"),
                                "used": False}
        loc = q["redirect_uri"] + "?" + urllib.parse.urlencode(
            {"code": code, "state": q.get("state", "")})
        h.send(302, None, {"Location": loc})

    def token(self, h, prov, f, headers):
        mode = self.mode.get(prov)
        if mode == "slow":
            time.sleep(3)
        if mode == "token500":
            return h.send(500, {"error": "server_error"})
        if mode == "garbage":
            h.send_response(200)
            h.send_header("Content-Length", "9")
            h.end_headers()
            h.wfile.write(b"<html/>\n\n")
            return
        bad = 200 if prov == "github" else 400
        cid, csec = CLIENTS[prov]
        with self.lock:
            c = self.codes.get(f.get("code"))
            ok = (c is not None and not c["used"] and
                  c["provider"] == prov and
                  f.get("client_id") == cid and
                  f.get("client_secret") == csec and
                  f.get("grant_type") == "authorization_code" and
                  f.get("redirect_uri") == c["redirect_uri"] and
                  c["method"] == "S256" and
                  base64.urlsafe_b64encode(hashlib.sha256(
                      f.get("code_verifier", "").encode()).digest())
                  .rstrip(b"=").decode() == c["challenge"])
            if c is not None:
                c["used"] = True
            if not ok:
                return h.send(bad, {"error": "bad_verification_code"})
            tok = secrets.token_urlsafe(16)
            self.tokens[tok] = prov
        h.send(200, {"access_token": tok, "token_type": "bearer"})
