/*
 * tls.c - TLS connections served by the same HTTP/1.1 front as plain ones
 * (front.c; docs/alyxd.md, "The HTTP front").
 *
 * libwebsockets terminates TLS on the accepted socket, adopted as a raw
 * socket with TLS ("alyx-tls" protocol): it does the handshake and hands
 * over decrypted bytes, and encrypts what is written to it.  The front
 * serves those bytes directly (alyx__front_tls_cb): the same parser, the
 * same answers to malformed HTTP, chunked bodies, pipelining and
 * deadlines as a plain connection.
 *
 * A WebSocket handshake cannot move the TLS socket to lws's WebSocket
 * role, so from then on this file relays the plaintext through a
 * socketpair whose other end lws serves as a WebSocket on a vhost without
 * TLS.  Per relayed connection, two wsis share one relay: `tls` (the
 * client's socket) and `pair` (this side of the socketpair, a raw file
 * descriptor).  Bytes the WebSocket's end has not taken yet wait in
 * `to_front`; past RELAY_MAX the client's input is paused.  Output from
 * the WebSocket is read only while libwebsockets has none of the client's
 * output buffered.
 *
 * The wsis of the "alyx-tls" protocol carry either the front's
 * connection or a relay: the first byte of each says which.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "http/http.h"

#define RELAY_CHUNK (64 * 1024)	/* one chunk of output to lws */
#define RELAY_MAX (1024 * 1024)	/* client bytes waiting for the pair */

struct alyx__tlsc {
	uint8_t kind;		/* ALYX_TLSW_RELAY: first */
	alyx__svc *t;
	struct lws *tls;	/* the client's connection; NULL once closed */
	struct lws *pair;	/* our end of the socketpair; NULL once closed */
	int fd;			/* ... its descriptor */
	alyx_buf to_ws;		/* client bytes the pair has not taken */
	size_t to_ws_off;
	bool ws_eof;		/* the WebSocket's end closed */
	bool tls_paused;	/* client input paused (to_ws is full) */
};

typedef struct alyx__tlsc tlsc;

static void relay_free(tlsc *c)
{
	alyx__buf_free(&c->to_ws);
	alyx__free(c);
}

/* Closes the client's connection once what lws holds for it is out. */
static void close_tls(tlsc *c)
{
	if (c->tls)
		lws_set_timeout(c->tls, PENDING_TIMEOUT_CLOSE_SEND,
				LWS_TO_KILL_ASYNC);
}

/* The WebSocket is done and its output is out.  The client is told so at
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
	alyx__tls_shut(c->tls);
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

/* Moves waiting client bytes to the WebSocket's end.  -1: that end is
 * gone. */
static int to_ws(tlsc *c, bool in_wcb)
{
	if (c->to_ws_off < c->to_ws.len) {
		long k = alyx__send_now(c->fd, c->to_ws.data + c->to_ws_off,
					c->to_ws.len - c->to_ws_off);
		if (k < 0)
			return -1;
		c->to_ws_off += (size_t)k;
		if (c->to_ws_off < c->to_ws.len) {
			pair_writable(c, in_wcb);
			return 0;
		}
	}
	alyx__buf_trim(&c->to_ws, 4 * RELAY_CHUNK);
	c->to_ws_off = 0;
	if (c->tls_paused && c->tls) {
		c->tls_paused = false;
		lws_rx_flow_control(c->tls, 1);
	}
	return 0;
}

/* Client bytes, decrypted: straight to the WebSocket's end, or queued. */
static int from_client(tlsc *c, const char *p, size_t n)
{
	if (c->ws_eof || !c->pair)
		return 0;	/* the WebSocket is done with this connection */
	if (c->to_ws_off >= c->to_ws.len) {
		long k = alyx__send_now(c->fd, p, n);
		if (k < 0)
			return -1;
		p += k;
		n -= (size_t)k;
		if (!n)
			return 0;
		pair_writable(c, false);
	}
	alyx__buf_add(&c->to_ws, p, n);
	if (c->to_ws.err)
		return -1;
	if (c->to_ws.len - c->to_ws_off > RELAY_MAX && !c->tls_paused) {
		c->tls_paused = true;
		lws_rx_flow_control(c->tls, 0);
	}
	return 0;
}

/* The WebSocket's output: read while lws holds none of the client's. */
static int from_ws(tlsc *c)
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
		/* The WebSocket ended (lws closed its end): the client's
		 * connection ends once its last bytes are out. */
		c->ws_eof = true;
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

long alyx__tls_write(alyx__svc *t, struct lws *wsi, const char *p, size_t n)
{
	if (lws_partial_buffered(wsi))
		return 0;
	if (!t->tls_tx && !(t->tls_tx = alyx__malloc(LWS_PRE + RELAY_CHUNK)))
		return -1;
	if (n > RELAY_CHUNK)
		n = RELAY_CHUNK;
	unsigned char *b = (unsigned char *)t->tls_tx + LWS_PRE;
	memcpy(b, p, n);
	return lws_write(wsi, b, n, LWS_WRITE_RAW) < 0 ? -1 : (long)n;
}

void alyx__tls_shut(struct lws *wsi)
{
	SSL *ssl = lws_get_ssl(wsi);

	if (ssl)
		SSL_shutdown(ssl);	/* non-blocking: best effort */
	shutdown(lws_get_socket_fd(wsi), SHUT_WR);
}

int alyx__tls_hand_over(alyx__svc *t, struct lws *tls, const char *p,
			size_t n, struct lws **ws)
{
	int sv[2];
	tlsc *c = alyx__calloc(1, sizeof(*c));
	lws_sock_file_fd_type sfd;

	*ws = NULL;
	if (!c || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
			     SOCK_CLOEXEC, 0, sv) < 0) {
		alyx__free(c);
		return -1;
	}
	c->kind = ALYX_TLSW_RELAY;
	c->t = t;
	c->fd = sv[1];
	alyx__buf_init(&c->to_ws, 0);
	sfd.filefd = sv[1];
	c->pair = lws_adopt_descriptor_vhost(t->vh, LWS_ADOPT_RAW_FILE_DESC,
					     sfd, "alyx-tls", NULL);
	if (!c->pair) {	/* a raw descriptor lws failed to adopt stays open */
		close(sv[0]);
		close(sv[1]);
		relay_free(c);
		return -1;
	}
	lws_set_opaque_user_data(c->pair, c);
	c->tls = tls;
	lws_set_opaque_user_data(tls, c);
	/* The WebSocket's end, with the bytes read so far: lws answers the
	 * handshake at once, into the pair, and the relay carries the
	 * answer to the client.  When lws closes that end (a refused
	 * handshake: NULL) the relay still carries what it wrote, then
	 * reads the pair's end and closes the client's connection. */
	*ws = lws_adopt_socket_vhost_readbuf(t->vh_plain, sv[0], p, n);
	return 0;
}

int alyx__tls_cb(struct lws *wsi, enum lws_callback_reasons reason,
		 void *user, void *in, size_t len)
{
	void *u = lws_get_opaque_user_data(wsi);
	tlsc *c = u;

	(void)user;
	if (u && *(const uint8_t *)u == ALYX_TLSW_FRONT)
		return alyx__front_tls_cb(wsi, reason, u, in, len);
	switch (reason) {
	case LWS_CALLBACK_RAW_RX:	/* decrypted client bytes */
		/* lws's handshake timeout was cleared when the front read the
		 * first bytes (alyx__front_tls_cb): a timeout set on this wsi
		 * now is the relay's own kill or linger, and stands. */
		if (!c || from_client(c, in, len) < 0)
			return -1;
		return 0;
	case LWS_CALLBACK_RAW_WRITEABLE:	/* lws's buffer for the client
						 * drained */
		if (!c)
			return -1;
		if (c->ws_eof) {
			linger_tls(c);	/* the last reply is out */
			return 0;
		}
		if (c->pair)
			lws_rx_flow_control(c->pair, 1);
		return 0;
	case LWS_CALLBACK_RAW_RX_FILE:	/* the WebSocket's output */
		return c ? from_ws(c) : -1;
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		if (!c || to_ws(c, true) < 0)
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
		/* The client is gone: the WebSocket sees its end close. */
		close_pair(c);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (!c)
			return 0;
		lws_set_opaque_user_data(wsi, NULL);
		alyx__svc_writable_forget(c->t, wsi);
		c->pair = NULL;
		c->ws_eof = true;
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
