/*
 * tls.c - TLS connections served by the same HTTP/1.1 front as plain ones
 * (front.c; docs/alyxd.md, "The HTTP front").
 *
 * libwebsockets terminates TLS on the accepted socket, adopted as a raw
 * socket with TLS ("alyx-tls" protocol): it does the handshake and hands
 * over decrypted bytes, and encrypts what is written to it.  This file
 * relays those bytes through a socketpair whose other end front.c serves
 * exactly like an accepted TCP connection: the same parser, the same
 * answers to malformed HTTP, chunked bodies, pipelining, deadlines and
 * WebSocket hand-over (to a vhost without TLS: the bytes on the pair are
 * plaintext).
 *
 * Per connection, two wsis share one relay: `tls` (the client's socket)
 * and `pair` (this side of the socketpair, a raw file descriptor).  Bytes
 * the front's end has not taken yet wait in `to_front`; past RELAY_MAX
 * the client's input is paused.  Output from the front is read only while
 * libwebsockets has none of the client's output buffered.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "http/http.h"

#define RELAY_CHUNK (64 * 1024)	/* one read of the front's output */
#define RELAY_MAX (1024 * 1024)	/* client bytes waiting for the front */

struct alyx__tlsc {
	alyx__svc *t;
	struct lws *tls;	/* the client's connection; NULL once closed */
	struct lws *pair;	/* our end of the socketpair; NULL once closed */
	int fd;			/* ... its descriptor */
	alyx_buf to_front;	/* client bytes the pair has not taken */
	size_t to_front_off;
	bool front_eof;		/* the front closed or shut its side */
	bool tls_paused;	/* client input paused (to_front is full) */
};

typedef struct alyx__tlsc tlsc;

static void relay_free(tlsc *c)
{
	alyx__buf_free(&c->to_front);
	alyx__free(c);
}

/* Closes the client's connection once what lws holds for it is out. */
static void close_tls(tlsc *c)
{
	if (c->tls)
		lws_set_timeout(c->tls, PENDING_TIMEOUT_CLOSE_SEND,
				LWS_TO_KILL_ASYNC);
}

/* The front is done and its output is out.  The client is told so at
 * once (TLS close_notify, then the socket's write side shut: the end of
 * its reply), and its bytes are read and dropped for up to LINGER_S more
 * (a close with unread input would reset the connection and could destroy
 * the last reply before the client reads it: front.c lingers the same
 * way), then it closes; sooner when the client closes. */
#define LINGER_S 2
static void linger_tls(tlsc *c)
{
	if (!c->tls)
		return;
	SSL *ssl = lws_get_ssl(c->tls);
	if (ssl)
		SSL_shutdown(ssl);	/* non-blocking: best effort */
	shutdown(lws_get_socket_fd(c->tls), SHUT_WR);
	lws_set_timeout(c->tls, PENDING_TIMEOUT_CLOSE_SEND, LINGER_S);
}

static void close_pair(tlsc *c)
{
	if (c->pair)
		lws_set_timeout(c->pair, PENDING_TIMEOUT_CLOSE_SEND,
				LWS_TO_KILL_ASYNC);
}

/* POLLOUT on the pair (inside its own WRITEABLE_FILE callback, asked
 * for at the end of the loop pass: service.c). */
static void pair_writable(tlsc *c, bool in_wcb)
{
	if (in_wcb)
		alyx__svc_writable_later(c->t, c->pair);
	else
		lws_callback_on_writable(c->pair);
}

/* Moves waiting client bytes to the front's end.  -1: the front's end is
 * gone. */
static int to_front(tlsc *c, bool in_wcb)
{
	if (c->to_front_off < c->to_front.len) {
		long k = alyx__send_now(c->fd, c->to_front.data +
					c->to_front_off,
					c->to_front.len - c->to_front_off);
		if (k < 0)
			return -1;
		c->to_front_off += (size_t)k;
		if (c->to_front_off < c->to_front.len) {
			pair_writable(c, in_wcb);
			return 0;
		}
	}
	alyx__buf_reset(&c->to_front);
	c->to_front_off = 0;
	if (c->to_front.cap > 4 * RELAY_CHUNK) {
		alyx__buf_free(&c->to_front);
		alyx__buf_init(&c->to_front, 0);
	}
	if (c->tls_paused && c->tls) {
		c->tls_paused = false;
		lws_rx_flow_control(c->tls, 1);
	}
	return 0;
}

/* Client bytes, decrypted: straight to the front's end, or queued. */
static int from_client(tlsc *c, const char *p, size_t n)
{
	if (c->front_eof || !c->pair)
		return 0;	/* the front is done with this connection */
	if (c->to_front_off >= c->to_front.len) {
		long k = alyx__send_now(c->fd, p, n);
		if (k < 0)
			return -1;
		p += k;
		n -= (size_t)k;
		if (!n)
			return 0;
		pair_writable(c, false);
	}
	alyx__buf_add(&c->to_front, p, n);
	if (c->to_front.err)
		return -1;
	if (c->to_front.len - c->to_front_off > RELAY_MAX && !c->tls_paused) {
		c->tls_paused = true;
		lws_rx_flow_control(c->tls, 0);
	}
	return 0;
}

/* The front's output: read while lws holds none of the client's. */
static int from_front(tlsc *c)
{
	alyx__svc *t = c->t;

	if (!c->tls)
		return -1;
	if (lws_partial_buffered(c->tls)) {
		lws_rx_flow_control(c->pair, 0);
		lws_callback_on_writable(c->tls);
		return 0;
	}
	if (!t->tls_tx && !(t->tls_tx = alyx__malloc(LWS_PRE + RELAY_CHUNK)))
		return -1;
	unsigned char *b = (unsigned char *)t->tls_tx + LWS_PRE;
	ssize_t k = recv(c->fd, b, RELAY_CHUNK, 0);
	if (k < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		k = 0;
	}
	if (k == 0) {
		/* The front closed, or shut its side after its last reply:
		 * the client's connection ends once that reply is out. */
		c->front_eof = true;
		if (lws_partial_buffered(c->tls))
			lws_callback_on_writable(c->tls);
		else
			linger_tls(c);
		return -1;	/* this end of the pair closes */
	}
	if (lws_write(c->tls, b, (size_t)k, LWS_WRITE_RAW) < 0) {
		close_tls(c);
		return -1;
	}
	if (lws_partial_buffered(c->tls)) {
		lws_rx_flow_control(c->pair, 0);
		lws_callback_on_writable(c->tls);
	}
	return 0;
}

int alyx__tls_adopt(alyx__svc *t, int fd, const char *ip)
{
	int sv[2];
	tlsc *c = alyx__calloc(1, sizeof(*c));
	lws_sock_file_fd_type sfd;

	if (!c || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
			     SOCK_CLOEXEC, 0, sv) < 0) {
		alyx__free(c);
		close(fd);
		return -1;
	}
	c->t = t;
	c->fd = sv[1];
	alyx__buf_init(&c->to_front, 0);
	/* This end first: the client's bytes need somewhere to go. */
	sfd.filefd = sv[1];
	c->pair = lws_adopt_descriptor_vhost(t->vh, LWS_ADOPT_RAW_FILE_DESC,
					     sfd, "alyx-tls", NULL);
	if (!c->pair) {	/* lws closed sv[1] */
		close(sv[0]);
		close(fd);
		alyx__free(c);
		return -1;
	}
	lws_set_opaque_user_data(c->pair, c);
	sfd.sockfd = fd;
	c->tls = lws_adopt_descriptor_vhost(t->vh, LWS_ADOPT_SOCKET |
					    LWS_ADOPT_ALLOW_SSL, sfd,
					    "alyx-tls", NULL);
	if (!c->tls) {	/* lws closed fd */
		close(sv[0]);
		close_pair(c);	/* frees c when it closes */
		return -1;
	}
	lws_set_opaque_user_data(c->tls, c);
	/* The front serves the other end like an accepted socket. */
	if (alyx__front_adopt(t, sv[0], ip) < 0) {	/* sv[0] closed */
		close_tls(c);
		close_pair(c);
		return -1;
	}
	return 0;
}

int alyx__tls_cb(struct lws *wsi, enum lws_callback_reasons reason,
		 void *user, void *in, size_t len)
{
	tlsc *c = lws_get_opaque_user_data(wsi);

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX:	/* decrypted client bytes */
		/* lws bounds the handshake, and then the wait for the first
		 * bytes after it, by the context's timeout_secs (the keep-
		 * alive idle time with TLS, service.c), and never clears that
		 * for a raw socket: it would end a busy connection.  From the
		 * first bytes on, the front's deadlines bound the connection
		 * (and a lingering one keeps its own). */
		if (c && !c->front_eof)
			lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
		if (!c || from_client(c, in, len) < 0)
			return -1;
		return 0;
	case LWS_CALLBACK_RAW_WRITEABLE:	/* lws's buffer for the client
						 * drained */
		if (!c)
			return -1;
		if (c->front_eof) {
			linger_tls(c);	/* the last reply is out */
			return 0;
		}
		if (c->pair)
			lws_rx_flow_control(c->pair, 1);
		return 0;
	case LWS_CALLBACK_RAW_RX_FILE:	/* the front's output */
		return c ? from_front(c) : -1;
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		if (!c || to_front(c, true) < 0)
			return -1;
		return 0;
	case LWS_CALLBACK_RAW_CLOSE:
		if (!c)
			return 0;
		lws_set_opaque_user_data(wsi, NULL);
		c->tls = NULL;
		if (!c->pair) {
			relay_free(c);
			return 0;
		}
		/* The client is gone: the front sees its end close. */
		close_pair(c);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (!c)
			return 0;
		lws_set_opaque_user_data(wsi, NULL);
		alyx__svc_writable_forget(c->t, wsi);
		c->pair = NULL;
		c->front_eof = true;
		if (!c->tls) {
			relay_free(c);
			return 0;
		}
		if (!lws_partial_buffered(c->tls))
			linger_tls(c);
		return 0;
	default:
		return 0;
	}
}

void alyx__tls_end(alyx__svc *t)
{
	alyx__free(t->tls_tx);
	t->tls_tx = NULL;
}
