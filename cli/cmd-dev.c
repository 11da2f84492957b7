/*
 * cmd-dev.c - `alyx dev` and `alyx serve`: run the project's HTTP server
 * in the foreground until SIGINT or SIGTERM.  `dev` first applies
 * schema.yaml's safe changes, like the plan's development server.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"

#define SERVER_OPTIONS \
"Options:\n" \
"  -H, --host H      bind address (default: alyx.yaml server.host,\n" \
"                    127.0.0.1)\n" \
"  -p, --port P      port (default: alyx.yaml server.port, 8090; 0 picks\n" \
"                    a free port, printed at start)\n" \
"      --threads N   network threads (default: one per CPU)\n" \
"  -q, --quiet       no request log\n" \
"  -C, --dir DIR     the project directory (default: the current one)\n" \
"  -h, --help        show this help\n"

static const char dev_usage[] =
"Usage: alyx dev [--host H] [--port P] [options]\n"
"\n"
"Applies schema.yaml to the database (safe changes only: a destructive\n"
"change is refused with the list of what needs a migration file, exit 5)\n"
"and runs the REST server in the foreground until Ctrl-C.  Request logs\n"
"go to standard error.\n"
"\n"
SERVER_OPTIONS;

static const char serve_usage[] =
"Usage: alyx serve [--host H] [--port P] [options]\n"
"\n"
"Runs the REST server for the project in the foreground until SIGINT or\n"
"SIGTERM, with the schema as last applied (see 'alyx migrate apply').\n"
"Request logs go to standard error as JSON lines.\n"
"\n"
SERVER_OPTIONS;

enum { O_HOST = 1, O_PORT, O_THREADS, O_QUIET };

static const struct cli_opt opts[] = {
	CLI_COMMON_OPTS,
	{"host", 'H', ARG_REQUIRED, O_HOST},
	{"port", 'p', ARG_REQUIRED, O_PORT},
	{"threads", 0, ARG_REQUIRED, O_THREADS},
	{"quiet", 'q', ARG_NONE, O_QUIET},
	{0},
};

/* "[08:30:15] " then the message, on stdout, flushed at once so a
 * supervising program sees each line as it happens. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char stamp[16];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	printf("[%s] ", stamp);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int parse_int(struct cli *g, const char *opt, const char *s, int lo,
		     int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return cli_usage_error(g, "%s must be a number from %d to %d, "
				       "not '%s'", opt, lo, hi, s);
	*out = (int)v;
	return CLI_CONTINUE;
}

/* Applies schema.yaml (safe changes) and reports what changed. */
static int apply_schema(struct cli *g, alyx *a)
{
	char path[PATH_MAX], *yaml = NULL, *plan = NULL, *sj = NULL;
	size_t len;
	cj *p = NULL, *s = NULL;
	const cj *changes;
	int rc;

	snprintf(path, sizeof(path), "%s/schema.yaml", alyx_project_dir(a));
	rc = cli_read_file(g, path, &yaml, &len);
	if (rc != CLI_OK)
		return rc;
	rc = alyx_apply_schema(a, yaml, len, "schema.yaml", 0, &plan);
	if (rc != ALYX_OK) {
		rc = cli_lib_error(g, a, rc);
		goto out;
	}
	rc = alyx_schema_json(a, &sj);
	if (rc != ALYX_OK) {
		rc = cli_lib_error(g, a, rc);
		goto out;
	}
	s = cj_parse(sj, strlen(sj));
	p = cj_parse(plan, strlen(plan));
	{
		size_t n = cj_count(cj_get(s, "collections"));

		say("\xe2\x9c\x93 Schema loaded (%zu collection%s)", n,
		    n == 1 ? "" : "s");
	}
	changes = cj_get(p, "changes");
	for (const cj *c = changes ? changes->kid : NULL; c; c = c->next) {
		const char *d = cj_getstr(c, "description");

		say("  %s%s", d && cli_has_marker(d) ? "" : "+ ",
		    d ? d : cj_text(cj_get(c, "op")));
	}
	if (cj_count(changes))
		say("  \xe2\x9c\x93 Migration applied");
	rc = CLI_OK;
out:
	cj_free(p);
	cj_free(s);
	alyx_free(sj);
	alyx_free(plan);
	free(yaml);
	return rc;
}

#define SECRET_FILE "jwt-secret"
#define SECRET_HEX 64		/* 32 random bytes */

/* The secret kept in `path` (64 hex digits), made on first use with
 * mode 0600.  A file others may read is refused. */
static int dev_secret_file(struct cli *g, const char *path,
			   char out[SECRET_HEX + 1], bool *made)
{
	unsigned char r[SECRET_HEX / 2];
	struct stat st;
	ssize_t n;
	int fd;

	*made = false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return cli_error(g, CLI_FAIL, "IO_ERROR",
					 "no random bytes for the JWT secret");
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(out + 2 * i, 3, "%02x", r[i]);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, out, SECRET_HEX) != SECRET_HEX ||
		    fsync(fd) != 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			unlink(path);
			return cli_error(g, CLI_FAIL, "IO_ERROR",
					 "cannot write %s: %s", path,
					 strerror(e));
		}
		close(fd);
		*made = true;
		return CLI_OK;
	}
	if (fd < 0)
		return cli_error(g, CLI_FAIL, "IO_ERROR", "cannot read %s: %s",
				 path, strerror(errno));
	if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
		close(fd);
		return cli_error(g, CLI_FAIL, "IO_ERROR",
				 "%s may be read by other users; make it "
				 "private (chmod 600 %s)", path, path);
	}
	n = read(fd, out, SECRET_HEX + 1);
	close(fd);
	if (n < 32 || n > SECRET_HEX)
		return cli_error(g, CLI_FAIL, "IO_ERROR",
				 "%s does not hold a JWT secret (32 to %d "
				 "bytes); delete it to make a new one", path,
				 SECRET_HEX);
	out[n] = '\0';
	return CLI_OK;
}

/* alyx dev without auth.jwt.secret in alyx.yaml: the project's own
 * generated secret from the data directory (docs/auth.md). */
static int dev_secret(struct cli *g, alyx *a)
{
	char *cfg = NULL, dir[PATH_MAX], path[PATH_MAX + 16];
	char secret[SECRET_HEX + 1];
	const cj *auth;
	const char *set;
	bool made, enabled;
	cj *c = NULL;
	int rc;

	if (alyx_config_json(a, &cfg) != ALYX_OK)
		return cli_lib_error(g, a, alyx_errcode(a));
	c = cj_parse(cfg, strlen(cfg));
	auth = cj_get(c, "auth");
	set = cj_getstr(cj_get(auth, "jwt"), "secret");
	enabled = cj_gettrue(auth, "enabled");
	rc = CLI_OK;
	if (!enabled || (set && *set))
		goto out;
	snprintf(dir, sizeof(dir), "%s", alyx_db_path(a));
	snprintf(path, sizeof(path), "%s/" SECRET_FILE, dirname(dir));
	rc = dev_secret_file(g, path, secret, &made);
	if (rc != CLI_OK)
		goto out;
	if (alyx_auth_default_secret(a, secret) != ALYX_OK) {
		rc = cli_lib_error(g, a, alyx_errcode(a));
		goto out;
	}
	say("\xe2\x9c\x93 JWT secret: %s (%s; set auth.jwt.secret for "
	    "production)", path, made ? "generated" : "kept from an earlier "
	    "run");
out:
	explicit_bzero(secret, sizeof(secret));
	cj_free(c);
	alyx_free(cfg);
	return rc;
}

static int run(struct cli *g, int argc, char **argv, bool dev)
{
	struct cli_parser p;
	alyx_server_options o;
	alyx_server *srv = NULL;
	alyx *a = NULL;
	sigset_t sigs, old;
	const char *arg, *host;
	bool quiet = false, blocked = false;
	int id, rc, sig = 0;

	g->usage = dev ? dev_usage : serve_usage;
	alyx_server_options_init(&o);
	cli_parser_init(&p, g, argc, argv, opts);
	while ((id = cli_next(&p, &arg)) != OPT_END) {
		rc = CLI_CONTINUE;
		switch (id) {
		case OPT_POS:
			return cli_usage_error(g, "unexpected argument '%s'",
					       arg);
		case O_HOST: o.host = arg; break;
		case O_PORT:
			rc = parse_int(g, "--port", arg, 0, 65535, &o.port);
			break;
		case O_THREADS:
			rc = parse_int(g, "--threads", arg, 1, 256, &o.threads);
			break;
		case O_QUIET: quiet = true; break;
		default: rc = cli_common(g, id, arg); break;
		}
		if (rc != CLI_CONTINUE)
			return rc;
	}
	o.log_fd = quiet ? -1 : 2;
	o.log_format = dev ? ALYX_LOG_LOGFMT : ALYX_LOG_JSON;

	if (dev)
		say("Starting Alyx dev server...");
	rc = cli_open(g, dev ? ALYX_OPEN_CREATE : 0, &a);
	if (rc != CLI_OK)
		goto out;
	if (dev && (rc = apply_schema(g, a)) != CLI_OK)
		goto out;
	if (dev && (rc = dev_secret(g, a)) != CLI_OK)
		goto out;
	if (dev)
		o.flags |= ALYX_SERVER_DEV;

	/* The server's threads inherit this mask, so the signals come only
	 * to sigwait() below. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	blocked = true;
	rc = alyx_server_start(a, &o, &srv);
	if (rc != ALYX_OK) {
		rc = cli_lib_error(g, a, rc);
		goto out;
	}
	host = o.host ? o.host : NULL;
	{
		char *cfg = NULL;
		cj *c = NULL;

		if (!host && alyx_config_json(a, &cfg) == ALYX_OK) {
			c = cj_parse(cfg, strlen(cfg));
			host = cj_getstr(cj_get(c, "server"), "host");
		}
		say("\xe2\x9c\x93 Server running at http://%s:%d",
		    host ? host : "127.0.0.1", alyx_server_port(srv));
		say("  REST API:  http://%s:%d/api/collections/<name>",
		    host ? host : "127.0.0.1", alyx_server_port(srv));
		say("  Database:  %s", alyx_db_path(a));
		say("Press Ctrl-C to stop.");
		cj_free(c);
		alyx_free(cfg);
	}
	while (sigwait(&sigs, &sig) != 0)
		;
	say("Stopping (%s)...", sig == SIGINT ? "SIGINT" : "SIGTERM");
	rc = alyx_server_stop(srv, 5000);
	rc = rc == ALYX_OK ? CLI_OK : cli_lib_error(g, a, rc);
	if (rc == CLI_OK)
		say("Stopped.");
out:
	alyx_server_free(srv);
	alyx_close(a);
	if (blocked)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int cmd_dev(struct cli *g, int argc, char **argv)
{
	return run(g, argc, argv, true);
}

int cmd_serve(struct cli *g, int argc, char **argv)
{
	return run(g, argc, argv, false);
}
