/*
 * bench-query.c - the query module against bare SQLite, in one run.
 *
 *   bench-query [ROWS] [SECONDS_PER_CASE]
 *
 * A `posts` table (the query tests' fixture schema) with ROWS documents
 * (default 20,000) and an index on created_at, in a temporary WAL file.
 * For each list query the bare side prepares the very SQL the query
 * module generates once, then per iteration binds, steps and writes the
 * rows as JSON with the same value writer; the alyx side does everything
 * per iteration: parse the REST string, compile, prepare, run, stream the
 * result (including the look-ahead row and, when asked, the count) --
 * once preparing every statement afresh, once with the per-connection
 * statement cache (alyx__qcache).  Prints ops per CPU-second and the
 * ratios alyx/bare.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void load(sqlite3 *db, int rows)
{
	sqlite3_stmt *st;
	char title[64], body[256], ts[32];
	int i;

	fx_exec(db, "CREATE INDEX idx_posts_created ON posts(created_at)");
	fx_exec(db, "CREATE INDEX idx_posts_author ON posts(author_id, "
		"created_at)");
	fx_exec(db, "BEGIN");
	if (sqlite3_prepare_v2(db, "INSERT INTO posts (id, title, body, "
			       "author_id, views, score, published, "
			       "created_at, tags) VALUES (?,?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		abort();
	for (i = 1; i <= rows; i++) {
		char author[16];

		snprintf(title, sizeof(title), "Post number %d", i);
		memset(body, 'x', 200);
		body[200] = '\0';
		snprintf(author, sizeof(author), "u%d", i % 100);
		snprintf(ts, sizeof(ts), "2026-%02d-%02dT%02d:%02d:%02d.000Z",
			 1 + i % 12, 1 + i % 28, i % 24, i % 60, (i / 60) % 60);
		sqlite3_bind_int(st, 1, i);
		sqlite3_bind_text(st, 2, title, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, body, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, author, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 5, i % 1000);
		sqlite3_bind_double(st, 6, i / 7.0);
		sqlite3_bind_int(st, 7, i % 2);
		sqlite3_bind_text(st, 8, ts, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, "[\"a\",\"b\"]", -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			abort();
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	fx_exec(db, "COMMIT");
}

/* The bare side: one prepared statement, the same binds, the same JSON. */
static void bare_once(sqlite3_stmt *st, const alyx__collection *c,
		      const alyx__value *binds, int nb, alyx_buf *out)
{
	int i, ncol = sqlite3_column_count(st), rows = 0;

	alyx__buf_reset(out);
	sqlite3_reset(st);
	for (i = 0; i < nb; i++)
		alyx__value_bind(st, i + 1, &binds[i]);
	alyx__buf_adds(out, "{\"docs\":[");
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (rows++)
			alyx__buf_addc(out, ',');
		alyx__buf_addc(out, '{');
		for (i = 0; i < ncol; i++) {
			if (i)
				alyx__buf_addc(out, ',');
			alyx__json_strz(out, c->fields[i].name);
			alyx__buf_addc(out, ':');
			alyx__value_write_column(out, &c->fields[i], st, i);
		}
		alyx__buf_addc(out, '}');
	}
	alyx__buf_adds(out, "]}");
}

static void alyx_once(sqlite3 *db, const char *qs, alyx__qcache *cache,
		      alyx_buf *out)
{
	alyx__query *q = NULL;
	alyx__err err = {0};
	alyx__query_opts o = { .cache = cache };

	alyx__buf_reset(out);
	if (alyx__query_parse_str(&fx_schema, fx_coll("posts"), qs, &q,
				  &err) != ALYX_OK ||
	    alyx__query_run(db, q, &o, out, &err) != ALYX_OK) {
		fprintf(stderr, "%s: %s\n", qs, err.msg);
		exit(1);
	}
	alyx__query_free(q);
}

typedef struct bcase {
	const char *name;
	const char *qs;		/* the alyx side */
	int nbinds;		/* bare side: binds of the same SQL */
	alyx__value binds[4];
} bcase;

int main(int argc, char **argv)
{
	int rows = argc > 1 ? atoi(argv[1]) : 20000;
	double secs = argc > 2 ? atof(argv[2]) : 1.0;
	const alyx__collection *c = fx_coll("posts");
	char path[] = "/tmp/alyx-bench-query-XXXXXX";
	sqlite3 *db = NULL;
	alyx_buf out;
	bcase cases[] = {
		{"list 20 (sort=-created_at)", "sort=-created_at&limit=20", 2,
		 {{.kind = ALYX_V_INT, .i = 21}, {.kind = ALYX_V_INT}}},
		{"list 20 by author", "filter=author_id:eq:u7"
		 "&sort=-created_at&limit=20", 3,
		 {{.kind = ALYX_V_TEXT, .s = (char *)"u7", .n = 2},
		  {.kind = ALYX_V_INT, .i = 21}, {.kind = ALYX_V_INT}}},
		{"get by id (filter=id:eq:N)", "filter=id:eq:777&limit=1", 3,
		 {{.kind = ALYX_V_INT, .i = 777}, {.kind = ALYX_V_INT, .i = 2},
		  {.kind = ALYX_V_INT}}},
	};
	size_t k;
	int fd = mkstemp(path);

	if (fd < 0)
		return 1;
	close(fd);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return 1;
	fx_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
	fx_create(db, c);
	load(db, rows);
	alyx__buf_init(&out, 0);
	printf("bench-query: %d rows, %.1f CPU-s per case; ops per CPU-second"
	       "\n", rows, secs);
	printf("%-30s %11s %11s %6s %11s %6s\n", "case", "bare sqlite",
	       "alyx", "ratio", "alyx+cache", "ratio");
	fx_exec(db, "BEGIN");	/* one read snapshot, as a read pass does */
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		alyx__query *q = NULL;
		alyx__err err = {0};
		alyx_buf sql;
		sqlite3_stmt *st = NULL;
		double t0, bare_ops, alyx_ops, cached_ops;
		alyx__qcache *cache = alyx__qcache_new(db);
		long n;

		alyx__buf_init(&sql, 0);
		if (alyx__query_parse_str(&fx_schema, c, cases[k].qs, &q,
					  &err) != ALYX_OK ||
		    alyx__query_sql(q, NULL, &sql, &err) != ALYX_OK ||
		    sqlite3_prepare_v2(db, sql.data, -1, &st, NULL) !=
		    SQLITE_OK) {
			fprintf(stderr, "setup failed: %s\n", err.msg);
			return 1;
		}
		alyx__query_free(q);
		t0 = cpu_now();
		for (n = 0; cpu_now() - t0 < secs; n++)
			bare_once(st, c, cases[k].binds, cases[k].nbinds,
				  &out);
		bare_ops = n / (cpu_now() - t0);
		t0 = cpu_now();
		for (n = 0; cpu_now() - t0 < secs; n++)
			alyx_once(db, cases[k].qs, NULL, &out);
		alyx_ops = n / (cpu_now() - t0);
		t0 = cpu_now();
		for (n = 0; cpu_now() - t0 < secs; n++)
			alyx_once(db, cases[k].qs, cache, &out);
		cached_ops = n / (cpu_now() - t0);
		alyx__qcache_free(cache);
		printf("%-30s %11.0f %11.0f %6.2f %11.0f %6.2f\n",
		       cases[k].name, bare_ops, alyx_ops, alyx_ops / bare_ops,
		       cached_ops, cached_ops / bare_ops);
		sqlite3_finalize(st);
		alyx__buf_free(&sql);
	}
	fx_exec(db, "COMMIT");
	alyx__buf_free(&out);
	sqlite3_close(db);
	unlink(path);
	{
		char wal[64];

		snprintf(wal, sizeof(wal), "%s-wal", path);
		unlink(wal);
		snprintf(wal, sizeof(wal), "%s-shm", path);
		unlink(wal);
	}
	return 0;
}
