/*
 * ws-bare - the ceiling of the realtime benchmark: a bare libwebsockets
 * server (one context, like one alyxd service thread) that broadcasts
 * messages to every connected client, with nothing else to do
 * (bench/realtime-ws/run.py; docs/realtime.md "Benchmark").
 *
 *   ws-bare -p PORT [-e] [-t TEMPLATE] [-n CONTEXTS]
 *
 * Any WebSocket upgrade is accepted (any path, with or without a
 * subprotocol).  A client's first text message (its subscription) is
 * answered with {"type":"snapshot",...}; later ones are ignored.
 *
 * Commands on stdin, one per line:
 *   fire BASE M INTERVAL_US   publish M messages, one every INTERVAL_US
 *			       (0: back to back), then print "done M"
 *   quit		       stop
 * Message i is TEMPLATE with the integer after "bseq": replaced by
 * BASE+i and the one after "bts": by the CLOCK_MONOTONIC ns at which it
 * is published (the "commit" of this server).  The template is a real
 * alyxd delta captured by ws-load -D, so both servers send the same
 * bytes; without -t a delta of the same shape is built in.
 *
 * The publisher is a thread: it writes the message into a ring and wakes
 * the service loop with lws_cancel_service(); the loop asks for
 * SERVER_WRITEABLE on every connection, and each connection sends the
 * messages it has not sent yet, one lws_write() per callback.
 * -e uses lws's libev event loop instead of poll().  -n N runs N contexts
 * on N threads sharing the port like alyxd's service threads (Debian's
 * lws cannot share a listener: each thread has its own SO_REUSEPORT
 * socket, adopted as a raw file, and accepts with accept4()); a message
 * wakes every context.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING 4096
#define MSG_MAX 8192

struct msg {
	size_t len;
	unsigned char buf[LWS_PRE + MSG_MAX];
};

struct pss {
	uint64_t next;		/* next ring sequence to send */
	int snapshot;		/* a snapshot reply is owed */
	int subscribed;
};

/* One service thread: its context and, with -n > 1, its listener. */
struct svc {
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct ev_loop *loop;
	int lfd;
	uint64_t woken;		/* last `published` this thread acted on */
	pthread_t th;
};

static struct msg *ring;
static _Atomic uint64_t published;	/* messages in the ring */
static atomic_int quit;
static struct svc *svcs;
static int n_svc = 1;

/* The template around its two numbers: pre N1 mid N2 post. */
static char *t_pre, *t_mid, *t_post;
static int t_seq_first;		/* 1: bseq comes before bts */

static const char default_tmpl[] =
	"{\"type\":\"delta\",\"payload\":{\"subscription_id\":\"sub_1\","
	"\"changes\":{\"inserts\":[{\"id\":\"0f8fad5b-d9cb-469f-a165-"
	"70867728950e\",\"bseq\":0,\"bts\":0,\"grp\":\"a\",\"owner\":null,"
	"\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"created_at\":\"2026-"
	"11-24T08:00:00.000Z\",\"updated_at\":\"2026-11-24T08:00:00.000Z\"}]"
	",\"updates\":[],\"deletes\":[]},\"change_id\":1}}";

static const char snapshot_msg[] =
	"{\"id\":\"1\",\"type\":\"snapshot\",\"payload\":{\"subscription_id\":"
	"\"sub_1\",\"docs\":[],\"change_id\":0}}";

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Splits the template at the digits after "bseq": and "bts":. */
static int split_template(const char *t)
{
	const char *s = strstr(t, "\"bseq\":"), *b = strstr(t, "\"bts\":");

	if (!s || !b)
		return -1;
	s += 7;
	b += 6;
	t_seq_first = s < b;
	const char *x = t_seq_first ? s : b, *y = t_seq_first ? b : s;
	const char *xe = x, *ye = y;
	while (*xe == '-' || (*xe >= '0' && *xe <= '9'))
		xe++;
	while (*ye == '-' || (*ye >= '0' && *ye <= '9'))
		ye++;
	t_pre = strndup(t, (size_t)(x - t));
	t_mid = strndup(xe, (size_t)(y - xe));
	t_post = strdup(ye);
	return t_pre && t_mid && t_post ? 0 : -1;
}

static void publish(int64_t seq)
{
	uint64_t n = atomic_load(&published);
	struct msg *m = &ring[n % RING];
	int64_t ts = now_ns();
	int len = snprintf((char *)m->buf + LWS_PRE, MSG_MAX,
			   "%s%lld%s%lld%s", t_pre,
			   (long long)(t_seq_first ? seq : ts), t_mid,
			   (long long)(t_seq_first ? ts : seq), t_post);

	m->len = len > 0 && len < MSG_MAX ? (size_t)len : 0;
	atomic_store(&published, n + 1);
	for (int i = 0; i < n_svc; i++)
		lws_cancel_service(svcs[i].ctx);
}

static const struct lws_protocols protocols[3];

static int cb(struct lws *wsi, enum lws_callback_reasons reason,
	      void *user, void *in, size_t len)
{
	struct pss *p = user;

	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		p->next = atomic_load(&published);
		p->snapshot = 0;
		p->subscribed = 0;
		break;
	case LWS_CALLBACK_RECEIVE:
		if (!p->subscribed) {
			p->subscribed = 1;
			p->snapshot = 1;
			lws_callback_on_writable(wsi);
		}
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE: {
		uint64_t end = atomic_load(&published);
		if (p->snapshot) {
			unsigned char b[LWS_PRE + sizeof(snapshot_msg)];
			memcpy(b + LWS_PRE, snapshot_msg,
			       sizeof(snapshot_msg) - 1);
			p->snapshot = 0;
			if (lws_write(wsi, b + LWS_PRE,
				      sizeof(snapshot_msg) - 1,
				      LWS_WRITE_TEXT) < 0)
				return -1;
		} else if (p->next < end) {
			if (end - p->next > RING)
				p->next = end - RING;	/* lagging: skip */
			struct msg *m = &ring[p->next % RING];
			p->next++;
			if (m->len && lws_write(wsi, m->buf + LWS_PRE, m->len,
						LWS_WRITE_TEXT) < 0)
				return -1;
		}
		if (p->snapshot || p->next < end)
			lws_callback_on_writable(wsi);
		break;
	}
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
		/* Raised on every accept too (lws 4.1): only act on news. */
		struct lws_context *cx = lws_get_context(wsi);
		struct svc *sv = lws_context_user(cx);
		uint64_t n = atomic_load(&published);
		if (sv && n != sv->woken) {
			sv->woken = n;
			lws_callback_on_writable_all_protocol(cx,
							      &protocols[0]);
		}
		break;
	}
	default:
		break;
	}
	return 0;
}

/* -n > 1: the thread's own listener, adopted as a raw file. */
static int listen_cb(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len)
{
	struct svc *sv = lws_context_user(lws_get_context(wsi));
	int one = 1;

	(void)user;
	(void)in;
	(void)len;
	if (reason != LWS_CALLBACK_RAW_RX_FILE || !sv)
		return 0;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(sv->lfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		lws_adopt_socket_vhost(sv->vh, fd);
	}
	return 0;
}

static const struct lws_protocols protocols[3] = {
	{"bench", cb, sizeof(struct pss), 4096, 0, NULL, 0},
	{"bench-listen", listen_cb, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

static void *stdin_thread(void *arg)
{
	char line[256];

	(void)arg;
	while (fgets(line, sizeof(line), stdin)) {
		long long base, m, iv;

		if (sscanf(line, "fire %lld %lld %lld", &base, &m, &iv) == 3) {
			int64_t t = now_ns();
			for (long long i = 0; i < m; i++) {
				if (iv > 0) {
					/* Paced from the start, not from the
					 * previous publish. */
					int64_t due = t + i * iv * 1000;
					int64_t d = due - now_ns();
					if (d > 0) {
						struct timespec ts = {
							d / 1000000000,
							d % 1000000000};
						nanosleep(&ts, NULL);
					}
				}
				publish(base + i);
			}
			printf("done %lld\n", m);
			fflush(stdout);
		} else if (!strncmp(line, "quit", 4)) {
			break;
		}
	}
	atomic_store(&quit, 1);
	for (int i = 0; i < n_svc; i++)
		lws_cancel_service(svcs[i].ctx);
	return NULL;
}

static char *slurp(const char *file)
{
	FILE *f = fopen(file, "r");
	char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	if (b)
		b[n] = 0;
	fclose(f);
	return b;
}

/* A SO_REUSEPORT listener on 127.0.0.1:*port (0: any; set on return). */
static int listen_on(int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
				 SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)*port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static int svc_init(struct svc *sv, int *port, int use_ev)
{
	struct lws_context_creation_info info;
	void *foreign[1];

	memset(&info, 0, sizeof(info));
	info.port = n_svc > 1 ? CONTEXT_PORT_NO_LISTEN_SERVER : *port;
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	info.vhost_name = "bench";
	info.user = sv;
	info.pt_serv_buf_size = 64 * 1024;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	if (use_ev) {
		sv->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
		foreign[0] = sv->loop;
		info.options |= LWS_SERVER_OPTION_LIBEV;
		info.foreign_loops = foreign;
	}
	sv->ctx = lws_create_context(&info);
	if (!sv->ctx)
		return -1;
	sv->vh = lws_get_vhost_by_name(sv->ctx, "bench");
	if (!sv->vh)
		return -1;
	if (n_svc == 1) {
		*port = lws_get_vhost_listen_port(sv->vh);
		return 0;
	}
	lws_sock_file_fd_type fd;
	sv->lfd = listen_on(port);
	fd.filefd = sv->lfd;
	if (sv->lfd < 0 || !lws_adopt_descriptor_vhost(sv->vh,
			LWS_ADOPT_RAW_FILE_DESC, fd, "bench-listen", NULL))
		return -1;
	return 0;
}

static void *svc_main(void *arg)
{
	struct svc *sv = arg;

	if (sv->loop) {
		while (!atomic_load(&quit))
			ev_run(sv->loop, EVRUN_ONCE);
	} else {
		while (!atomic_load(&quit))
			lws_service(sv->ctx, 0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *tmpl_file = NULL;
	int opt, port = 0, use_ev = 0;
	pthread_t th;

	while ((opt = getopt(argc, argv, "p:et:n:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'e': use_ev = 1; break;
		case 't': tmpl_file = optarg; break;
		case 'n': n_svc = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: ws-bare -p PORT [-e] "
				"[-t template] [-n contexts]\n");
			return 2;
		}
	}
	if (n_svc < 1 || n_svc > 64) {
		fprintf(stderr, "ws-bare: -n is 1 to 64\n");
		return 2;
	}
	char *tmpl = tmpl_file ? slurp(tmpl_file) : strdup(default_tmpl);
	if (!tmpl || strlen(tmpl) > MSG_MAX - 64 || split_template(tmpl)) {
		fprintf(stderr, "ws-bare: bad template (needs \"bseq\": and "
			"\"bts\": numbers, < %d bytes)\n", MSG_MAX - 64);
		return 2;
	}
	free(tmpl);
	ring = calloc(RING, sizeof(*ring));
	svcs = calloc((size_t)n_svc, sizeof(*svcs));
	if (!ring || !svcs)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR, NULL);
	for (int i = 0; i < n_svc; i++) {
		svcs[i].lfd = -1;
		if (svc_init(&svcs[i], &port, use_ev)) {
			fprintf(stderr, "ws-bare: cannot create context %d%s\n",
				i, use_ev ? " (is libwebsockets-evlib-ev "
				"installed?)" : "");
			return 1;
		}
	}
	printf("listening %d\n", port);
	fflush(stdout);
	for (int i = 1; i < n_svc; i++)
		pthread_create(&svcs[i].th, NULL, svc_main, &svcs[i]);
	pthread_create(&th, NULL, stdin_thread, NULL);
	svc_main(&svcs[0]);
	for (int i = 1; i < n_svc; i++)
		pthread_join(svcs[i].th, NULL);
	pthread_join(th, NULL);
	for (int i = 0; i < n_svc; i++) {
		lws_context_destroy(svcs[i].ctx);
		if (svcs[i].loop)
			ev_loop_destroy(svcs[i].loop);
	}
	free(svcs);
	free(ring);
	return 0;
}
