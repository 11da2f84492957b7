/*
 * test-container.c - the container runner (lib/functions/container.c):
 * functions run in long-lived containers made through the Docker Engine
 * API.
 *
 * Always against fake_engine.py (a small Engine API on a unix socket that
 * runs the executor as a child process): the create request (limits,
 * mounts, labels), one container serving many calls, engine errors,
 * crash and timeout replacement, the queue bound, leftovers of dead alyx
 * processes, a container that dies before connecting.  Then against
 * podman's real service (`podman system service` on a private socket,
 * stopped by PID) where podman is installed: skipped with the reason
 * where it is not or its service does not answer.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#include "functions/functions.h"
#include "util/util.h"

static char proj[256];
static char sock[128];
static pid_t engine_pid;

static void spit(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", proj, rel);
	f = fopen(path, "wb");
	ASSERT(f != NULL);
	ASSERT_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- a tiny HTTP client for the engine's socket ---- */

/* Sends one request; returns the answer's body (caller frees) and sets
 * *status. */
static char *engine_req(const char *method, const char *path,
			const char *body, int *status)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char head[1024], *all = NULL, *b;
	size_t n = 0, cap = 0;
	ssize_t r;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT(fd >= 0);
	ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(head, sizeof(head), "%s %s HTTP/1.0\r\nHost: e\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
		 "\r\n", method, path, body ? strlen(body) : 0);
	ASSERT_EQ(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	if (body)
		ASSERT_EQ(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 65536;
			all = realloc(all, cap + 1);
			ASSERT(all != NULL);
		}
		r = read(fd, all + n, cap - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	ASSERT(all != NULL);
	all[n] = '\0';
	ASSERT(sscanf(all, "HTTP/1.%*d %d", status) == 1);
	b = strstr(all, "\r\n\r\n");
	ASSERT(b != NULL);
	memmove(all, b + 4, strlen(b + 4) + 1);
	return all;
}

static cJSON *engine_json(const char *method, const char *path,
			  const char *body)
{
	int st;
	char *s = engine_req(method, path, body, &st);
	cJSON *j = cJSON_Parse(s);

	free(s);
	ASSERT(j != NULL);
	return j;
}

/* ---- the fake engine ---- */

static void fake_start(const char *images)
{
	char cmd[1024];
	int p[2];
	char buf[16] = "";

	snprintf(sock, sizeof(sock), "/tmp/alyx-fake-%d.sock", (int)getpid());
	ASSERT_EQ(pipe(p), 0);
	engine_pid = fork();
	ASSERT(engine_pid >= 0);
	if (engine_pid == 0) {
		/* It ends with this test, even one that crashed. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(p[1], 1);
		close(p[0]);
		snprintf(cmd, sizeof(cmd), "exec python3 %s/tests/unit/"
			 "functions/fake_engine.py %s %s", getenv("ALYX_SRC"),
			 sock, images);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	for (size_t n = 0; n < sizeof(buf) - 1 && !strchr(buf, '\n');) {
		ssize_t r = read(p[0], buf + n, sizeof(buf) - 1 - n);

		ASSERT(r > 0);
		n += (size_t)r;
	}
	close(p[0]);
	ASSERT(strncmp(buf, "ready", 5) == 0);
}

static void engine_stop(void)
{
	int st;

	if (engine_pid > 0) {
		kill(engine_pid, SIGTERM);
		waitpid(engine_pid, &st, 0);
	}
	engine_pid = 0;
}

static void fake_fault(const char *op, int status, const char *message)
{
	char body[512];
	int st;

	snprintf(body, sizeof(body), "{\"op\":\"%s\",\"status\":%d,"
		 "\"message\":\"%s\",\"times\":1}", op, status, message);
	free(engine_req("POST", "/_fake/fault", body, &st));
	ASSERT_EQ(st, 204);
}

/* How many Engine API calls were `method` on a path starting `prefix`
 * and ending `suffix`. */
static int count_calls(const char *method, const char *prefix,
		       const char *suffix)
{
	cJSON *calls = engine_json("GET", "/_fake/calls", NULL), *c;
	int n = 0;

	cJSON_ArrayForEach(c, calls) {
		const char *m = cJSON_GetArrayItem(c, 0)->valuestring;
		const char *p = cJSON_GetArrayItem(c, 1)->valuestring;
		size_t lp = strlen(p), ls = strlen(suffix);

		n += !strcmp(m, method) && !strncmp(p, prefix, strlen(prefix)) &&
		     lp >= ls && !strcmp(p + lp - ls, suffix);
	}
	cJSON_Delete(calls);
	return n;
}

/* The body of the n-th container create (0-based). */
static cJSON *create_body(int n)
{
	cJSON *calls = engine_json("GET", "/_fake/calls", NULL), *c, *r = NULL;

	cJSON_ArrayForEach(c, calls) {
		if (!strcmp(cJSON_GetArrayItem(c, 0)->valuestring, "POST") &&
		    !strncmp(cJSON_GetArrayItem(c, 1)->valuestring,
			     "/containers/create", 18) && n-- == 0) {
			r = cJSON_Duplicate(cJSON_GetArrayItem(c, 2), 1);
			break;
		}
	}
	cJSON_Delete(calls);
	ASSERT(r != NULL);
	return r;
}

static int live_containers(void)
{
	cJSON *l = engine_json("GET", "/v1.41/containers/json?all=1", NULL);
	int n = cJSON_GetArraySize(l);

	cJSON_Delete(l);
	return n;
}

/* ---- projects ---- */

/* A fresh project using the engine at `sock`; `extra` is appended to
 * the functions section of alyx.yaml. */
static alyx *project(const char *extra)
{
	char tmpl[] = "/tmp/alyx-ctrt-XXXXXX", path[512], yaml[2048];
	alyx *a = NULL;

	ASSERT(mkdtemp(tmpl) != NULL);
	snprintf(proj, sizeof(proj), "%s", tmpl);
	snprintf(path, sizeof(path), "%s/functions", proj);
	ASSERT_EQ(mkdir(path, 0755), 0);
	snprintf(yaml, sizeof(yaml),
		 "functions:\n"
		 "  runner: container\n"
		 "  container_socket: %s\n"
		 "  node: {min_warm: 0, max_instances: 2, exec_timeout: 20s}\n"
		 "  python: {min_warm: 0, max_instances: 2, "
		 "exec_timeout: 20s}\n%s", sock, extra ? extra : "");
	spit("alyx.yaml", yaml);
	if (alyx_open(proj, ALYX_OPEN_CREATE, &a) != ALYX_OK)
		TH_FAIL("open: %s", alyx_errmsg(NULL));
	spit("functions/hello.js",
	     "export default { handler(input, ctx) {\n"
	     "  return { hi: input.name, pid: process.pid }; } };\n");
	spit("functions/hello_py.py",
	     "import os\n"
	     "from alyx_functions import define_function\n"
	     "@define_function()\n"
	     "def handler(input, ctx):\n"
	     "    return {'hi': input.get('name'), 'pid': os.getpid()}\n");
	return a;
}

static void done(alyx *a)
{
	char cmd[600];

	alyx_close(a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", proj);
	ASSERT_EQ(system(cmd), 0);
}

/* Invokes `name`; on success returns the output's "pid" (else -1). */
static int invoke(alyx *a, const char *name, int expect_rc)
{
	char *out = NULL;
	int rc = alyx_invoke(a, NULL, name, "{\"name\":\"ann\"}", (size_t)-1,
			     &out);
	int pid = -1;

	if (rc != expect_rc)
		TH_FAIL("invoke %s: %d (%s), expected %d", name, rc,
			alyx_errmsg(a), expect_rc);
	if (rc == ALYX_OK) {
		cJSON *r = cJSON_Parse(out), *o;

		ASSERT(r != NULL);
		ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(r, "success")));
		o = cJSON_GetObjectItem(r, "output");
		if (cJSON_GetObjectItem(o, "pid"))
			pid = cJSON_GetObjectItem(o, "pid")->valueint;
		cJSON_Delete(r);
	}
	alyx_free(out);
	return pid;
}

static cJSON *pools(alyx *a)
{
	char *j = NULL;
	cJSON *o;

	ASSERT_OK(alyx_functions_json(a, &j));
	o = cJSON_Parse(j);
	alyx_free(j);
	ASSERT(o != NULL);
	return o;
}

static const char *str_at(cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItem(o, k);

	ASSERT(cJSON_IsString(v));
	return v->valuestring;
}

/* ---- against the fake engine ---- */

TEST(fake_one_container_serves_many_calls)
{
	alyx *a;
	cJSON *b, *hc, *u, *o;
	int pid, i;
	char bind[600];

	fake_start("alyx-node:local alyx-python:local");
	a = project(NULL);
	pid = invoke(a, "hello", ALYX_OK);
	for (i = 0; i < 20; i++)
		ASSERT_EQ(invoke(a, "hello", ALYX_OK), pid);
	ASSERT(invoke(a, "hello_py", ALYX_OK) > 0);
	/* One container per runtime, started once; never an exec. */
	ASSERT_EQ(count_calls("POST", "/containers/create", ""), 2);
	ASSERT_EQ(count_calls("POST", "/containers/", "/start"), 2);
	ASSERT_EQ(count_calls("POST", "/containers/", "/exec"), 0);
	ASSERT_EQ(count_calls("POST", "/containers/", "/attach"), 0);
	ASSERT_EQ(count_calls("GET", "/_ping", ""), 1);
	ASSERT_EQ(count_calls("GET", "/images/alyx-node:local/json", ""), 1);

	b = create_body(0);
	ASSERT_STR_EQ(str_at(b, "Image"), "alyx-node:local");
	ASSERT_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "Entrypoint"),
					 0)->valuestring, "node");
	hc = cJSON_GetObjectItem(b, "HostConfig");
	ASSERT_STR_EQ(str_at(hc, "NetworkMode"), "none");
	ASSERT_EQ(cJSON_GetObjectItem(hc, "Memory")->valuedouble,
		  256 << 20);
	ASSERT_EQ(cJSON_GetObjectItem(hc, "MemorySwap")->valuedouble,
		  256 << 20);
	ASSERT_EQ(cJSON_GetObjectItem(hc, "PidsLimit")->valueint, 128);
	ASSERT_EQ(cJSON_GetObjectItem(hc, "NanoCpus")->valuedouble, 1e9);
	ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(hc, "ReadonlyRootfs")));
	ASSERT(cJSON_GetObjectItem(cJSON_GetObjectItem(hc, "Tmpfs"), "/tmp"));
	u = cJSON_GetObjectItem(hc, "Ulimits");
	ASSERT_EQ(cJSON_GetArraySize(u), 2);
	ASSERT_STR_EQ(str_at(cJSON_GetArrayItem(u, 0), "Name"), "nofile");
	ASSERT_STR_EQ(str_at(cJSON_GetArrayItem(u, 1), "Name"), "nproc");
	ASSERT_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(hc, "CapDrop"),
					 0)->valuestring, "ALL");
	{
		char *rp = realpath(proj, NULL);

		snprintf(bind, sizeof(bind), "%s/functions:%s/functions:ro",
			 rp, rp);
		free(rp);
	}
	ASSERT_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(hc, "Binds"),
					 0)->valuestring, bind);
	ASSERT_STR_EQ(str_at(cJSON_GetObjectItem(b, "Labels"), "dev.alyx.fn"),
		      "1");
	ASSERT(strchr(str_at(cJSON_GetObjectItem(b, "Labels"),
			     "dev.alyx.owner"), '/') != NULL);
	cJSON_Delete(b);
	b = create_body(1);
	ASSERT_STR_EQ(str_at(b, "Image"), "alyx-python:local");
	cJSON_Delete(b);

	o = pools(a);
	ASSERT_STR_EQ(str_at(o, "sandbox"), "container");
	ASSERT_STR_EQ(str_at(o, "runner"), "container");
	cJSON_Delete(o);
	ASSERT_EQ(live_containers(), 2);
	done(a);
	/* alyx_close deleted both. */
	ASSERT_EQ(live_containers(), 0);
	ASSERT_EQ(count_calls("DELETE", "/containers/", "?force=1&v=1"), 2);
	engine_stop();
}

TEST(fake_manifest_network_and_memory)
{
	alyx *a;
	cJSON *b, *hc;

	fake_start("alyx-node:local");
	a = project(NULL);
	spit("functions/net.js", "export default { handler() { return 1; } };");
	spit("functions/net.yaml", "network: true\nmemory: 64mb\n");
	invoke(a, "net", ALYX_OK);
	b = create_body(0);
	hc = cJSON_GetObjectItem(b, "HostConfig");
	ASSERT_STR_EQ(str_at(hc, "NetworkMode"), "bridge");
	ASSERT_EQ(cJSON_GetObjectItem(hc, "Memory")->valuedouble, 64 << 20);
	ASSERT_CONTAINS(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "Cmd"),
					   0)->valuestring,
			"--max-old-space-size=64");
	cJSON_Delete(b);
	done(a);
	engine_stop();
}

TEST(engine_socket_missing)
{
	alyx *a;

	snprintf(sock, sizeof(sock), "/tmp/alyx-no-engine-%d.sock",
		 (int)getpid());
	a = project(NULL);
	invoke(a, "hello", ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), sock);
	ASSERT_CONTAINS(alyx_errmsg(a), "No such file");
	ASSERT_CONTAINS(alyx_errmsg(a), "functions.container_socket");
	done(a);
}

TEST(engine_not_listening)
{
	alyx *a;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	/* A socket file nobody listens on (a stopped engine). */
	snprintf(sock, sizeof(sock), "/tmp/alyx-dead-engine-%d.sock",
		 (int)getpid());
	unlink(sock);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	a = project(NULL);
	invoke(a, "hello", ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), "cannot reach the container engine");
	ASSERT_CONTAINS(alyx_errmsg(a), sock);
	done(a);
	unlink(sock);
}

TEST(fake_engine_refuses)
{
	alyx *a;

	fake_start("alyx-node:local");
	a = project(NULL);
	fake_fault("ping", 500, "engine is shutting down");
	invoke(a, "hello", ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), "engine is shutting down");
	fake_fault("create", 500, "no space left on device");
	invoke(a, "hello", ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), "refused to create a container: "
			"HTTP 500: no space left on device");
	fake_fault("start", 500, "OCI runtime error");
	invoke(a, "hello", ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), "refused to start a container: "
			"HTTP 500: OCI runtime error");
	/* The created-but-not-started container was deleted. */
	ASSERT_EQ(live_containers(), 0);
	/* Faults used up: the next call works. */
	invoke(a, "hello", ALYX_OK);
	ASSERT_EQ(live_containers(), 1);
	done(a);
	engine_stop();
}

TEST(fake_image_missing)
{
	alyx *a;

	fake_start("alyx-node:local");
	a = project(NULL);
	invoke(a, "hello_py", ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), "alyx-python:local");
	ASSERT_CONTAINS(alyx_errmsg(a), "runtimes/build-images.sh");
	ASSERT_EQ(count_calls("POST", "/containers/create", ""), 0);
	invoke(a, "hello", ALYX_OK);
	done(a);
	engine_stop();
}

TEST(fake_container_exits_before_connecting)
{
	alyx *a;

	fake_start("broken-node:local");
	a = project("  container: {start_timeout: 10s}\n");
	{
		char yaml[1024];

		/* The image runs something that is not the executor. */
		snprintf(yaml, sizeof(yaml), "functions:\n  runner: container\n"
			 "  container_socket: %s\n  node: {min_warm: 0, "
			 "image: broken-node:local}\n", sock);
		alyx_close(a);
		spit("alyx.yaml", yaml);
		ASSERT_OK(alyx_open(proj, 0, &a));
	}
	invoke(a, "hello", ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), "exited with status 3 before its "
			"executor connected: executor failed to load");
	ASSERT_EQ(live_containers(), 0);
	done(a);
	engine_stop();
}

static void crash_is_replaced(const char *name, const char *code)
{
	alyx *a;
	cJSON *o, *p, *d;
	int before, after;

	fake_start("alyx-node:local alyx-python:local");
	a = project(NULL);
	spit(!strcmp(name, "die") ? "functions/die.js" : "functions/die_py.py",
	     code);
	before = invoke(a, !strcmp(name, "die") ? "hello" : "hello_py",
			ALYX_OK);
	invoke(a, name, ALYX_E_FUNCTION);
	ASSERT_CONTAINS(alyx_errmsg(a), "exited with status 3");
	d = cJSON_Parse(alyx_errdetails(a));
	ASSERT_STR_EQ(str_at(d, "code"), "EXECUTOR_EXITED");
	cJSON_Delete(d);
	/* A fresh container replaced it; the dead one was deleted. */
	after = invoke(a, !strcmp(name, "die") ? "hello" : "hello_py",
		       ALYX_OK);
	ASSERT(after != before);
	ASSERT_EQ(count_calls("POST", "/containers/create", ""), 2);
	ASSERT_EQ(count_calls("DELETE", "/containers/", "?force=1&v=1"), 1);
	ASSERT_EQ(live_containers(), 1);
	o = pools(a);
	p = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "pools"), 0);
	ASSERT_EQ(cJSON_GetObjectItem(p, "replaced")->valueint, 1);
	ASSERT_EQ(cJSON_GetObjectItem(p, "instances")->valueint, 1);
	cJSON_Delete(o);
	done(a);
	engine_stop();
}

TEST(fake_node_crash_is_replaced)
{
	crash_is_replaced("die", "export default { handler() { "
			  "process.exit(3); } };\n");
}

TEST(fake_python_crash_is_replaced)
{
	crash_is_replaced("die_py", "import os\n"
			  "from alyx_functions import define_function\n"
			  "@define_function()\ndef handler(i, c):\n"
			  "    os._exit(3)\n");
}

TEST(fake_timeout_kills_the_container)
{
	alyx *a;
	int before;

	fake_start("alyx-node:local");
	a = project(NULL);
	spit("functions/spin.js", "export default { handler() { "
	     "for (;;) {} } };\n");
	spit("functions/spin.yaml", "timeout: 300ms\n");
	before = invoke(a, "hello", ALYX_OK);
	invoke(a, "spin", ALYX_E_TIMEOUT);
	ASSERT_CONTAINS(alyx_errmsg(a), "timeout of 300 ms");
	ASSERT_EQ(count_calls("DELETE", "/containers/", "?force=1&v=1"), 1);
	/* The pool (256 MB, no network) has a fresh container. */
	ASSERT(invoke(a, "hello", ALYX_OK) != before);
	ASSERT_EQ(live_containers(), 1);
	done(a);
	engine_stop();
}

struct racer {
	alyx *a;
	pthread_barrier_t *bar;
	int rc;
};

static void *race(void *p)
{
	struct racer *r = p;
	char *out = NULL;

	pthread_barrier_wait(r->bar);
	r->rc = alyx_invoke(r->a, NULL, "slow", "{}", 2, &out);
	alyx_free(out);
	return NULL;
}

TEST(fake_queue_bound_then_unavailable)
{
	enum { N = 1 + ALYX__FN_QUEUE_FACTOR + 2 };
	alyx *a;
	pthread_t th[N];
	struct racer r[N];
	pthread_barrier_t bar;
	int ok = 0, unavailable = 0, i;

	fake_start("alyx-python:local");
	a = project(NULL);
	{
		char yaml[1024];

		snprintf(yaml, sizeof(yaml), "functions:\n  runner: container\n"
			 "  container_socket: %s\n  python: {min_warm: 1, "
			 "max_instances: 1, exec_timeout: 20s}\n", sock);
		alyx_close(a);
		spit("alyx.yaml", yaml);
		ASSERT_OK(alyx_open(proj, 0, &a));
	}
	spit("functions/slow.py", "import time\n"
	     "from alyx_functions import define_function\n"
	     "@define_function()\ndef handler(i, c):\n"
	     "    time.sleep(0.4)\n    return 1\n");
	invoke(a, "slow", ALYX_OK);	/* warm */
	pthread_barrier_init(&bar, NULL, N);
	for (i = 0; i < N; i++) {
		r[i] = (struct racer){a, &bar, -1};
		ASSERT_EQ(pthread_create(&th[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ok += r[i].rc == ALYX_OK;
		unavailable += r[i].rc == ALYX_E_UNAVAILABLE;
	}
	pthread_barrier_destroy(&bar);
	ASSERT_EQ(ok, 1 + ALYX__FN_QUEUE_FACTOR);
	ASSERT_EQ(unavailable, 2);
	ASSERT_EQ(count_calls("POST", "/containers/create", ""), 1);
	done(a);
	engine_stop();
}

TEST(fake_leftovers_of_dead_processes_are_removed)
{
	char host[256] = "", body[1024], self_stat[1024];
	alyx *a;
	pid_t dead;
	int st;
	cJSON *l, *c;
	bool saw_live = false;

	fake_start("alyx-node:local");
	gethostname(host, sizeof(host) - 1);
	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, &st, 0);
	snprintf(body, sizeof(body), "{\"Id\":\"%064d\",\"Labels\":{"
		 "\"dev.alyx.fn\":\"1\",\"dev.alyx.owner\":\"%s/%d/12345\"}}",
		 1, host, (int)dead);
	free(engine_req("POST", "/_fake/add", body, &st));
	/* pid 1 is alive, but with another start time: a reused pid, so
	 * its container is a leftover too. */
	snprintf(body, sizeof(body), "{\"Id\":\"%064d\",\"Labels\":{"
		 "\"dev.alyx.fn\":\"1\",\"dev.alyx.owner\":\"%s/1/1\"}}",
		 2, host);
	free(engine_req("POST", "/_fake/add", body, &st));
	/* The test process itself: alive, kept. */
	{
		FILE *f = fopen("/proc/self/stat", "r");
		char *p;
		int i;

		ASSERT(f != NULL);
		ASSERT(fgets(self_stat, sizeof(self_stat), f) != NULL);
		fclose(f);
		p = strrchr(self_stat, ')');
		for (i = 2; p && i < 22; i++)
			p = strchr(p + 1, ' ');
		ASSERT(p != NULL);
		snprintf(body, sizeof(body), "{\"Id\":\"%064d\",\"Labels\":{"
			 "\"dev.alyx.fn\":\"1\",\"dev.alyx.owner\":"
			 "\"%s/%d/%llu\"}}", 3, host, (int)getpid(),
			 strtoull(p + 1, NULL, 10));
	}
	free(engine_req("POST", "/_fake/add", body, &st));
	/* Another host's: not ours to judge. */
	snprintf(body, sizeof(body), "{\"Id\":\"%064d\",\"Labels\":{"
		 "\"dev.alyx.fn\":\"1\",\"dev.alyx.owner\":\"elsewhere/%d/1\"}}",
		 4, (int)dead);
	free(engine_req("POST", "/_fake/add", body, &st));
	/* Not an alyx container. */
	snprintf(body, sizeof(body), "{\"Id\":\"%064d\",\"Labels\":{}}", 5);
	free(engine_req("POST", "/_fake/add", body, &st));
	ASSERT_EQ(live_containers(), 5);

	/* And the socket directory of the dead process. */
	snprintf(body, sizeof(body), "/tmp/alyx-ctr-%d-test", (int)dead);
	ASSERT_EQ(mkdir(body, 0711), 0);
	snprintf(self_stat, sizeof(self_stat), "%s/1", body);
	ASSERT_EQ(mkdir(self_stat, 0711), 0);

	a = project(NULL);
	invoke(a, "hello", ALYX_OK);
	ASSERT(access(body, F_OK) != 0);
	l = engine_json("GET", "/v1.41/containers/json?all=1", NULL);
	ASSERT_EQ(cJSON_GetArraySize(l), 4);	/* 3 kept + the new one */
	cJSON_ArrayForEach(c, l) {
		const char *id = str_at(c, "Id");

		ASSERT(strcmp(id, "0000000000000000000000000000000000000000"
			      "000000000000000000000001") != 0);
		ASSERT(strcmp(id, "0000000000000000000000000000000000000000"
			      "000000000000000000000002") != 0);
		saw_live |= !strcmp(id, "000000000000000000000000000000000000"
				    "0000000000000000000000000003");
	}
	ASSERT(saw_live);
	cJSON_Delete(l);
	done(a);
	engine_stop();
}

TEST(fake_engine_stops_between_calls)
{
	alyx *a;

	fake_start("alyx-node:local");
	a = project(NULL);
	invoke(a, "hello", ALYX_OK);
	/* The engine dies (and its "containers" with it): the call sees the
	 * executor gone, the replacement fails with the reason. */
	engine_stop();
	invoke(a, "hello", ALYX_E_UNAVAILABLE);
	ASSERT_CONTAINS(alyx_errmsg(a), sock);
	done(a);
}

/* ---- ctx.db over the container's socket ---- */

static const char posts_schema[] =
	"version: 1\n"
	"collections:\n"
	"  posts:\n"
	"    fields:\n"
	"      id: {type: uuid, primary: true, default: auto}\n"
	"      slug: {type: string, unique: true}\n";

/* Node and Python functions in containers use ctx.db (the internal API
 * on the same socket as the protocol), a transaction included. */
static void ctx_db_in_containers(alyx *a)
{
	char *plan = NULL, *out = NULL;

	if (alyx_apply_schema(a, posts_schema, (size_t)-1, "schema.yaml", 0,
			      &plan) != ALYX_OK)
		TH_FAIL("schema: %s", alyx_errmsg(a));
	alyx_free(plan);
	spit("functions/write.js",
	     "export default { async handler(input, ctx) {\n"
	     "  const p = await ctx.db.posts.create({slug: input.slug});\n"
	     "  try { await ctx.db.transaction(async (tx) => {\n"
	     "    await tx.posts.create({slug: 'rolled-back'});\n"
	     "    throw new Error('no'); }); } catch (e) {}\n"
	     "  return { id: p.id }; } };\n");
	spit("functions/count.py",
	     "from alyx_functions import define_function\n"
	     "@define_function()\n"
	     "def handler(input, ctx):\n"
	     "    return {'n': ctx.db.raw('SELECT count(*) AS n FROM posts')"
	     "['rows'][0]['n']}\n");
	ASSERT_OK(alyx_invoke(a, NULL, "write", "{\"slug\":\"s1\"}",
			      (size_t)-1, &out));
	alyx_free(out);
	if (alyx_invoke(a, NULL, "count", "{}", 2, &out) != ALYX_OK)
		TH_FAIL("count: %s", alyx_errmsg(a));
	ASSERT_CONTAINS(out, "\"n\":1");
	alyx_free(out);
}

TEST(fake_ctx_db_in_containers)
{
	alyx *a;

	fake_start("alyx-node:local alyx-python:local");
	a = project(NULL);
	ctx_db_in_containers(a);
	done(a);
	engine_stop();
}

/* ---- against podman's real service ---- */

static char podman_why[256];

/* Starts `podman system service` on a private socket (runc, as
 * ../shared/notes/containers.md found necessary on these machines) and
 * builds the images when missing.  False (with podman_why) when podman
 * is not usable here. */
static bool podman_start(void)
{
	char cmd[1024], log[160];
	int i, st;

	const char *other = getenv("ALYX_TEST_ENGINE");

	if (other && *other) {
		/* Another engine (e.g. dockerd), images built beforehand. */
		snprintf(sock, sizeof(sock), "%s", other);
		engine_pid = 0;
		return true;
	}
	if (system("command -v podman >/dev/null 2>&1") != 0) {
		snprintf(podman_why, sizeof(podman_why),
			 "podman is not installed (scripts/deps.sh installs "
			 "it)");
		return false;
	}
	if (system("command -v runc >/dev/null 2>&1") != 0) {
		snprintf(podman_why, sizeof(podman_why),
			 "runc is not installed (crun fails on cgroup v1 "
			 "hybrid hosts; scripts/deps.sh installs runc)");
		return false;
	}
	snprintf(sock, sizeof(sock), "/tmp/alyx-podman-%d.sock", (int)getpid());
	snprintf(log, sizeof(log), "/tmp/alyx-podman-%d.log", (int)getpid());
	unlink(sock);
	engine_pid = fork();
	ASSERT(engine_pid >= 0);
	if (engine_pid == 0) {
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		snprintf(cmd, sizeof(cmd), "unix://%s", sock);
		/* conmon writes an "oom" file into its working directory
		 * when a container is killed for memory. */
		if (chdir("/tmp") != 0)
			_exit(126);
		execlp("podman", "podman", "--runtime", "runc", "system",
		       "service", "--time=0", cmd, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 300; i++) {
		struct stat sb;

		if (stat(sock, &sb) == 0) {
			int code = 0;
			char *b = NULL;

			b = engine_req("GET", "/v1.41/_ping", NULL, &code);
			free(b);
			if (code == 200)
				break;
		}
		if (waitpid(engine_pid, &st, WNOHANG) == engine_pid) {
			engine_pid = 0;
			snprintf(podman_why, sizeof(podman_why),
				 "`podman system service` exited (see %s)",
				 log);
			return false;
		}
		sleep_ms(50);
	}
	if (i == 300) {
		engine_stop();
		snprintf(podman_why, sizeof(podman_why), "`podman system "
			 "service` did not answer _ping within 15 s");
		return false;
	}
	unlink(log);
	snprintf(cmd, sizeof(cmd), "%s/runtimes/build-images.sh --engine "
		 "podman --if-missing >&2", getenv("ALYX_SRC"));
	if (system(cmd) != 0) {
		engine_stop();
		snprintf(podman_why, sizeof(podman_why), "building the images "
			 "with runtimes/build-images.sh failed");
		return false;
	}
	return true;
}

#define NEED_PODMAN()                                                   \
	do {                                                            \
		if (!podman_start()) {                                  \
			printf("  skip: %s\n", podman_why);             \
			SKIP(podman_why);                               \
		}                                                       \
	} while (0)

/* Our containers still known to the engine (named alyx-fn-<pid>-<n>). */
static int podman_ours(void)
{
	char path[256];
	cJSON *l, *c;
	int n = 0;

	snprintf(path, sizeof(path), "/v1.41/containers/json?all=1&filters="
		 "%%7B%%22name%%22%%3A%%5B%%22alyx-fn-%d-%%22%%5D%%7D",
		 (int)getpid());
	l = engine_json("GET", path, NULL);
	cJSON_ArrayForEach(c, l) {
		cJSON *lab = cJSON_GetObjectItem(c, "Labels");

		n += cJSON_GetObjectItem(lab, "dev.alyx.fn") != NULL;
	}
	cJSON_Delete(l);
	return n;
}

TEST(podman_functions_run_in_containers)
{
	alyx *a;
	char *out = NULL;
	int pid, i;

	NEED_PODMAN();
	a = project(NULL);
	spit("functions/probe.py",
	     "import os, socket\n"
	     "from alyx_functions import define_function\n"
	     "@define_function()\n"
	     "def handler(input, ctx):\n"
	     "    r = {}\n"
	     "    try:\n"
	     "        socket.create_connection(('1.1.1.1', 53), timeout=1)\n"
	     "        r['net'] = 'open'\n"
	     "    except OSError as e:\n"
	     "        r['net'] = 'refused'\n"
	     "    try:\n"
	     "        open('/etc/probe', 'w')\n"
	     "        r['rootfs'] = 'writable'\n"
	     "    except OSError:\n"
	     "        r['rootfs'] = 'read-only'\n"
	     "    try:\n"
	     "        open(os.environ['ALYX_FUNCTIONS_DIR'] + '/x', 'w')\n"
	     "        r['functions'] = 'writable'\n"
	     "    except OSError:\n"
	     "        r['functions'] = 'read-only'\n"
	     "    open('/tmp/t', 'w').write('ok')\n"
	     "    r['tmp'] = open('/tmp/t').read()\n"
	     "    r['shadow'] = os.path.exists('/etc/shadow')\n"
	     "    r['mem'] = open('/sys/fs/cgroup/memory/memory.limit_in_bytes')"
	     ".read().strip() if os.path.exists('/sys/fs/cgroup/memory/"
	     "memory.limit_in_bytes') else open('/sys/fs/cgroup/memory.max')"
	     ".read().strip()\n"
	     "    return r\n");
	spit("functions/die.js", "export default { handler() { "
	     "process.exit(3); } };\n");
	pid = invoke(a, "hello", ALYX_OK);
	for (i = 0; i < 10; i++)
		ASSERT_EQ(invoke(a, "hello", ALYX_OK), pid);
	ASSERT(invoke(a, "hello_py", ALYX_OK) > 0);
	ASSERT_EQ(podman_ours(), 2);

	ASSERT_OK(alyx_invoke(a, NULL, "probe", "{}", 2, &out));
	ASSERT_CONTAINS(out, "\"net\":\"refused\"");
	ASSERT_CONTAINS(out, "\"rootfs\":\"read-only\"");
	ASSERT_CONTAINS(out, "\"functions\":\"read-only\"");
	ASSERT_CONTAINS(out, "\"tmp\":\"ok\"");
	ASSERT_CONTAINS(out, "\"shadow\":false");
	ASSERT_CONTAINS(out, "\"mem\":\"268435456\"");
	alyx_free(out);

	ctx_db_in_containers(a);

	/* A crash: the container is replaced and the dead one deleted. */
	invoke(a, "die", ALYX_E_FUNCTION);
	ASSERT_CONTAINS(alyx_errmsg(a), "exited with status 3");
	ASSERT(invoke(a, "hello", ALYX_OK) != -1);
	ASSERT_EQ(podman_ours(), 2);
	done(a);
	ASSERT_EQ(podman_ours(), 0);
	engine_stop();
}

TEST(podman_memory_limit_kills_the_container)
{
	alyx *a;

	NEED_PODMAN();
	a = project(NULL);
	spit("functions/hog.py",
	     "from alyx_functions import define_function\n"
	     "@define_function()\n"
	     "def handler(input, ctx):\n"
	     "    b = []\n"
	     "    while True:\n"
	     "        b.append(bytearray(8 << 20))\n");
	spit("functions/hog.yaml", "memory: 64mb\n");
	invoke(a, "hog", ALYX_E_FUNCTION);
	/* The kernel's OOM killer: SIGKILL (podman on cgroup v1 does not
	 * report OOMKilled, so the message names the likely cause). */
	ASSERT_CONTAINS(alyx_errmsg(a), "killed");
	ASSERT_CONTAINS(alyx_errmsg(a), "memory limit of 64 MiB");
	/* Other pools are unaffected. */
	invoke(a, "hello_py", ALYX_OK);
	done(a);
	ASSERT_EQ(podman_ours(), 0);
	engine_stop();
}

TEST_MAIN()
