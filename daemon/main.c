/*
 * alyxd - serves an Alyx project over HTTP (docs/alyxd.md).
 *
 * Parses flags and environment, opens the project and applies its schema,
 * runs the server until SIGTERM/SIGINT, then closes the project (which
 * checkpoints the WAL).  Everything else is libalyx.
 */
#include <errno.h>
#include <unistd.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d.h"

static const char usage[] =
"Usage: alyxd [--dir DIR] [--host H] [--port P] [--config FILE] [options]\n"
"\n"
"Serves the Alyx project in DIR (default: the current directory) over\n"
"HTTP until SIGTERM or SIGINT.  On start it applies pending migration\n"
"files and schema.yaml's safe changes; a destructive change refuses to\n"
"start (exit 5) with the list of changes that need a migration file.\n"
"\n"
"Options:\n"
"  -d, --dir DIR        the project directory (alyx.yaml, schema.yaml)\n"
"  -c, --config FILE    read the configuration from FILE instead of\n"
"                       DIR/alyx.yaml; without --dir, FILE's directory\n"
"                       is the project directory\n"
"  -H, --host H         bind address (env ALYX_HOST; default alyx.yaml\n"
"                       server.host, 127.0.0.1)\n"
"  -p, --port P         port, 0 for any free one (env ALYX_PORT; default\n"
"                       alyx.yaml server.port, 8090)\n"
"      --threads N      network threads (default: server.threads, else\n"
"                       one per CPU)\n"
"      --loop poll|ev   event loop (default: server.loop, else poll)\n"
"      --grace MS       shutdown grace for in-flight requests (10000)\n"
"      --log-format json|logfmt   log line format (json)\n"
"  -q, --quiet          no per-request log lines\n"
"  -V, --version        print the versions and exit\n"
"  -h, --help           show this help\n"
"\n"
"Exit codes: 0 stopped cleanly, 1 failure, 2 usage, 3 project or data\n"
"directory missing or not writable, 4 bad alyx.yaml or schema.yaml,\n"
"5 schema change needs a migration file, 6 cannot listen (port in use).\n";

static bool parse_int(const char *what, const char *s, long lo, long hi,
		      int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "alyxd: %s must be an integer in %ld..%ld, "
			"not '%s'\n", what, lo, hi, s);
		return false;
	}
	*out = (int)v;
	return true;
}

/* --config FILE: read the configuration from FILE instead of the
 * project's own alyx.yaml.  Without --dir, FILE's directory is the
 * project directory. */
static int resolve_config(struct d_opts *o, char *dirbuf, size_t n)
{
	char *slash;

	if (!o->config || o->dir)
		return D_EXIT_OK;
	if (access(o->config, R_OK) != 0) {
		fprintf(stderr, "alyxd: --config %s: %s\n", o->config,
			strerror(errno));
		return D_EXIT_CONFIG;
	}
	snprintf(dirbuf, n, "%s", o->config);
	slash = strrchr(dirbuf, '/');
	if (!slash)
		snprintf(dirbuf, n, ".");
	else if (slash == dirbuf)
		slash[1] = '\0';
	else
		*slash = '\0';
	o->dir = dirbuf;
	return D_EXIT_OK;
}

int main(int argc, char **argv)
{
	enum { O_THREADS = 256, O_LOOP, O_GRACE, O_LOGFMT };
	static const struct option longopts[] = {
		{"dir", required_argument, NULL, 'd'},
		{"config", required_argument, NULL, 'c'},
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"threads", required_argument, NULL, O_THREADS},
		{"loop", required_argument, NULL, O_LOOP},
		{"grace", required_argument, NULL, O_GRACE},
		{"log-format", required_argument, NULL, O_LOGFMT},
		{"quiet", no_argument, NULL, 'q'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct d_opts o = {
		.port = -1, .grace_ms = 10000, .log_format = ALYX_LOG_JSON,
		.loop = ALYX_SERVER_LOOP_DEFAULT,
	};
	char dirbuf[PATH_MAX];
	const char *env;
	alyx *a = NULL;
	int c, rc;

	/* Environment first; flags override it. */
	env = getenv("ALYX_HOST");
	if (env && *env)
		o.host = env;
	env = getenv("ALYX_PORT");
	if (env && *env && !parse_int("ALYX_PORT", env, 0, 65535, &o.port))
		return D_EXIT_USAGE;
	env = getenv("ALYX_BENCH_ROUTES");
	o.bench_routes = env && !strcmp(env, "1");

	for (;;) {
		c = getopt_long(argc, argv, "d:c:H:p:qVh", longopts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'd': o.dir = optarg; break;
		case 'c': o.config = optarg; break;
		case 'H': o.host = optarg; break;
		case 'p':
			if (!parse_int("--port", optarg, 0, 65535, &o.port))
				return D_EXIT_USAGE;
			break;
		case O_THREADS:
			if (!parse_int("--threads", optarg, 1, 64, &o.threads))
				return D_EXIT_USAGE;
			break;
		case O_LOOP:
			if (!strcmp(optarg, "poll"))
				o.loop = ALYX_SERVER_LOOP_POLL;
			else if (!strcmp(optarg, "ev"))
				o.loop = ALYX_SERVER_LOOP_EV;
			else {
				fprintf(stderr, "alyxd: --loop is poll or ev\n");
				return D_EXIT_USAGE;
			}
			break;
		case O_GRACE:
			if (!parse_int("--grace", optarg, 0, 3600000,
				       &o.grace_ms))
				return D_EXIT_USAGE;
			break;
		case O_LOGFMT:
			if (!strcmp(optarg, "json"))
				o.log_format = ALYX_LOG_JSON;
			else if (!strcmp(optarg, "logfmt"))
				o.log_format = ALYX_LOG_LOGFMT;
			else {
				fprintf(stderr,
					"alyxd: --log-format is json or logfmt\n");
				return D_EXIT_USAGE;
			}
			break;
		case 'q': o.quiet = true; break;
		case 'V':
			printf("alyxd %s (compiled with libalyx %s, linked with "
			       "libalyx %s)\n", ALYX_VERSION_STRING,
			       ALYX_VERSION_STRING, alyx_version_string());
			return D_EXIT_OK;
		case 'h':
			fputs(usage, stdout);
			return D_EXIT_OK;
		default:
			fputs(usage, stderr);
			return D_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "alyxd: unexpected argument '%s'\n%s",
			argv[optind], usage);
		return D_EXIT_USAGE;
	}
	rc = resolve_config(&o, dirbuf, sizeof(dirbuf));
	if (rc != D_EXIT_OK)
		return rc;
	if (!o.dir)
		o.dir = ".";
	d_log_init(o.log_format);
	d_log("info", "starting", "version", alyx_version_string(), "dir",
	      o.dir);

	rc = d_open_project(&o, &a);
	if (rc != D_EXIT_OK)
		return rc;
	rc = d_serve(&o, a);
	alyx_close(a);	/* checkpoints the WAL */
	d_log("info", rc == D_EXIT_OK ? "stopped" : "exiting", NULL, NULL,
	      NULL, NULL);
	return rc;
}
