/*
 * front.c - plain-HTTP connections served by alyx's own HTTP/1.1 parser
 * (h1.c) instead of libwebsockets' (docs/alyxd.md, "The HTTP front").
 *
 * A service thread adopts each accepted socket into its lws context as a
 * raw descriptor ("alyx-h1" protocol): lws still runs the loop and the
 * timers, and tells this file when the socket is readable or writable;
 * reading, parsing, framing, keep-alive, pipelining and sending are done
 * here.  Requests then go through the same router as lws's (router.c),
 * which reads the request through the accessors at the end of this file.
 *
 * A WebSocket handshake is handed to lws: the socket is duplicated and
 * adopted as an lws HTTP connection together with the bytes already read
 * (lws_adopt_socket_vhost_readbuf), and this connection lets go of it.
 * With TLS every connection is lws's, as before.
 *
 * Per connection: `in` holds bytes read but not yet used (a partial head,
 * or what a pipelining client sent while a request waits for the writer);
 * most requests arrive whole and are parsed straight from the thread's
 * receive buffer.  The head of the current request is copied to `head`,
 * where the router can read it until the reply, even across the writer.
 * Output that the socket does not take at once waits in `pend` (then no
 * further request is started, so replies keep their order).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/h1.h"
#include "http/http.h"

#define RX_CHUNK (64 * 1024)	/* one recv() */
#define MAX_ARGS 128		/* query pieces */
#define IDLE_US (30 * 1000000LL)	/* keep-alive idle */
#define LINGER_US (2 * 1000000LL)	/* reading to EOF after a close */
#define SWEEP_US 1000000	/* the deadline sweep */

enum dl_kind { DL_NONE, DL_IDLE, DL_REQUEST, DL_SEND, DL_LINGER };

struct alyx__h1c {
	uint8_t kind;		/* ALYX_TLSW_FRONT: first (tls.c) */
	bool tls;		/* wsi is lws's TLS socket (fd its descriptor),
				 * not a raw descriptor of ours */
	bool handed;		/* a TLS connection now relayed to a
				 * WebSocket (tls.c) */
	struct alyx__h1c *prev, *next;	/* the thread's connections */
	alyx__svc *t;
	struct lws *wsi;
	int fd;
	char ip[48];
	alyx_buf in;		/* unused input */
	size_t scan;		/* alyx__h1_head_end's resume point in `in` */
	alyx_buf head;		/* the current request's head */
	alyx__h1head h;		/* parsed, offsets into head */
	alyx_buf args;		/* decoded query pieces */
	alyx__h1span *argv;
	int argc;
	alyx_buf pend;		/* output the socket has not taken */
	size_t pend_off;
	uint64_t body_left;	/* body bytes of the current request still to
				 * come (to the router, or to be skipped) */
	alyx__h1chunk ck;	/* a chunked body's decoder */
	uint64_t skipped;	/* chunk data skipped (not the router's) */
	bool chunked;		/* a chunked body has not ended yet */
	bool active;		/* req was begun and not finished */
	bool body_to_router;	/* the router reads the body (RS_BODY) */
	bool close_after;	/* close once the output is out */
	bool eof;		/* the client sent FIN */
	bool paused;		/* POLLIN off */
	bool lingering;		/* write side shut; reading to EOF */
	uint8_t dl_kind;
	int64_t deadline_us;
	alyx__req req;
};

typedef struct alyx__h1c h1c;

static int64_t now_us(void)
{
	return (int64_t)lws_now_usecs();
}

/* The connection's next deadline: `kind`, `us` from now. */
static void deadline(h1c *c, enum dl_kind kind, int64_t us)
{
	c->dl_kind = (uint8_t)kind;
	c->deadline_us = now_us() + us;
}

/* ---- connections ---- */

/* tls: lws terminates TLS on the socket (tls.c) and the front reads and
 * writes the plaintext through it. */
static int adopt(alyx__svc *t, int fd, const char *ip, bool tls)
{
	h1c *c = alyx__calloc(1, sizeof(*c));
	lws_sock_file_fd_type sfd;

	if (!c) {
		close(fd);
		return -1;
	}
	c->kind = ALYX_TLSW_FRONT;
	c->tls = tls;
	c->t = t;
	c->fd = fd;
	snprintf(c->ip, sizeof(c->ip), "%s", ip ? ip : "");
	alyx__buf_init(&c->in, 0);
	alyx__buf_init(&c->head, 0);
	alyx__buf_init(&c->args, 0);
	alyx__buf_init(&c->pend, 0);
	if (tls) {
		sfd.sockfd = fd;
		c->wsi = lws_adopt_descriptor_vhost(t->vh, LWS_ADOPT_SOCKET |
						    LWS_ADOPT_ALLOW_SSL, sfd,
						    "alyx-tls", NULL);
	} else {
		sfd.filefd = fd;
		c->wsi = lws_adopt_descriptor_vhost(t->vh,
						    LWS_ADOPT_RAW_FILE_DESC,
						    sfd, "alyx-h1", NULL);
	}
	if (!c->wsi) {
		/* lws 4.1 closes a socket it failed to adopt, never a raw
		 * descriptor. */
		if (!tls)
			close(fd);
		alyx__free(c);
		return -1;
	}
	lws_set_opaque_user_data(c->wsi, c);
	c->next = t->h1_conns;
	if (c->next)
		c->next->prev = c;
	t->h1_conns = c;
	deadline(c, DL_IDLE, IDLE_US);
	return 0;
}

int alyx__front_adopt(alyx__svc *t, int fd, const char *ip)
{
	return adopt(t, fd, ip, false);
}

int alyx__front_adopt_tls(alyx__svc *t, int fd, const char *ip)
{
	return adopt(t, fd, ip, true);
}

static void conn_free(h1c *c)
{
	alyx__svc *t = c->t;

	if (c->active) {
		alyx__req_cleanup(t, &c->req);	/* orphans a queued job */
		c->active = false;
	}
	alyx__svc_writable_forget(t, c->wsi);
	if (c->prev)
		c->prev->next = c->next;
	else if (t->h1_conns == c)
		t->h1_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	alyx__buf_free(&c->in);
	alyx__buf_free(&c->head);
	alyx__buf_free(&c->args);
	alyx__buf_free(&c->pend);
	alyx__free(c->argv);
	alyx__free(c);
	atomic_store_explicit(&t->metrics.conns,
		atomic_load_explicit(&t->metrics.conns, memory_order_relaxed)
		- 1, memory_order_relaxed);
}

/* Asks lws to report the socket writable; from inside the connection's
 * own WRITEABLE callback, at the end of the loop pass
 * (alyx__svc_writable_later). */
static void want_writable(h1c *c)
{
	alyx__svc *t = c->t;

	if (t->h1_in_wcb)
		alyx__svc_writable_later(t, c->wsi);
	else
		lws_callback_on_writable(c->wsi);
}

static void pause_rx(h1c *c, bool pause)
{
	if (c->paused == pause)
		return;
	c->paused = pause;
	lws_rx_flow_control(c->wsi, pause ? 0 : 1);
}

/* ---- output ---- */

long alyx__send_now(int fd, const char *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = send(fd, p + done, n - done, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		done += (size_t)k;
	}
	return (long)done;
}

/* What the connection takes of p[0..n) now (fewer bytes when it would
 * block), or -1.  With TLS, lws takes a chunk while it holds none of the
 * client's output, and POLLOUT is asked for while it holds some: the
 * connection's output is out when pend is empty and lws holds none. */
static long conn_out(h1c *c, const char *p, size_t n)
{
	if (!c->tls)
		return alyx__send_now(c->fd, p, n);
	long k = alyx__tls_write(c->t, c->wsi, p, n);
	if (k >= 0 && lws_partial_buffered(c->wsi))
		want_writable(c);
	return k;
}

/* Sends what waits in pend; 1 when all of it is out, 0 when some is
 * left (POLLOUT asked for), -1 on a failed socket. */
static int flush(h1c *c)
{
	if (c->pend_off < c->pend.len) {
		long k = conn_out(c, c->pend.data + c->pend_off,
				  c->pend.len - c->pend_off);
		if (k < 0)
			return -1;
		if (k) {
			c->pend_off += (size_t)k;
			deadline(c, DL_SEND,
				 (int64_t)c->t->srv->timeout_ms * 1000);
		}
		if (c->pend_off < c->pend.len) {
			want_writable(c);
			return 0;
		}
	}
	alyx__buf_trim(&c->pend, 4 * RX_CHUNK);	/* a huge reply's buffer */
	c->pend_off = 0;
	if (c->dl_kind == DL_SEND) {
		deadline(c, DL_IDLE, IDLE_US);
	}
	return 1;
}

static int conn_send(h1c *c, const char *p, size_t n)
{
	if (c->pend_off < c->pend.len) {
		alyx__buf_add(&c->pend, p, n);	/* behind what waits */
		return c->pend.err ? -1 : 0;
	}
	long k = conn_out(c, p, n);
	if (k < 0)
		return -1;
	if ((size_t)k < n) {
		alyx__buf_reset(&c->pend);
		c->pend_off = 0;
		alyx__buf_add(&c->pend, p + k, n - (size_t)k);
		if (c->pend.err)
			return -1;
		deadline(c, DL_SEND,
			 (int64_t)c->t->srv->timeout_ms * 1000);
		want_writable(c);
	}
	return 0;
}

/* ---- requests ---- */

static const char *hv(const h1c *c, int hh, size_t *len)
{
	if (!(c->h.have & (1u << hh))) {
		*len = 0;
		return NULL;
	}
	*len = c->h.hv[hh].len;
	return c->head.data + c->h.hv[hh].off;
}

/* Parts of a request a refusal names in its details. */
#define PART_LINE "request line"
#define PART_HEADERS "headers"
#define PART_PATH "path"
#define PART_QUERY "query"

/* A refusal before the router (a malformed head): a JSON error with the
 * status and details {"part", "header" (when one is known)}, then the
 * connection closes.  `part` NULL: no details (out of memory). */
static void refuse(h1c *c, int status, const char *msg, const char *part,
		   const char *name, size_t name_len)
{
	static const struct {
		int status;
		const char *code;
	} codes[] = {
		{400, "BAD_REQUEST"}, {408, "TIMEOUT"},
		{414, "URI_TOO_LONG"}, {431, "HEADERS_TOO_LARGE"},
		{500, "OUT_OF_MEMORY"}, {501, "NOT_IMPLEMENTED"},
		{505, "HTTP_VERSION_NOT_SUPPORTED"},
	};
	const char *code = "BAD_REQUEST";
	alyx_buf det;

	for (size_t i = 0; i < ALYX_ARRAY_LEN(codes); i++)
		if (codes[i].status == status)
			code = codes[i].code;
	alyx__buf_init(&det, 0);
	if (part) {
		alyx__buf_adds(&det, "{\"part\":");
		alyx__json_strz(&det, part);
		if (name_len) {
			alyx__buf_adds(&det, ",\"header\":");
			alyx__json_str(&det, name, name_len > 64 ? 64 : name_len);
		}
		alyx__buf_addc(&det, '}');
	}
	memset(&c->req, 0, sizeof(c->req));
	c->req.h1 = c;
	c->h.have = 0;	/* no header of a refused head is trusted */
	c->active = true;
	alyx__req_refuse(c->t, c->wsi, &c->req, status, code, msg,
			 part && !det.err ? det.data : NULL);
	alyx__buf_free(&det);
	c->close_after = true;
}

/* The query's pieces, decoded; false after a refusal. */
static bool decode_args(h1c *c)
{
	c->argc = 0;
	if (!c->h.has_query || !c->h.query.len)
		return true;
	if (!c->argv && !(c->argv = alyx__malloc(MAX_ARGS *
						 sizeof(*c->argv)))) {
		refuse(c, 500, "out of memory", NULL, NULL, 0);
		return false;
	}
	size_t need = c->h.query.len + MAX_ARGS + 1;
	alyx__buf_reset(&c->args);
	if (!alyx__buf_grow(&c->args, need)) {
		refuse(c, 500, "out of memory", NULL, NULL, 0);
		return false;
	}
	int n = alyx__h1_args(c->head.data + c->h.query.off, c->h.query.len,
			      c->args.data, need, c->argv, MAX_ARGS);
	if (n == -1) {
		refuse(c, 400, "malformed query string (a bad %-escape or an "
		       "escaped NUL)", PART_QUERY, NULL, 0);
		return false;
	}
	if (n < 0) {
		refuse(c, 400, "too many query parameters", PART_QUERY, NULL,
		       0);
		return false;
	}
	c->argc = n;
	return true;
}

/* Hands the connection to lws for a WebSocket handshake, with the bytes
 * read so far (the head and anything after it).  Returns -1: this
 * connection is done either way. */
static int hand_over(h1c *c, const char *rest, size_t rest_len)
{
	alyx__svc *t = c->t;
	alyx_buf b;
	struct lws *w = NULL;

	t->ws_answered = false;
	alyx__buf_init(&b, 0);
	alyx__buf_add(&b, c->head.data, c->h.head_len);
	alyx__buf_add(&b, rest, rest_len);
	if (b.err) {
		alyx__buf_free(&b);
		return -1;
	}
	if (c->tls) {
		/* lws keeps the TLS socket; its plaintext is relayed to the
		 * WebSocket from now on, and this connection lets go of it
		 * (alyx__front_tls_cb). */
		c->handed = !alyx__tls_hand_over(t, c->wsi, b.data, b.len,
						 &w);
	} else {
		int fd2 = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
		if (fd2 >= 0)
			w = lws_adopt_socket_vhost_readbuf(t->vh_plain, fd2,
							   b.data, b.len);
	}
	alyx__buf_free(&b);
	if (w) {
		alyx__svc_conn_adopted(t, w, c->ip);
	} else if (!t->ws_answered) {
		/* lws dropped the handshake (or it could not be handed over):
		 * the client sees a close, the log says so.  A refusal was
		 * answered and logged as a request (ws.c). */
		alyx__buf_init(&b, 0);
		alyx__log_begin(t->srv, &b, "warn",
				"websocket handshake dropped");
		alyx__log_kv(t->srv, &b, "ip", c->ip);
		alyx__log_end(t->srv, &b);
		alyx__srv_log(t->srv, t, ALYX_LOG_WARN, &b);
		alyx__buf_free(&b);
	}
	if (c->tls)
		return -1;
	/* This descriptor number now names /dev/null, so lws's close of the
	 * raw connection leaves the socket to its new owner. */
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, c->fd);
		close(nul);
	} else if (w) {
		/* Cannot let go safely: the new owner keeps it alone. */
		lws_set_timeout(w, PENDING_TIMEOUT_HTTP_CONTENT,
				LWS_TO_KILL_ASYNC);
	}
	return -1;
}

/* Starts the request whose head is the first head_len bytes of p.
 * Returns -1 to close now. */
static int begin(h1c *c, const char *p, size_t head_len, const char *rest,
		 size_t rest_len)
{
	alyx__svc *t = c->t;
	int status = 0;
	const char *why = NULL;
	size_t n;
	const char *v;

	alyx__buf_reset(&c->head);
	alyx__buf_add(&c->head, p, head_len);
	if (c->head.err)
		return -1;
	c->body_left = 0;
	c->body_to_router = false;
	c->chunked = false;
	if (alyx__h1_parse(c->head.data, head_len, &c->h, &status, &why)) {
		refuse(c, status, why, c->h.fail_part == ALYX_H1_HEADERS
		       ? PART_HEADERS : PART_LINE,
		       c->head.data + c->h.fail_name.off, c->h.fail_name.len);
		return 0;
	}
	/* Framing first: the next request starts where this body ends. */
	if (c->h.have & (1u << HH_TRANSFER_ENCODING)) {
		if (c->h.have & (1u << HH_CONTENT_LENGTH)) {
			refuse(c, 400, "Content-Length and Transfer-Encoding "
			       "together", PART_HEADERS, "Transfer-Encoding",
			       17);
			return 0;
		}
		/* RFC 9112 §6.1: the framing of an HTTP/1.0 message with
		 * Transfer-Encoding is faulty. */
		if (c->h.minor == 0) {
			refuse(c, 400, "Transfer-Encoding in an HTTP/1.0 "
			       "request", PART_HEADERS, "Transfer-Encoding",
			       17);
			return 0;
		}
		v = hv(c, HH_TRANSFER_ENCODING, &n);
		switch (alyx__h1_te(v, n)) {
		case 1:
			break;
		case -1:
			refuse(c, 501, "the only transfer coding served is "
			       "chunked", PART_HEADERS, "Transfer-Encoding",
			       17);
			return 0;
		default:
			/* §6.3: the body's length cannot be known. */
			refuse(c, 400, "Transfer-Encoding must end with "
			       "chunked, named once", PART_HEADERS,
			       "Transfer-Encoding", 17);
			return 0;
		}
		c->chunked = true;
		memset(&c->ck, 0, sizeof(c->ck));
		c->skipped = 0;
	}
	v = hv(c, HH_CONTENT_LENGTH, &n);
	if (v) {
		uint64_t cl = 0;
		if (!n || n > 15) {
			refuse(c, 400, "invalid Content-Length", PART_HEADERS,
			       "Content-Length", 14);
			return 0;
		}
		for (size_t i = 0; i < n; i++) {
			if (v[i] < '0' || v[i] > '9') {
				refuse(c, 400, "invalid Content-Length",
				       PART_HEADERS, "Content-Length", 14);
				return 0;
			}
			cl = cl * 10 + (uint64_t)(v[i] - '0');
		}
		c->body_left = cl;
	}
	if (c->h.minor == 1 && !(c->h.have & (1u << HH_HOST))) {
		refuse(c, 400, "an HTTP/1.1 request must have a Host header",
		       PART_HEADERS, "Host", 4);
		return 0;
	}
	/* HTTP/1.0: one request. */
	if (c->h.minor == 0 || c->h.conn_close)
		c->close_after = true;
	if (c->h.upgrade_websocket && c->h.conn_upgrade)
		return hand_over(c, rest, rest_len);
	if (!decode_args(c))
		return 0;
	/* The path, decoded on the stack (the router keeps a copy). */
	char stackp[512], *path = stackp;
	size_t pl = c->h.path.len;
	if (pl + 2 > sizeof(stackp) && !(path = alyx__malloc(pl + 2))) {
		refuse(c, 500, "out of memory", NULL, NULL, 0);
		return 0;
	}
	/* An absolute-form target without a path asks for "/"; "*" (OPTIONS
	 * only, the parser checked) goes to the router as it is. */
	long k;
	if (pl == 1 && c->head.data[c->h.path.off] == '*') {
		memcpy(path, "*", 2);
		k = 1;
	} else {
		k = pl ? alyx__h1_path(c->head.data + c->h.path.off, pl, path,
				       pl + 1)
		       : alyx__h1_path("/", 1, path, 2);
	}
	if (k < 0) {
		if (path != stackp)
			alyx__free(path);
		refuse(c, 400, "malformed path (a bad %-escape or an escaped "
		       "NUL)", PART_PATH, NULL, 0);
		return 0;
	}
	memset(&c->req, 0, sizeof(c->req));
	c->req.h1 = c;
	c->req.closing = c->close_after;
	c->active = true;
	c->dl_kind = DL_REQUEST;	/* the deadline set at the first byte
					 * stays (whole-request bound) */
	int rc = alyx__req_begin(t, c->wsi, &c->req, path);
	if (path != stackp)
		alyx__free(path);
	if (rc < 0)
		c->close_after = true;
	if (c->req.state == RS_BODY)
		c->body_to_router = true;
	return 0;
}

/*
 * Gives the router the chunked body in p[*used..n).  Returns 0 when more
 * bytes are needed (all of them used), 1 when the request moved on: the
 * body ended, or the request was answered (malformed framing is a 400
 * with details {"part":"body"}, then the connection closes).
 */
static int chunked_body(h1c *c, const char *p, size_t n, size_t *used)
{
	alyx__req *r = &c->req;

	while (r->state == RS_BODY) {
		size_t u = 0, off, len;
		const char *why = NULL;
		int k = alyx__h1_chunked(&c->ck, p + *used, n - *used, &u,
					 &off, &len, &why);

		if (k == ALYX_H1_CHUNK_BAD) {
			c->chunked = false;
			c->close_after = true;
			r->closing = true;
			alyx__reply_error(c->t, r, 400, "BAD_REQUEST", why,
					  "{\"part\":\"body\"}");
			*used = n;
			return 1;
		}
		const char *d = p + *used + off;
		*used += u;
		if (k == ALYX_H1_CHUNK_MORE)
			return 0;
		if (k == ALYX_H1_CHUNK_DATA) {
			if (alyx__req_body(c->t, r, d, len) < 0)
				c->close_after = true;
			continue;
		}
		c->chunked = false;	/* the body ended */
		if (alyx__req_body_done(c->t, r) < 0)
			c->close_after = true;
	}
	return 1;
}

/* Skips the rest of a chunked body the router did not read.  Returns 0
 * when more bytes are needed, 1 when it ended; a body past 16 times
 * max_body, or malformed framing, closes the connection instead. */
static int chunked_skip(h1c *c, const char *p, size_t n, size_t *used)
{
	for (;;) {
		size_t u = 0, off, len;
		const char *why = NULL;
		int k = alyx__h1_chunked(&c->ck, p + *used, n - *used, &u,
					 &off, &len, &why);

		if (k == ALYX_H1_CHUNK_BAD ||
		    (c->skipped += len) > 16ull * c->t->srv->max_body) {
			c->chunked = false;
			c->close_after = true;
			*used = n;
			return 1;
		}
		*used += u;
		if (k == ALYX_H1_CHUNK_MORE)
			return 0;
		if (k == ALYX_H1_CHUNK_END) {
			c->chunked = false;
			return 1;
		}
	}
}

/* After the reply: the request's resources go, the connection waits for
 * the next one. */
static void finish(h1c *c)
{
	alyx__req_cleanup(c->t, &c->req);
	c->active = false;
	c->body_to_router = false;
	/* The next request's time starts at its own first byte; a reply
	 * still leaving keeps its own deadline. */
	if (c->pend_off >= c->pend.len) {
		deadline(c, DL_IDLE, IDLE_US);
	}
	/* A body the router did not read is skipped (or, when absurdly
	 * large, the connection closes: the router marked it closing). */
	if (c->req.closing)
		c->close_after = true;
}

/*
 * Runs what the input p[0..n) allows: the body of the current request,
 * then further requests.  Returns how many bytes were used, or -1 to
 * close now.  Stops when a request waits (for the writer or for output
 * to drain) with the rest unused.
 */
static long run(h1c *c, const char *p, size_t n)
{
	size_t used = 0;
	alyx_server *s = c->t->srv;

	for (;;) {
		if (c->active) {
			alyx__req *r = &c->req;

			if (r->state == RS_BODY && c->body_to_router &&
			    c->chunked) {
				if (!chunked_body(c, p, n, &used))
					return (long)used;	/* more body */
			} else if (r->state == RS_BODY && c->body_to_router) {
				size_t k = n - used;
				if (k > c->body_left)
					k = (size_t)c->body_left;
				if (k) {
					int rc = alyx__req_body(c->t, r,
								p + used, k);
					used += k;
					c->body_left -= k;
					if (rc < 0)
						c->close_after = true;
				}
				if (r->state == RS_BODY && !c->body_left) {
					if (alyx__req_body_done(c->t, r) < 0)
						c->close_after = true;
				} else if (r->state == RS_BODY) {
					return (long)used;	/* more body */
				}
			}
			if (r->state == RS_WRITER || r->state == RS_REPLY)
				return (long)used;	/* the writer's */
			if (r->state == RS_BODY)
				return (long)used;
			if (r->state != RS_DONE) {
				/* Never left without an answer. */
				c->close_after = true;
			}
			finish(c);
		}
		/* What the router did not read of the body is skipped. */
		if (c->body_left) {
			size_t k = n - used;
			if (c->close_after)
				return (long)n;
			if (k > c->body_left)
				k = (size_t)c->body_left;
			used += k;
			c->body_left -= k;
			if (c->body_left)
				return (long)used;
		}
		if (c->chunked) {
			if (c->close_after)
				return (long)n;
			if (!chunked_skip(c, p, n, &used))
				return (long)used;
		}
		if (c->close_after || c->pend_off < c->pend.len)
			return (long)used;
		/* The next request: leading blank lines are skipped. */
		while (used < n && (p[used] == '\r' || p[used] == '\n'))
			used++;
		if (used == n) {
			/* finish() has set it when a request just ended. */
			if (c->dl_kind != DL_IDLE) {
				deadline(c, DL_IDLE, IDLE_US);
			}
			c->scan = 0;
			return (long)used;
		}
		if (c->dl_kind != DL_REQUEST) {
			/* The first byte of a request: its time starts. */
			deadline(c, DL_REQUEST, (int64_t)s->timeout_ms * 1000);
		}
		size_t end = alyx__h1_head_end(p + used, n - used, &c->scan);
		if (!end) {
			if (n - used > s->max_header) {
				const char *sp = memchr(p + used, ' ',
							n - used);
				const char *nl = memchr(p + used, '\n',
							n - used);
				/* Nothing of the previous head applies. */
				memset(&c->h, 0, sizeof(c->h));
				/* Still in the request line: the URI. */
				if (!nl && sp)
					refuse(c, 414, "the request target is "
					       "too long", PART_LINE, NULL, 0);
				else
					refuse(c, 431, "the request head is "
					       "larger than the limit",
					       PART_HEADERS, NULL, 0);
				used = n;
				continue;
			}
			return (long)used;	/* wait for the rest */
		}
		c->scan = 0;
		if (end > s->max_header) {
			memset(&c->h, 0, sizeof(c->h));
			refuse(c, 431, "the request head is larger than the "
			       "limit", PART_HEADERS, NULL, 0);
			used = n;
			continue;
		}
		size_t at = used;
		used += end;
		if (begin(c, p + at, end, p + used, n - used) < 0)
			return -1;
	}
}

/* Runs the buffered input and the socket's new bytes; the leftover is
 * kept in `in`.  Returns -1 to close. */
static int drive(h1c *c, const char *p, size_t n, bool from_in)
{
	long used = run(c, p, n);

	if (used < 0)
		return -1;
	if (from_in) {
		size_t left = n - (size_t)used;
		if (used && left)
			memmove(c->in.data, c->in.data + used, left);
		c->in.len = left;
		if (c->in.data)
			c->in.data[left] = '\0';
	} else if ((size_t)used < n) {
		alyx__buf_add(&c->in, p + used, n - (size_t)used);
		if (c->in.err)
			return -1;
	}
	if (!c->in.len && c->in.cap > 16 * 1024)	/* no call per request */
		alyx__buf_trim(&c->in, 16 * 1024);
	return 0;
}

/* The connection after a step: close it, linger, or read on.  Returns
 * -1 to close now. */
static int settle(h1c *c)
{
	bool waiting = c->active || c->pend_off < c->pend.len ||
		       (c->tls && lws_partial_buffered(c->wsi));

	if (c->close_after && !waiting) {
		if (c->lingering)
			return 0;
		if (c->eof)
			return -1;
		/* Write side shut, read to EOF (bounded): a close with
		 * unread input would reset the connection and could destroy
		 * the reply before the client reads it. */
		if (c->tls)
			alyx__tls_shut(c->wsi);
		else
			shutdown(c->fd, SHUT_WR);
		c->lingering = true;
		alyx__buf_trim(&c->in, 0);
		deadline(c, DL_LINGER, LINGER_US);
		pause_rx(c, false);
		return 0;
	}
	if (c->eof && !waiting)
		return -1;	/* nothing more can come */
	/* Read on unless a request waits and enough is buffered, or the
	 * client has finished sending. */
	bool full = c->in.len >= c->t->srv->max_header + RX_CHUNK;
	pause_rx(c, c->eof || (waiting && full));
	return 0;
}

/* The client's next k bytes (k > 0).  Returns -1 to close. */
static int on_bytes(h1c *c, const char *p, size_t k)
{
	if (c->in.len) {
		/* Behind bytes kept from before (a partial head, or requests
		 * waiting behind one that is not finished). */
		alyx__buf_add(&c->in, p, k);
		if (c->in.err)
			return -1;
		if (drive(c, c->in.data, c->in.len, true) < 0)
			return -1;
	} else if (drive(c, p, k, false) < 0) {
		return -1;
	}
	return settle(c);
}

static int on_readable(h1c *c)
{
	alyx__svc *t = c->t;

	if (c->lingering) {
		char junk[4096];
		ssize_t k = recv(c->fd, junk, sizeof(junk), 0);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR &&
			       errno != EWOULDBLOCK))
			return -1;
		return 0;
	}
	if (!t->h1_rx && !(t->h1_rx = alyx__malloc(RX_CHUNK)))
		return -1;
	ssize_t k = recv(c->fd, t->h1_rx, RX_CHUNK, 0);
	if (k < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		return -1;
	}
	if (k == 0) {
		c->eof = true;
		if (!c->active && !c->in.len)
			return -1;
		return settle(c);
	}
	return on_bytes(c, t->h1_rx, (size_t)k);
}

static int on_writeable(h1c *c)
{
	int f = flush(c);

	if (f < 0)
		return -1;
	if (!f)
		return 0;
	if (c->active && c->req.state == RS_REPLY) {
		if (alyx__req_writeable(c->t, &c->req) < 0)
			c->close_after = true;
	}
	/* The request is finished, and those that waited in `in` behind
	 * it run. */
	if (drive(c, c->in.data, c->in.len, true) < 0)
		return -1;
	return settle(c);
}

static int writeable_cb(h1c *c)
{
	alyx__svc *t = c->t;

	t->h1_in_wcb = true;
	int n = on_writeable(c);
	t->h1_in_wcb = false;
	return n;
}

static void sweep(lws_sorted_usec_list_t *sul)
{
	alyx__svc *t = lws_container_of(sul, alyx__svc, h1_sul);
	int64_t now = now_us();

	for (h1c *c = t->h1_conns; c; c = c->next) {
		if (c->dl_kind == DL_NONE || now < c->deadline_us)
			continue;
		/* A request waiting for the writer has no deadline here. */
		if (c->active && (c->req.state == RS_WRITER ||
				  c->req.state == RS_REPLY) &&
		    c->pend_off >= c->pend.len)
			continue;
		c->dl_kind = DL_NONE;
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
				LWS_TO_KILL_ASYNC);
	}
	lws_sul_schedule(t->ctx, 0, &t->h1_sul, sweep, SWEEP_US);
}

int alyx__front_cb(struct lws *wsi, enum lws_callback_reasons reason,
		   void *user, void *in, size_t len)
{
	struct lws_context *cx = lws_get_context(wsi);
	alyx__svc *t = cx ? lws_context_user(cx) : NULL;
	h1c *c;

	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_PROTOCOL_INIT:
		if (t)
			lws_sul_schedule(cx, 0, &t->h1_sul, sweep, SWEEP_US);
		return 0;
	case LWS_CALLBACK_RAW_RX_FILE:
		c = lws_get_opaque_user_data(wsi);
		return c ? on_readable(c) : -1;
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		c = lws_get_opaque_user_data(wsi);
		return c ? writeable_cb(c) : -1;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		c = lws_get_opaque_user_data(wsi);
		if (c) {
			lws_set_opaque_user_data(wsi, NULL);
			conn_free(c);
		}
		return 0;
	default:
		return 0;
	}
}

int alyx__front_tls_cb(struct lws *wsi, enum lws_callback_reasons reason,
		       void *conn, void *in, size_t len)
{
	h1c *c = conn;
	int n;

	switch (reason) {
	case LWS_CALLBACK_RAW_RX:	/* decrypted client bytes */
		/* Dropped while lingering (up to the linger deadline), and
		 * once the sweep has condemned the connection: clearing lws's
		 * timeout below would cancel its kill. */
		if (c->lingering || c->dl_kind == DL_NONE)
			return 0;
		/* lws bounds the handshake, and then the wait for the first
		 * bytes after it, by the context's timeout_secs (the keep-
		 * alive idle time with TLS, service.c), and never clears that
		 * for a raw socket: it would end a busy connection.  From the
		 * first bytes on, the front's deadlines bound it. */
		lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
		n = len ? on_bytes(c, in, len) : 0;
		break;
	case LWS_CALLBACK_RAW_WRITEABLE:
		n = writeable_cb(c);
		break;
	case LWS_CALLBACK_RAW_CLOSE:
		/* The client closed (lws reads no half-closed TLS), or the
		 * connection ended. */
		lws_set_opaque_user_data(wsi, NULL);
		conn_free(c);
		return 0;
	default:
		return 0;
	}
	if (n < 0 && c->handed) {
		/* The socket is the relay's now (hand_over): a request that
		 * finished in either callback can have a handshake behind it. */
		conn_free(c);
		return 0;
	}
	return n;
}

void alyx__front_end(alyx__svc *t)
{
	lws_sul_cancel(&t->h1_sul);
	t->rearm_n = 0;
}

/* ---- the request as the router reads it ---- */

static const enum lws_token_indexes lws_tok[HH_COUNT] = {
	[HH_HOST] = WSI_TOKEN_HOST,
	[HH_CONTENT_TYPE] = WSI_TOKEN_HTTP_CONTENT_TYPE,
	[HH_CONTENT_LENGTH] = WSI_TOKEN_HTTP_CONTENT_LENGTH,
	[HH_TRANSFER_ENCODING] = WSI_TOKEN_HTTP_TRANSFER_ENCODING,
	[HH_EXPECT] = WSI_TOKEN_HTTP_EXPECT,
	[HH_AUTHORIZATION] = WSI_TOKEN_HTTP_AUTHORIZATION,
	[HH_ORIGIN] = WSI_TOKEN_ORIGIN,
	[HH_AC_REQUEST_HEADERS] = WSI_TOKEN_HTTP_AC_REQUEST_HEADERS,
	[HH_X_REQUEST_ID] = WSI_TOKEN_COUNT,	/* a custom header */
	[HH_CONNECTION] = WSI_TOKEN_CONNECTION,
	[HH_UPGRADE] = WSI_TOKEN_UPGRADE,
};

int alyx__hdr_len(alyx__req *r, int hh)
{
	if (r->h1) {
		size_t n;
		return hv(r->h1, hh, &n) ? (int)n : 0;
	}
	if (hh == HH_X_REQUEST_ID)
		return lws_hdr_custom_length(r->wsi, "x-request-id:", 13);
	return lws_hdr_total_length(r->wsi, lws_tok[hh]);
}

int alyx__hdr_copy(alyx__req *r, char *buf, int cap, int hh)
{
	if (r->h1) {
		size_t n;
		const char *v = hv(r->h1, hh, &n);
		if (!v || cap < 1 || n + 1 > (size_t)cap)
			return -1;
		memcpy(buf, v, n);
		buf[n] = '\0';
		return (int)n;
	}
	if (hh == HH_X_REQUEST_ID)
		return lws_hdr_custom_copy(r->wsi, buf, cap, "x-request-id:",
					   13);
	return lws_hdr_copy(r->wsi, buf, cap, lws_tok[hh]);
}

bool alyx__req_has_query(alyx__req *r)
{
	if (r->h1)
		return r->h1->argc > 0;
	return lws_hdr_total_length(r->wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0;
}

int alyx__arg_copy(alyx__req *r, char *buf, int cap, int idx)
{
	if (r->h1) {
		h1c *c = r->h1;
		if (idx < 0 || idx >= c->argc)
			return -1;
		size_t n = c->argv[idx].len;
		if (cap < 1 || n + 1 > (size_t)cap)
			return -1;
		memcpy(buf, c->args.data + c->argv[idx].off, n + 1);
		return (int)n;
	}
	return lws_hdr_copy_fragment(r->wsi, buf, cap, WSI_TOKEN_HTTP_URI_ARGS,
				     idx);
}

const char *alyx__req_urlarg(alyx__req *r, const char *name, char *buf,
			     int len)
{
	size_t sl = strlen(name);

	for (int i = 0; alyx__arg_copy(r, buf, len, i) >= 0; i++)
		if (!strncmp(buf, name, sl))
			return buf + sl;
	return NULL;
}

uint8_t alyx__front_method(alyx__req *r)
{
	return r->h1->h.method_tok.len ? r->h1->h.method : M_OTHER;
}

const char *alyx__front_raw_path(alyx__req *r)
{
	static _Thread_local char p[256];
	const h1c *c = r->h1;
	size_t n = c->h.path.len;

	if (!n || c->h.path.off + n > c->head.len)
		return "";
	if (n >= sizeof(p))
		n = sizeof(p) - 1;
	memcpy(p, c->head.data + c->h.path.off, n);
	p[n] = '\0';
	return p;
}

const char *alyx__req_peer(alyx__req *r, char *buf, size_t n)
{
	if (r->h1)
		return r->h1->ip[0] ? r->h1->ip : NULL;
	return alyx__svc_peer(r->wsi, buf, n);
}

int alyx__req_write(alyx__req *r, unsigned char *p, size_t n, bool final)
{
	if (final && r->method == M_HEAD) {
		/* The answer to HEAD has no body (RFC 9110 §9.3.2): a reply is
		 * written whole, its header section first. */
		const char *e = memmem(p, n, "\r\n\r\n", 4);
		if (e)
			n = (size_t)(e - (const char *)p) + 4;
	}
	if (r->h1)
		return conn_send(r->h1, (const char *)p, n);
	return lws_write(r->wsi, p, n, final ? LWS_WRITE_HTTP_FINAL
					    : LWS_WRITE_HTTP) < 0 ? -1 : 0;
}

int alyx__req_completed(alyx__req *r)
{
	if (r->h1)
		return 0;	/* front.c starts the next request itself */
	return lws_http_transaction_completed(r->wsi) ? -1 : 0;
}
