/*
 * server.c - alyx_server_start/port/stop/free: effective settings (options
 * over alyx.yaml `server:` over defaults), the listening sockets (one
 * SO_REUSEPORT socket per service thread: Debian's libwebsockets is built
 * with LWS_MAX_SMP 1 and cannot share a port between contexts itself,
 * see notes/perf-limits.md §A), the threads, graceful stop, and log
 * lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/config.h"
#include "core/handle.h"
#include "http/http.h"

#define DEF_HOST "127.0.0.1"
#define DEF_PORT 8090
#define DEF_MAX_BODY (1024u * 1024u)
#define DEF_MAX_HEADER 8192u
#define MAX_MAX_HEADER 65535u	/* lws keeps header sizes in 16 bits */
#define DEF_TIMEOUT_MS 10000
#define MAX_THREADS 64

ALYX_API void alyx_server_options_init(alyx_server_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	o->version = ALYX_SERVER_OPTIONS_VERSION;
	o->port = -1;
	o->loop = ALYX_SERVER_LOOP_DEFAULT;
	o->log_fd = -1;
	o->log_format = ALYX_LOG_JSON;
}

/* ---- settings from alyx.yaml `server:` ---- */

/* Allowed CORS origins from "a,b" text or an array of strings. */
static int set_cors(alyx_server *s, const char *text, char *const *arr,
		    size_t n_arr, alyx__err *err)
{
	size_t n = 0, cap = 4, ai = 0;
	char **v = alyx__calloc(cap + 1, sizeof(*v));
	const char *p = text;
	int rc = ALYX_OK;

	if (!v)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	for (;;) {
		char *o = NULL;
		if (arr) {
			if (ai == n_arr)
				break;
			o = alyx__strdup(arr[ai++]);
		} else {
			if (!p || !*p)
				break;
			const char *e = strchr(p, ',');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			while (len && (*p == ' ' || *p == '\t')) {
				p++;
				len--;
			}
			while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
				len--;
			o = alyx__strndup(p, len);
			p = e ? e + 1 : NULL;
		}
		if (!o) {
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
		if (!*o) {
			alyx__free(o);
			continue;
		}
		if (!strcmp(o, "*"))
			s->cors_any = true;
		if (n == cap) {
			char **nv = alyx__realloc(v, (cap * 2 + 1) * sizeof(*v));
			if (!nv) {
				alyx__free(o);
				rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
						   "out of memory");
				goto out;
			}
			v = nv;
			cap *= 2;
		}
		v[n++] = o;
		v[n] = NULL;
	}
out:
	if (rc != ALYX_OK) {
		for (size_t i = 0; i < n; i++)
			alyx__free(v[i]);
		alyx__free(v);
		return rc;
	}
	s->cors = v;
	return ALYX_OK;
}

static void free_cors(alyx_server *s)
{
	for (char **p = s->cors; p && *p; p++)
		alyx__free(*p);
	alyx__free(s->cors);
	s->cors = NULL;
	s->cors_any = false;
}

/* The project's alyx.yaml `server:` section (validated by alyx_open). */
static int load_config(alyx_server *s, alyx__err *err)
{
	const alyx__config *c = s->a->cfg;

	if (!c)
		return ALYX_OK;
	if (c->server.host && *c->server.host) {
		alyx__free(s->host);
		s->host = alyx__strdup(c->server.host);
	}
	if (c->server.port < 0 || c->server.port > 65535)
		return alyx__err_set(err, ALYX_E_CONFIG, NULL,
				     "alyx.yaml: server.port %d is out of range",
				     c->server.port);
	s->port = c->server.port;
	if (c->server.threads < 0 || c->server.threads > MAX_THREADS)
		return alyx__err_set(err, ALYX_E_CONFIG, NULL,
				     "alyx.yaml: server.threads must be 0..%d",
				     MAX_THREADS);
	s->nthreads = c->server.threads;
	if (c->server.tls_cert && *c->server.tls_cert)
		s->tls_cert = alyx__strdup(c->server.tls_cert);
	if (c->server.tls_key && *c->server.tls_key)
		s->tls_key = alyx__strdup(c->server.tls_key);
	if (c->server.n_cors_origins) {
		int rc = set_cors(s, NULL, c->server.cors_origins,
				  c->server.n_cors_origins, err);
		if (rc != ALYX_OK)
			return rc;
	}
	if (c->server.max_body > 0)
		s->max_body = (size_t)c->server.max_body;
	if (c->server.max_header > 0)
		s->max_header = (size_t)c->server.max_header;
	if (c->server.request_timeout_ms > 0)
		s->timeout_ms = c->server.request_timeout_ms > 3600000
				? 3600000 : (int)c->server.request_timeout_ms;
	if (c->server.loop && *c->server.loop) {
		if (!strcmp(c->server.loop, "poll"))
			s->loop = ALYX_SERVER_LOOP_POLL;
		else if (!strcmp(c->server.loop, "ev"))
			s->loop = ALYX_SERVER_LOOP_EV;
		else
			return alyx__err_set(err, ALYX_E_CONFIG, NULL,
				"alyx.yaml: server.loop must be poll or ev");
	}
	return ALYX_OK;
}

static int apply_options(alyx_server *s, const alyx_server_options *o,
			 alyx__err *err)
{
	if (!o)
		return ALYX_OK;
	if (o->version < 1)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
			"alyx_server_options.version must be set (use "
			"alyx_server_options_init)");
	if (o->host) {
		alyx__free(s->host);
		s->host = alyx__strdup(o->host);
	}
	if (o->port > 65535 || o->port < -1)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "port %d is out of range", o->port);
	if (o->port >= 0)
		s->port = o->port;
	if (o->threads < 0 || o->threads > MAX_THREADS)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "threads must be 0..%d", MAX_THREADS);
	if (o->threads)
		s->nthreads = o->threads;
	if (o->tls_cert) {
		alyx__free(s->tls_cert);
		s->tls_cert = *o->tls_cert ? alyx__strdup(o->tls_cert) : NULL;
	}
	if (o->tls_key) {
		alyx__free(s->tls_key);
		s->tls_key = *o->tls_key ? alyx__strdup(o->tls_key) : NULL;
	}
	if (o->cors_origins) {
		free_cors(s);
		int rc = set_cors(s, o->cors_origins, NULL, 0, err);
		if (rc != ALYX_OK)
			return rc;
	}
	if (o->max_body)
		s->max_body = o->max_body;
	if (o->max_header)
		s->max_header = o->max_header;
	if (o->request_timeout_ms < 0)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "request_timeout_ms must be >= 0");
	if (o->request_timeout_ms)
		s->timeout_ms = o->request_timeout_ms;
	if (o->loop != ALYX_SERVER_LOOP_DEFAULT) {
		if (o->loop != ALYX_SERVER_LOOP_POLL &&
		    o->loop != ALYX_SERVER_LOOP_EV)
			return alyx__err_set(err, ALYX_E_MISUSE, NULL,
					     "unknown event loop %d", o->loop);
		s->loop = o->loop;
	}
	s->log_fd = o->log_fd;
	s->log_format = o->log_format == ALYX_LOG_LOGFMT ? ALYX_LOG_LOGFMT
							 : ALYX_LOG_JSON;
	s->log_cb = o->log_cb;
	s->log_ud = o->log_user_data;
	s->flags = o->flags;
	return ALYX_OK;
}

static int check_settings(alyx_server *s, alyx__err *err)
{
	if (!s->host)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	if (!s->nthreads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		s->nthreads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS
							  : (int)n;
	}
	if (!s->tls_cert != !s->tls_key)
		return alyx__err_set(err, ALYX_E_CONFIG, NULL,
			"TLS needs both a certificate and a key file");
	for (int i = 0; i < 2; i++) {
		const char *f = i ? s->tls_key : s->tls_cert;
		if (f && access(f, R_OK) != 0)
			return alyx__err_set(err, ALYX_E_CONFIG, NULL,
				"TLS %s file %s cannot be read: %s",
				i ? "key" : "certificate", f, strerror(errno));
	}
	if (s->max_header < 1024 || s->max_header > MAX_MAX_HEADER)
		return alyx__err_set(err, ALYX_E_CONFIG, NULL,
			"max_header must be between 1024 and %u bytes",
			MAX_MAX_HEADER);
	if (s->max_body < 64)
		return alyx__err_set(err, ALYX_E_CONFIG, NULL,
				     "max_body must be at least 64 bytes");
	if (s->timeout_ms < 100)
		return alyx__err_set(err, ALYX_E_CONFIG, NULL,
				     "request_timeout must be at least 100 ms");
	/* A server hands out and checks tokens: it needs the key for them
	 * (alyx dev makes one; a project without accounts says so). */
	if (s->a->cfg->auth.enabled &&
	    strlen(s->a->cfg->auth.jwt.secret) < ALYX_AUTH_SECRET_MIN)
		return alyx__err_set(err, ALYX_E_CONFIG,
			"{\"key\":\"auth.jwt.secret\"}",
			"auth.jwt.secret is not set: alyx.yaml needs a JWT "
			"secret of at least %d bytes (the templates read "
			"${JWT_SECRET}), or auth.enabled: false for a project "
			"without accounts", ALYX_AUTH_SECRET_MIN);
	return ALYX_OK;
}

/* ---- listening sockets ---- */

static int bind_socket(const char *host, int port, bool reuseport, int *out,
		       alyx__err *err)
{
	struct addrinfo hints = {0}, *res = NULL;
	char portstr[16];
	int fd = -1, one = 1, rc = ALYX_OK;

	*out = -1;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	int g = getaddrinfo(host, portstr, &hints, &res);
	if (g) {
		rc = alyx__err_set(err, ALYX_E_CONFIG, NULL,
				   "cannot resolve host '%s': %s", host,
				   gai_strerror(g));
		goto out;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		rc = alyx__err_set(err, ALYX_E_IO, NULL, "socket: %s",
				   strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) {
		rc = alyx__err_set(err, ALYX_E_IO, NULL, "SO_REUSEPORT: %s",
				   strerror(errno));
		goto out;
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen)) {
		int e = errno;
		if (e == EADDRINUSE)
			rc = alyx__err_set(err, ALYX_E_IO,
				"{\"reason\":\"port_in_use\"}",
				"port %d on %s is already in use", port, host);
		else
			rc = alyx__err_set(err, ALYX_E_IO, NULL,
				"cannot bind %s:%d: %s", host, port,
				strerror(e));
		goto out;
	}
	*out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	return rc;
}

static int open_listeners(alyx_server *s, alyx__err *err)
{
	int rc = ALYX_OK;

	/* Probe without SO_REUSEPORT first: another process listening with
	 * SO_REUSEPORT under our uid would otherwise silently share the
	 * port instead of being reported as "in use". */
	if (s->port) {
		int probe;
		rc = bind_socket(s->host, s->port, false, &probe, err);
		if (rc != ALYX_OK)
			return rc;
		close(probe);
	}
	for (int i = 0; i < s->nthreads; i++) {
		alyx__svc *t = &s->svcs[i];
		rc = bind_socket(s->host, s->port, true, &t->listen_fd, err);
		if (rc != ALYX_OK)
			return rc;
		if (listen(t->listen_fd, 1024)) {
			return alyx__err_set(err, ALYX_E_IO, NULL,
					     "listen: %s", strerror(errno));
		}
		if (!s->port) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			if (getsockname(t->listen_fd, (struct sockaddr *)&ss,
					&sl))
				return alyx__err_set(err, ALYX_E_IO, NULL,
					"getsockname: %s", strerror(errno));
			s->port = ntohs(ss.ss_family == AF_INET6
				? ((struct sockaddr_in6 *)&ss)->sin6_port
				: ((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	return ALYX_OK;
}

/* ---- lifecycle ---- */

static void server_release(alyx_server *s)
{
	if (!s)
		return;
	for (int i = 0; s->svcs && i < s->nthreads; i++)
		alyx__svc_destroy(&s->svcs[i]);
	alyx__free(s->svcs);
	alyx__free(s->host);
	alyx__free(s->tls_cert);
	alyx__free(s->tls_key);
	free_cors(s);
	alyx__free(s->oa_schema);
	alyx__free(s->oa_doc);
	pthread_mutex_destroy(&s->wmu);
	pthread_cond_destroy(&s->wcv);
	pthread_mutex_destroy(&s->ckpt_mu);
	pthread_cond_destroy(&s->ckpt_cv);
	pthread_mutex_destroy(&s->stop_mu);
	pthread_mutex_destroy(&s->oa_mu);
	pthread_mutex_destroy(&s->omu);
	pthread_cond_destroy(&s->ocv);
	alyx__free(s);
}

static void join_all(alyx_server *s)
{
	for (int i = 0; s->svcs && i < s->nthreads; i++) {
		alyx__svc *t = &s->svcs[i];
		if (!t->started)
			continue;
		atomic_store(&t->quit, true);
		lws_cancel_service(t->ctx);
		pthread_join(t->th, NULL);
		t->started = false;
	}
}

ALYX_API int alyx_server_start(alyx *a, const alyx_server_options *o,
			       alyx_server **out)
{
	alyx__err err = {0};
	alyx_server *s = NULL;
	int rc = ALYX_OK;

	if (out)
		*out = NULL;
	if (!a || !out) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "alyx_server_start: NULL argument");
		goto out;
	}
	s = alyx__calloc(1, sizeof(*s));
	if (!s) {
		rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	s->a = a;
	s->host = alyx__strdup(DEF_HOST);
	s->port = DEF_PORT;
	s->max_body = DEF_MAX_BODY;
	s->max_header = DEF_MAX_HEADER;
	s->timeout_ms = DEF_TIMEOUT_MS;
	s->loop = ALYX_SERVER_LOOP_POLL;
	s->log_fd = -1;
	s->started_ms = alyx__now_ms();
	pthread_mutex_init(&s->wmu, NULL);
	pthread_cond_init(&s->wcv, NULL);
	pthread_mutex_init(&s->ckpt_mu, NULL);
	pthread_cond_init(&s->ckpt_cv, NULL);
	pthread_mutex_init(&s->stop_mu, NULL);
	pthread_mutex_init(&s->oa_mu, NULL);
	pthread_mutex_init(&s->omu, NULL);
	pthread_cond_init(&s->ocv, NULL);

	rc = load_config(s, &err);
	if (rc == ALYX_OK)
		rc = apply_options(s, o, &err);
	if (rc == ALYX_OK)
		rc = check_settings(s, &err);
	if (rc != ALYX_OK)
		goto out;

	s->svcs = alyx__calloc((size_t)s->nthreads, sizeof(*s->svcs));
	if (!s->svcs) {
		rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	for (int i = 0; i < s->nthreads; i++) {
		s->svcs[i].srv = s;
		s->svcs[i].index = i;
		s->svcs[i].listen_fd = -1;
		pthread_mutex_init(&s->svcs[i].done_mu, NULL);
	}
	rc = open_listeners(s, &err);
	if (rc != ALYX_OK)
		goto out;
	/* Before the contexts: their realtime protocol reads s->ws. */
	rc = alyx__ws_start(s, &err);
	if (rc != ALYX_OK)
		goto out;
	for (int i = 0; i < s->nthreads && rc == ALYX_OK; i++)
		rc = alyx__svc_init(&s->svcs[i], &err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__writer_start(s, &err);
	if (rc == ALYX_OK)
		rc = alyx__outbound_start(s, &err);
	if (rc == ALYX_OK)
		rc = alyx__fnq_start(s, &err);
	if (rc != ALYX_OK)
		goto out;
	for (int i = 0; i < s->nthreads; i++) {
		alyx__svc *t = &s->svcs[i];
		int e = pthread_create(&t->th, NULL, alyx__svc_main, t);
		if (e) {
			rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL,
					   "cannot start a thread: %s",
					   strerror(e));
			goto out;
		}
		t->started = true;
	}
	*out = s;
	s = NULL;
out:
	if (s) {
		alyx__fnq_stop(s);
		join_all(s);
		alyx__outbound_stop(s);
		alyx__writer_stop(s);
		alyx__ws_stop(s);
		server_release(s);
	}
	rc = alyx__report(a, &err);
	alyx__err_clear(&err);
	return rc;
}

ALYX_API int alyx_server_port(const alyx_server *s)
{
	return s ? s->port : -1;
}

ALYX_API int alyx_server_stop(alyx_server *s, int grace_ms)
{
	int rc = ALYX_OK;

	if (!s)
		return ALYX_E_MISUSE;
	pthread_mutex_lock(&s->stop_mu);
	if (s->stopped)
		goto out;
	/* 1. stop accepting; new requests get 503 (the service threads
	 *    close their listeners when they see `stopping`). */
	atomic_store(&s->stopping, true);
	for (int i = 0; i < s->nthreads; i++)
		lws_cancel_service(s->svcs[i].ctx);
	/* 2. let in-flight requests finish within the bound. */
	int64_t deadline = alyx__mono_ms() + (grace_ms > 0 ? grace_ms : 0);
	while (atomic_load(&s->inflight) > 0 && alyx__mono_ms() < deadline) {
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&s->inflight) > 0)
		rc = ALYX_E_TIMEOUT;
	/* 3. the outbound workers finish their requests (each bounded);
	 *    the writer commits everything queued, then exits; their last
	 *    answers still reach live contexts. */
	alyx__outbound_stop(s);
	alyx__writer_stop(s);
	/* 3b. function calls and their internal requests finish (each
	 *     bounded by its function's timeout) and are answered. */
	alyx__fnq_stop(s);
	/* 4. the service threads exit and destroy their contexts, closing
	 *    every connection (and ending their subscriptions). */
	join_all(s);
	/* 5. the realtime dispatch thread. */
	alyx__ws_stop(s);
	s->stopped = true;
out:
	pthread_mutex_unlock(&s->stop_mu);
	return rc;
}

ALYX_API void alyx_server_free(alyx_server *s)
{
	if (!s)
		return;
	alyx_server_stop(s, 5000);
	server_release(s);
}

/* ---- log lines ---- */

static void add_logfmt_value(alyx_buf *b, const char *v)
{
	bool quote = !*v;
	for (const char *p = v; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    (unsigned char)*p < 0x20)
			quote = true;
	if (!quote) {
		alyx__buf_adds(b, v);
		return;
	}
	/* A JSON string is a valid quoted logfmt value. */
	alyx__json_strz(b, v);
}

void alyx__log_begin(alyx_server *s, alyx_buf *b, const char *level,
		     const char *msg)
{
	char ts[25];

	alyx__iso8601_ms(alyx__now_ms(), ts);
	if (s->log_format == ALYX_LOG_LOGFMT) {
		alyx__buf_addf(b, "ts=%s level=%s msg=", ts, level);
		add_logfmt_value(b, msg);
	} else {
		alyx__buf_addf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":",
			       ts, level);
		alyx__json_strz(b, msg);
	}
}

void alyx__log_kv(alyx_server *s, alyx_buf *b, const char *k, const char *v)
{
	if (s->log_format == ALYX_LOG_LOGFMT) {
		alyx__buf_addf(b, " %s=", k);
		add_logfmt_value(b, v ? v : "");
	} else {
		alyx__buf_addf(b, ",\"%s\":", k);
		alyx__json_strz(b, v);
	}
}

void alyx__log_kvi(alyx_server *s, alyx_buf *b, const char *k, int64_t v)
{
	if (s->log_format == ALYX_LOG_LOGFMT)
		alyx__buf_addf(b, " %s=%lld", k, (long long)v);
	else
		alyx__buf_addf(b, ",\"%s\":%lld", k, (long long)v);
}

void alyx__log_end(alyx_server *s, alyx_buf *b)
{
	if (s->log_format != ALYX_LOG_LOGFMT)
		alyx__buf_addc(b, '}');
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;	/* a broken log sink must not stop serving */
		p += w;
		n -= (size_t)w;
	}
}

void alyx__srv_log(alyx_server *s, alyx__svc *t, int level, alyx_buf *line)
{
	if (line->err)
		return;
	if (s->log_cb)
		s->log_cb(s->log_ud, level, line->data, line->len);
	if (s->log_fd < 0)
		return;
	if (t) {
		alyx__buf_add(&t->logbuf, line->data, line->len);
		alyx__buf_addc(&t->logbuf, '\n');
		if (t->logbuf.len >= 32 * 1024 || level == ALYX_LOG_ERROR)
			alyx__log_flush(t);
		return;
	}
	alyx__buf_addc(line, '\n');
	write_all(s->log_fd, line->data, line->len);
	line->len--;
	line->data[line->len] = '\0';
}

void alyx__log_flush(alyx__svc *t)
{
	if (!t->logbuf.len)
		return;
	if (!t->logbuf.err && t->srv->log_fd >= 0)
		write_all(t->srv->log_fd, t->logbuf.data, t->logbuf.len);
	alyx__buf_reset(&t->logbuf);
}
