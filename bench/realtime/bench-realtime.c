/*
 * bench-realtime - how long from a write's commit until every subscriber
 * has its delta, in-process through the C API (docs/realtime.md).
 *
 * A writer thread creates documents one at a time, pacing one every
 * 2 ms.  It stamps each just before the call (t0) and just after it
 * returns (t1: the commit is done).  The dispatching thread waits on
 * alyx_get_fd() and runs alyx_dispatch(); every subscription's callback
 * records when it saw the document.  Reported per subscriber count:
 *   write   t1 - t0 (the write itself, the baseline of the same run)
 *   first   first receipt - t0
 *   last    last receipt - t0 (every subscriber has it)
 * p50/p95/p99 in microseconds.  Subscribers with the same query share
 * one view (one window, one delta built); the last two runs give every
 * subscriber a query of its own.  A document coalesced away (entered
 * and left a window within one batch) counts as MISSING.  commit -> receipt is at most
 * `last` - `write` at each percentile (the wake-up is sent inside the
 * call, right after COMMIT).
 *
 * usage: bench-realtime [writes]    (default 400)
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <alyx.h>

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int n_writes;
static int64_t *t0, *t1, *first, *last;
static volatile int writer_done;

static void on_msg(const char *json, size_t len, void *ud)
{
	const char *p = json;
	int64_t t = now_us();

	(void)len;
	(void)ud;
	/* Deltas carry "id":"wN" for each inserted document. */
	while ((p = strstr(p, "\"id\":\"w"))) {
		int i = atoi(p + 7);

		if (i >= 0 && i < n_writes) {
			if (!first[i])
				first[i] = t;
			last[i] = t;
		}
		p += 7;
	}
}

static void *writer(void *ud)
{
	alyx *a = ud;
	int i;

	for (i = 0; i < n_writes; i++) {
		char doc[96], *out = NULL;

		snprintf(doc, sizeof(doc),
			 "{\"id\":\"w%d\",\"grp\":\"a\",\"n\":%d}", i, i);
		t0[i] = now_us();
		if (alyx_doc_create(a, NULL, "items", doc, (size_t)-1, &out))
			fprintf(stderr, "create: %s\n", alyx_errmsg(a));
		t1[i] = now_us();
		alyx_free(out);
		usleep(2000);
	}
	writer_done = 1;
	return NULL;
}

static int cmp64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return (a > b) - (a < b);
}

static void pct(const char *what, int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp64);
	printf("  %-6s p50 %6lld  p95 %6lld  p99 %6lld us\n", what,
	       (long long)v[n / 2], (long long)v[n * 95 / 100],
	       (long long)v[n * 99 / 100]);
}

static int run(int n_subs, int distinct)
{
	static const char schema[] =
		"version: 1\ncollections:\n  items:\n    fields:\n"
		"      id: {type: string, primary: true}\n"
		"      grp: {type: string}\n      n: {type: int}\n";
	char dir[] = "/tmp/alyx-bench-rt-XXXXXX", cmd[128], *plan = NULL;
	alyx_sub **subs = calloc((size_t)n_subs, sizeof(*subs));
	int64_t *d = calloc((size_t)n_writes, sizeof(*d));
	pthread_t th;
	alyx *a = NULL;
	int i, missing = 0;

	if (!mkdtemp(dir) || alyx_open(dir, ALYX_OPEN_CREATE, &a) ||
	    alyx_apply_schema(a, schema, (size_t)-1, NULL, 0, &plan)) {
		fprintf(stderr, "setup: %s\n", alyx_errmsg(a));
		return 1;
	}
	alyx_free(plan);
	for (i = 0; i < n_subs; i++) {
		/* Shared: half by equality (indexed), half by a range
		 * (evaluated), two distinct queries in all.  Distinct: each
		 * subscriber its own range query (no sharing). */
		char q[128];

		if (distinct)
			snprintf(q, sizeof(q), "{\"filter\":{\"n\":{\"$gte\":%d}},"
				 "\"sort\":[\"-n\"],\"limit\":10}", -i);
		else
			snprintf(q, sizeof(q), "%s", i % 2
				 ? "{\"filter\":{\"grp\":\"a\"},"
				   "\"sort\":[\"-n\"],\"limit\":10}"
				 : "{\"filter\":{\"n\":{\"$gte\":0}},"
				   "\"sort\":[\"-n\"],\"limit\":10}");

		if (alyx_subscribe(a, NULL, "items", q, on_msg, NULL, NULL,
				   &subs[i])) {
			fprintf(stderr, "subscribe: %s\n", alyx_errmsg(a));
			return 1;
		}
	}
	alyx_dispatch(a);
	memset(first, 0, (size_t)n_writes * sizeof(*first));
	memset(last, 0, (size_t)n_writes * sizeof(*last));
	writer_done = 0;
	pthread_create(&th, NULL, writer, a);
	while (!writer_done) {
		struct pollfd p = {.fd = alyx_get_fd(a), .events = POLLIN};

		poll(&p, 1, 10);
		alyx_dispatch(a);
	}
	pthread_join(th, NULL);
	usleep(100000);
	alyx_dispatch(a);
	printf("%d subscriber(s), %s queries, %d writes:\n", n_subs,
	       distinct ? "distinct" : n_subs == 1 ? "1" : "2 shared",
	       n_writes);
	for (i = 0; i < n_writes; i++)
		d[i] = t1[i] - t0[i];
	pct("write", d, n_writes);
	for (i = 0; i < n_writes; i++) {
		missing += !last[i];
		d[i] = first[i] ? first[i] - t0[i] : 0;
	}
	pct("first", d, n_writes);
	for (i = 0; i < n_writes; i++)
		d[i] = last[i] ? last[i] - t0[i] : 0;
	pct("last", d, n_writes);
	if (missing)
		printf("  MISSING deliveries: %d\n", missing);
	for (i = 0; i < n_subs; i++)
		alyx_unsubscribe(subs[i]);
	alyx_close(a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(subs);
	free(d);
	return missing != 0;
}

int main(int argc, char **argv)
{
	static const int counts[] = {1, 100, 1000};
	size_t k;
	int rc = 0;

	n_writes = argc > 1 ? atoi(argv[1]) : 400;
	if (n_writes < 10)
		n_writes = 10;
	t0 = calloc((size_t)n_writes, sizeof(*t0));
	t1 = calloc((size_t)n_writes, sizeof(*t1));
	first = calloc((size_t)n_writes, sizeof(*first));
	last = calloc((size_t)n_writes, sizeof(*last));
	for (k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
		rc |= run(counts[k], 0);
	rc |= run(100, 1);
	rc |= run(1000, 1);
	free(t0);
	free(t1);
	free(first);
	free(last);
	return rc;
}
