/*
 * bench-core.c - libalyx's core against bare SQLite, in one run.
 *
 *   bench-core [N_CREATE]
 *
 * Both sides use the blog example's `posts` table with its change-feed
 * triggers (created by alyx_apply_schema), the same pragmas (WAL,
 * synchronous=NORMAL, foreign_keys=ON, cache_size, mmap_size) and
 * prepared statements on the bare side:
 *   create, one per transaction   alyx_doc_create | INSERT (autocommit)
 *   create, 100 per transaction   alyx_batch and alyx__group_begin/end
 *                                 | BEGIN; 100 INSERT; COMMIT
 *   get by id                     alyx_doc_get (autocommit, and inside a
 *                                 read pass) | SELECT ... WHERE id=? with
 *                                 the row written as JSON
 *   list 20                       alyx_query_str filter=author_id:eq:X&
 *                                 sort=-created_at&limit=20 | SELECT ...
 *                                 WHERE author_id=? ORDER BY created_at
 *                                 DESC LIMIT 20 written as JSON (both
 *                                 walk idx_posts_author_date)
 * Prints ops/s for each side and the ratio alyx/bare.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/handle.h"

/* Wall time and this process's CPU time: on a shared machine the CPU
 * figure (ops per CPU-second) is the stable one. */
typedef struct stamp {
	double wall, cpu;
} stamp;

static double clk(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static stamp now(void)
{
	stamp s = {clk(CLOCK_MONOTONIC), clk(CLOCK_PROCESS_CPUTIME_ID)};

	return s;
}

/* Rates since t0 for n operations. */
static stamp rate(int n, stamp t0)
{
	stamp t = now(), r;

	r.wall = n / (t.wall - t0.wall);
	r.cpu = n / (t.cpu - t0.cpu);
	return r;
}

static void die(const char *what, alyx *a)
{
	fprintf(stderr, "bench-core: %s: %s %s\n", what,
		a ? alyx_errmsg(a) : "", a ? alyx_errdetails(a) : "");
	exit(1);
}

static char *slurp(const char *path)
{
	char *s = NULL;
	size_t n;
	alyx__err err = {0};

	if (alyx__read_file(path, 1 << 20, &s, &n, &err) != ALYX_OK)
		die(path, NULL);
	return s;
}

/* A project directory with the blog schema applied; returns the handle. */
static alyx *project(const char *tag, char *dir, size_t dirlen)
{
	char *yaml = slurp(FIXTURES_DIR "/blog/schema.yaml");
	alyx__err err = {0};
	char path[600];
	alyx *a = NULL;

	snprintf(dir, dirlen, "/tmp/alyx-bench-%s-XXXXXX", tag);
	if (!mkdtemp(dir))
		die("mkdtemp", NULL);
	snprintf(path, sizeof(path), "%s/alyx.yaml", dir);
	alyx__write_file(path, "database:\n  path: data/alyx.db\n", 31, &err);
	if (alyx_open(dir, ALYX_OPEN_CREATE, &a))
		die("open", NULL);
	if (alyx_apply_schema(a, yaml, (size_t)-1, NULL, 0, NULL))
		die("apply", a);
	alyx__free(yaml);
	return a;
}

static void rm_project(const char *dir)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench-core: could not remove %s\n", dir);
}

static void report(const char *name, stamp a, stamp b)
{
	printf("%-32s %9.0f %9.0f %6.2f   %9.0f %9.0f %6.2f\n", name, a.wall,
	       b.wall, a.wall / b.wall, a.cpu, b.cpu, a.cpu / b.cpu);
}

/* ---- bare SQLite ---- */

typedef struct bare {
	sqlite3 *db;
	sqlite3_stmt *ins, *get, *list;
} bare;

static const char cols[] =
	"id,title,slug,content,excerpt,author_id,published,published_at,"
	"tags,view_count,created_at,updated_at";

static void bare_open(bare *b, const char *path)
{
	alyx__conn_opts o;
	alyx__err err = {0};
	char sql[512];

	alyx__conn_opts_default(&o);
	if (alyx__conn_open(path, &o, &b->db, &err))
		die(err.msg, NULL);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO posts(%s) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", cols);
	if (sqlite3_prepare_v2(b->db, sql, -1, &b->ins, NULL))
		die(sqlite3_errmsg(b->db), NULL);
	snprintf(sql, sizeof(sql), "SELECT %s FROM posts WHERE id=?", cols);
	if (sqlite3_prepare_v2(b->db, sql, -1, &b->get, NULL))
		die(sqlite3_errmsg(b->db), NULL);
	snprintf(sql, sizeof(sql),
		 "SELECT %s FROM posts WHERE author_id=? ORDER BY created_at "
		 "DESC LIMIT 20", cols);
	if (sqlite3_prepare_v2(b->db, sql, -1, &b->list, NULL))
		die(sqlite3_errmsg(b->db), NULL);
}

static void bare_close(bare *b)
{
	sqlite3_finalize(b->ins);
	sqlite3_finalize(b->get);
	sqlite3_finalize(b->list);
	alyx__conn_close(b->db);
}

static void bare_insert(bare *b, const char *author, int i, char *id_out)
{
	char title[64], slug[64], ts[25];

	alyx__uuid_v4(id_out);
	snprintf(title, sizeof(title), "Post number %d", i);
	snprintf(slug, sizeof(slug), "bare-%d-%s", i, id_out);
	alyx__iso8601_ms(alyx__now_ms(), ts);
	sqlite3_bind_text(b->ins, 1, id_out, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(b->ins, 2, title, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(b->ins, 3, slug, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(b->ins, 4, "Some content of a typical post.", -1,
			  SQLITE_STATIC);
	sqlite3_bind_null(b->ins, 5);
	sqlite3_bind_text(b->ins, 6, author, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(b->ins, 7, i & 1);
	sqlite3_bind_null(b->ins, 8);
	sqlite3_bind_text(b->ins, 9, "[\"a\",\"b\"]", -1, SQLITE_STATIC);
	sqlite3_bind_int(b->ins, 10, i);
	sqlite3_bind_text(b->ins, 11, ts, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(b->ins, 12, ts, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(b->ins) != SQLITE_DONE)
		die(sqlite3_errmsg(b->db), NULL);
	sqlite3_reset(b->ins);
}

/* Writes the current row of st as a JSON object (column text). */
static void bare_row_json(sqlite3_stmt *st, alyx_buf *out)
{
	int i, n = sqlite3_column_count(st);

	alyx__buf_addc(out, '{');
	for (i = 0; i < n; i++) {
		if (i)
			alyx__buf_addc(out, ',');
		alyx__json_strz(out, sqlite3_column_name(st, i));
		alyx__buf_addc(out, ':');
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			alyx__json_i64(out, sqlite3_column_int64(st, i));
			break;
		case SQLITE_NULL:
			alyx__buf_adds(out, "null");
			break;
		default:
			alyx__json_str(out,
				       (const char *)sqlite3_column_text(st, i),
				       (size_t)sqlite3_column_bytes(st, i));
		}
	}
	alyx__buf_addc(out, '}');
}

static void bare_get(bare *b, const char *id, alyx_buf *out)
{
	sqlite3_bind_text(b->get, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(b->get) != SQLITE_ROW)
		die("bare get: no row", NULL);
	bare_row_json(b->get, out);
	sqlite3_reset(b->get);
}

static void bare_list(bare *b, const char *author, alyx_buf *out)
{
	int n = 0;

	sqlite3_bind_text(b->list, 1, author, -1, SQLITE_STATIC);
	alyx__buf_adds(out, "{\"docs\":[");
	while (sqlite3_step(b->list) == SQLITE_ROW) {
		if (n++)
			alyx__buf_addc(out, ',');
		bare_row_json(b->list, out);
	}
	alyx__buf_adds(out, "]}");
	sqlite3_reset(b->list);
}

/* ---- alyx side ---- */

static char *post_body(const char *author, int i)
{
	return alyx__asprintf("{\"title\":\"Post number %d\",\"slug\":"
			      "\"alyx-%d-%d\",\"content\":\"Some content of a "
			      "typical post.\",\"author_id\":\"%s\","
			      "\"published\":%s,\"tags\":[\"a\",\"b\"],"
			      "\"view_count\":%d}",
			      i, i, rand(), author, i & 1 ? "true" : "false",
			      i);
}

static char *first_id(const char *json)
{
	const char *p = strstr(json, "\"id\":\"");

	return p ? alyx__strndup(p + 6, 36) : NULL;
}

int main(int argc, char **argv)
{
	int n_create = argc > 1 ? atoi(argv[1]) : 5000;	/* check-style: allow */
	int n_batch = n_create * 10, n_get = 50000, n_list = 10000;
	char adir[512], bdir[512], *out = NULL, *author, **ids, *list_qs;
	char bare_author[37];
	alyx *a, *bh;
	bare b;
	alyx_buf buf;
	stamp t, ra, rb, rp;
	int i, k;

	alyx__buf_init(&buf, 0);
	a = project("alyx", adir, sizeof(adir));
	bh = project("bare", bdir, sizeof(bdir));
	if (alyx_doc_create(a, NULL, "users", "{\"email\":\"a@b.co\"}", 19,
			    &out))
		die("user", a);
	author = first_id(out);
	alyx_free(out);
	if (alyx_doc_create(bh, NULL, "users", "{\"email\":\"a@b.co\"}", 19,
			    &out))
		die("user", bh);
	memcpy(bare_author, strstr(out, "\"id\":\"") + 6, 36);
	bare_author[36] = '\0';
	alyx_free(out);
	/* The bare side uses the second project's file directly; its alyx
	 * handle stays open only so the WAL is not checkpointed away. */
	bare_open(&b, alyx_db_path(bh));
	ids = calloc((size_t)n_create, sizeof(*ids));	/* check-style: allow */

	printf("%-32s %9s %9s %6s   %9s %9s %6s\n", "ops/s", "alyx", "sqlite",
	       "ratio", "alyx/cpu", "sql/cpu", "ratio");

	/* creates, one per transaction */
	t = now();
	for (i = 0; i < n_create; i++) {
		char *body = post_body(author, i);

		if (alyx_doc_create(a, NULL, "posts", body, (size_t)-1, &out))
			die("create", a);
		ids[i] = first_id(out);
		alyx_free(out);
		alyx__free(body);
	}
	ra = rate(n_create, t);
	t = now();
	for (i = 0; i < n_create; i++) {
		char id[37];

		bare_insert(&b, bare_author, i, id);
	}
	rb = rate(n_create, t);
	report("create, 1 per transaction", ra, rb);

	/* creates, 100 per transaction */
	t = now();
	for (i = 0; i < n_batch; i += 100) {
		alyx_buf req;

		alyx__buf_init(&req, 0);
		alyx__buf_adds(&req, "{\"requests\":[");
		for (k = 0; k < 100; k++) {
			char *body = post_body(author, n_create + i + k);

			alyx__buf_addf(&req, "%s{\"method\":\"POST\",\"url\":"
				       "\"/api/collections/posts\",\"body\":%s}",
				       k ? "," : "", body);
			alyx__free(body);
		}
		alyx__buf_adds(&req, "]}");
		if (alyx_batch(a, NULL, req.data, req.len, &out))
			die("batch", a);
		alyx_free(out);
		alyx__buf_free(&req);
	}
	ra = rate(n_batch, t);
	t = now();
	for (i = 0; i < n_batch; i += 100) {
		if (alyx__group_begin(a))
			die("group", a);
		for (k = 0; k < 100; k++) {
			char *body = post_body(author, 2 * n_batch + i + k);

			if (alyx_doc_create(a, NULL, "posts", body,
					    (size_t)-1, &out))
				die("group create", a);
			alyx_free(out);
			alyx__free(body);
		}
		if (alyx__group_end(a))
			die("group end", a);
	}
	rp = rate(n_batch, t);
	t = now();
	for (i = 0; i < n_batch; i += 100) {
		sqlite3_exec(b.db, "BEGIN", NULL, NULL, NULL);
		for (k = 0; k < 100; k++) {
			char id[37];

			bare_insert(&b, bare_author, n_create + i + k, id);
		}
		sqlite3_exec(b.db, "COMMIT", NULL, NULL, NULL);
	}
	rb = rate(n_batch, t);
	report("create, 100 per tx (alyx_batch)", ra, rb);
	report("create, 100 per tx (group API)", rp, rb);

	/* get by id (the bare side reads its own rows: same table size) */
	{
		sqlite3_stmt *st;
		char **bids = calloc((size_t)n_create, sizeof(*bids)); /* check-style: allow */

		sqlite3_prepare_v2(b.db, "SELECT id FROM posts LIMIT ?", -1,
				   &st, NULL);
		sqlite3_bind_int(st, 1, n_create);
		for (i = 0; sqlite3_step(st) == SQLITE_ROW; i++)
			bids[i] = alyx__strdup(
				(const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);

		t = now();
		for (i = 0; i < n_get; i++) {
			if (alyx_doc_get(a, NULL, "posts",
					 ids[rand() % n_create], NULL, &out))
				die("get", a);
			alyx_free(out);
		}
		ra = rate(n_get, t);
		t = now();
		for (i = 0; i < n_get; i += 100) {
			alyx__read_pass_begin(a);
			for (k = 0; k < 100; k++) {
				if (alyx_doc_get(a, NULL, "posts",
						 ids[rand() % n_create], NULL,
						 &out))
					die("get", a);
				alyx_free(out);
			}
			alyx__read_pass_end(a);
		}
		rp = rate(n_get, t);
		t = now();
		for (i = 0; i < n_get; i++) {
			alyx__buf_reset(&buf);
			bare_get(&b, bids[rand() % n_create], &buf);
		}
		rb = rate(n_get, t);
		report("get by id (autocommit)", ra, rb);
		t = now();
		for (i = 0; i < n_get; i += 100) {
			sqlite3_exec(b.db, "BEGIN", NULL, NULL, NULL);
			for (k = 0; k < 100; k++) {
				alyx__buf_reset(&buf);
				bare_get(&b, bids[rand() % n_create], &buf);
			}
			sqlite3_exec(b.db, "COMMIT", NULL, NULL, NULL);
		}
		rb = rate(n_get, t);
		report("get by id (read pass / 100)", rp, rb);
		for (i = 0; i < n_create; i++)
			alyx__free(bids[i]);
		free(bids);	/* check-style: allow */
	}

	/* list 20: filtered and sorted along idx_posts_author_date */
	list_qs = alyx__asprintf("filter=author_id:eq:%s&sort=-created_at"
				 "&limit=20", author);
	t = now();
	for (i = 0; i < n_list; i++) {
		if (alyx_query_str(a, NULL, "posts", list_qs, &out))
			die("list", a);
		alyx_free(out);
	}
	ra = rate(n_list, t);
	t = now();
	for (i = 0; i < n_list; i += 100) {
		alyx__read_pass_begin(a);
		for (k = 0; k < 100; k++) {
			if (alyx_query_str(a, NULL, "posts", list_qs,
					   &out))
				die("list", a);
			alyx_free(out);
		}
		alyx__read_pass_end(a);
	}
	rp = rate(n_list, t);
	t = now();
	for (i = 0; i < n_list; i++) {
		alyx__buf_reset(&buf);
		bare_list(&b, bare_author, &buf);
	}
	rb = rate(n_list, t);
	report("list 20 (autocommit)", ra, rb);
	t = now();
	for (i = 0; i < n_list; i += 100) {
		sqlite3_exec(b.db, "BEGIN", NULL, NULL, NULL);
		for (k = 0; k < 100; k++) {
			alyx__buf_reset(&buf);
			bare_list(&b, bare_author, &buf);
		}
		sqlite3_exec(b.db, "COMMIT", NULL, NULL, NULL);
	}
	rb = rate(n_list, t);
	report("list 20 (read pass / 100)", rp, rb);

	for (i = 0; i < n_create; i++)
		alyx__free(ids[i]);
	free(ids);	/* check-style: allow */
	alyx__free(list_qs);
	alyx__free(author);
	alyx__buf_free(&buf);
	bare_close(&b);
	alyx_close(bh);
	alyx_close(a);
	rm_project(adir);
	rm_project(bdir);
	return 0;
}
