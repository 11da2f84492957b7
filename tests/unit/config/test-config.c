/* Unit tests of lib/core/config: defaults, every section, ${ENV}
 * expansion, value syntax, located errors, JSON with masked secrets. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"
#include "harness.h"

static char tmpdir[64];

static const char *write_cfg(const char *text)
{
	static char path[128];
	FILE *f;

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/alyx-cfg-XXXXXX");
		ASSERT(mkdtemp(tmpdir) != NULL);
	}
	snprintf(path, sizeof(path), "%s/alyx.yaml", tmpdir);
	f = fopen(path, "w");
	ASSERT(f != NULL);
	fputs(text, f);
	fclose(f);
	return path;
}

static void cleanup(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/alyx.yaml", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	tmpdir[0] = '\0';
}

static alyx__config *load_ok(const char *text)
{
	alyx__config *c = NULL;
	alyx__err err = {0};
	int rc = alyx__config_load(write_cfg(text), &c, &err);

	if (rc != ALYX_OK)
		fprintf(stderr, "load: %s\n", err.msg);
	ASSERT_EQ(rc, ALYX_OK);
	cleanup();
	return c;
}

static void expect_err(const char *text, int code, int line, int col,
		       const char *needle)
{
	alyx__config *c = NULL;
	alyx__err err = {0};
	char where[64];
	int rc = alyx__config_load(write_cfg(text), &c, &err);

	cleanup();
	if (rc == ALYX_OK)
		fprintf(stderr, "expected an error with '%s'\n", needle);
	ASSERT_EQ(rc, code);
	ASSERT(c == NULL);
	ASSERT_CONTAINS(err.msg, needle);
	snprintf(where, sizeof(where), "alyx.yaml:%d:%d: ", line, col);
	if (strncmp(err.msg, where, strlen(where)) != 0)
		fprintf(stderr, "message: %s\n", err.msg);
	ASSERT(strncmp(err.msg, where, strlen(where)) == 0);
	if (code == ALYX_E_CONFIG) {
		snprintf(where, sizeof(where), "\"line\":%d,\"column\":%d",
			 line, col);
		ASSERT_CONTAINS(err.details, where);
	}
	alyx__err_clear(&err);
}

static void check_defaults(const alyx__config *c)
{
	ASSERT_STR_EQ(c->server.host, "127.0.0.1");
	ASSERT_EQ(c->server.port, 8090);
	ASSERT_EQ(c->server.threads, 0);
	ASSERT(c->server.tls_cert == NULL && c->server.tls_key == NULL);
	ASSERT_EQ(c->server.n_cors_origins, 0);
	ASSERT_EQ(c->server.max_body, 1 << 20);
	ASSERT_EQ(c->server.max_header, 8192);
	ASSERT_EQ(c->server.request_timeout_ms, 10000);
	ASSERT(c->server.loop == NULL);
	ASSERT_STR_EQ(c->database.path, "data/alyx.db");
	ASSERT_EQ(c->database.cache_size_mb, 64);
	ASSERT_EQ(c->database.cache_size, -65536);
	ASSERT_EQ(c->database.busy_timeout_ms, 5000);
	ASSERT_STR_EQ(c->auth.jwt.secret, "");
	ASSERT_EQ(c->auth.jwt.access_ttl_ms, 15 * 60 * 1000);
	ASSERT_EQ(c->auth.jwt.refresh_ttl_ms, 7LL * 86400 * 1000);
	ASSERT_STR_EQ(c->auth.jwt.issuer, "alyx");
	ASSERT_EQ(c->auth.password.min_length, 8);
	ASSERT(!c->auth.password.require_uppercase);
	ASSERT(!c->auth.oauth.github.enabled);
	ASSERT_EQ(c->auth.oauth.github.n_scopes, 1);
	ASSERT_STR_EQ(c->auth.oauth.github.scopes[0], "user:email");
	ASSERT_EQ(c->auth.oauth.google.n_scopes, 2);
	ASSERT_STR_EQ(c->auth.oauth.google.token_url,
		      "https://oauth2.googleapis.com/token");
	ASSERT_EQ(c->auth.rate_limit.login.count, 5);
	ASSERT_EQ(c->auth.rate_limit.login.window_ms, 60000);
	ASSERT_EQ(c->auth.rate_limit.register_.count, 3);
	ASSERT_EQ(c->auth.rate_limit.password_reset.window_ms, 3600000);
	ASSERT_EQ(c->auth.rate_limit.oauth.count, 10);
	ASSERT_EQ(c->auth.rate_limit.oauth.window_ms, 60000);
	ASSERT(c->auth.enabled);
	ASSERT(c->auth.email.webhook == NULL);
	ASSERT_EQ(c->auth.email.webhook_timeout_ms, 5000);
	ASSERT_STR_EQ(c->auth.email.verify_url, "/verify-email");
	ASSERT_STR_EQ(c->auth.email.reset_url, "/reset-password");
	ASSERT_EQ(c->auth.email.verify_ttl_ms, 86400000);
	ASSERT_EQ(c->auth.email.reset_ttl_ms, 3600000);
	ASSERT_EQ(c->auth.oauth.timeout_ms, 10000);
	ASSERT_EQ(c->auth.oauth.state_ttl_ms, 600000);
	ASSERT(c->auth.oauth.frontend_url == NULL);
	ASSERT_STR_EQ(c->auth.oauth.github.emails_url,
		      "https://api.github.com/user/emails");
	ASSERT_STR_EQ(c->auth.oauth.google.emails_url, "");
	ASSERT(c->functions.enabled);
	ASSERT_STR_EQ(c->functions.runner, "process");
	ASSERT_STR_EQ(c->functions.sandbox, "auto");
	ASSERT_EQ(c->functions.node.min_warm, 1);
	ASSERT_EQ(c->functions.node.max_instances, 10);
	ASSERT_EQ(c->functions.python.idle_timeout_ms, 60000);
	ASSERT_EQ(c->functions.python.exec_timeout_ms, 30000);
	ASSERT_EQ(c->functions.node.memory_limit, 256 << 20);
	ASSERT(c->functions.node.cpu_limit == 1.0);
	ASSERT_STR_EQ(c->functions.container_socket, "/var/run/docker.sock");
	ASSERT_EQ(c->functions.container.pids_limit, 128);
	ASSERT_EQ(c->functions.container.start_timeout_ms, 30000);
	ASSERT_EQ(c->functions.tx_timeout_ms, 5000);
	ASSERT_STR_EQ(c->functions.container.user, "");
	ASSERT_STR_EQ(c->functions.node.image, "alyx-node:local");
	ASSERT_STR_EQ(c->functions.python.image, "alyx-python:local");
	ASSERT_EQ(c->realtime.poll_interval_ms, 50);
	ASSERT(c->dev.watch && c->dev.admin_ui);
	ASSERT_STR_EQ(c->log.level, "info");
	ASSERT_STR_EQ(c->log.format, "json");
}

TEST(defaults_without_file)
{
	alyx__config *c = NULL;
	alyx__err err = {0};

	ASSERT_EQ(alyx__config_load(NULL, &c, &err), ALYX_OK);
	check_defaults(c);
	ASSERT(c->file == NULL);
	alyx__config_free(c);
	/* A project directory without alyx.yaml: defaults too. */
	ASSERT_EQ(alyx__config_load("/", &c, &err), ALYX_OK);
	check_defaults(c);
	alyx__config_free(c);
}

TEST(empty_and_null_sections)
{
	alyx__config *c = load_ok("# nothing\n");

	check_defaults(c);
	alyx__config_free(c);
	c = load_ok("server:\nauth:\n  jwt:\n");
	check_defaults(c);
	alyx__config_free(c);
	c = load_ok("server: ~\ndatabase: null\ndev: {generate: ~}\n");
	check_defaults(c);
	alyx__config_free(c);
}

TEST(directory_argument_reads_alyx_yaml)
{
	alyx__config *c = NULL;
	alyx__err err = {0};

	write_cfg("server: {port: 9000}\n");
	ASSERT_EQ(alyx__config_load(tmpdir, &c, &err), ALYX_OK);
	ASSERT_EQ(c->server.port, 9000);
	ASSERT_CONTAINS(c->file, "/alyx.yaml");
	alyx__config_free(c);
	cleanup();
	ASSERT_EQ(alyx__config_load("/nonexistent/alyx.yaml", &c, &err),
		  ALYX_E_NOTFOUND);
	alyx__err_clear(&err);
}

TEST(every_section)
{
	alyx__config *c = load_ok(
		"server:\n"
		"  host: 0.0.0.0\n"
		"  port: 8443\n"
		"  threads: 4\n"
		"  tls: {cert: /c.pem, key: /k.pem}\n"
		"  cors:\n    origins: [\"https://a.example\", \"*\"]\n"
		"  max_body: 2mb\n"
		"  max_header: 16kb\n"
		"  request_timeout: 1500ms\n"
		"  loop: ev\n"
		"database:\n  path: /var/x.db\n  cache_size_mb: 8\n"
		"  busy_timeout_ms: 100\n"
		"auth:\n"
		"  jwt:\n"
		"    secret: 0123456789abcdef0123456789abcdef\n"
		"    access_ttl: 30m\n    refresh_ttl: 14d\n    issuer: me\n"
		"  password: {min_length: 12, require_uppercase: true, "
		"require_number: true, require_special: false}\n"
		"  oauth:\n"
		"    github: {client_id: gid, client_secret: gsecret, scopes: "
		"[read:user], token_url: 'http://127.0.0.1:1/token'}\n"
		"    redirect_url: https://app.example/cb\n"
		"    frontend_url: https://app.example/signed-in\n"
		"    timeout: 3s\n    state_ttl: 5m\n"
		"  email: {webhook: 'http://127.0.0.1:9/hook', webhook_timeout: "
		"2s, webhook_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, "
		"verify_url: 'https://app.example/v', reset_url: "
		"'https://app.example/r', verify_ttl: 2h, reset_ttl: 15m}\n"
		"  rate_limit: {login: 10/hour, register: 1/second, "
		"password_reset: 2/day, oauth: 30/hour}\n"
		"functions:\n"
		"  runner: container\n  sandbox: none\n  dir: fns\n"
		"  transaction_timeout: 100ms\n"
		"  node: {min_warm: 0, max_instances: 3, idle_timeout: 2m, "
		"exec_timeout: 5s, memory_limit: 512mb, cpu_limit: 0.5, "
		"image: my/node:20}\n"
		"  container_socket: /run/podman.sock\n"
		"  container: {pids_limit: 64, start_timeout: 5s, "
		"user: '65534:65534'}\n"
		"realtime: {poll_interval_ms: 20, max_connections: 5, "
		"max_subscriptions: 7, snapshot_limit: 9, change_retention: "
		"1h}\n"
		"dev: {watch: false, admin_ui: off, generate: [typescript, "
		"python], generate_output: out}\n"
		"log: {level: debug, format: logfmt}\n");

	ASSERT_STR_EQ(c->server.host, "0.0.0.0");
	ASSERT_EQ(c->server.port, 8443);
	ASSERT_EQ(c->server.threads, 4);
	ASSERT_STR_EQ(c->server.tls_key, "/k.pem");
	ASSERT_EQ(c->server.n_cors_origins, 2);
	ASSERT_STR_EQ(c->server.cors_origins[1], "*");
	ASSERT_EQ(c->server.max_body, 2 << 20);
	ASSERT_EQ(c->server.max_header, 16 << 10);
	ASSERT_EQ(c->server.request_timeout_ms, 1500);
	ASSERT_STR_EQ(c->server.loop, "ev");
	ASSERT_STR_EQ(c->database.path, "/var/x.db");
	ASSERT_EQ(c->database.cache_size, -8192);
	ASSERT_EQ(c->database.busy_timeout_ms, 100);
	ASSERT_EQ(c->auth.jwt.access_ttl_ms, 30 * 60000);
	ASSERT_EQ(c->auth.jwt.refresh_ttl_ms, 14LL * 86400000);
	ASSERT_STR_EQ(c->auth.jwt.issuer, "me");
	ASSERT_EQ(c->auth.password.min_length, 12);
	ASSERT(c->auth.password.require_uppercase &&
	       c->auth.password.require_number &&
	       !c->auth.password.require_special);
	ASSERT(c->auth.oauth.github.enabled);
	ASSERT(!c->auth.oauth.google.enabled);
	ASSERT_STR_EQ(c->auth.oauth.github.scopes[0], "read:user");
	ASSERT_STR_EQ(c->auth.oauth.github.token_url, "http://127.0.0.1:1/token");
	ASSERT_STR_EQ(c->auth.oauth.github.auth_url,
		      "https://github.com/login/oauth/authorize");
	ASSERT_STR_EQ(c->auth.oauth.redirect_url, "https://app.example/cb");
	ASSERT_STR_EQ(c->auth.oauth.frontend_url,
		      "https://app.example/signed-in");
	ASSERT_EQ(c->auth.oauth.timeout_ms, 3000);
	ASSERT_EQ(c->auth.oauth.state_ttl_ms, 300000);
	ASSERT_STR_EQ(c->auth.email.webhook, "http://127.0.0.1:9/hook");
	ASSERT_EQ(c->auth.email.webhook_timeout_ms, 2000);
	ASSERT_STR_EQ(c->auth.email.webhook_secret,
		      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
	ASSERT_EQ(c->auth.email.webhook_key_len, 24);
	ASSERT(memcmp(c->auth.email.webhook_key, "\x31\xf2\x90\xf6", 4) == 0);
	ASSERT_STR_EQ(c->auth.email.verify_url, "https://app.example/v");
	ASSERT_STR_EQ(c->auth.email.reset_url, "https://app.example/r");
	ASSERT_EQ(c->auth.email.verify_ttl_ms, 7200000);
	ASSERT_EQ(c->auth.email.reset_ttl_ms, 900000);
	ASSERT_EQ(c->auth.rate_limit.login.count, 10);
	ASSERT_EQ(c->auth.rate_limit.login.window_ms, 3600000);
	ASSERT_EQ(c->auth.rate_limit.register_.window_ms, 1000);
	ASSERT_EQ(c->auth.rate_limit.password_reset.window_ms, 86400000);
	ASSERT_EQ(c->auth.rate_limit.oauth.count, 30);
	ASSERT_EQ(c->auth.rate_limit.oauth.window_ms, 3600000);
	ASSERT_STR_EQ(c->functions.runner, "container");
	ASSERT_STR_EQ(c->functions.dir, "fns");
	ASSERT_EQ(c->functions.node.min_warm, 0);
	ASSERT_EQ(c->functions.node.max_instances, 3);
	ASSERT_EQ(c->functions.node.idle_timeout_ms, 120000);
	ASSERT_EQ(c->functions.node.exec_timeout_ms, 5000);
	ASSERT_EQ(c->functions.node.memory_limit, 512LL << 20);
	ASSERT(c->functions.node.cpu_limit == 0.5);
	ASSERT_STR_EQ(c->functions.node.image, "my/node:20");
	ASSERT_STR_EQ(c->functions.python.image, "alyx-python:local");
	ASSERT_STR_EQ(c->functions.container_socket, "/run/podman.sock");
	ASSERT_EQ(c->functions.container.pids_limit, 64);
	ASSERT_EQ(c->functions.container.start_timeout_ms, 5000);
	ASSERT_EQ(c->functions.tx_timeout_ms, 100);
	ASSERT_STR_EQ(c->functions.container.user, "65534:65534");
	ASSERT_EQ(c->functions.python.max_instances, 10);
	ASSERT_EQ(c->realtime.poll_interval_ms, 20);
	ASSERT_EQ(c->realtime.change_retention_ms, 3600000);
	ASSERT(!c->dev.watch && !c->dev.admin_ui);
	ASSERT_EQ(c->dev.n_generate, 2);
	ASSERT_STR_EQ(c->log.format, "logfmt");
	alyx__config_free(c);
}

TEST(env_expansion)
{
	alyx__config *c;

	setenv("ALYX_T_SECRET", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t", 1);
	setenv("ALYX_T_PORT", "9191", 1);
	setenv("ALYX_T_EMPTY", "", 1);
	unsetenv("ALYX_T_UNSET");
	/* A value with YAML syntax stays a string: it cannot add keys. */
	setenv("ALYX_T_EVIL", "x\n  port: 1\" # {a: b}", 1);
	c = load_ok("server:\n  port: ${ALYX_T_PORT}\n"
		    "  host: \"h-${ALYX_T_UNSET:-local}-${ALYX_T_EMPTY:-e}\"\n"
		    "auth:\n  jwt:\n    secret: '${ALYX_T_SECRET}'\n"
		    "    issuer: ${ALYX_T_EVIL}\n"
		    "  oauth:\n    github:\n      client_id: ${ALYX_T_UNSET}\n"
		    "      client_secret: ${ALYX_T_UNSET}\n"
		    "database:\n  path: $${literal}/${ALYX_T_UNSET:-d.db}\n");
	ASSERT_EQ(c->server.port, 9191);
	ASSERT_STR_EQ(c->server.host, "h-local-e");
	ASSERT_STR_EQ(c->auth.jwt.secret, "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t");
	ASSERT_STR_EQ(c->auth.jwt.issuer, "x\n  port: 1\" # {a: b}");
	ASSERT_STR_EQ(c->auth.oauth.github.client_id, "");
	ASSERT(!c->auth.oauth.github.enabled);
	ASSERT_STR_EQ(c->database.path, "${literal}/d.db");
	alyx__config_free(c);
}

TEST(env_errors_keep_lines)
{
	setenv("ALYX_T_PORT", "nope", 1);
	/* The expanded value is re-quoted on its own line, so the error
	 * still points at the original line. */
	expect_err("server:\n  host: x\n  port: ${ALYX_T_PORT}\n",
		   ALYX_E_CONFIG, 3, 9,
		   "server.port: expected a whole number from 0 to 65535, got "
		   "'nope'");
	expect_err("server:\n  host: ${UNCLOSED\n", ALYX_E_CONFIG, 2, 9,
		   "without a closing");
	expect_err("server:\n  host: ${1BAD}\n", ALYX_E_CONFIG, 2, 9,
		   "bad variable name");
	expect_err("server:\n  host: |\n    ${X}\n", ALYX_E_CONFIG, 2, 9,
		   "only expanded in one-line values");
}

TEST(value_parsers)
{
	int64_t v;
	alyx__rate r;

	ASSERT(alyx__parse_duration_ms("500ms", &v) && v == 500);
	ASSERT(alyx__parse_duration_ms("1.5s", &v) && v == 1500);
	ASSERT(alyx__parse_duration_ms("7d", &v) && v == 604800000);
	ASSERT(!alyx__parse_duration_ms("7", &v));
	ASSERT(!alyx__parse_duration_ms("-1s", &v));
	ASSERT(!alyx__parse_duration_ms("5 fortnights", &v));
	ASSERT(alyx__parse_size("256mb", &v) && v == 256LL << 20);
	ASSERT(alyx__parse_size("1GiB", &v) && v == 1LL << 30);
	ASSERT(alyx__parse_size("4096", &v) && v == 4096);
	ASSERT(!alyx__parse_size("12xb", &v));
	ASSERT(alyx__parse_rate("5/minute", &r) && r.count == 5 &&
	       r.window_ms == 60000);
	ASSERT(!alyx__parse_rate("0/minute", &r));
	ASSERT(!alyx__parse_rate("5/week", &r));
	ASSERT(!alyx__parse_rate("five/minute", &r));
}

TEST(err_unknown_keys)
{
	expect_err("server:\n  prot: 1\n", ALYX_E_CONFIG, 2, 3,
		   "unknown key 'prot' in server (did you mean 'port'?)");
	expect_err("databse:\n  path: x\n", ALYX_E_CONFIG, 1, 1,
		   "unknown key 'databse' (did you mean 'database'?)");
	expect_err("auth:\n  jwt:\n    secrte: x\n", ALYX_E_CONFIG, 3, 5,
		   "in auth.jwt (did you mean 'secret'?)");
	expect_err("server: {port: 1}\nserver: {port: 2}\n", ALYX_E_CONFIG, 2,
		   1, "duplicate key 'server'");
	expect_err("server:\n  port: 1\n  port: 2\n", ALYX_E_CONFIG, 3, 3,
		   "duplicate key 'port'");
	expect_err("functions:\n  ruby: {}\n", ALYX_E_CONFIG, 2, 3,
		   "unknown key 'ruby' in functions (known: enabled, dir, ");
}

TEST(err_bad_values)
{
	expect_err("server:\n  port: 70000\n", ALYX_E_CONFIG, 2, 9,
		   "server.port: expected a whole number from 0 to 65535");
	expect_err("auth:\n  jwt:\n    access_ttl: 15\n", ALYX_E_CONFIG, 3,
		   17, "auth.jwt.access_ttl: expected a duration");
	expect_err("server: {max_body: lots}\n", ALYX_E_CONFIG, 1, 20,
		   "server.max_body: expected a size");
	expect_err("auth: {rate_limit: {login: 5/fortnight}}\n",
		   ALYX_E_CONFIG, 1, 28,
		   "auth.rate_limit.login: expected a rate like 5/minute");
	expect_err("functions:\n  runner: docker\n", ALYX_E_CONFIG, 2, 11,
		   "expected one of process, container, got 'docker'");
	expect_err("functions:\n  container: {pids_limit: 2}\n", ALYX_E_CONFIG,
		   2, 27, "functions.container.pids_limit");
	expect_err("functions:\n  transaction_timeout: 6s\n", ALYX_E_CONFIG,
		   2, 24, "functions.transaction_timeout: 6000 ms is more than "
		   "database.busy_timeout_ms (5000)");
	/* Unset, the bound stays 5 s whatever the busy timeout. */
	{
		alyx__config *c = load_ok("database: {busy_timeout_ms: 0}\n");

		ASSERT_EQ(c->functions.tx_timeout_ms, 5000);
		alyx__config_free(c);
	}
	expect_err("database: {busy_timeout_ms: 10000}\nfunctions:\n"
		   "  transaction_timeout: 50ms\n", ALYX_E_CONFIG, 3, 24,
		   "functions.transaction_timeout: expected a duration");
	expect_err("functions:\n  container: {start_timeout: 1ms}\n",
		   ALYX_E_CONFIG, 2, 30, "functions.container.start_timeout: "
		   "expected a duration like 500ms, 30s, 15m, 2h or 7d (at "
		   "least 100 ms)");
	expect_err("log: {level: loud}\n", ALYX_E_CONFIG, 1, 14,
		   "log.level: expected one of info, debug, warn, error");
	expect_err("dev: {watch: maybe}\n", ALYX_E_CONFIG, 1, 14,
		   "dev.watch: expected true or false");
	expect_err("auth:\n  jwt:\n    secret: short\n", ALYX_E_CONFIG, 3, 13,
		   "must be at least 32 characters");
	expect_err("server:\n  tls: {cert: a.pem}\n", ALYX_E_CONFIG, 2, 8,
		   "set both cert and key");
	expect_err("auth:\n  oauth:\n    google: {client_id: x}\n",
		   ALYX_E_CONFIG, 3, 13, "set both client_id and client_secret");
	expect_err("auth:\n  email: {webhook: ftp://x}\n", ALYX_E_CONFIG, 2,
		   20, "auth.email.webhook: expected an http:// or https://");
	expect_err("auth:\n  email: {webhook_secret: plain-text-secret}\n",
		   ALYX_E_CONFIG, 2, 27, "auth.email.webhook_secret: expected "
		   "whsec_ and the base64 of 24 to 64 random bytes");
	expect_err("auth:\n  email: {webhook_secret: whsec_a$b=}\n",
		   ALYX_E_CONFIG, 2, 27, "auth.email.webhook_secret: the text "
		   "after whsec_ is not base64");
	expect_err("auth:\n  email: {webhook_secret: whsec_c2hvcnQ=}\n",
		   ALYX_E_CONFIG, 2, 27, "auth.email.webhook_secret: must hold "
		   "24 to 64 key bytes (it holds 5)");
	expect_err("auth: {enabled: sometimes}\n", ALYX_E_CONFIG, 1, 17,
		   "auth.enabled: expected true or false");
	expect_err("auth: {oauth: {timeout: 1ms}}\n", ALYX_E_CONFIG, 1, 25,
		   "auth.oauth.timeout: expected a duration");
	expect_err("functions:\n  python: {min_warm: 5, max_instances: 2}\n",
		   ALYX_E_CONFIG, 2, 22, "min_warm 5 is more than max_instances");
	expect_err("dev: {generate: [cobol]}\n", ALYX_E_CONFIG, 1, 18,
		   "dev.generate[0]: expected typescript, go or python");
}

TEST(err_shapes_from_libcyaml)
{
	expect_err("server:\n  port: {a: 1}\n", ALYX_E_CONFIG, 2, 9,
		   "server.port: Expecting STRING");
	expect_err("server: [1, 2]\n", ALYX_E_CONFIG, 1, 9,
		   "server: Expecting MAPPING");
	expect_err("server:\n  cors:\n    origins: [a, [b]]\n", ALYX_E_CONFIG,
		   3, 18, "server.cors.origins[1]: Expecting STRING");
}

TEST(err_yaml_syntax_and_limits)
{
	alyx_buf b;
	alyx__config *c = NULL;
	alyx__err err = {0};

	expect_err("server:\n  port: [\n", ALYX_E_CONFIG, 3, 1,
		   "YAML syntax error");
	expect_err("server: &x {port: 1}\ndatabase: *x\n", ALYX_E_CONFIG, 1, 9,
		   "anchors and aliases are not supported");
	expect_err("just text\n", ALYX_E_CONFIG, 1, 1, "must be a mapping");
	alyx__buf_init(&b, 0);
	while (b.len <= (1 << 20))
		alyx__buf_adds(&b, "# padding padding padding padding\n");
	ASSERT_EQ(alyx__config_load(write_cfg(b.data), &c, &err),
		  ALYX_E_TOOBIG);
	cleanup();
	alyx__buf_free(&b);
	alyx__err_clear(&err);
}

/* Each allocation of a load, in turn, fails once: ALYX_E_NOMEM or the
 * same configuration, never another error or a half-filled one. */
TEST(allocation_failures)
{
	const char *path;
	alyx__config *c = NULL;
	alyx__err err = {0};
	char *want, *got;
	long n;
	int rc, failures = 0;

	setenv("ALYX_T_HOST", "10.0.0.1", 1);
	path = write_cfg("server:\n  host: ${ALYX_T_HOST}\n  cors: {origins: "
			 "[a, b]}\nauth:\n  oauth:\n    github: {client_id: "
			 "x, client_secret: y, scopes: [s1, s2]}\n"
			 "  email: {webhook_secret: "
			 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n"
			 "dev: {generate: [go]}\n");
	ASSERT_EQ(alyx__config_load(path, &c, &err), ALYX_OK);
	want = alyx__config_to_json(c, false);
	alyx__config_free(c);
	for (n = 1; n < 1500; n++) {
		c = NULL;
		alyx__fail_alloc_after(n);
		rc = alyx__config_load(path, &c, &err);
		alyx__fail_alloc_after(0);
		if (rc != ALYX_OK) {
			if (rc != ALYX_E_NOMEM)
				fprintf(stderr, "n=%ld: %s\n", n, err.msg);
			ASSERT_EQ(rc, ALYX_E_NOMEM);
			ASSERT(c == NULL);
			failures++;
			continue;
		}
		got = alyx__config_to_json(c, false);
		ASSERT_STR_EQ(got, want);
		alyx__free(got);
		alyx__config_free(c);
	}
	cleanup();
	ASSERT(failures > 50);
	alyx__err_clear(&err);
	alyx__free(want);
}

TEST(json_masks_secrets)
{
	alyx__config *c = load_ok(
		"auth:\n  jwt: {secret: 0123456789abcdef0123456789abcdef}\n"
		"  oauth: {github: {client_id: id1, client_secret: sec1}}\n"
		"  email: {webhook_secret: "
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n");
	char *j = alyx__config_to_json(c, true), *u;

	ASSERT(strstr(j, "0123456789abcdef") == NULL);
	ASSERT(strstr(j, "sec1") == NULL);
	ASSERT(strstr(j, "MfKQ9r8G") == NULL);
	ASSERT_CONTAINS(j, "\"webhook_secret\":\"********\"");
	ASSERT_CONTAINS(j, "\"jwt\":{\"secret\":\"********\",\"access_ttl\":"
			"900000,");
	ASSERT_CONTAINS(j, "\"client_id\":\"id1\",\"client_secret\":"
			"\"********\"");
	ASSERT_CONTAINS(j, "\"server\":{\"host\":\"127.0.0.1\",\"port\":8090,"
			"\"threads\":0,\"tls\":{},"
			"\"cors\":{\"origins\":[]},\"max_body\":1048576,");
	ASSERT_CONTAINS(j, "\"rate_limit\":{\"login\":\"5/minute\"");
	ASSERT_CONTAINS(j, "\"google\":{\"enabled\":false,\"client_id\":\"\","
			"\"client_secret\":\"\"");
	u = alyx__config_to_json(c, false);
	ASSERT_CONTAINS(u, "\"secret\":\"0123456789abcdef0123456789abcdef\"");
	ASSERT_CONTAINS(u, "\"client_secret\":\"sec1\"");
	ASSERT_CONTAINS(u, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
	alyx__free(j);
	alyx__free(u);
	alyx__config_free(c);
}

TEST_MAIN()
