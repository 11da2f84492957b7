/*
 * fixture.h - a hand-built schema for the query tests (independent of the
 * YAML parser) plus helpers: create its tables in an in-memory SQLite
 * database, insert documents given as JSON, run queries.
 */
#ifndef QUERY_FIXTURE_H
#define QUERY_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "doc/doc.h"
#include "query/query-int.h"

#define FX_UNUSED __attribute__((unused))

#define F(n, t, ...) { .name = (char *)(n), .type = (t), __VA_ARGS__ }

static alyx__field orgs_fields[] = {
	F("id", ALYX_T_INT, .primary = true),
	F("name", ALYX_T_STRING),
};

static alyx__field users_fields[] = {
	F("id", ALYX_T_STRING, .primary = true),
	F("name", ALYX_T_STRING, .nullable = true),
	F("org_id", ALYX_T_INT, .nullable = true,
	  .ref_collection = (char *)"orgs", .ref_field = (char *)"id"),
	F("pw", ALYX_T_STRING, .nullable = true, .internal = true),
};

static alyx__field posts_fields[] = {
	F("id", ALYX_T_INT, .primary = true),
	F("title", ALYX_T_STRING),
	F("body", ALYX_T_TEXT, .nullable = true),
	F("author_id", ALYX_T_STRING, .nullable = true,
	  .ref_collection = (char *)"users", .ref_field = (char *)"id"),
	F("views", ALYX_T_INT, .nullable = true),
	F("score", ALYX_T_FLOAT, .nullable = true),
	F("published", ALYX_T_BOOL, .nullable = true),
	F("created_at", ALYX_T_TIMESTAMP, .nullable = true),
	F("tags", ALYX_T_JSON, .nullable = true),
	F("uid", ALYX_T_UUID, .nullable = true),
	F("data", ALYX_T_BLOB, .nullable = true),
	F("secret", ALYX_T_STRING, .nullable = true, .internal = true),
};

static alyx__field comments_fields[] = {
	F("id", ALYX_T_INT, .primary = true),
	F("post_id", ALYX_T_INT, .nullable = true,
	  .ref_collection = (char *)"posts", .ref_field = (char *)"id"),
	F("body", ALYX_T_TEXT),
};

/* Every type, every nullable but s2; the agreement test's collection. */
static alyx__field things_fields[] = {
	F("id", ALYX_T_INT, .primary = true),
	F("s", ALYX_T_STRING, .nullable = true),
	F("t", ALYX_T_TEXT, .nullable = true),
	F("n", ALYX_T_INT, .nullable = true),
	F("x", ALYX_T_FLOAT, .nullable = true),
	F("b", ALYX_T_BOOL, .nullable = true),
	F("ts", ALYX_T_TIMESTAMP, .nullable = true),
	F("j", ALYX_T_JSON, .nullable = true),
	F("u", ALYX_T_UUID, .nullable = true),
	F("s2", ALYX_T_STRING),
};

/* A string primary key, to page on text keys too. */
static alyx__field tags_fields[] = {
	F("name", ALYX_T_STRING, .primary = true),
	F("rank", ALYX_T_INT, .nullable = true),
};

#define C(n, arr, pkidx) { .name = (char *)(n), .fields = (arr), \
	.n_fields = sizeof(arr) / sizeof((arr)[0]), .pk = (pkidx) }

static alyx__collection fx_colls[] = {
	C("orgs", orgs_fields, 0),
	C("users", users_fields, 0),
	C("posts", posts_fields, 0),
	C("comments", comments_fields, 0),
	C("things", things_fields, 0),
	C("tags", tags_fields, 0),
};

static alyx__schema fx_schema = {
	.version = 1,
	.colls = fx_colls,
	.n_colls = sizeof(fx_colls) / sizeof(fx_colls[0]),
};

FX_UNUSED static const alyx__collection *fx_coll(const char *name)
{
	size_t i;

	for (i = 0; i < fx_schema.n_colls; i++)
		if (!strcmp(fx_colls[i].name, name))
			return &fx_colls[i];
	abort();
}

FX_UNUSED static const char *fx_sqltype(alyx__type t)
{
	switch (t) {
	case ALYX_T_INT:
	case ALYX_T_BOOL:
		return "INTEGER";
	case ALYX_T_FLOAT:
		return "REAL";
	case ALYX_T_BLOB:
		return "BLOB";
	default:
		return "TEXT";
	}
}

FX_UNUSED static void fx_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "fx_exec: %s\n  %s\n", msg, sql);
		abort();
	}
}

FX_UNUSED static void fx_create(sqlite3 *db, const alyx__collection *c)
{
	char sql[2048];
	size_t i, o;

	o = (size_t)snprintf(sql, sizeof(sql), "CREATE TABLE \"%s\" (",
			     c->name);
	for (i = 0; i < c->n_fields; i++) {
		const alyx__field *f = &c->fields[i];

		o += (size_t)snprintf(sql + o, sizeof(sql) - o,
				      "%s\"%s\" %s%s%s", i ? ", " : "",
				      f->name, fx_sqltype(f->type),
				      i == c->pk ? " PRIMARY KEY" : "",
				      f->nullable ? "" : " NOT NULL");
	}
	snprintf(sql + o, sizeof(sql) - o, ")");
	fx_exec(db, sql);
}

FX_UNUSED static sqlite3 *fx_open(void)
{
	sqlite3 *db = NULL;
	size_t i;

	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		abort();
	for (i = 0; i < fx_schema.n_colls; i++)
		fx_create(db, &fx_colls[i]);
	return db;
}

/* Inserts a document given as JSON (storage form via the doc module's
 * conversion, exactly as writes store it). */
FX_UNUSED static void fx_insert_cjson(sqlite3 *db, const alyx__collection *c,
			    const cJSON *j)
{
	char sql[2048], why[128];
	size_t i, o;
	sqlite3_stmt *st = NULL;

	o = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO \"%s\" VALUES (",
			     c->name);
	for (i = 0; i < c->n_fields; i++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s?",
				      i ? "," : "");
	snprintf(sql + o, sizeof(sql) - o, ")");
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		abort();
	for (i = 0; i < c->n_fields; i++) {
		alyx__value v;

		if (!alyx__value_from_json(&c->fields[i],
			cJSON_GetObjectItemCaseSensitive(j, c->fields[i].name),
			&v, why)) {
			fprintf(stderr, "fx_insert: %s: %s\n",
				c->fields[i].name, why);
			abort();
		}
		alyx__value_bind(st, (int)i + 1, &v);
		alyx__value_clear(&v);
	}
	if (sqlite3_step(st) != SQLITE_DONE) {
		fprintf(stderr, "fx_insert: %s\n", sqlite3_errmsg(db));
		abort();
	}
	sqlite3_finalize(st);
}

FX_UNUSED static void fx_insert(sqlite3 *db, const char *coll, const char *json)
{
	cJSON *j = cJSON_Parse(json);

	if (!j)
		abort();
	fx_insert_cjson(db, fx_coll(coll), j);
	cJSON_Delete(j);
}

/* Parses and runs a REST query; returns the output (caller frees) or
 * NULL with *code set. */
FX_UNUSED static char *fx_query(sqlite3 *db, const char *coll, const char *qs,
		      int *code, alyx__err *err)
{
	alyx__query *q = NULL;
	alyx_buf out;
	int rc;

	alyx__buf_init(&out, 0);
	rc = alyx__query_parse_str(&fx_schema, fx_coll(coll), qs, &q, err);
	if (rc == ALYX_OK)
		rc = alyx__query_exec(db, q, NULL, &out, err);
	alyx__query_free(q);
	*code = rc;
	if (rc != ALYX_OK) {
		alyx__buf_free(&out);
		return NULL;
	}
	return alyx__buf_take(&out);
}

/* Splits a query string at '&' and '=' and decodes each side, as the
 * HTTP layer hands libwebsockets' fragments to the core (empty pairs
 * dropped, a leading '?' skipped).  Returns how many, the text kept in
 * `store`, or (size_t)-1 for a bad escape or too little room. */
FX_UNUSED static size_t fx_split_args(const char *qs, alyx__qarg *args,
				       size_t max, char *store, size_t cap)
{
	size_t n = 0, used = 0;
	const char *p = *qs == '?' ? qs + 1 : qs;

	while (*p) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len;

		if (!amp)
			amp = p + strlen(p);
		len = (size_t)(amp - p);
		if (len) {
			char *k = NULL, *v = NULL;
			size_t kl, vl;

			eq = memchr(p, '=', len);
			if (!eq)
				eq = amp;
			if (!alyx__url_decode(p, (size_t)(eq - p), &k, &kl) ||
			    !alyx__url_decode(eq + (eq < amp),
					      (size_t)(amp - eq) - (eq < amp),
					      &v, &vl) ||
			    n == max || used + kl + vl + 2 > cap) {
				alyx__free(k);
				alyx__free(v);
				return (size_t)-1;
			}
			memcpy(store + used, k, kl + 1);
			args[n].key = store + used;
			args[n].klen = kl;
			used += kl + 1;
			memcpy(store + used, v, vl + 1);
			args[n].val = store + used;
			args[n].vlen = vl;
			used += vl + 1;
			n++;
			alyx__free(k);
			alyx__free(v);
		}
		p = *amp ? amp + 1 : amp;
	}
	return n;
}

#endif
