/*
 * ws-load - the WebSocket load client of the realtime benchmark
 * (bench/realtime-ws/run.py drives it; docs/realtime.md "Benchmark").
 *
 * Raw sockets, one epoll loop, and the client half of RFC 6455 written
 * here: the opening handshake, masked text frames out, unmasked frames
 * in (fragments reassembled), ping answered with pong, close noticed.
 *
 * Two modes:
 *
 *   ws-load latency -p PORT [-n N] [-s SUBSCRIBE] [-m M] [-b BASE] ...
 *	Opens N connections (at most -w at a time in the handshake), sends
 *	SUBSCRIBE on each (a text message; "" sends nothing) and waits for
 *	a "snapshot" on each.  Then prints "ready OK FAILED" on stdout and
 *	collects deliveries: every document in a later message that carries
 *	"bseq":S with BASE <= S < BASE+M is a delivery of write S, stamped
 *	by its writer with "bts":T (CLOCK_MONOTONIC ns, the same clock in
 *	every process).  Ends when -e deliveries arrived (default N*M), when
 *	nothing arrived for -q ms after the first delivery, or after -T s,
 *	and prints one JSON line of statistics (microseconds):
 *	  lat	 every delivery's receipt - stamp
 *	  first, last	per write, its first / last receipt - stamp
 *	  deliveries_per_s	deliveries / (last receipt - first stamp)
 *	The documents must be flat JSON objects (no nested object).
 *
 *	With -W COLL, ws-load is also the writer: once ready, it creates
 *	the M documents itself through the REST API (POST
 *	/api/collections/COLL on one keep-alive connection to the same
 *	server, one every -i microseconds, the next only after the previous
 *	answer), stamping "bts" just before sending each request; -g sets
 *	their "grp".  The figures then include the HTTP request.
 *
 *   ws-load idle -p PORT [-n N] [-s SUBSCRIBE]
 *	Opens N connections (subscribing if -s is given), prints
 *	"ready OK FAILED", then holds them until stdin reaches EOF (or -T s).
 *
 * Options: -H host (127.0.0.1), -P path (/api/realtime), -x subprotocol,
 * -k tokens file (one bearer token per line; connection i sends token
 * i % count as "Authorization: Bearer"), -w handshake window (64),
 * -O owners file (one value per line: connection i replaces every
 * "%OWNER%" in its subscription with line i % count), -D file (write the
 * first delta message seen to file, verbatim).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

struct conn {
	int fd;
	int state;
	int subscribed;
	char *in;		/* bytes read, not yet parsed */
	size_t in_len, in_cap;
	char *msg;		/* a fragmented message being reassembled */
	size_t msg_len, msg_cap;
};

static const char *host = "127.0.0.1";
static int port;
static const char *path = "/api/realtime";
static const char *subproto;
static const char *sub_msg;
static char **tokens;
static int n_tokens;
static char **owners;
static int n_owners;
static int n_conns = 1;
static int window = 64;
static const char *dump_path;
static int dumped;

static struct conn *conns;
static int ep;
static int n_started, n_inflight, n_ok, n_failed, n_closed, n_errors;
static int ready;

/* latency mode */
static int64_t seq_base;
static int n_seq;
static int64_t expected;
static int64_t *stamp, *first_rx, *last_rx;
static int64_t *lats;
static int64_t n_lats, lats_cap;
static int64_t n_deliveries, n_msgs, n_other;
static int64_t rx_first_ns, rx_last_ns;

/* REST writer (-W) */
#define WRITER_KEY (UINT32_MAX - 1)
static const char *w_coll;
static const char *w_grp = "a";
static int64_t w_iv_ns;
static int w_fd = -1, w_busy, w_next, w_bad;
static int64_t w_start, w_done_ns;
static char *w_in;
static size_t w_len, w_cap;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "ws-load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "ws-load: out of memory\n");
		exit(1);
	}
	return p;
}

static void reserve(char **b, size_t *cap, size_t len, size_t more)
{
	if (*cap - len >= more)
		return;
	size_t n = *cap ? *cap : 4096;
	while (n - len < more)
		n *= 2;
	*b = xrealloc(*b, n);
	*cap = n;
}

/* Writes all of b or fails: requests and control frames are small and
 * go to a socket whose send buffer is empty or nearly so. */
static int send_all(int fd, const void *b, size_t n)
{
	const char *p = b;

	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_frame(int fd, int opcode, const char *data, size_t len)
{
	unsigned char hdr[14], *b;
	size_t h = 0;
	uint32_t key = (uint32_t)rand();
	unsigned char *k;

	hdr[h++] = (unsigned char)(0x80 | opcode);
	if (len < 126) {
		hdr[h++] = (unsigned char)(0x80 | len);
	} else if (len < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(len >> 8);
		hdr[h++] = (unsigned char)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	k = hdr + h;
	memcpy(k, &key, 4);
	h += 4;
	b = xrealloc(NULL, h + len + 1);
	memcpy(b, hdr, h);
	for (size_t i = 0; i < len; i++)
		b[h + i] = (unsigned char)data[i] ^ k[i & 3];
	int rc = send_all(fd, b, h + len);
	free(b);
	return rc;
}

static void conn_fail(struct conn *c, const char *why)
{
	if (c->state == C_DEAD)
		return;
	if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
		n_inflight--;
		n_failed++;
		if (n_failed <= 5)
			fprintf(stderr, "ws-load: connection %d: %s\n",
				(int)(c - conns), why);
	} else {
		n_closed++;
		if (c->subscribed == 0 && sub_msg && *sub_msg) {
			n_ok--;
			n_failed++;
		}
		if (n_closed <= 5)
			fprintf(stderr, "ws-load: connection %d closed: %s\n",
				(int)(c - conns), why);
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = C_DEAD;
}

static void start_conn(int i)
{
	struct conn *c = &conns[i];
	struct sockaddr_in sa;
	struct epoll_event ev;
	int one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "ws-load: bad IPv4 address %s\n", host);
		exit(2);
	}
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket (raise ulimit -n?)");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = C_CONNECTING;
	n_started++;
	n_inflight++;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, strerror(errno));
		return;
	}
	ev.events = EPOLLOUT;
	ev.data.u32 = (uint32_t)i;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl");
}

static void start_more(void)
{
	while (n_started < n_conns && n_inflight < window)
		start_conn(n_started);
}

static void send_handshake(struct conn *c)
{
	char req[4096];
	int n, i = (int)(c - conns);
	struct epoll_event ev;

	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\n"
		     "Host: %s:%d\r\n"
		     "Upgrade: websocket\r\n"
		     "Connection: Upgrade\r\n"
		     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		     "Sec-WebSocket-Version: 13\r\n"
		     "%s%s%s%s%s%s"
		     "\r\n",
		     path, host, port,
		     subproto ? "Sec-WebSocket-Protocol: " : "",
		     subproto ? subproto : "", subproto ? "\r\n" : "",
		     n_tokens ? "Authorization: Bearer " : "",
		     n_tokens ? tokens[i % n_tokens] : "",
		     n_tokens ? "\r\n" : "");
	if (n <= 0 || (size_t)n >= sizeof(req) ||
	    send_all(c->fd, req, (size_t)n) < 0) {
		conn_fail(c, "cannot send the handshake");
		return;
	}
	c->state = C_HANDSHAKE;
	ev.events = EPOLLIN;
	ev.data.u32 = (uint32_t)i;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void check_ready(void)
{
	if (ready || n_started < n_conns || n_inflight)
		return;
	if (sub_msg && *sub_msg) {
		int pending = 0;
		for (int i = 0; i < n_conns; i++)
			if (conns[i].state == C_OPEN && !conns[i].subscribed)
				pending++;
		if (pending)
			return;
	}
	ready = 1;
	printf("ready %d %d\n", n_ok, n_failed);
	fflush(stdout);
}

/* The value of the integer member `key` ("\"bts\":") in [b, e). */
static int find_int(const char *b, const char *e, const char *key,
		    int64_t *v)
{
	size_t kl = strlen(key);
	const char *p = memmem(b, (size_t)(e - b), key, kl);

	if (!p)
		return 0;
	*v = strtoll(p + kl, NULL, 10);
	return 1;
}

static void record(int64_t seq, int64_t ts, int64_t t)
{
	int64_t s = seq - seq_base;

	if (s < 0 || s >= n_seq)
		return;
	if (!stamp[s])
		stamp[s] = ts;
	if (!first_rx[s] || t < first_rx[s])
		first_rx[s] = t;
	if (t > last_rx[s])
		last_rx[s] = t;
	if (n_lats == lats_cap) {
		lats_cap = lats_cap ? 2 * lats_cap : 65536;
		lats = xrealloc(lats, (size_t)lats_cap * sizeof(*lats));
	}
	lats[n_lats++] = t - ts;
	n_deliveries++;
	if (!rx_first_ns)
		rx_first_ns = t;
	rx_last_ns = t;
}

static void on_message(struct conn *c, const char *m, size_t len, int64_t t)
{
	const char *e = m + len, *p;
	const char *type = memmem(m, len, "\"type\":\"", 8);

	if (type && (size_t)(e - type) > 16 &&
	    !memcmp(type + 8, "snapshot\"", 9)) {
		if (!c->subscribed++)
			check_ready();
		return;
	}
	if (type && (size_t)(e - type) > 14 && !memcmp(type + 8, "error\"", 6)) {
		if (++n_errors <= 5)
			fprintf(stderr, "ws-load: error message: %.*s\n",
				(int)(len > 400 ? 400 : len), m);
		if (!c->subscribed) {
			/* The subscription was refused. */
			c->subscribed = -1;
			n_failed++;
			n_ok--;
			check_ready();
		}
		return;
	}
	if (!ready || !n_seq) {
		n_other++;
		return;
	}
	n_msgs++;
	if (dump_path && !dumped && memmem(m, len, "\"bseq\":", 7)) {
		FILE *f = fopen(dump_path, "w");
		if (f) {
			fwrite(m, 1, len, f);
			fclose(f);
		}
		dumped = 1;
	}
	/* Every flat document with a "bseq" is one delivery. */
	for (p = m; (p = memmem(p, (size_t)(e - p), "\"bseq\":", 7)); p += 7) {
		const char *ob = p, *oe = p;
		int64_t seq, ts;

		while (ob > m && *ob != '{')
			ob--;
		while (oe < e && *oe != '}')
			oe++;
		if (find_int(ob, oe, "\"bseq\":", &seq) &&
		    find_int(ob, oe, "\"bts\":", &ts))
			record(seq, ts, t);
	}
}

/* Parses complete frames out of c->in. */
static void parse_frames(struct conn *c, int64_t t)
{
	size_t off = 0;

	while (c->in_len - off >= 2) {
		unsigned char *b = (unsigned char *)c->in + off;
		int fin = b[0] & 0x80, op = b[0] & 0x0f;
		uint64_t len = b[1] & 0x7f;
		size_t h = 2;

		if (b[1] & 0x80) {
			conn_fail(c, "masked frame from the server");
			return;
		}
		if (len == 126) {
			if (c->in_len - off < 4)
				break;
			len = (uint64_t)b[2] << 8 | b[3];
			h = 4;
		} else if (len == 127) {
			if (c->in_len - off < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | b[2 + i];
			h = 10;
		}
		if (len > (64u << 20)) {
			conn_fail(c, "frame over 64 MiB");
			return;
		}
		if (c->in_len - off < h + len)
			break;
		char *pl = (char *)b + h;
		if (op == 0x8) {
			conn_fail(c, "close frame");
			return;
		} else if (op == 0x9) {
			if (send_frame(c->fd, 0xA, pl, (size_t)len) < 0) {
				conn_fail(c, "cannot send pong");
				return;
			}
		} else if (op == 0x1 || op == 0x2 || op == 0x0) {
			if (fin && op != 0 && !c->msg_len) {
				on_message(c, pl, (size_t)len, t);
			} else {
				reserve(&c->msg, &c->msg_cap, c->msg_len,
					(size_t)len);
				memcpy(c->msg + c->msg_len, pl, (size_t)len);
				c->msg_len += (size_t)len;
				if (fin) {
					on_message(c, c->msg, c->msg_len, t);
					c->msg_len = 0;
				}
			}
			if (c->state == C_DEAD)
				return;
		}
		off += h + (size_t)len;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

/* The subscription of connection i: "%OWNER%" replaced (-O). */
static char *subst_owner(const char *m, int i)
{
	const char *o = n_owners ? owners[i % n_owners] : "";
	size_t ol = strlen(o), n = 0;
	char *r = xrealloc(NULL, strlen(m) * (ol + 1) + 1);

	while (*m) {
		if (n_owners && !strncmp(m, "%OWNER%", 7)) {
			memcpy(r + n, o, ol);
			n += ol;
			m += 7;
		} else {
			r[n++] = *m++;
		}
	}
	r[n] = 0;
	return r;
}

static void on_handshake(struct conn *c)
{
	char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);

	if (!end) {
		if (c->in_len > 16384)
			conn_fail(c, "handshake reply too long");
		return;
	}
	if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12)) {
		char why[128];
		char *eol = memchr(c->in, '\r', c->in_len);
		snprintf(why, sizeof(why), "handshake refused: %.*s",
			 (int)(eol ? eol - c->in : 40), c->in);
		conn_fail(c, why);
		return;
	}
	size_t hl = (size_t)(end + 4 - c->in);
	memmove(c->in, c->in + hl, c->in_len - hl);
	c->in_len -= hl;
	c->state = C_OPEN;
	n_inflight--;
	n_ok++;
	if (sub_msg && *sub_msg) {
		char *m = subst_owner(sub_msg, (int)(c - conns));
		int rc = send_frame(c->fd, 0x1, m, strlen(m));
		free(m);
		if (rc < 0) {
			conn_fail(c, "cannot send the subscription");
			return;
		}
	}
	start_more();
}

static void on_readable(struct conn *c)
{
	for (;;) {
		reserve(&c->in, &c->in_cap, c->in_len, 16384);
		size_t avail = c->in_cap - c->in_len;
		ssize_t r = recv(c->fd, c->in + c->in_len,
				 c->in_cap - c->in_len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			conn_fail(c, r ? strerror(errno) : "EOF");
			start_more();
			check_ready();
			return;
		}
		int64_t t = now_ns();
		c->in_len += (size_t)r;
		if (c->state == C_HANDSHAKE) {
			on_handshake(c);
			if (c->state != C_OPEN) {
				start_more();
				check_ready();
				return;
			}
		}
		if (c->in_len)
			parse_frames(c, t);
		if (c->state == C_DEAD)
			return;
		if ((size_t)r < avail)
			return;	/* short read: the socket is drained */
	}
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_pct(const char *name, int64_t *v, int64_t n, int comma)
{
	if (!n) {
		printf("\"%s\":null%s", name, comma ? "," : "");
		return;
	}
	qsort(v, (size_t)n, sizeof(*v), cmp64);
#define PCT(q) ((double)v[(int64_t)((double)(n - 1) * (q))] / 1e3)
	printf("\"%s\":{\"n\":%" PRId64 ",\"p50\":%.1f,\"p95\":%.1f,"
	       "\"p99\":%.1f,\"max\":%.1f}%s", name, n, PCT(0.50), PCT(0.95),
	       PCT(0.99), (double)v[n - 1] / 1e3, comma ? "," : "");
#undef PCT
}

static void report(void)
{
	int64_t *f = xrealloc(NULL, (size_t)(n_seq + 1) * sizeof(*f));
	int64_t *l = xrealloc(NULL, (size_t)(n_seq + 1) * sizeof(*l));
	int64_t nf = 0, min_stamp = 0, missing = 0;
	struct rusage ru;

	for (int s = 0; s < n_seq; s++) {
		if (!stamp[s]) {
			missing++;
			continue;
		}
		if (!min_stamp || stamp[s] < min_stamp)
			min_stamp = stamp[s];
		f[nf] = first_rx[s] - stamp[s];
		l[nf++] = last_rx[s] - stamp[s];
	}
	getrusage(RUSAGE_SELF, &ru);
	double span = rx_last_ns && min_stamp
		      ? (double)(rx_last_ns - min_stamp) / 1e9 : 0;
	printf("{\"conns\":%d,\"ok\":%d,\"failed\":%d,\"closed\":%d,"
	       "\"errors\":%d,\"messages\":%" PRId64 ",\"deliveries\":%" PRId64
	       ",\"expected\":%" PRId64 ",\"writes_unseen\":%" PRId64 ","
	       "\"span_s\":%.4f,\"deliveries_per_s\":%.0f,"
	       "\"client_cpu_s\":%.3f,\"rest_writes\":%d,"
	       "\"rest_errors\":%d,",
	       n_conns, n_ok, n_failed, n_closed, n_errors, n_msgs,
	       n_deliveries, expected, missing, span,
	       span > 0 ? (double)n_deliveries / span : 0,
	       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
	       w_next, w_bad);
	print_pct("lat", lats, n_lats, 1);
	print_pct("first", f, nf, 1);
	print_pct("last", l, nf, 0);
	printf("}\n");
	fflush(stdout);
	free(f);
	free(l);
}

static char **read_lines(const char *file, int *n)
{
	FILE *f = fopen(file, "r");
	char line[8192], **v = NULL;
	int cnt = 0;

	if (!f)
		die(file);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!*line)
			continue;
		v = xrealloc(v, (size_t)(cnt + 1) * sizeof(*v));
		v[cnt++] = strdup(line);
	}
	fclose(f);
	*n = cnt;
	return v;
}

static void writer_open(void)
{
	struct sockaddr_in sa;
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = WRITER_KEY};
	int one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &sa.sin_addr);
	w_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w_fd < 0 || connect(w_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("writer connect");
	setsockopt(w_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (epoll_ctl(ep, EPOLL_CTL_ADD, w_fd, &ev) < 0)
		die("epoll_ctl");
}

/* Sends the next POST when it is due; returns ms until it is (-1: none
 * pending). */
static int writer_tick(void)
{
	static const char pad[] =
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	char body[512], req[1024];
	int64_t t = now_ns(), due;

	if (w_fd < 0 || w_busy || w_next >= n_seq)
		return -1;
	if (!w_start)
		w_start = t;
	due = w_start + (int64_t)w_next * w_iv_ns;
	if (t < due)
		return (int)((due - t) / 1000000);
	int bl = snprintf(body, sizeof(body),
			  "{\"bseq\":%" PRId64 ",\"bts\":%" PRId64 ","
			  "\"grp\":\"%s\",\"pad\":\"%s\"}",
			  seq_base + w_next, now_ns(), w_grp, pad);
	int rl = snprintf(req, sizeof(req),
			  "POST /api/collections/%s HTTP/1.1\r\n"
			  "Host: %s:%d\r\nContent-Type: application/json\r\n"
			  "Content-Length: %d\r\n\r\n%s",
			  w_coll, host, port, bl, body);
	if (send_all(w_fd, req, (size_t)rl) < 0)
		die("writer send");
	w_busy = 1;
	return -1;
}

/* Reads the answer to the POST in flight. */
static void writer_readable(void)
{
	reserve(&w_in, &w_cap, w_len, 16384);
	ssize_t r = recv(w_fd, w_in + w_len, w_cap - w_len, 0);
	if (r <= 0)
		die("writer recv");
	w_len += (size_t)r;
	char *end = memmem(w_in, w_len, "\r\n\r\n", 4);
	if (!end)
		return;
	size_t hl = (size_t)(end + 4 - w_in), cl = 0;
	char *p = memmem(w_in, hl, "\r\nContent-Length:", 17);
	if (!p)
		p = memmem(w_in, hl, "\r\ncontent-length:", 17);
	if (p)
		cl = (size_t)strtoul(p + 17, NULL, 10);
	if (w_len < hl + cl)
		return;
	if (w_len < 12 || w_in[9] != '2') {
		if (++w_bad <= 3)
			fprintf(stderr, "ws-load: writer: %.*s\n",
				(int)(w_len > 300 ? 300 : w_len), w_in);
	}
	memmove(w_in, w_in + hl + cl, w_len - hl - cl);
	w_len -= hl + cl;
	w_busy = 0;
	if (++w_next == n_seq)
		w_done_ns = now_ns();
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ws-load latency|idle -p PORT [-H host] [-P path] "
		"[-x subprotocol]\n"
		"       [-n conns] [-w window] [-s subscribe-json] "
		"[-k tokens-file] [-O owners-file]\n"
		"       [-m writes] [-b first-bseq] [-e expected] "
		"[-q quiet-ms] [-T timeout-s] [-D dump-file]\n"
		"       [-W collection [-i interval-us] [-g grp]]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt, latency, quiet_ms = 2000;
	double timeout_s = 120;
	struct epoll_event evs[256];

	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "latency"))
		latency = 1;
	else if (!strcmp(argv[1], "idle"))
		latency = 0;
	else
		usage();
	optind = 2;
	expected = -1;
	while ((opt = getopt(argc, argv, "p:H:P:x:n:w:s:k:O:m:b:e:q:T:D:W:i:g:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'H': host = optarg; break;
		case 'P': path = optarg; break;
		case 'x': subproto = optarg; break;
		case 'n': n_conns = atoi(optarg); break;
		case 'w': window = atoi(optarg); break;
		case 's': sub_msg = optarg; break;
		case 'k': tokens = read_lines(optarg, &n_tokens); break;
		case 'O': owners = read_lines(optarg, &n_owners); break;
		case 'm': n_seq = atoi(optarg); break;
		case 'b': seq_base = strtoll(optarg, NULL, 10); break;
		case 'e': expected = strtoll(optarg, NULL, 10); break;
		case 'q': quiet_ms = atoi(optarg); break;
		case 'T': timeout_s = atof(optarg); break;
		case 'D': dump_path = optarg; break;
		case 'W': w_coll = optarg; break;
		case 'i': w_iv_ns = strtoll(optarg, NULL, 10) * 1000; break;
		case 'g': w_grp = optarg; break;
		default: usage();
		}
	}
	if (port <= 0 || n_conns <= 0 || window <= 0 || n_seq < 0)
		usage();
	if (expected < 0)
		expected = (int64_t)n_conns * n_seq;
	srand((unsigned)getpid());
	conns = calloc((size_t)n_conns, sizeof(*conns));
	stamp = calloc((size_t)n_seq + 1, sizeof(*stamp));
	first_rx = calloc((size_t)n_seq + 1, sizeof(*first_rx));
	last_rx = calloc((size_t)n_seq + 1, sizeof(*last_rx));
	if (!conns || !stamp || !first_rx || !last_rx) {
		fprintf(stderr, "ws-load: out of memory\n");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	if (!latency) {
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.u32 = UINT32_MAX};
		epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
	}
	if (latency && w_coll)
		writer_open();
	start_more();

	int64_t t_end = now_ns() + (int64_t)(timeout_s * 1e9);
	for (;;) {
		int64_t t = now_ns();
		int wait_ms = 200;

		if (t >= t_end) {
			if (!ready)
				fprintf(stderr, "ws-load: timed out before "
					"every connection was ready (%d ok, "
					"%d failed of %d)\n", n_ok, n_failed,
					n_conns);
			break;
		}
		if (latency && ready) {
			int w = writer_tick();
			int64_t quiet_from = rx_last_ns;
			if (w >= 0 && w < wait_ms)
				wait_ms = w;
			if (w_fd >= 0 && (w_busy || w_next < n_seq))
				quiet_from = 0;	/* still writing */
			else if (w_fd >= 0 && quiet_from < w_done_ns)
				quiet_from = w_done_ns;
			if (quiet_from && n_deliveries >= expected &&
			    expected > 0)
				break;
			if (quiet_from && t - quiet_from >
			    (int64_t)quiet_ms * 1000000)
				break;
		}
		int n = epoll_wait(ep, evs, 256, wait_ms);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			uint32_t k = evs[i].data.u32;
			if (k == WRITER_KEY) {
				writer_readable();
				continue;
			}
			if (k == UINT32_MAX) {
				char b[256];
				if (read(0, b, sizeof(b)) <= 0)
					goto out;
				continue;
			}
			struct conn *c = &conns[k];
			if (c->state == C_CONNECTING) {
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err,
					   &el);
				if (err || (evs[i].events & (EPOLLERR |
							     EPOLLHUP))) {
					conn_fail(c, strerror(err ? err
							      : ECONNRESET));
					start_more();
					check_ready();
				} else {
					send_handshake(c);
				}
			} else if (c->state == C_HANDSHAKE ||
				   c->state == C_OPEN) {
				on_readable(c);
			}
		}
		check_ready();
	}
out:
	if (latency)
		report();
	else if (!ready)
		return 1;
	return 0;
}
