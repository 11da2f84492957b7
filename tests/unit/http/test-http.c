/*
 * test-http.c - the server API (alyx_server_*) from C: options, start-up
 * errors, serving over a raw socket, log callbacks, graceful stop with a
 * request in flight.  The integration suite (tests/integration) covers
 * the routes through alyxd.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "alyx.h"

static const char schema[] =
	"version: 1\n"
	"collections:\n"
	"  notes:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      text: {type: string, maxLength: 20}\n"
	"    rules: {create: \"true\", read: \"true\", update: \"true\",\n"
	"            delete: \"true\"}\n";

#define TEST_SECRET "test-secret-test-secret-test-secret-0123"

/* A project in a fresh directory; with `secret`, the handle has a JWT
 * secret (a server refuses to start without one). */
static alyx *open_project_s(char *dir, bool secret)
{
	alyx *a = NULL;

	strcpy(dir, "/tmp/alyx-test-http-XXXXXX");
	if (!mkdtemp(dir))
		return NULL;
	if (alyx_open(dir, ALYX_OPEN_CREATE, &a) != ALYX_OK)
		return NULL;
	if (secret && alyx_auth_default_secret(a, TEST_SECRET) != ALYX_OK) {
		alyx_close(a);
		return NULL;
	}
	if (alyx_apply_schema(a, schema, (size_t)-1, NULL, 0, NULL) !=
	    ALYX_OK) {
		alyx_close(a);
		return NULL;
	}
	return a;
}

static alyx *open_project(char *dir)
{
	return open_project_s(dir, true);
}

static void remove_project(const char *dir)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static int connect_to(int port)
{
	struct sockaddr_in sa = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends `req` and reads until the connection closes or a full reply (by
 * Content-Length) arrived.  Returns the reply (static buffer). */
static const char *http(int port, const char *req)
{
	static char buf[65536];
	size_t n = 0;
	int fd = connect_to(port);

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return buf;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		char *body = strstr(buf, "\r\n\r\n");
		char *cl = strstr(buf, "Content-Length: ");
		if (body && cl && (size_t)(buf + n - (body + 4)) >=
		    (size_t)atol(cl + 16))
			break;
	}
	close(fd);
	return buf;
}

TEST(options_init_defaults)
{
	alyx_server_options o;

	memset(&o, 0x5a, sizeof(o));
	alyx_server_options_init(&o);
	ASSERT_EQ(o.version, ALYX_SERVER_OPTIONS_VERSION);
	ASSERT_EQ(o.port, -1);
	ASSERT_EQ(o.threads, 0);
	ASSERT_EQ(o.log_fd, -1);
	ASSERT_EQ(o.loop, ALYX_SERVER_LOOP_DEFAULT);
	ASSERT(o.host == NULL && o.log_cb == NULL && o.flags == 0);
	alyx_server_options_init(NULL);
}

TEST(bad_options_are_refused)
{
	char dir[64];
	alyx *a = open_project(dir);
	alyx_server_options o;
	alyx_server *s = (alyx_server *)&o;

	ASSERT(a);
	ASSERT_EQ(alyx_server_start(NULL, NULL, &s), ALYX_E_MISUSE);
	ASSERT(s == NULL);
	alyx_server_options_init(&o);
	o.version = 0;
	ASSERT_EQ(alyx_server_start(a, &o, &s), ALYX_E_MISUSE);
	ASSERT_CONTAINS(alyx_errmsg(a), "version");
	alyx_server_options_init(&o);
	o.port = 70000;
	ASSERT_EQ(alyx_server_start(a, &o, &s), ALYX_E_MISUSE);
	alyx_server_options_init(&o);
	o.threads = 1000;
	ASSERT_EQ(alyx_server_start(a, &o, &s), ALYX_E_MISUSE);
	alyx_server_options_init(&o);
	o.port = 0;
	o.tls_cert = "/nonexistent.pem";
	ASSERT_EQ(alyx_server_start(a, &o, &s), ALYX_E_CONFIG);
	ASSERT_CONTAINS(alyx_errmsg(a), "both");
	o.tls_key = "/nonexistent.key";
	ASSERT_EQ(alyx_server_start(a, &o, &s), ALYX_E_CONFIG);
	ASSERT_CONTAINS(alyx_errmsg(a), "cannot be read");
	alyx_server_options_init(&o);
	o.port = 0;
	o.host = "no such host.invalid";
	ASSERT_EQ(alyx_server_start(a, &o, &s), ALYX_E_CONFIG);
	ASSERT(s == NULL);
	ASSERT_EQ(alyx_server_stop(NULL, 0), ALYX_E_MISUSE);
	alyx_server_free(NULL);
	alyx_close(a);
	remove_project(dir);
}

/* Without a JWT secret the server refuses to start, naming the key;
 * with auth.enabled: false it needs none. */
TEST(server_needs_a_jwt_secret)
{
	char dir[64], path[128];
	alyx *a = open_project_s(dir, false);
	alyx_server_options o;
	alyx_server *s = NULL;
	FILE *f;

	ASSERT(a);
	alyx_server_options_init(&o);
	o.port = 0;
	ASSERT_EQ(alyx_server_start(a, &o, &s), ALYX_E_CONFIG);
	ASSERT(s == NULL);
	ASSERT_CONTAINS(alyx_errmsg(a), "auth.jwt.secret");
	ASSERT_CONTAINS(alyx_errmsg(a), "auth.enabled: false");
	ASSERT_CONTAINS(alyx_errdetails(a), "auth.jwt.secret");
	/* Too short a default is refused; a configured one would win. */
	ASSERT_EQ(alyx_auth_default_secret(a, "short"), ALYX_E_CONFIG);
	ASSERT_EQ(alyx_auth_default_secret(a, NULL), ALYX_E_MISUSE);
	ASSERT_EQ(alyx_server_start(a, &o, &s), ALYX_E_CONFIG);
	ASSERT_OK(alyx_auth_default_secret(a, TEST_SECRET));
	ASSERT_OK(alyx_server_start(a, &o, &s));
	ASSERT_OK(alyx_server_stop(s, 1000));
	alyx_server_free(s);
	s = NULL;
	alyx_close(a);
	remove_project(dir);

	/* A project without accounts. */
	a = open_project_s(dir, false);
	ASSERT(a);
	alyx_close(a);
	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	f = fopen(path, "w");
	ASSERT(f);
	fputs("auth:\n  enabled: false\n", f);
	fclose(f);
	ASSERT_OK(alyx_open(dir, 0, &a));
	ASSERT_OK(alyx_server_start(a, &o, &s));
	ASSERT_OK(alyx_server_stop(s, 1000));
	alyx_server_free(s);
	alyx_close(a);
	remove_project(dir);
}

struct logs {
	pthread_mutex_t mu;
	char text[8192];
};

static void log_cb(void *ud, int level, const char *line, size_t len)
{
	struct logs *l = ud;

	pthread_mutex_lock(&l->mu);
	size_t used = strlen(l->text);
	if (used + len + 2 < sizeof(l->text)) {
		memcpy(l->text + used, line, len);
		l->text[used + len] = '\n';
		l->text[used + len + 1] = '\0';
	}
	pthread_mutex_unlock(&l->mu);
	ASSERT(level >= ALYX_LOG_ERROR && level <= ALYX_LOG_INFO);
	ASSERT_EQ(line[len], '\0');
}

TEST(serves_and_stops)
{
	char dir[64];
	alyx *a = open_project(dir);
	alyx_server_options o;
	alyx_server *s = NULL, *s2 = NULL;
	struct logs logs = {.mu = PTHREAD_MUTEX_INITIALIZER};
	const char *r;

	ASSERT(a);
	alyx_server_options_init(&o);
	o.port = 0;
	o.threads = 2;
	o.log_cb = log_cb;
	o.log_user_data = &logs;
	o.log_format = ALYX_LOG_LOGFMT;
	o.flags = ALYX_SERVER_BENCH_ROUTES;
	ASSERT_OK(alyx_server_start(a, &o, &s));
	int port = alyx_server_port(s);
	ASSERT(port > 0 && port < 65536);

	r = http(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	ASSERT_CONTAINS(r, "HTTP/1.1 200 OK");
	ASSERT_CONTAINS(r, "\"name\":\"alyx\"");
	ASSERT_CONTAINS(r, "X-Request-Id: ");
	r = http(port, "GET /bench/hello HTTP/1.1\r\nHost: x\r\n\r\n");
	ASSERT_CONTAINS(r, "200 OK");
	r = http(port, "POST /api/collections/notes HTTP/1.1\r\nHost: x\r\n"
		 "Content-Type: application/json\r\nContent-Length: 14\r\n"
		 "X-Request-Id: unit-1\r\n\r\n{\"text\":\"hi!\"}");
	ASSERT_CONTAINS(r, "HTTP/1.1 201 Created");
	ASSERT_CONTAINS(r, "\"text\":\"hi!\"");
	r = http(port, "POST /api/collections/notes HTTP/1.1\r\nHost: x\r\n"
		 "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
		 "{\"text\":\"this text is far too long....\"}");
	ASSERT_CONTAINS(r, "422");
	ASSERT_CONTAINS(r, "\"code\":\"VALIDATION_ERROR\"");
	r = http(port, "GET /api/collections/notes?total=true HTTP/1.1\r\n"
		 "Host: x\r\n\r\n");
	ASSERT_CONTAINS(r, "\"total\":1");

	/* The same port again: refused, with a clear message. */
	o.port = port;
	o.log_cb = NULL;
	ASSERT_EQ(alyx_server_start(a, &o, &s2), ALYX_E_IO);
	ASSERT_CONTAINS(alyx_errmsg(a), "already in use");
	ASSERT(s2 == NULL);

	ASSERT_OK(alyx_server_stop(s, 1000));
	ASSERT_OK(alyx_server_stop(s, 1000));	/* idempotent */
	ASSERT(connect_to(port) < 0);		/* no longer listening */
	alyx_server_free(s);
	ASSERT_CONTAINS(logs.text, "msg=request method=POST "
			"path=/api/collections/notes status=201");
	ASSERT_CONTAINS(logs.text, "request_id=unit-1");
	alyx_close(a);
	remove_project(dir);
}

TEST(stop_bounds_a_request_in_flight)
{
	char dir[64];
	alyx *a = open_project(dir);
	alyx_server_options o;
	alyx_server *s = NULL;

	ASSERT(a);
	alyx_server_options_init(&o);
	o.port = 0;
	o.threads = 1;
	ASSERT_OK(alyx_server_start(a, &o, &s));
	int fd = connect_to(alyx_server_port(s));
	ASSERT(fd >= 0);
	/* Headers of a POST whose body never comes. */
	const char *req = "POST /api/collections/notes HTTP/1.1\r\nHost: x\r\n"
			  "Content-Type: application/json\r\n"
			  "Content-Length: 10\r\n\r\n{";
	ASSERT(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
	usleep(200 * 1000);
	ASSERT_EQ(alyx_server_stop(s, 150), ALYX_E_TIMEOUT);
	char c;
	ASSERT(read(fd, &c, 1) <= 0);	/* its connection was closed */
	close(fd);
	alyx_server_free(s);
	alyx_close(a);
	remove_project(dir);
}

TEST_MAIN()
