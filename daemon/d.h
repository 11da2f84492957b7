/*
 * d.h - alyxd's pieces (daemon/d-*.c).  The daemon is a thin door: it
 * parses options, opens the project through the public API, applies the
 * schema, starts the server and waits for a signal on a libevent loop.
 */
#ifndef ALYXD_H
#define ALYXD_H

#include <stdbool.h>

#include <alyx.h>

/* Exit codes (docs/alyxd.md). */
enum {
	D_EXIT_OK = 0,
	D_EXIT_FAIL = 1,	/* unexpected failure */
	D_EXIT_USAGE = 2,	/* bad flags or environment values */
	D_EXIT_DATA = 3,	/* project or data directory missing or not
				 * writable */
	D_EXIT_CONFIG = 4,	/* bad alyx.yaml or schema.yaml */
	D_EXIT_MIGRATION = 5,	/* schema change needs a migration file */
	D_EXIT_LISTEN = 6	/* port in use, bad address, TLS files */
};

struct d_opts {
	const char *dir;	/* project directory */
	const char *config;	/* --config FILE, or NULL: DIR/alyx.yaml */
	const char *host;
	int port;		/* -1: config */
	int threads;		/* 0: config / cores */
	int grace_ms;
	int log_format;		/* ALYX_LOG_JSON / ALYX_LOG_LOGFMT */
	int loop;		/* ALYX_SERVER_LOOP_* */
	bool quiet;		/* no request log lines */
	bool bench_routes;	/* ALYX_BENCH_ROUTES=1 */
};

/* d-log.c: the daemon's own log lines, in the server's format, on stderr. */
void d_log_init(int format);
void d_log(const char *level, const char *msg, const char *k1,
	   const char *v1, const char *k2, const char *v2);
void d_log_int(const char *level, const char *msg, const char *k,
	       long long v);

/* d-project.c: open the project and bring its schema up to date. */
int d_open_project(const struct d_opts *o, alyx **out);

/* d-serve.c: start the server, wait for SIGTERM/SIGINT, stop. */
int d_serve(const struct d_opts *o, alyx *a);

/* Maps a libalyx status from start-up to an exit code. */
int d_exit_code(int alyx_rc);

#endif
