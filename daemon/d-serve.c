/*
 * d-serve.c - runs the server until SIGTERM or SIGINT on a libevent loop,
 * then shuts down gracefully: stop accepting, let in-flight requests
 * finish within the grace bound, let the writer commit what it queued.
 * (alyx_close() afterwards checkpoints the WAL.)
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "d.h"

struct serve {
	struct event_base *base;
	int sig;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct serve *sv = arg;

	(void)what;
	sv->sig = (int)sig;
	event_base_loopbreak(sv->base);
}

static int start_exit_code(int rc)
{
	switch (rc) {
	case ALYX_E_IO: return D_EXIT_LISTEN;	/* port in use, bind */
	case ALYX_E_CONFIG: return D_EXIT_CONFIG;
	case ALYX_E_MISUSE: return D_EXIT_USAGE;
	default: return D_EXIT_FAIL;
	}
}

int d_serve(const struct d_opts *o, alyx *a)
{
	struct serve sv = {0};
	struct event *ev_term = NULL, *ev_int = NULL;
	alyx_server_options so;
	alyx_server *srv = NULL;
	sigset_t block, old;
	int rc = D_EXIT_OK;

	signal(SIGPIPE, SIG_IGN);
	sv.base = event_base_new();
	if (!sv.base) {
		d_log("error", "cannot create the event loop", NULL, NULL,
		      NULL, NULL);
		return D_EXIT_FAIL;
	}
	ev_term = evsignal_new(sv.base, SIGTERM, on_signal, &sv);
	ev_int = evsignal_new(sv.base, SIGINT, on_signal, &sv);
	if (!ev_term || !ev_int || evsignal_add(ev_term, NULL) ||
	    evsignal_add(ev_int, NULL)) {
		d_log("error", "cannot watch signals", NULL, NULL, NULL, NULL);
		rc = D_EXIT_FAIL;
		goto out;
	}

	alyx_server_options_init(&so);
	so.host = o->host;
	so.port = o->port;
	so.threads = o->threads;
	so.loop = o->loop;
	so.log_fd = o->quiet ? -1 : 2;
	so.log_format = o->log_format;
	if (o->bench_routes)
		so.flags |= ALYX_SERVER_BENCH_ROUTES;
	/* The server's threads inherit a mask without the stop signals, so
	 * they reach this thread's libevent handler. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int src = alyx_server_start(a, &so, &srv);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (src != ALYX_OK) {
		d_log("error", "cannot start the server", "error",
		      alyx_errmsg(a), "details", alyx_errdetails(a));
		rc = start_exit_code(src);
		goto out;
	}
	char port[16], url[300];
	snprintf(port, sizeof(port), "%d", alyx_server_port(srv));
	snprintf(url, sizeof(url), "http://%s:%d", o->host ? o->host
		 : "<alyx.yaml server.host>", alyx_server_port(srv));
	d_log("info", "listening", "port", port, o->host ? "url" : NULL, url);

	event_base_dispatch(sv.base);

	d_log("info", "shutting down", "signal",
	      sv.sig == SIGINT ? "SIGINT" : sv.sig == SIGTERM ? "SIGTERM"
							      : "none",
	      NULL, NULL);
	if (alyx_server_stop(srv, o->grace_ms) == ALYX_E_TIMEOUT)
		d_log_int("warn", "requests were still running when the "
			  "grace period ended; their connections were closed",
			  "grace_ms", o->grace_ms);
out:
	alyx_server_free(srv);
	if (ev_term)
		event_free(ev_term);
	if (ev_int)
		event_free(ev_int);
	event_base_free(sv.base);
	return rc;
}
