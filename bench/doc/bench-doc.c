/*
 * bench-doc.c - the document layer (lib/doc) against bare SQLite, in one
 * run, on a file database with the perf notes' posts table (WAL,
 * synchronous=NORMAL):
 *
 *   insert, 100 per transaction  alyx__doc_prepare + alyx__doc_insert
 *                                | one prepared INSERT
 *   get by id                    alyx__doc_read with the statement cache,
 *                                and with a prepare per call
 *                                | prepared SELECT, row written as JSON by
 *                                hand-rolled snprintf-free code
 *   list 20 to JSON              alyx__value_write_column per column
 *                                | the same SELECT, columns read only
 *
 *   bench-doc [N_ROWS]
 * Prints CPU ns/op for each and the ratio alyx/bare.  Not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "doc/doc.h"

static double now(void)
{
	struct timespec ts;

	/* CPU time of this process (user + system): the most stable figure
	 * on a shared machine (perf-limits.md reads server CPU µs/req the
	 * same way). */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, sqlite3 *db)
{
	fprintf(stderr, "bench-doc: %s: %s\n", what,
		db ? sqlite3_errmsg(db) : "");
	exit(1);
}

static alyx__field fields[8];
static alyx__collection posts;

static void collection(void)
{
	static const struct {
		const char *name;
		alyx__type t;
	} f[] = {
		{"id", ALYX_T_INT}, {"title", ALYX_T_STRING},
		{"body", ALYX_T_TEXT}, {"author_id", ALYX_T_STRING},
		{"status", ALYX_T_STRING}, {"likes", ALYX_T_INT},
		{"created_at", ALYX_T_TIMESTAMP},
		{"updated_at", ALYX_T_TIMESTAMP},
	};
	size_t i;

	for (i = 0; i < 8; i++) {
		memset(&fields[i], 0, sizeof(fields[i]));
		fields[i].name = (char *)f[i].name;
		fields[i].type = f[i].t;
	}
	fields[0].primary = true;
	fields[1].has_max_length = true;
	fields[1].max_length = 200;
	fields[6].default_kind = ALYX_DEF_NOW;
	fields[7].default_kind = ALYX_DEF_NOW;
	fields[7].on_update_now = true;
	posts = (alyx__collection){.name = "posts", .fields = fields,
				   .n_fields = 8, .pk = 0};
}

static const char ddl[] =
	"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	"PRAGMA mmap_size=268435456;"
	"CREATE TABLE posts (id INTEGER NOT NULL PRIMARY KEY,"
	" title TEXT NOT NULL, body TEXT NOT NULL, author_id TEXT NOT NULL,"
	" status TEXT NOT NULL, likes INTEGER NOT NULL,"
	" created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
	"CREATE INDEX posts_created ON posts (created_at);";

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db;

	unlink(path);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) ||
	    sqlite3_exec(db, ddl, NULL, NULL, NULL))
		die("open", db);
	return db;
}

static char body[201];

static void doc_json(char *out, size_t cap, int i)
{
	snprintf(out, cap, "{\"title\":\"Post number %d\",\"body\":\"%s\","
		 "\"author_id\":\"user-%d\",\"status\":\"%s\",\"likes\":%d}",
		 i, body, i % 97, i % 3 ? "published" : "draft", i % 1000);
}

static double insert_alyx(sqlite3 *db, int n)
{
	alyx__err err = {0};
	alyx_buf out;
	char json[512];
	double t0 = now();
	int i;

	alyx__buf_init(&out, 0);
	for (i = 0; i < n; i++) {
		cJSON *j;
		alyx__row row;

		if (i % 100 == 0)
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		doc_json(json, sizeof(json), i);
		j = cJSON_Parse(json);
		if (alyx__doc_prepare(&posts, j, ALYX_DOC_CREATE, &row, &err) ||
		    alyx__doc_insert(db, &posts, &row, &out, &err))
			die(err.msg, db);
		alyx__row_free(&row);
		cJSON_Delete(j);
		alyx__buf_reset(&out);
		if (i % 100 == 99 || i == n - 1)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	alyx__buf_free(&out);
	return (now() - t0) / n * 1e9;
}

static double insert_bare(sqlite3 *db, int n)
{
	sqlite3_stmt *st;
	char title[64], author[32], ts[25];
	double t0 = now();
	int i;

	if (sqlite3_prepare_v2(db, "INSERT INTO posts (title, body, author_id,"
			       " status, likes, created_at, updated_at) "
			       "VALUES (?,?,?,?,?,?,?)", -1, &st, NULL))
		die("prepare", db);
	for (i = 0; i < n; i++) {
		if (i % 100 == 0)
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		snprintf(title, sizeof(title), "Post number %d", i);
		snprintf(author, sizeof(author), "user-%d", i % 97);
		alyx__iso8601_ms(alyx__now_ms(), ts);
		sqlite3_bind_text(st, 1, title, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, body, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, author, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, i % 3 ? "published" : "draft", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int(st, 5, i % 1000);
		sqlite3_bind_text(st, 6, ts, 24, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 7, ts, 24, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			die("insert", db);
		sqlite3_reset(st);
		if (i % 100 == 99 || i == n - 1)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_finalize(st);
	return (now() - t0) / n * 1e9;
}

/* Reads run 100 per read transaction, as a server's loop pass would. */
static double get_alyx(sqlite3 *db, int n, int rows, bool cache)
{
	alyx__err err = {0};
	alyx_buf out;
	char id[24];
	double t0 = now();
	int i;

	alyx__buf_init(&out, 0);
	for (i = 0; i < n; i++) {
		if (i % 100 == 0)
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		snprintf(id, sizeof(id), "%d", 1 + (i * 7919) % rows);
		if (alyx__doc_read(db, &posts, id, false, &out, &err))
			die(err.msg, db);
		if (!cache)
			alyx__stmt_cache_clear(db);
		alyx__buf_reset(&out);
		if (i % 100 == 99 || i == n - 1)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	alyx__buf_free(&out);
	return (now() - t0) / n * 1e9;
}

/* The bare side writes the same JSON with the util writer directly. */
static void bare_row(alyx_buf *b, sqlite3_stmt *st)
{
	static const char *names[] = {"id", "title", "body", "author_id",
				      "status", "likes", "created_at",
				      "updated_at"};
	int c;

	alyx__buf_addc(b, '{');
	for (c = 0; c < 8; c++) {
		if (c)
			alyx__buf_addc(b, ',');
		alyx__buf_addc(b, '"');
		alyx__buf_adds(b, names[c]);
		alyx__buf_add(b, "\":", 2);
		if (sqlite3_column_type(st, c) == SQLITE_INTEGER)
			alyx__json_i64(b, sqlite3_column_int64(st, c));
		else
			alyx__json_str(b, (const char *)
				       sqlite3_column_text(st, c),
				       (size_t)sqlite3_column_bytes(st, c));
	}
	alyx__buf_addc(b, '}');
}

static double get_bare(sqlite3 *db, int n, int rows)
{
	sqlite3_stmt *st;
	alyx_buf out;
	double t0 = now();
	int i;

	alyx__buf_init(&out, 0);
	if (sqlite3_prepare_v2(db, "SELECT id, title, body, author_id, status,"
			       " likes, created_at, updated_at FROM posts "
			       "WHERE id=?", -1, &st, NULL))
		die("prepare", db);
	for (i = 0; i < n; i++) {
		if (i % 100 == 0)
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		sqlite3_bind_int64(st, 1, 1 + (i * 7919) % rows);
		if (sqlite3_step(st) != SQLITE_ROW)
			die("get", db);
		bare_row(&out, st);
		sqlite3_reset(st);
		alyx__buf_reset(&out);
		if (i % 100 == 99 || i == n - 1)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_finalize(st);
	alyx__buf_free(&out);
	return (now() - t0) / n * 1e9;
}

/* List 20 newest: typed JSON per column (alyx) or columns read only. */
static double list20(sqlite3 *db, int n, bool json)
{
	sqlite3_stmt *st;
	alyx_buf out;
	double t0 = now();
	int i, c;
	size_t bytes = 0;

	alyx__buf_init(&out, 0);
	if (sqlite3_prepare_v2(db, "SELECT id, title, body, author_id, status,"
			       " likes, created_at, updated_at FROM posts "
			       "ORDER BY created_at DESC LIMIT 20", -1, &st,
			       NULL))
		die("prepare", db);
	for (i = 0; i < n; i++) {
		if (i % 100 == 0)
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		alyx__buf_adds(&out, "{\"docs\":[");
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (!json) {
				for (c = 0; c < 8; c++)
					bytes += (size_t)sqlite3_column_bytes(
						st, c);
				continue;
			}
			if (out.len > 9)
				alyx__buf_addc(&out, ',');
			alyx__buf_addc(&out, '{');
			for (c = 0; c < 8; c++) {
				if (c)
					alyx__buf_addc(&out, ',');
				alyx__buf_addc(&out, '"');
				alyx__buf_adds(&out, fields[c].name);
				alyx__buf_add(&out, "\":", 2);
				alyx__value_write_column(&out, &fields[c], st,
							 c);
			}
			alyx__buf_addc(&out, '}');
		}
		alyx__buf_adds(&out, "]}");
		sqlite3_reset(st);
		alyx__buf_reset(&out);
		if (i % 100 == 99 || i == n - 1)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_finalize(st);
	alyx__buf_free(&out);
	if (bytes == 1)
		printf("\n");	/* keep the read loop */
	return (now() - t0) / n * 1e9;
}

int main(int argc, char **argv)
{
	int rows = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100000;
	char a_path[] = "/tmp/bench-doc-a.db", b_path[] = "/tmp/bench-doc-b.db";
	sqlite3 *a, *b;
	double ia, ib, ga, gu, gb, la, lb;

	if (rows < 1000)
		rows = 1000;
	memset(body, 'x', 200);
	collection();
	a = open_db(a_path);
	b = open_db(b_path);
	ib = insert_bare(b, rows);
	ia = insert_alyx(a, rows);
	gb = get_bare(a, 200000, rows);
	ga = get_alyx(a, 200000, rows, true);
	gu = get_alyx(a, 50000, rows, false);
	lb = list20(a, 20000, false);
	la = list20(a, 20000, true);
	printf("bench-doc: %d rows, file database (WAL, synchronous=NORMAL)\n",
	       rows);
	printf("%-34s %10s %10s %7s\n", "operation (CPU ns/op)", "alyx",
	       "bare", "ratio");
	printf("%-34s %10.0f %10.0f %7.2f\n", "insert (100/txn, prepare+insert)",
	       ia, ib, ia / ib);
	printf("%-34s %10.0f %10.0f %7.2f\n", "get by id, statement cache", ga,
	       gb, ga / gb);
	printf("%-34s %10.0f %10.0f %7.2f\n", "get by id, prepare per call", gu,
	       gb, gu / gb);
	printf("%-34s %10.0f %10.0f %7.2f\n", "list 20 to JSON | columns only",
	       la, lb, la / lb);
	alyx__stmt_cache_clear(a);
	sqlite3_close(a);
	sqlite3_close(b);
	unlink(a_path);
	unlink(b_path);
	return 0;
}
