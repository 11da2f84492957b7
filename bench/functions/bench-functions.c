/*
 * bench-functions.c - what a function call costs, beside the bare
 * runtime measured in the same run:
 *   cold: the first call on an empty pool (fresh handle) vs `node -e 0` /
 *         `python3 -c pass` (fork + exec + wait), median of 10;
 *   warm: alyx_invoke of a trivial function vs a bare round trip of one
 *         JSON line to a warm worker of the same runtime over a pipe
 *         (the worker parses and re-serializes it), p50/p99;
 *   throughput: invocations per second, 4 threads, max_instances=2;
 *   container mode (functions.runner: container) beside process mode in
 *   the same run: first call, and warm p50/p99 with the two handles
 *   alternating in blocks so both see the same machine load.
 * Usage: bench-functions [warm-calls [container]] (default 5000; with
 * "container" only the container-mode part runs).
 * Container mode uses the Engine API socket $ALYX_BENCH_ENGINE, else
 * starts `podman system service` on a private socket (stopped by PID)
 * and builds the images with runtimes/build-images.sh when missing;
 * without either it says why and skips that part.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <alyx.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* This thread's CPU time, microseconds. */
static double cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[(int)(p * (n - 1))];
}

static char proj[256];
static const char *extra_yaml = "";	/* appended to alyx.yaml */

static void spit(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", proj, rel);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static void make_project(const char *sandbox)
{
	char tmpl[] = "/tmp/alyx-fnbench-XXXXXX", path[512], yaml[1024];

	if (!mkdtemp(tmpl)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(proj, sizeof(proj), "%s", tmpl);
	snprintf(path, sizeof(path), "%s/functions", proj);
	mkdir(path, 0755);
	snprintf(yaml, sizeof(yaml),
		 "auth:\n  jwt:\n    secret: bench-secret-0123456789abcdef0123\n"
		 "functions:\n  sandbox: %s\n"
		 "  node: {min_warm: 0, max_instances: 2}\n"
		 "  python: {min_warm: 0, max_instances: 2}\n%s", sandbox,
		 extra_yaml);
	spit("alyx.yaml", yaml);
	spit("functions/echo.js", "import { defineFunction } from "
	     "\"@alyx/functions\";\nexport default defineFunction({\n"
	     "  input: { n: { type: \"int\", required: true } },\n"
	     "  handler: (input) => ({ n: input.n }) });\n");
	spit("functions/echopy.py", "from alyx_functions import "
	     "define_function\n@define_function(input={\"n\": {\"type\": "
	     "\"int\", \"required\": True}})\ndef handler(input, ctx):\n"
	     "    return {\"n\": input[\"n\"]}\n");
	/* One ctx.db call per invocation. */
	spit("schema.yaml", "version: 1\ncollections:\n  posts:\n"
	     "    fields:\n      id: {type: uuid, primary: true, "
	     "default: auto}\n      title: {type: string}\n");
	spit("functions/dbget.js", "import { defineFunction } from "
	     "\"@alyx/functions\";\nexport default defineFunction({\n"
	     "  async handler(input, ctx) {\n"
	     "    return { t: (await ctx.db.posts.get(input.id)).title };\n"
	     "  } });\n");
	/* The same over HTTP (as containers would): needs the network. */
	spit("functions/dbgethttp.js", "export { default } from "
	     "\"./dbget.js\";\n");
	spit("functions/dbgethttp.yaml", "network: true\n");
	spit("functions/dbgethttppy.py", "from dbgetpy import handler\n");
	spit("functions/dbgethttppy.yaml", "network: true\n");
	spit("functions/dbgetpy.py", "from alyx_functions import "
	     "define_function\n@define_function()\ndef handler(input, ctx):\n"
	     "    return {\"t\": ctx.db.posts.get(input[\"id\"])"
	     "[\"title\"]}\n");
}

static void remove_project(void)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", proj);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", proj);
}

static alyx *open_project(void)
{
	char path[512], yaml[512];
	alyx *a = NULL;
	FILE *f;
	size_t n;

	if (alyx_open(proj, ALYX_OPEN_CREATE, &a) != ALYX_OK) {
		fprintf(stderr, "open: %s\n", alyx_errmsg(NULL));
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/schema.yaml", proj);
	f = fopen(path, "rb");
	n = f ? fread(yaml, 1, sizeof(yaml) - 1, f) : 0;
	if (f)
		fclose(f);
	if (alyx_apply_schema(a, yaml, n, "schema.yaml", 0, NULL)) {
		fprintf(stderr, "schema: %s\n", alyx_errmsg(a));
		exit(1);
	}
	return a;
}

static void invoke_with(alyx *a, const char *fn, const char *in)
{
	char *out = NULL;

	if (alyx_invoke(a, NULL, fn, in, (size_t)-1, &out)) {
		fprintf(stderr, "invoke %s: %s\n", fn, alyx_errmsg(a));
		exit(1);
	}
	alyx_free(out);
}

static void invoke(alyx *a, const char *fn)
{
	invoke_with(a, fn, "{\"n\":1}");
}

/* Warm calls of dbfn (one ctx.db.posts.get each) interleaved with warm
 * calls of the plain function, so both see the same machine load; the
 * median of the pairwise differences is the cost of one ctx.db round
 * trip.  Beside: the same read made directly with alyx_doc_get(). */
static void bench_db(alyx *a, const char *fn, const char *dbfn, int calls)
{
	double *db_us = calloc((size_t)calls, sizeof(double));
	double *fn_us = calloc((size_t)calls, sizeof(double));
	double *diff = calloc((size_t)calls, sizeof(double));
	double *direct = calloc((size_t)calls, sizeof(double));
	char *doc = NULL, in[128], *id;
	int i;

	if (alyx_doc_create(a, NULL, "posts", "{\"title\":\"bench\"}",
			    (size_t)-1, &doc)) {
		fprintf(stderr, "create: %s\n", alyx_errmsg(a));
		exit(1);
	}
	id = strstr(doc, "\"id\":\"") + 6;
	snprintf(in, sizeof(in), "{\"id\":\"%.36s\"}", id);
	for (i = 0; i < 200; i++)
		invoke_with(a, dbfn, in);
	for (i = 0; i < calls; i++) {
		double t0 = now_us(), t1, t2;

		invoke_with(a, dbfn, in);
		t1 = now_us();
		invoke(a, fn);
		t2 = now_us();
		db_us[i] = t1 - t0;
		fn_us[i] = t2 - t1;
		diff[i] = db_us[i] - fn_us[i];
	}
	snprintf(in, sizeof(in), "%.36s", id);
	for (i = 0; i < calls; i++) {
		char *out = NULL;
		double t0 = now_us();

		alyx_doc_get(a, NULL, "posts", in, NULL, &out);
		direct[i] = now_us() - t0;
		alyx_free(out);
	}
	printf("  ctx.db:     p50 %.1f us  p99 %.1f us with one "
	       "ctx.db.posts.get   plain call p50 %.1f us   (one ctx.db "
	       "round trip: median +%.1f us)   alyx_doc_get p50 %.1f us\n",
	       pct(db_us, calls, 0.5), pct(db_us, calls, 0.99),
	       pct(fn_us, calls, 0.5), pct(diff, calls, 0.5),
	       pct(direct, calls, 0.5));
	{
		/* The internal API over HTTP instead of the pipe, calls
		 * interleaved (the transport is chosen per call). */
		alyx_server_options o;
		alyx_server *srv = NULL;
		char httpfn[64];
		int n = calls / 5;	/* calls >= 100 */

		alyx_server_options_init(&o);
		o.port = 0;
		o.threads = 1;
		if (alyx_server_start(a, &o, &srv)) {
			fprintf(stderr, "server: %s\n", alyx_errmsg(a));
			exit(1);
		}
		snprintf(httpfn, sizeof(httpfn), "%s",
			 !strcmp(dbfn, "dbget") ? "dbgethttp" : "dbgethttppy");
		snprintf(in, sizeof(in), "{\"id\":\"%.36s\"}", id);
		for (i = 0; i < n + 50; i++) {
			double t0, t1, t2;

			setenv("ALYX_FUNCTIONS_DB", "http", 1);
			t0 = now_us();
			invoke_with(a, httpfn, in);
			t1 = now_us();
			unsetenv("ALYX_FUNCTIONS_DB");
			invoke_with(a, dbfn, in);
			t2 = now_us();
			if (i < 50)
				continue;	/* warm-up */
			db_us[i - 50] = t1 - t0;
			fn_us[i - 50] = t2 - t1;
			diff[i - 50] = db_us[i - 50] - fn_us[i - 50];
		}
		printf("  ctx.db over HTTP: p50 %.1f us   over the pipe "
		       "p50 %.1f us   (median +%.1f us per call)\n",
		       pct(db_us, n, 0.5), pct(fn_us, n, 0.5),
		       pct(diff, n, 0.5));
		alyx_server_free(srv);
	}
	alyx_free(doc);
	free(db_us);
	free(fn_us);
	free(diff);
	free(direct);
}

/* fork + exec + wait of argv, in microseconds. */
static double run_us(char *const argv[])
{
	double t0 = now_us();
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);

		dup2(dn, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return now_us() - t0;
}

/* A bare warm worker: reads a JSON line, writes it back re-serialized. */
static pid_t bare_worker(char *const argv[], int *to, int *from)
{
	int a[2], b[2];
	pid_t pid;

	if (pipe(a) || pipe(b))
		exit(1);
	pid = fork();
	if (pid == 0) {
		dup2(a[0], 0);
		dup2(b[1], 1);
		close(a[1]);
		close(b[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(a[0]);
	close(b[1]);
	*to = a[1];
	*from = b[0];
	return pid;
}

static double bare_round_trip(int to, int from, const char *line)
{
	char buf[4096];
	size_t n = strlen(line), got = 0;
	double t0 = now_us();

	if (write(to, line, n) != (ssize_t)n)
		exit(1);
	while (got == 0 || buf[got - 1] != '\n') {
		ssize_t r = read(from, buf + got, sizeof(buf) - got);

		if (r <= 0)
			exit(1);
		got += (size_t)r;
	}
	return now_us() - t0;
}

struct thr {
	alyx *a;
	const char *fn;
	int calls;
};

static void *hammer(void *p)
{
	struct thr *t = p;

	for (int i = 0; i < t->calls; i++)
		invoke(t->a, t->fn);
	return NULL;
}

static void bench_runtime(const char *label, const char *fn, const char *dbfn,
			  char *const bare[], char *const worker[],
			  const char *sandbox, int calls)
{
	enum { COLD = 10 };
	double cold_bare[COLD], cold_fn[COLD], *warm_fn, *warm_bare, *diff;
	double cpu_fn = 0, cpu_bare = 0;
	int to, from, i;
	pid_t wp;
	alyx *a;
	const char *line = "{\"request_id\":\"r\",\"function\":\"echo\","
			   "\"input\":{\"n\":1},\"context\":{\"auth\":null,"
			   "\"env\":{}}}\n";

	warm_fn = calloc((size_t)calls, sizeof(double));
	warm_bare = calloc((size_t)calls, sizeof(double));
	diff = calloc((size_t)calls, sizeof(double));
	make_project(sandbox);
	for (i = 0; i < COLD; i++) {
		double t0;

		cold_bare[i] = run_us(bare);
		a = open_project();
		t0 = now_us();
		invoke(a, fn);
		cold_fn[i] = now_us() - t0;
		alyx_close(a);
	}
	/* Warm calls interleaved with bare round trips (same load on
	 * both); the median of the pairwise differences is the overhead. */
	a = open_project();
	wp = bare_worker(worker, &to, &from);
	for (i = 0; i < 200; i++) {
		invoke(a, fn);
		bare_round_trip(to, from, line);
	}
	for (i = 0; i < calls; i++) {
		double t0 = now_us(), c0 = cpu_us(), c1;

		invoke(a, fn);
		c1 = cpu_us();
		cpu_fn += c1 - c0;
		warm_fn[i] = now_us() - t0;
		warm_bare[i] = bare_round_trip(to, from, line);
		cpu_bare += cpu_us() - c1;
		diff[i] = warm_fn[i] - warm_bare[i];
	}
	close(to);
	close(from);
	waitpid(wp, NULL, 0);

	printf("%s (sandbox %s)\n", label, sandbox);
	printf("  cold start: first call %.1f ms   bare runtime start %.1f ms"
	       "   (+%.1f ms)\n", pct(cold_fn, COLD, 0.5) / 1e3,
	       pct(cold_bare, COLD, 0.5) / 1e3,
	       (pct(cold_fn, COLD, 0.5) - pct(cold_bare, COLD, 0.5)) / 1e3);
	{
		double f50 = pct(warm_fn, calls, 0.5);
		double f99 = pct(warm_fn, calls, 0.99);
		double b50 = pct(warm_bare, calls, 0.5);
		double b99 = pct(warm_bare, calls, 0.99);

		printf("  warm call:  p50 %.1f us  p99 %.1f us   bare pipe "
		       "p50 %.1f us  p99 %.1f us   (x%.2f; overhead: median "
		       "+%.1f us)\n", f50, f99, b50, b99, f50 / b50,
		       pct(diff, calls, 0.5));
		printf("  host CPU:   %.1f us per warm call (libalyx's "
		       "side)   %.1f us per bare round trip (its client)\n",
		       cpu_fn / calls, cpu_bare / calls);
		bench_db(a, fn, dbfn, calls);
	}
	{
		struct thr t[4];
		pthread_t th[4];
		int per = calls / 4 > 250 ? calls / 4 : 250;
		double t0 = now_us(), el;

		for (i = 0; i < 4; i++) {
			t[i] = (struct thr){a, fn, per};
			pthread_create(&th[i], NULL, hammer, &t[i]);
		}
		for (i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
		el = now_us() - t0;
		printf("  throughput: %.0f calls/s (4 threads, "
		       "max_instances 2)\n", 4.0 * per / (el / 1e6));
	}
	alyx_close(a);
	remove_project();
	free(warm_fn);
	free(warm_bare);
	free(diff);
}

/* ---- container mode beside process mode ---- */

static pid_t podman_pid;

/* The Engine API socket: $ALYX_BENCH_ENGINE, else a podman service
 * started here (NULL, with the reason printed, when neither works). */
static const char *engine_socket(void)
{
	static char sock[128];
	const char *env = getenv("ALYX_BENCH_ENGINE");
	char cmd[600];
	int i;

	if (env && *env)
		return env;
	if (system("command -v podman >/dev/null && command -v runc "
		   ">/dev/null") != 0) {
		printf("container mode: skipped (podman and runc are not "
		       "installed; or set ALYX_BENCH_ENGINE to an Engine API "
		       "socket)\n");
		return NULL;
	}
	snprintf(sock, sizeof(sock), "/tmp/alyx-bench-podman-%d.sock",
		 (int)getpid());
	unlink(sock);
	podman_pid = fork();
	if (podman_pid == 0) {
		int dn = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(dn, 1);
		dup2(dn, 2);
		snprintf(cmd, sizeof(cmd), "unix://%s", sock);
		if (chdir("/tmp") != 0)
			_exit(126);
		execlp("podman", "podman", "--runtime", "runc", "system",
		       "service", "--time=0", cmd, (char *)NULL);
		_exit(127);
	}
	snprintf(cmd, sizeof(cmd), "curl -fs --unix-socket %s "
		 "http://d/v1.41/_ping >/dev/null 2>&1", sock);
	for (i = 0; i < 100 && system(cmd) != 0; i++)
		usleep(100000);
	snprintf(cmd, sizeof(cmd), "%s/runtimes/build-images.sh --engine "
		 "podman --if-missing", ALYX_SRC);
	if (i == 100 || system(cmd) != 0) {
		printf("container mode: skipped (the podman service or the "
		       "image build failed)\n");
		kill(podman_pid, SIGTERM);
		waitpid(podman_pid, NULL, 0);
		podman_pid = 0;
		return NULL;
	}
	return sock;
}

static void bench_container(const char *label, const char *fn,
			    const char *sock, int calls)
{
	enum { BLOCK = 250 };
	char yaml[300], pproj[256], cproj[256];
	double *wc = calloc((size_t)calls, sizeof(double));
	double *wp = calloc((size_t)calls, sizeof(double));
	double t0, first_c, first_p;
	alyx *ac, *ap;
	int i, j;

	make_project("auto");
	snprintf(pproj, sizeof(pproj), "%s", proj);
	ap = open_project();
	snprintf(yaml, sizeof(yaml), "  runner: container\n"
		 "  container_socket: %s\n", sock);
	extra_yaml = yaml;
	make_project("auto");
	extra_yaml = "";
	snprintf(cproj, sizeof(cproj), "%s", proj);
	ac = open_project();
	t0 = now_us();
	invoke(ap, fn);
	first_p = now_us() - t0;
	t0 = now_us();
	invoke(ac, fn);
	first_c = now_us() - t0;
	for (i = 0; i < 200; i++) {
		invoke(ap, fn);
		invoke(ac, fn);
	}
	for (i = 0; i < calls; i += BLOCK) {
		for (j = i; j < calls && j < i + BLOCK; j++) {
			t0 = now_us();
			invoke(ap, fn);
			wp[j] = now_us() - t0;
		}
		for (j = i; j < calls && j < i + BLOCK; j++) {
			t0 = now_us();
			invoke(ac, fn);
			wc[j] = now_us() - t0;
		}
	}
	printf("%s, container mode vs process mode (sandbox auto)\n", label);
	printf("  first call: container %.1f ms   process %.1f ms\n",
	       first_c / 1e3, first_p / 1e3);
	{
		double c50 = pct(wc, calls, 0.5), c99 = pct(wc, calls, 0.99);
		double p50 = pct(wp, calls, 0.5), p99 = pct(wp, calls, 0.99);

		printf("  warm call:  container p50 %.1f us  p99 %.1f us   "
		       "process p50 %.1f us  p99 %.1f us   (p50 %+.1f us, "
		       "p99 %+.1f us, x%.2f)\n", c50, c99, p50, p99,
		       c50 - p50, c99 - p99, c50 / p50);
	}
	alyx_close(ac);
	alyx_close(ap);
	remove_project();
	snprintf(proj, sizeof(proj), "%s", pproj);
	remove_project();
	free(wc);
	free(wp);
}

/* The real interpreter binary (PATH may hold a wrapper such as a pyenv
 * shim, which libalyx resolves too). */
static char *real_binary(const char *cmd)
{
	char buf[4096];
	FILE *f = popen(cmd, "r");

	if (!f || !fgets(buf, sizeof(buf), f)) {
		fprintf(stderr, "cannot run: %s\n", cmd);
		exit(1);
	}
	pclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return strdup(buf);
}

int main(int argc, char **argv)
{
	int calls = argc > 1 ? atoi(argv[1]) : 5000;
	bool only_container = argc > 2 && !strcmp(argv[2], "container");
	char *node = real_binary("node -p process.execPath");
	char *py = real_binary("python3 -c 'import sys; "
			       "print(sys.executable)'");
	char *node_bare[] = {node, "-e", "0", NULL};
	char *py_bare[] = {py, "-I", "-c", "pass", NULL};
	char *node_worker[] = {node, "-e",
		"const rl=require('readline').createInterface({input:"
		"process.stdin});rl.on('line',l=>{process.stdout.write("
		"JSON.stringify(JSON.parse(l))+'\\n')})", NULL};
	char *py_worker[] = {py, "-I", "-c",
		"import sys,json\nfor l in sys.stdin:\n"
		"    sys.stdout.write(json.dumps(json.loads(l))+'\\n');"
		"sys.stdout.flush()", NULL};
	const char *sandboxes[] = {"none", "auto"};

	if (calls < 100)
		calls = 100;
	for (int s = 0; s < 2 && !only_container; s++) {
		bench_runtime("node", "echo", "dbget", node_bare, node_worker,
			      sandboxes[s], calls);
		bench_runtime("python", "echopy", "dbgetpy", py_bare,
			      py_worker, sandboxes[s], calls);
	}
	{
		const char *sock = engine_socket();

		if (sock) {
			bench_container("node", "echo", sock, calls);
			bench_container("python", "echopy", sock, calls);
		}
		if (podman_pid > 0) {
			kill(podman_pid, SIGTERM);
			waitpid(podman_pid, NULL, 0);
		}
	}
	free(node);
	free(py);
	return 0;
}
