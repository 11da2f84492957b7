/*
 * ws-host - alyxd's server with an in-process writer, for the realtime
 * benchmark (bench/realtime-ws/run.py; docs/realtime.md "Benchmark").
 *
 *   ws-host -d PROJECT_DIR [-t threads] [-l poll|ev]
 *
 * Opens the project, applies its schema and starts the server exactly as
 * alyxd does (alyx_server_start(), port 0, 127.0.0.1, bench routes on),
 * then prints "port N" and reads commands on stdin:
 *
 *   users K		creates K accounts and prints "token T ID" for each
 *			(an access token and the account id), then "ok K"
 *   fire COLL BASE M INTERVAL_US [GRP]
 *			creates M documents in COLL, one every INTERVAL_US
 *			(0: back to back), through alyx_doc_create() as the
 *			system; document i is {"bseq":BASE+i,"bts":T,"grp":
 *			GRP (default "a"),"owner":<account i % K or null>,
 *			"pad":<100 B>}
 *			where T is CLOCK_MONOTONIC ns just before the call
 *			(the commit follows within the call).  Then prints
 *			"done M ERRORS P50 P95 P99", the write call's own
 *			duration in microseconds.
 *   quit		stops the server and exits
 *
 * Writing in-process stamps the documents within microseconds of their
 * commit; a REST writer would add its request's latency to every figure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <alyx.h>

static alyx *db;
static char **owners;
static int n_owners;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The string member `key` of a flat JSON reply (no escapes in it). */
static char *json_str(const char *json, const char *key)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(json, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	e = strchr(p, '"');
	return e ? strndup(p, (size_t)(e - p)) : NULL;
}

static void make_users(int k)
{
	int made = 0;

	for (int i = 0; i < k; i++) {
		char body[256], *out = NULL, *tok, *id;

		snprintf(body, sizeof(body),
			 "{\"email\":\"bench%d-%d@bench.example.com\","
			 "\"password\":\"bench-password-%d\"}",
			 (int)getpid(), n_owners, i);
		if (alyx_auth_create_user(db, body, strlen(body), "user",
					  &out) ||
		    (alyx_free(out), out = NULL,
		     alyx_auth_login(db, body, strlen(body), &out))) {
			fprintf(stderr, "ws-host: user %d: %s\n", i,
				alyx_errmsg(db));
			break;
		}
		tok = json_str(out, "access_token");
		id = json_str(strstr(out, "\"user\"") ? strstr(out, "\"user\"")
			      : out, "id");
		alyx_free(out);
		if (!tok || !id) {
			fprintf(stderr, "ws-host: no token or id in login\n");
			free(tok);
			free(id);
			break;
		}
		owners = realloc(owners, (size_t)(n_owners + 1) *
				 sizeof(*owners));
		owners[n_owners++] = id;
		printf("token %s %s\n", tok, id);
		free(tok);
		made++;
	}
	printf("ok %d\n", made);
	fflush(stdout);
}

static void fire(const char *coll, long long base, long long m, long long iv,
		 const char *grp)
{
	int64_t *dur = calloc((size_t)m + 1, sizeof(*dur));
	int64_t t_start = now_ns();
	long long errors = 0;
	static const char pad[] =
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

	if (!dur) {
		printf("done 0 %lld 0 0 0\n", m);
		fflush(stdout);
		return;
	}
	for (long long i = 0; i < m; i++) {
		char doc[512], own[96], *out = NULL;
		int64_t t0, t1;

		if (iv > 0) {
			int64_t d = t_start + i * iv * 1000 - now_ns();
			if (d > 0) {
				struct timespec ts = {d / 1000000000,
						      d % 1000000000};
				nanosleep(&ts, NULL);
			}
		}
		if (n_owners)
			snprintf(own, sizeof(own), "\"%s\"",
				 owners[i % n_owners]);
		else
			snprintf(own, sizeof(own), "null");
		t0 = now_ns();
		int len = snprintf(doc, sizeof(doc),
				   "{\"bseq\":%lld,\"bts\":%lld,\"grp\":\"%s\","
				   "\"owner\":%s,\"pad\":\"%s\"}",
				   base + i, (long long)t0, grp, own, pad);
		if (alyx_doc_create(db, NULL, coll, doc, (size_t)len, &out)) {
			if (++errors <= 3)
				fprintf(stderr, "ws-host: create: %s\n",
					alyx_errmsg(db));
		}
		t1 = now_ns();
		alyx_free(out);
		dur[i] = t1 - t0;
	}
	qsort(dur, (size_t)m, sizeof(*dur), cmp64);
	printf("done %lld %lld %.1f %.1f %.1f\n", m, errors,
	       m ? (double)dur[(m - 1) / 2] / 1e3 : 0,
	       m ? (double)dur[(int64_t)((double)(m - 1) * 0.95)] / 1e3 : 0,
	       m ? (double)dur[(int64_t)((double)(m - 1) * 0.99)] / 1e3 : 0);
	fflush(stdout);
	free(dur);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	alyx_server_options o;
	alyx_server *srv = NULL;
	char *out = NULL, line[512];
	int opt;

	alyx_server_options_init(&o);
	o.host = "127.0.0.1";
	o.port = 0;
	o.log_fd = -1;
	o.flags = ALYX_SERVER_BENCH_ROUTES;
	while ((opt = getopt(argc, argv, "d:t:l:")) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 't': o.threads = atoi(optarg); break;
		case 'l':
			o.loop = !strcmp(optarg, "ev") ? ALYX_SERVER_LOOP_EV
						       : ALYX_SERVER_LOOP_POLL;
			break;
		default:
			fprintf(stderr, "usage: ws-host -d DIR [-t threads] "
				"[-l poll|ev]\n");
			return 2;
		}
	}
	if (!dir) {
		fprintf(stderr, "ws-host: -d DIR is required\n");
		return 2;
	}
	if (alyx_open(dir, ALYX_OPEN_CREATE, &db)) {
		fprintf(stderr, "ws-host: open %s failed\n", dir);
		return 1;
	}
	if (alyx_migrate_apply(db, &out)) {
		fprintf(stderr, "ws-host: migrate: %s\n", alyx_errmsg(db));
		return 1;
	}
	alyx_free(out);
	if (alyx_server_start(db, &o, &srv)) {
		fprintf(stderr, "ws-host: server: %s\n", alyx_errmsg(db));
		return 1;
	}
	printf("port %d\n", alyx_server_port(srv));
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		char coll[64], grp[64] = "a";
		long long base, m, iv;
		int k;

		if (sscanf(line, "fire %63s %lld %lld %lld %63s", coll, &base,
			   &m, &iv, grp) >= 4) {
			fire(coll, base, m, iv, grp);
		} else if (sscanf(line, "users %d", &k) == 1) {
			make_users(k);
		} else if (!strncmp(line, "quit", 4)) {
			break;
		} else {
			fprintf(stderr, "ws-host: unknown command: %s", line);
		}
	}
	alyx_server_stop(srv, 2000);
	alyx_server_free(srv);
	for (int i = 0; i < n_owners; i++)
		free(owners[i]);
	free(owners);
	alyx_close(db);
	return 0;
}
