/*
 * store-helpers.h - shared helpers of the store unit tests: temporary
 * databases, schema parsing, row counts and a full logical dump (every
 * schema object and every row of every table) for before/after checks.
 */
#ifndef ALYX_TEST_STORE_HELPERS_H
#define ALYX_TEST_STORE_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "store/store.h"

/* A fresh temporary directory (mkdtemp); caller frees with rm_tree. */
static __attribute__((unused)) char *tmp_dir(void)
{
	char *d = alyx__strdup("/tmp/alyx-store-XXXXXX");

	ASSERT(d && mkdtemp(d));
	return d;
}

static __attribute__((unused)) void rm_tree(char *d)
{
	char *cmd = alyx__asprintf("rm -rf '%s'", d);

	ASSERT(cmd && system(cmd) == 0);
	alyx__free(cmd);
	alyx__free(d);
}

static __attribute__((unused)) sqlite3 *open_db(const char *dir)
{
	char *path = alyx__path_join(dir, "data.db");
	alyx__conn_opts o;
	alyx__err err = {0};
	sqlite3 *db = NULL;

	alyx__conn_opts_default(&o);
	o.create = true;
	ASSERT_EQ(alyx__conn_open(path, &o, &db, &err), ALYX_OK);
	alyx__free(path);
	/* the tests commit thousands of times: no fsync */
	ASSERT_EQ(sqlite3_exec(db, "PRAGMA synchronous=OFF", NULL, NULL,
			       NULL), SQLITE_OK);
	ASSERT_EQ(alyx__store_init(db, &err), ALYX_OK);
	return db;
}

static __attribute__((unused)) alyx__schema *parse(const char *yaml)
{
	alyx__err err = {0};
	alyx__schema *s = NULL;
	int rc = alyx__schema_parse(yaml, strlen(yaml), "schema.yaml", &s,
				    &err);

	if (rc != ALYX_OK)
		fprintf(stderr, "  parse: %s\n", err.msg);
	ASSERT_EQ(rc, ALYX_OK);
	alyx__err_clear(&err);
	return s;
}

static __attribute__((unused)) void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		fprintf(stderr, "  sql: %s\n  -> %s\n", sql, msg);
	sqlite3_free(msg);
	ASSERT_EQ(rc, SQLITE_OK);
}

static __attribute__((unused)) int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fprintf(stderr, "  sql: %s: %s\n", sql, sqlite3_errmsg(db));
	ASSERT(st != NULL);
	ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* First column of the first row as text (alyx__malloc'd), or NULL. */
static __attribute__((unused)) char *q_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	char *v = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fprintf(stderr, "  sql: %s: %s\n", sql, sqlite3_errmsg(db));
	ASSERT(st != NULL);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = alyx__strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

/* Appends every row of `sql` (all columns, typed) to b. */
static __attribute__((unused)) void dump_rows(sqlite3 *db, const char *sql,
					      alyx_buf *b)
{
	sqlite3_stmt *st = NULL;

	ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int n = sqlite3_column_count(st);

		for (int i = 0; i < n; i++) {
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_NULL:
				alyx__buf_adds(b, "NULL");
				break;
			case SQLITE_INTEGER:
				alyx__buf_addf(b, "i%lld", (long long)
					       sqlite3_column_int64(st, i));
				break;
			case SQLITE_FLOAT:
				alyx__buf_addf(b, "f%.17g",
					       sqlite3_column_double(st, i));
				break;
			case SQLITE_BLOB: {
				const unsigned char *p =
					sqlite3_column_blob(st, i);
				int len = sqlite3_column_bytes(st, i);

				alyx__buf_adds(b, "x");
				for (int k = 0; k < len; k++)
					alyx__buf_addf(b, "%02x", p[k]);
				break;
			}
			default:
				alyx__buf_adds(b, "t");
				alyx__json_strz(b, (const char *)
						sqlite3_column_text(st, i));
			}
			alyx__buf_addc(b, i + 1 < n ? '|' : '\n');
		}
	}
	sqlite3_finalize(st);
}

/* Every schema object (sqlite_master) and every row of every table, in a
 * stable order: equal dumps mean logically identical databases. */
static __attribute__((unused)) char *dump(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	alyx_buf b;

	alyx__buf_init(&b, 0);
	dump_rows(db, "SELECT type, name, tbl_name, sql FROM sqlite_master "
		  "ORDER BY type, name", &b);
	ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master "
				     "WHERE type='table' ORDER BY name", -1,
				     &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		char *sql = alyx__asprintf("SELECT * FROM \"%s\" ORDER BY "
					   "rowid", t);

		alyx__buf_addf(&b, "== %s\n", t);
		dump_rows(db, sql, &b);
		alyx__free(sql);
	}
	sqlite3_finalize(st);
	return alyx__buf_take(&b);
}

static __attribute__((unused)) void write_text(const char *dir,
					       const char *name,
					       const char *text)
{
	char *p = alyx__path_join(dir, name);
	FILE *f = fopen(p, "w");

	ASSERT(f != NULL);
	fputs(text, f);
	fclose(f);
	alyx__free(p);
}

static __attribute__((unused)) bool has_object(sqlite3 *db,
					       const char *type,
					       const char *name)
{
	char *sql = alyx__asprintf("SELECT count(*) FROM sqlite_master WHERE "
				   "type='%s' AND name='%s'", type, name);
	bool yes = q_int(db, sql) == 1;

	alyx__free(sql);
	return yes;
}

#endif
