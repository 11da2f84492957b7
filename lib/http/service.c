/*
 * service.c - one network service thread: its libwebsockets context, its
 * own SO_REUSEPORT listening socket adopted as a raw file descriptor
 * (accept4() + lws_adopt_socket_vhost() when it is readable: the
 * workaround for Debian's LWS_MAX_SMP 1 build, notes/perf-limits.md §A),
 * the HTTP protocol callback, and the loop.
 *
 * Reads run here, inside one read transaction per loop pass
 * (alyx__read_pass_begin/end): begun lazily by the first read of a pass,
 * ended when the pass is over, so a snapshot is at most one pass old.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "core/handle.h"
#include "http/http.h"

/* What a service thread keeps of each connection it accepted, as the
 * lws opaque user data (which also tells them from lws's internal
 * descriptors at WSI_DESTROY): the peer address, taken from accept4()
 * once instead of a getpeername() per request.  conn_nomem stands in
 * when the small allocation fails (the address is then asked for). */
typedef struct conn {
	char ip[INET6_ADDRSTRLEN];
} conn;
static conn conn_nomem;

static conn *conn_of(struct lws *wsi)
{
	return wsi ? lws_get_opaque_user_data(wsi) : NULL;
}

const char *alyx__svc_peer(struct lws *wsi, char *buf, size_t n)
{
	const conn *c = conn_of(wsi);
	const char *p;

	if (c && c->ip[0])
		return c->ip;
	p = wsi ? lws_get_peer_simple(wsi, buf, n) : NULL;
	return p && *p ? p : NULL;
}

static void conn_ip(conn *c, const struct sockaddr_storage *sa,
		    socklen_t len)
{
	c->ip[0] = '\0';
	if (len >= sizeof(struct sockaddr_in) && sa->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  c->ip, sizeof(c->ip));
	else if (len >= sizeof(struct sockaddr_in6) &&
		 sa->ss_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)sa)->sin6_addr,
			  c->ip, sizeof(c->ip));
}

void alyx__svc_conn_adopted(alyx__svc *t, struct lws *wsi, const char *ip)
{
	conn *c = alyx__calloc(1, sizeof(*c));

	if (c)
		snprintf(c->ip, sizeof(c->ip), "%s", ip ? ip : "");
	lws_set_opaque_user_data(wsi, c ? c : &conn_nomem);
	atomic_store_explicit(&t->metrics.conns,
		atomic_load_explicit(&t->metrics.conns, memory_order_relaxed)
		+ 1, memory_order_relaxed);
}

static void close_listener(alyx__svc *t)
{
	if (t->listen_closed)
		return;
	t->listen_closed = true;
	if (t->listen_wsi)
		lws_set_timeout(t->listen_wsi, PENDING_TIMEOUT_HTTP_CONTENT,
				LWS_TO_KILL_ASYNC);
}

static void accept_ready(alyx__svc *t)
{
	alyx_server *s = t->srv;

	/* A bounded batch per wake-up keeps one busy listener from starving
	 * the connections already open. */
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof(sa);
		int fd = accept4(t->listen_fd, (struct sockaddr *)&sa, &salen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return;	/* EAGAIN, or a transient error (EMFILE) */
		}
		if (atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
			close(fd);
			continue;
		}
		/* Replies and WebSocket frames go out as soon as they are
		 * written: with Nagle a write issued while the previous one
		 * is un-ACKed waits for the client's delayed ACK (40 ms).
		 * lws never sets it on sockets adopted this way. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* alyx's own front (front.c) serves every connection;
		 * with TLS, the plaintext of lws's TLS (tls.c). */
		conn ip;
		conn_ip(&ip, &sa, salen);
		if ((s->tls_cert ? alyx__front_adopt_tls(t, fd, ip.ip)
				 : alyx__front_adopt(t, fd, ip.ip)) < 0)
			continue;	/* fd closed */
		alyx__ctr_add(&t->metrics.accepted, 1);
		atomic_store_explicit(&t->metrics.conns,
			atomic_load_explicit(&t->metrics.conns,
					     memory_order_relaxed) + 1,
			memory_order_relaxed);
	}
}

void alyx__svc_conn_gone(alyx__svc *t, struct lws *wsi)
{
	conn *c = conn_of(wsi);

	if (!c)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	if (c != &conn_nomem)
		alyx__free(c);
	atomic_store_explicit(&t->metrics.conns,
		atomic_load_explicit(&t->metrics.conns, memory_order_relaxed)
		- 1, memory_order_relaxed);
}

static int listen_cb(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len)
{
	alyx__svc *t = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		accept_ready(t);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (wsi == t->listen_wsi) {
			/* lws closed the descriptor with the wsi. */
			t->listen_wsi = NULL;
			t->listen_fd = -1;
		}
		return 0;
	default:
		return 0;
	}
}

/*
 * Pipelined requests with a body (libwebsockets 4.1.6 .. 4.4).
 *
 * When a request ends before the data lws read from the socket does, lws
 * keeps the rest (the next pipelined request) on the connection's
 * "buflist" and later parses it from there (lws_service_do_ripe_rxflow ->
 * lws_read_h1 -> lws_handshake_server -> lws_http_action).  After
 * LWS_CALLBACK_HTTP, lws_http_action() drains the wsi's own buflist
 * through lws_read_h1() whenever the request has a Content-Length > 0 (a
 * loop meant for h2 streams, which have their own buflist).  On an h1
 * connection that buflist is the very segment being parsed, not yet
 * consumed: the loop hands the request's own header bytes to the body
 * state as body, reports the body complete, and then calls lws_read_h1()
 * again with no body left, which reports completion again and consumes
 * nothing - forever, inside one lws_service() call, so the whole service
 * thread stops.  Requests without a body never reach that loop, which is
 * why GET and DELETE pipeline fine.
 *
 * The real body is delivered correctly right after, by the lws_read_h1()
 * that parsed the headers (it restarts at the byte after them).  So the
 * drain loop must see an empty buflist: LWS_CALLBACK_HTTP of a request
 * with a body arms a per-thread flag, and the first
 * lws_buflist_next_segment_len() call after it - the loop's - answers 0.
 * lws calls that exported function through its PLT, so this definition
 * takes its place process-wide; every other call goes to the real one.
 * The flag is cleared by the next callback and after every service pass,
 * so it can never swallow an unrelated call.
 */
static _Thread_local bool skip_buflist_drain;
static size_t (*real_next_segment_len)(struct lws_buflist **, uint8_t **);
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void find_real_next_segment_len(void)
{
	real_next_segment_len = (size_t (*)(struct lws_buflist **,
		uint8_t **))dlsym(RTLD_NEXT, "lws_buflist_next_segment_len");
}

__attribute__((visibility("default"))) size_t
lws_buflist_next_segment_len(struct lws_buflist **head, uint8_t **buf)
{
	if (skip_buflist_drain) {
		skip_buflist_drain = false;
		if (buf)
			*buf = NULL;
		return 0;
	}
	pthread_once(&real_once, find_real_next_segment_len);
	if (!real_next_segment_len)
		abort();	/* libwebsockets without this export */
	return real_next_segment_len(head, buf);
}

/* Does lws hold a Content-Length > 0 for this request (then
 * lws_http_action() runs its drain loop after LWS_CALLBACK_HTTP)? */
static bool has_body(struct lws *wsi)
{
	char v[24];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);

	if (n <= 0 || n >= (int)sizeof(v) ||
	    lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_CONTENT_LENGTH) != n)
		return false;
	return atoll(v) > 0;	/* lws's own reading of the header */
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason,
		   void *user, void *in, size_t len)
{
	alyx__svc *t = lws_context_user(lws_get_context(wsi));
	alyx__req *r = user;
	const struct lws_protocols *bound = lws_get_protocol(wsi);

	skip_buflist_drain = false;
	if (bound && bound->callback != http_cb) {
		/* lws tells protocols[0] of every connection's end, an
		 * upgraded one's too (its user data is the realtime one). */
		if (reason == LWS_CALLBACK_WSI_DESTROY)
			return alyx__ws_cb(wsi, reason, user, in, len);
		return 0;
	}
	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		int n = alyx__req_begin(t, wsi, r, in);
		if (!n && has_body(wsi))
			skip_buflist_drain = true;
		return n;
	}
	case LWS_CALLBACK_HTTP_BODY:
		return r ? alyx__req_body(t, r, in, len) : -1;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return r ? alyx__req_body_done(t, r) : -1;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return r ? alyx__req_writeable(t, r) : 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* WebSocket on /api/realtime only (no h2c). */
		return r ? alyx__ws_confirm(t, wsi, r, in) : -1;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (r)
			alyx__req_cleanup(t, r);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (r)
			alyx__req_cleanup(t, r);
		alyx__svc_conn_gone(t, wsi);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* Raised on every accepted connection too (lws 4.1): only
		 * cheap flag checks unless there is real work. */
		if (atomic_load_explicit(&t->done_pending,
					 memory_order_acquire))
			alyx__svc_take_done(t);
		if (!t->listen_closed &&
		    atomic_load_explicit(&t->srv->stopping,
					 memory_order_relaxed))
			close_listener(t);
		return 0;
	default:
		return 0;
	}
}

/*
 * The protocols of every context.  protocols[0] serves plain HTTP; the
 * listener is a raw file descriptor; WebSocket upgrades of
 * /api/realtime go to the realtime protocol (ws.c), made the vhost's
 * default so clients need not name a subprotocol.
 */
static const struct lws_protocols protocols[] = {
	{"http", http_cb, sizeof(alyx__req), 0, 0, NULL, 0},
	{"alyx-listen", listen_cb, 0, 0, 0, NULL, 0},
	{"alyx-h1", alyx__front_cb, 0, 0, 0, NULL, 0},
	{"alyx-tls", alyx__tls_cb, 0, 0, 0, NULL, 0},
	{ALYX_WS_PROTOCOL, alyx__ws_cb, sizeof(void *), 4096, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

static const struct lws_protocol_vhost_options ws_default = {
	NULL, NULL, "default", ""
};
static const struct lws_protocol_vhost_options ws_pvo = {
	NULL, &ws_default, ALYX_WS_PROTOCOL, ""
};

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void lws_log_emit(int level, const char *line)
{
	/* lws's own errors (TLS handshakes, OOM) go to stderr; not the
	 * note lws 4.1 logs at error level for every connection adopted
	 * with bytes already read (a WebSocket handshake handed over by
	 * the HTTP front, front.c). */
	(void)level;
	if (strstr(line, "adopt_socket_readbuf: calling service"))
		return;
	ssize_t n = write(2, line, strlen(line));
	(void)n;
}

static void lws_log_setup(void)
{
	lws_set_log_level(LLL_ERR, lws_log_emit);
}

void alyx__svc_writable_later(alyx__svc *t, struct lws *wsi)
{
	if (t->rearm_n == t->rearm_cap) {
		int cap = t->rearm_cap ? 2 * t->rearm_cap : 16;
		struct lws **n = alyx__realloc(t->rearm,
					       (size_t)cap * sizeof(*n));
		if (!n) {
			lws_callback_on_writable(wsi);	/* best effort */
			return;
		}
		t->rearm = n;
		t->rearm_cap = cap;
	}
	t->rearm[t->rearm_n++] = wsi;
}

void alyx__svc_writable_forget(alyx__svc *t, struct lws *wsi)
{
	for (int i = 0; i < t->rearm_n; i++)
		if (t->rearm[i] == wsi)
			t->rearm[i] = NULL;
}

static void pass_end(alyx__svc *t)
{
	skip_buflist_drain = false;
	for (int i = 0; i < t->rearm_n; i++)
		if (t->rearm[i])
			lws_callback_on_writable(t->rearm[i]);
	t->rearm_n = 0;
	if (t->in_read_pass) {
		alyx__read_pass_end(t->srv->a);
		t->in_read_pass = false;
	}
	alyx__log_flush(t);
}

void alyx__svc_read_pass(alyx__svc *t)
{
	if (!t->in_read_pass) {
		alyx__read_pass_begin(t->srv->a);
		t->in_read_pass = true;
	}
}

static void ev_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	alyx__svc *t = w->data;

	/* Just before libev blocks: the pass is over. */
	pass_end(t);
	if (atomic_load(&t->quit))
		ev_break(loop, EVBREAK_ALL);
}

int alyx__svc_init(alyx__svc *t, alyx__err *err)
{
	alyx_server *s = t->srv;
	struct lws_context_creation_info info;
	void *foreign[1];

	pthread_once(&log_once, lws_log_setup);
	alyx__buf_init(&t->out, 0);
	alyx__buf_init(&t->scratch, 0);
	alyx__buf_init(&t->logbuf, 0);
	unsigned char rnd[8];
	if (!alyx__random(rnd, sizeof(rnd)))
		memset(rnd, t->index, sizeof(rnd));
	for (int i = 0; i < 8; i++)
		snprintf(t->rid_prefix + 2 * i, 3, "%02x", rnd[i]);
	int wrc = alyx__ws_svc_init(t, err);
	if (wrc != ALYX_OK)
		return wrc;

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protocols;
	info.pvo = &ws_pvo;
	info.vhost_name = "alyx";
	info.user = t;
	info.pt_serv_buf_size = 64 * 1024;
	info.max_http_header_data = (unsigned short)s->max_header;
	info.max_http_header_pool = 256;
	info.timeout_secs = (unsigned)((s->timeout_ms + 999) / 1000);
	/* With TLS, lws also bounds each handshake and then the wait for
	 * the first bytes after it by timeout_secs (tls.c): the front's
	 * keep-alive idle time, so a connection opened ahead of its first
	 * request is not cut at request_timeout. */
	if (s->tls_cert && info.timeout_secs < 30)
		info.timeout_secs = 30;
	info.timeout_secs_ah_idle = info.timeout_secs;
	info.keepalive_timeout = 30;
	if (s->tls_cert) {
		/* No client connections: skip loading the OS CA store. */
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
				LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
		info.ssl_cert_filepath = s->tls_cert;
		info.ssl_private_key_filepath = s->tls_key;
		info.alpn = "http/1.1";
	}
	if (s->loop == ALYX_SERVER_LOOP_EV) {
		struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO |
						   EVFLAG_NOSIGMASK);
		ev_prepare *prep = alyx__calloc(1, sizeof(*prep));
		if (!loop || !prep) {
			if (loop)
				ev_loop_destroy(loop);
			alyx__free(prep);
			return alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "cannot create a libev loop");
		}
		ev_prepare_init(prep, ev_prepare_cb);
		prep->data = t;
		ev_prepare_start(loop, prep);
		t->ev_loop = loop;
		t->ev_prepare = prep;
		foreign[0] = loop;
		info.options |= LWS_SERVER_OPTION_LIBEV;
		info.foreign_loops = foreign;
	}
	t->ctx = lws_create_context(&info);
	if (!t->ctx)
		return alyx__err_set(err, s->tls_cert ? ALYX_E_CONFIG
						      : ALYX_E_NOMEM, NULL,
			"cannot create the HTTP server context%s",
			s->tls_cert ? " (check the TLS certificate and key)"
				    : (s->loop == ALYX_SERVER_LOOP_EV
				       ? " (is libwebsockets-evlib-ev "
					 "installed?)" : ""));
	t->vh = lws_get_vhost_by_name(t->ctx, "alyx");
	if (!t->vh)
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "HTTP server vhost missing");
	t->vh_plain = t->vh;
	if (s->tls_cert) {
		/* WebSocket hand-overs of TLS connections arrive as the
		 * relay's plaintext (tls.c): a vhost without TLS. */
		struct lws_context_creation_info pinfo = info;
		pinfo.vhost_name = "alyx-plain";
		pinfo.options &= ~(uint64_t)
			(LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
			 LWS_SERVER_OPTION_LIBEV);
		pinfo.ssl_cert_filepath = NULL;
		pinfo.ssl_private_key_filepath = NULL;
		pinfo.alpn = NULL;
		t->vh_plain = lws_create_vhost(t->ctx, &pinfo);
		if (!t->vh_plain)
			return alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "cannot create the plain vhost");
	}
	/* lws finishes a context's start (its protocols' init, which a
	 * WebSocket upgrade needs) from a timer of its first loop pass;
	 * a handshake handed over before that is dropped.  Finish it here,
	 * before the listener can accept anything into this context. */
	lws_state_manager_t *mgr = lws_system_get_state_manager(t->ctx);
	if (!mgr || (lws_state_transition_steps(mgr, LWS_SYSTATE_OPERATIONAL),
		     mgr->state != LWS_SYSTATE_OPERATIONAL))
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "the HTTP server context did not start");
	lws_sock_file_fd_type fd;
	fd.filefd = t->listen_fd;
	t->listen_wsi = lws_adopt_descriptor_vhost(t->vh,
		LWS_ADOPT_RAW_FILE_DESC, fd, "alyx-listen", NULL);
	if (!t->listen_wsi) {
		/* lws 4.1 leaves a raw descriptor it failed to adopt open:
		 * alyx__svc_destroy closes it. */
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "cannot adopt the listening socket");
	}
	return ALYX_OK;
}

void *alyx__svc_main(void *arg)
{
	alyx__svc *t = arg;

	if (t->ev_loop) {
		ev_run(t->ev_loop, 0);
	} else {
		while (!atomic_load(&t->quit)) {
			lws_service(t->ctx, 0);
			pass_end(t);
		}
	}
	pass_end(t);
	alyx__ws_svc_end(t);
	alyx__front_end(t);
	alyx__tls_end(t);
	/* Closing every connection releases its request (and orphans any
	 * job the writer still holds). */
	lws_context_destroy(t->ctx);
	t->ctx = NULL;
	t->listen_wsi = NULL;
	t->listen_fd = -1;
	if (t->ev_loop) {
		ev_prepare_stop(t->ev_loop, t->ev_prepare);
		ev_loop_destroy(t->ev_loop);
		alyx__free(t->ev_prepare);
		t->ev_loop = NULL;
		t->ev_prepare = NULL;
	}
	if (t->in_read_pass) {
		alyx__read_pass_end(t->srv->a);
		t->in_read_pass = false;
	}
	alyx__log_flush(t);
	return NULL;
}

void alyx__svc_destroy(alyx__svc *t)
{
	if (t->ctx) {
		alyx__ws_svc_end(t);
		alyx__front_end(t);
		alyx__tls_end(t);
		lws_context_destroy(t->ctx);
		t->ctx = NULL;
	}
	if (t->ev_loop) {
		ev_loop_destroy(t->ev_loop);
		alyx__free(t->ev_prepare);
		t->ev_loop = NULL;
	}
	if (t->listen_fd >= 0) {
		close(t->listen_fd);
		t->listen_fd = -1;
	}
	/* Answers that arrived after the thread ended. */
	alyx__job *j = t->done_head;
	while (j) {
		alyx__job *n = j->next;
		alyx__job_free(j);
		j = n;
	}
	t->done_head = t->done_tail = NULL;
	pthread_mutex_destroy(&t->done_mu);
	alyx__ws_svc_free(t);
	alyx__free(t->frag);
	t->frag = NULL;
	alyx__free(t->h1_rx);
	t->h1_rx = NULL;
	alyx__free(t->rearm);
	t->rearm = NULL;
	t->rearm_n = t->rearm_cap = 0;
	alyx__tokcache_free(t->tok);
	t->tok = NULL;
	alyx__buf_free(&t->out);
	alyx__buf_free(&t->scratch);
	alyx__buf_free(&t->logbuf);
}
