/*
 * metrics.c - per-thread counters (written by their service thread only,
 * read by any: relaxed atomics, no locks on the request path), the
 * Prometheus text exposition (/metrics) and /health/stats.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "http/http.h"

const int alyx__status_codes[ALYX_N_STATUS] = {
	200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 411, 413, 415, 422,
	429, 500, 503, 504, 505, 0 /* other */
};

/* Upper bounds in seconds (Prometheus `le`), +Inf implied. */
const double alyx__latency_buckets[ALYX_N_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5
};

static int status_index(int status)
{
	for (int i = 0; i < ALYX_N_STATUS - 1; i++)
		if (alyx__status_codes[i] == status)
			return i;
	return ALYX_N_STATUS - 1;
}

void alyx__metrics_record(alyx__metrics *m, int route, int method,
			  int status, int64_t dur_us, size_t bytes)
{
	if (route < 0 || route >= R_COUNT)
		route = R_NONE;
	if (method < 0 || method >= M_COUNT)
		method = M_OTHER;
	if (dur_us < 0)
		dur_us = 0;
	alyx__ctr_add(&m->req[route][method][status_index(status)], 1);
	double sec = (double)dur_us / 1e6;
	int b = 0;
	while (b < ALYX_N_BUCKETS && sec > alyx__latency_buckets[b])
		b++;
	if (b < ALYX_N_BUCKETS)
		alyx__ctr_add(&m->hist[route][b], 1);
	alyx__ctr_add(&m->hist_count[route], 1);
	alyx__ctr_add(&m->hist_sum_us[route], (uint64_t)dur_us);
	alyx__ctr_add(&m->bytes_out, bytes);
}

static uint64_t ld(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

int64_t alyx__file_size(const char *path)
{
	struct stat st;

	if (!path || stat(path, &st))
		return 0;
	return (int64_t)st.st_size;
}

static void db_sizes(alyx_server *s, int64_t *db, int64_t *wal)
{
	const char *p = alyx_db_path(s->a);
	char *w = p ? alyx__asprintf("%s-wal", p) : NULL;

	*db = alyx__file_size(p);
	*wal = alyx__file_size(w);
	alyx__free(w);
}

static int64_t open_conns(alyx_server *s)
{
	int64_t n = 0;
	for (int i = 0; i < s->nthreads; i++)
		n += atomic_load_explicit(&s->svcs[i].metrics.conns,
					  memory_order_relaxed);
	return n < 0 ? 0 : n;
}

static uint64_t total_requests(alyx_server *s)
{
	uint64_t n = 0;
	for (int i = 0; i < s->nthreads; i++)
		for (int r = 0; r < R_COUNT; r++)
			n += ld(&s->svcs[i].metrics.hist_count[r]);
	return n;
}

void alyx__metrics_text(alyx_server *s, alyx_buf *b)
{
	int64_t dbsz, walsz;
	uint64_t acc = 0, bytes = 0;

	alyx__buf_adds(b,
		"# HELP alyx_http_requests_total HTTP requests answered, by "
		"route, method and status.\n"
		"# TYPE alyx_http_requests_total counter\n");
	for (int r = 0; r < R_COUNT; r++)
		for (int m = 0; m < M_COUNT; m++)
			for (int st = 0; st < ALYX_N_STATUS; st++) {
				uint64_t n = 0;
				for (int i = 0; i < s->nthreads; i++)
					n += ld(&s->svcs[i].metrics
						.req[r][m][st]);
				if (!n)
					continue;
				char sts[8];
				if (alyx__status_codes[st])
					snprintf(sts, sizeof(sts), "%d",
						 alyx__status_codes[st]);
				else
					snprintf(sts, sizeof(sts), "other");
				alyx__buf_addf(b,
					"alyx_http_requests_total{route=\"%s\","
					"method=\"%s\",status=\"%s\"} %llu\n",
					alyx__route_label(r),
					alyx__method_name(m), sts,
					(unsigned long long)n);
			}

	alyx__buf_adds(b,
		"# HELP alyx_http_request_duration_seconds Time from the "
		"request headers to the reply, by route.\n"
		"# TYPE alyx_http_request_duration_seconds histogram\n");
	for (int r = 0; r < R_COUNT; r++) {
		uint64_t count = 0, sum = 0, cum = 0;
		for (int i = 0; i < s->nthreads; i++) {
			count += ld(&s->svcs[i].metrics.hist_count[r]);
			sum += ld(&s->svcs[i].metrics.hist_sum_us[r]);
		}
		if (!count)
			continue;
		for (int k = 0; k < ALYX_N_BUCKETS; k++) {
			for (int i = 0; i < s->nthreads; i++)
				cum += ld(&s->svcs[i].metrics.hist[r][k]);
			alyx__buf_addf(b,
				"alyx_http_request_duration_seconds_bucket"
				"{route=\"%s\",le=\"%g\"} %llu\n",
				alyx__route_label(r), alyx__latency_buckets[k],
				(unsigned long long)cum);
		}
		/* Counters are read one by one while requests run: keep the
		 * histogram monotonic. */
		if (count < cum)
			count = cum;
		alyx__buf_addf(b,
			"alyx_http_request_duration_seconds_bucket{route=\"%s\","
			"le=\"+Inf\"} %llu\n"
			"alyx_http_request_duration_seconds_sum{route=\"%s\"} "
			"%.6f\n"
			"alyx_http_request_duration_seconds_count{route=\"%s\"} "
			"%llu\n",
			alyx__route_label(r), (unsigned long long)count,
			alyx__route_label(r), (double)sum / 1e6,
			alyx__route_label(r), (unsigned long long)count);
	}

	for (int i = 0; i < s->nthreads; i++) {
		acc += ld(&s->svcs[i].metrics.accepted);
		bytes += ld(&s->svcs[i].metrics.bytes_out);
	}
	db_sizes(s, &dbsz, &walsz);
	alyx__buf_addf(b,
		"# HELP alyx_http_open_connections Client connections open "
		"now.\n"
		"# TYPE alyx_http_open_connections gauge\n"
		"alyx_http_open_connections %lld\n"
		"# HELP alyx_http_connections_accepted_total Client "
		"connections accepted.\n"
		"# TYPE alyx_http_connections_accepted_total counter\n"
		"alyx_http_connections_accepted_total %llu\n"
		"# HELP alyx_http_requests_in_flight Requests received and "
		"not yet answered.\n"
		"# TYPE alyx_http_requests_in_flight gauge\n"
		"alyx_http_requests_in_flight %d\n"
		"# HELP alyx_http_response_body_bytes_total Response body "
		"bytes sent.\n"
		"# TYPE alyx_http_response_body_bytes_total counter\n"
		"alyx_http_response_body_bytes_total %llu\n"
		"# HELP alyx_db_size_bytes Size of the database file.\n"
		"# TYPE alyx_db_size_bytes gauge\n"
		"alyx_db_size_bytes %lld\n"
		"# HELP alyx_db_wal_size_bytes Size of the write-ahead log.\n"
		"# TYPE alyx_db_wal_size_bytes gauge\n"
		"alyx_db_wal_size_bytes %lld\n"
		"# HELP alyx_writer_queue_length Writes waiting for the "
		"writer thread.\n"
		"# TYPE alyx_writer_queue_length gauge\n"
		"alyx_writer_queue_length %llu\n"
		"# HELP alyx_writer_transactions_total Group-commit "
		"transactions run by the writer thread.\n"
		"# TYPE alyx_writer_transactions_total counter\n"
		"alyx_writer_transactions_total %llu\n"
		"# HELP alyx_writer_writes_total Writes run by the writer "
		"thread.\n"
		"# TYPE alyx_writer_writes_total counter\n"
		"alyx_writer_writes_total %llu\n"
		"# HELP alyx_writer_failed_commits_total Group commits that "
		"failed.\n"
		"# TYPE alyx_writer_failed_commits_total counter\n"
		"alyx_writer_failed_commits_total %llu\n"
		"# HELP alyx_uptime_seconds Seconds since the server started.\n"
		"# TYPE alyx_uptime_seconds gauge\n"
		"alyx_uptime_seconds %lld\n"
		"# HELP alyx_build_info The running version.\n"
		"# TYPE alyx_build_info gauge\n"
		"alyx_build_info{version=\"%s\"} 1\n",
		(long long)open_conns(s), (unsigned long long)acc,
		atomic_load(&s->inflight), (unsigned long long)bytes,
		(long long)dbsz, (long long)walsz,
		(unsigned long long)atomic_load(&s->wq_len),
		(unsigned long long)atomic_load(&s->w_batches),
		(unsigned long long)atomic_load(&s->w_jobs),
		(unsigned long long)atomic_load(&s->w_failed_commits),
		(long long)((alyx__now_ms() - s->started_ms) / 1000),
		alyx_version_string());
	alyx__ws_metrics_text(s, b);
}

void alyx__stats_json(alyx_server *s, alyx_buf *b)
{
	int64_t dbsz, walsz;
	uint64_t acc = 0;

	for (int i = 0; i < s->nthreads; i++)
		acc += ld(&s->svcs[i].metrics.accepted);
	db_sizes(s, &dbsz, &walsz);
	alyx__buf_addf(b,
		"{\"version\":\"%s\",\"uptime_s\":%lld,\"threads\":%d,"
		"\"loop\":\"%s\",\"requests\":%llu,\"in_flight\":%d,"
		"\"connections\":{\"open\":%lld,\"accepted\":%llu},"
		"\"database\":{\"path\":",
		alyx_version_string(),
		(long long)((alyx__now_ms() - s->started_ms) / 1000),
		s->nthreads, s->loop == ALYX_SERVER_LOOP_EV ? "ev" : "poll",
		(unsigned long long)total_requests(s),
		atomic_load(&s->inflight), (long long)open_conns(s),
		(unsigned long long)acc);
	alyx__json_strz(b, alyx_db_path(s->a));
	alyx__buf_addf(b, ",\"size_bytes\":%lld,\"wal_bytes\":%lld},",
		       (long long)dbsz, (long long)walsz);
	alyx__ws_stats_json(s, b);
	alyx__buf_addf(b,
		"\"writer\":{\"queued\":%llu,\"transactions\":%llu,"
		"\"writes\":%llu,\"failed_commits\":%llu}}",
		(unsigned long long)atomic_load(&s->wq_len),
		(unsigned long long)atomic_load(&s->w_batches),
		(unsigned long long)atomic_load(&s->w_jobs),
		(unsigned long long)atomic_load(&s->w_failed_commits));
}
