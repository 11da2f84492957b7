/* api-data.c - seed, dump, reset and the change feed. */
#include <stdio.h>
#include <string.h>

#include "core/handle.h"
#include "doc/doc.h"
#include "realtime/realtime.h"

#define SEED_MAX_BYTES ((size_t)256 << 20)
#define CHANGES_MAX_LIMIT 10000

/* Seeds one collection's array; on failure err gets {"collection","index"}
 * in front of the document's own details. */
static int seed_coll(alyx *a, const alyx__collection *c, const cJSON *docs,
		     int64_t *count, alyx__err *err)
{
	const cJSON *d;
	alyx_buf sink;
	int rc = ALYX_OK, i = 0;

	alyx__buf_init(&sink, 0);
	cJSON_ArrayForEach(d, docs) {
		alyx__row row = {0};

		rc = alyx__doc_prepare(c, d, ALYX_DOC_CREATE, &row, err);
		if (rc == ALYX_OK) {
			alyx__buf_reset(&sink);
			rc = alyx__doc_insert(a->wdb, c, &row, &sink, err);
		}
		alyx__row_free(&row);
		if (rc != ALYX_OK)
			break;
		i++;
	}
	alyx__buf_free(&sink);
	if (rc != ALYX_OK) {
		char idx[24], msg[sizeof(err->msg)], *dt, *cn;
		alyx_buf q;

		alyx__buf_init(&q, 0);
		alyx__json_strz(&q, c->name);
		cn = alyx__buf_take(&q);
		snprintf(idx, sizeof(idx), "%d", i);
		snprintf(msg, sizeof(msg), "%s", err->msg);
		dt = alyx__details_prepend(err->details, "index", idx);
		if (dt && cn) {
			char *d2 = alyx__details_prepend(dt, "collection", cn);

			alyx__free(dt);
			dt = d2;
		}
		alyx__free(cn);
		alyx__err_setd(err, err->code, dt, "%s[%d]: %.400s", c->name, i,
			       msg);
	}
	*count = i;
	return rc;
}

ALYX_API int alyx_db_seed(alyx *a, const char *json, size_t len, char **out)
{
	alyx__err err = {0};
	alyx__snap *snap = NULL;
	const alyx__collection *c;
	const cJSON *arr;
	cJSON *in = NULL;
	alyx__wtx t = {0};
	size_t saved_max;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	if (out)
		*out = NULL;
	rc = alyx__enter(a, &err);
	if (rc != ALYX_OK)
		goto out;
	/* Seeds are trusted files, larger than request bodies. */
	saved_max = a->max_body;
	a->max_body = SEED_MAX_BYTES;
	rc = alyx__json_parse(a, json, len, "json", &in, &err);
	a->max_body = saved_max;
	if (rc == ALYX_OK && !cJSON_IsObject(in))
		rc = alyx__err_set(&err, ALYX_E_BADJSON, NULL,
				   "a seed is {\"collection\":[documents]}");
	if (rc != ALYX_OK)
		goto out;
	snap = alyx__snap_get(a);
	/* Every name and shape first, so a typo costs no transaction. */
	cJSON_ArrayForEach(arr, in) {
		rc = alyx__coll_find(snap, arr->string, &c, &err);
		if (rc == ALYX_OK && !cJSON_IsArray(arr))
			rc = alyx__err_set(&err, ALYX_E_BADJSON,
					   "{\"field\":\"collection\"}",
					   "seed entry '%.200s' is not an "
					   "array", arr->string);
		if (rc != ALYX_OK)
			goto out;
	}
	rc = alyx__wtx_begin(a, &t, &err);
	if (rc != ALYX_OK)
		goto out;
	/* References between collections are checked at commit, so the
	 * seed's collection order does not matter. */
	if (!t.sp)
		rc = alyx__exec(a->wdb, "PRAGMA defer_foreign_keys=ON", &err);
	alyx__buf_adds(&b, "{\"inserted\":{");
	cJSON_ArrayForEach(arr, in) {
		int64_t n = 0;

		if (rc != ALYX_OK)
			break;
		alyx__coll_find(snap, arr->string, &c, &err);
		rc = seed_coll(a, c, arr, &n, &err);
		if (b.data[b.len - 1] != '{')
			alyx__buf_addc(&b, ',');
		alyx__json_strz(&b, c->name);
		alyx__buf_addf(&b, ":%lld", (long long)n);
	}
	alyx__buf_adds(&b, "}}");
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	if (rc == ALYX_OK && out)
		*out = alyx__buf_take(&b);
out:
	cJSON_Delete(in);
	alyx__snap_put(snap);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

/* Appends every row of c as {"field":value,...} (internal fields too). */
static int dump_coll(sqlite3 *db, const alyx__collection *c, alyx_buf *b,
		     alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	alyx_buf sql;
	size_t i;
	int rc = ALYX_OK, src, n = 0;

	alyx__buf_init(&sql, 0);
	alyx__buf_adds(&sql, "SELECT ");
	for (i = 0; i < c->n_fields; i++)
		alyx__buf_addf(&sql, "%s\"%s\"", i ? "," : "",
			       c->fields[i].name);
	alyx__buf_addf(&sql, " FROM \"%s\" ORDER BY \"%s\"", c->name,
		       c->fields[c->pk].name);
	if (sql.err) {
		rc = alyx__err_set(err, sql.err, NULL, "out of memory");
		goto out;
	}
	src = sqlite3_prepare_v2(db, sql.data, -1, &st, NULL);
	if (src != SQLITE_OK) {
		rc = alyx__conn_err(db, src, "dump", err);
		goto out;
	}
	alyx__buf_addc(b, '[');
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		alyx__buf_adds(b, n++ ? ",{" : "{");
		for (i = 0; i < c->n_fields; i++) {
			if (i)
				alyx__buf_addc(b, ',');
			alyx__json_strz(b, c->fields[i].name);
			alyx__buf_addc(b, ':');
			alyx__value_write_column(b, &c->fields[i], st, (int)i);
		}
		alyx__buf_addc(b, '}');
		if (b->err)
			break;
	}
	if (src != SQLITE_DONE && src != SQLITE_ROW) {
		rc = alyx__conn_err(db, src, "dump", err);
		goto out;
	}
	alyx__buf_addc(b, ']');
	if (b->err)
		rc = alyx__err_set(err, b->err, NULL, "dump too large");
out:
	sqlite3_finalize(st);
	alyx__buf_free(&sql);
	return rc;
}

ALYX_API int alyx_db_dump(alyx *a, char **out)
{
	alyx__err err = {0};
	alyx__snap *snap = NULL;
	alyx__rd rd = {0};
	alyx_buf b;
	size_t i;
	int rc;

	alyx__buf_init(&b, 0);
	if (out)
		*out = NULL;
	rc = out ? alyx__enter(a, &err) : alyx__misuse(&err, "out");
	if (rc != ALYX_OK)
		goto out;
	snap = alyx__snap_get(a);
	rc = alyx__reader_get(a, &rd, &err);
	if (rc != ALYX_OK)
		goto out;
	/* One snapshot for every collection (unless a pass holds one). */
	if (!rd.pass)
		rc = alyx__tx_begin(rd.db, false, &err);
	alyx__buf_addc(&b, '{');
	for (i = 0; rc == ALYX_OK && i < snap->schema->n_colls; i++) {
		const alyx__collection *c = &snap->schema->colls[i];

		if (i)
			alyx__buf_addc(&b, ',');
		alyx__json_strz(&b, c->name);
		alyx__buf_addc(&b, ':');
		rc = dump_coll(rd.db, c, &b, &err);
	}
	alyx__buf_addc(&b, '}');
	if (!rd.pass)
		alyx__tx_rollback(rd.db);
	alyx__reader_put(a, &rd);
	if (rc == ALYX_OK && b.err)
		rc = alyx__err_set(&err, b.err, NULL, "dump too large");
	if (rc == ALYX_OK)
		*out = alyx__buf_take(&b);
out:
	alyx__snap_put(snap);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_db_reset(alyx *a)
{
	alyx__err err = {0};
	alyx__snap *snap = NULL;
	alyx__wtx t = {0};
	bool fk_off = false;
	size_t i;
	int rc;

	rc = alyx__enter(a, &err);
	if (rc != ALYX_OK)
		goto out;
	snap = alyx__snap_get(a);
	if (!a->wdb) {
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "the handle was opened read-only");
		goto out;
	}
	/* Everything goes, so references need no checks (and `restrict`
	 * could not be ordered away on self-references).  foreign_keys can
	 * only change outside a transaction, i.e. outside a group. */
	pthread_mutex_lock(&a->wmu);
	if (sqlite3_get_autocommit(a->wdb)) {
		rc = alyx__exec(a->wdb, "PRAGMA foreign_keys=OFF", &err);
		fk_off = rc == ALYX_OK;
	}
	if (rc == ALYX_OK)
		rc = alyx__wtx_begin(a, &t, &err);
	for (i = snap->schema->n_colls; rc == ALYX_OK && i > 0; i--) {
		char *sql = alyx__asprintf("DELETE FROM \"%s\"",
					   snap->schema->colls[i - 1].name);

		rc = sql ? alyx__exec(a->wdb, sql, &err)
			 : alyx__err_set(&err, ALYX_E_NOMEM, NULL,
					 "out of memory");
		alyx__free(sql);
	}
	if (rc == ALYX_OK)
		rc = alyx__exec(a->wdb, "DELETE FROM _alyx_changes", &err);
	rc = alyx__wtx_end(&t, rc == ALYX_OK, &err);
	/* The deletes left no trace in the feed: live queries re-run. */
	if (rc == ALYX_OK)
		alyx__rt_resync(a);
	if (fk_off)
		sqlite3_exec(a->wdb, "PRAGMA foreign_keys=ON", NULL, NULL,
			     NULL);
	pthread_mutex_unlock(&a->wmu);
out:
	alyx__snap_put(snap);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_changes(alyx *a, int64_t since, int limit, char **out)
{
	static const char sql[] =
		"SELECT id, collection, operation, doc_id, changed_fields, "
		"timestamp FROM _alyx_changes WHERE id > ? ORDER BY id LIMIT ?";
	alyx__err err = {0};
	sqlite3_stmt *st = NULL;
	alyx__rd rd = {0};
	int64_t last = since;
	alyx_buf b;
	int rc, src, n = 0;

	alyx__buf_init(&b, 0);
	if (out)
		*out = NULL;
	rc = out ? alyx__enter(a, &err) : alyx__misuse(&err, "out");
	if (rc == ALYX_OK && (limit < 1 || limit > CHANGES_MAX_LIMIT))
		rc = alyx__err_set(&err, ALYX_E_MISUSE,
				   "{\"argument\":\"limit\"}",
				   "limit must be 1..%d", CHANGES_MAX_LIMIT);
	if (rc == ALYX_OK)
		rc = alyx__reader_get(a, &rd, &err);
	if (rc != ALYX_OK)
		goto out;
	src = sqlite3_prepare_v2(rd.db, sql, -1, &st, NULL);
	if (src != SQLITE_OK) {
		rc = alyx__conn_err(rd.db, src, "changes", &err);
		goto done;
	}
	sqlite3_bind_int64(st, 1, since);
	sqlite3_bind_int(st, 2, limit);
	alyx__buf_adds(&b, "{\"changes\":[");
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *cf = (const char *)sqlite3_column_text(st, 4);
		cJSON *cfj = NULL;

		last = sqlite3_column_int64(st, 0);
		alyx__buf_addf(&b, "%s{\"id\":%lld,\"collection\":",
			       n++ ? "," : "", (long long)last);
		alyx__json_strz(&b, (const char *)sqlite3_column_text(st, 1));
		alyx__buf_adds(&b, ",\"operation\":");
		alyx__json_strz(&b, (const char *)sqlite3_column_text(st, 2));
		alyx__buf_adds(&b, ",\"doc_id\":");
		alyx__json_strz(&b, (const char *)sqlite3_column_text(st, 3));
		alyx__buf_adds(&b, ",\"changed_fields\":");
		/* Written by our triggers, but the file is shared with other
		 * processes: only a real JSON array goes out verbatim. */
		if (cf && (cfj = cJSON_Parse(cf)) && cJSON_IsArray(cfj))
			alyx__buf_adds(&b, cf);
		else
			alyx__buf_adds(&b, "null");
		cJSON_Delete(cfj);
		alyx__buf_adds(&b, ",\"timestamp\":");
		alyx__json_strz(&b, (const char *)sqlite3_column_text(st, 5));
		alyx__buf_addc(&b, '}');
	}
	if (src != SQLITE_DONE) {
		rc = alyx__conn_err(rd.db, src, "changes", &err);
		goto done;
	}
	alyx__buf_addf(&b, "],\"last_id\":%lld}", (long long)last);
	if (b.err)
		rc = alyx__err_set(&err, b.err, NULL, "changes too large");
	if (rc == ALYX_OK)
		*out = alyx__buf_take(&b);
done:
	sqlite3_finalize(st);
	alyx__reader_put(a, &rd);
out:
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}
