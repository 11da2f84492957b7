/*
 * fuzz-query.c - libFuzzer target for the two query parsers.
 *
 * An input starting with '{' is the JSON form, anything else the REST
 * query string, both on the fixture's `posts` collection.  Beyond "does
 * not crash", every query that parses must compile to SQL that SQLite
 * accepts and runs, and (differentially) the SQL result over a small table
 * must equal what the in-memory matcher and alyx__query_doc_cmp give.
 * A REST string is also split and decoded into parameters, as the HTTP
 * layer passes them: alyx__query_parse_args must give the same answer,
 * error or SQL.
 */
#include <stdint.h>

#include "../../unit/query/fixture.h"

static sqlite3 *db;
static cJSON *all_docs;
static const alyx__query *cmp_q;

static void init(void)
{
	static const char *const docs[] = {
		"{\"id\":1,\"title\":\"Hello\",\"author_id\":\"u1\",\"views\":3,"
		"\"score\":1.5,\"published\":true,\"created_at\":"
		"\"2026-01-01T00:00:00Z\",\"tags\":[\"a\",1,true,null]}",
		"{\"id\":2,\"title\":\"hello 100%\",\"author_id\":\"u2\","
		"\"views\":null,\"tags\":{\"a\":[1]},\"body\":\"x_y\"}",
		"{\"id\":3,\"title\":\"\xc3\xa9t\xc3\xa9\",\"views\":3,\"score\":"
		"-0.5,\"published\":false,\"uid\":"
		"\"0c9a8b3e-1234-4abc-8def-0123456789ab\",\"data\":\"AAE=\"}",
		"{\"id\":4,\"title\":\"\",\"views\":-7,\"tags\":[\"1\",1.5]}",
	};
	alyx_buf out;
	alyx__query *q = NULL;
	alyx__err err = {0};
	size_t i;

	db = fx_open();
	fx_insert(db, "orgs", "{\"id\":1,\"name\":\"o\"}");
	fx_insert(db, "users", "{\"id\":\"u1\",\"name\":\"n\",\"org_id\":1}");
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		fx_insert(db, "posts", docs[i]);
	alyx__buf_init(&out, 0);
	if (alyx__query_parse_str(&fx_schema, fx_coll("posts"), "limit=1000",
				  &q, &err) != ALYX_OK ||
	    alyx__query_exec(db, q, NULL, &out, &err) != ALYX_OK) {
		fprintf(stderr, "init: %s\n", err.msg);
		abort();
	}
	all_docs = cJSON_Parse(out.data);
	alyx__query_free(q);
	alyx__buf_free(&out);
}

static int doc_cmp(const void *a, const void *b)
{
	return alyx__query_doc_cmp(cmp_q, *(cJSON *const *)a,
				   *(cJSON *const *)b);
}

/* SQL (projection, expand, paging and cursor removed) against the
 * matcher, over the whole table. */
static void differential(alyx__query *q)
{
	cJSON *res, *d, *docs = cJSON_GetObjectItem(all_docs, "docs");
	cJSON *mem[16];
	alyx__err err = {0};
	alyx_buf out;
	size_t i, n = 0;
	int k = 0;

	for (i = 0; i < q->n_fields; i++)
		alyx__free(q->fields[i]);
	alyx__free(q->fields);
	q->fields = NULL;
	q->n_fields = 0;
	for (i = 0; i < q->n_after; i++)
		alyx__value_clear(&q->after_vals[i]);
	q->n_after = 0;
	q->limit = ALYX_QUERY_MAX_LIMIT;
	q->offset = 0;
	alyx__buf_init(&out, 0);
	if (alyx__query_exec(db, q, NULL, &out, &err) != ALYX_OK) {
		fprintf(stderr, "exec failed: %s\n", err.msg);
		abort();
	}
	cJSON_ArrayForEach(d, docs)
		if (n < 16 && alyx__filter_match(q->coll, q->where, d))
			mem[n++] = d;
	cmp_q = q;
	qsort(mem, n, sizeof(*mem), doc_cmp);
	res = cJSON_Parse(out.data);
	cJSON_ArrayForEach(d, cJSON_GetObjectItem(res, "docs")) {
		if ((size_t)k >= n ||
		    cJSON_GetObjectItem(d, "id")->valueint !=
		    cJSON_GetObjectItem(mem[k], "id")->valueint) {
			fprintf(stderr, "evaluators disagree at %d\n", k);
			abort();
		}
		k++;
	}
	if ((size_t)k != n) {
		fprintf(stderr, "evaluators disagree: %d vs %zu docs\n", k, n);
		abort();
	}
	cJSON_Delete(res);
	alyx__buf_free(&out);
}

/* The parameter form of a REST string against the string form's result
 * (rc, err, and q when it parsed). */
static void args_agree(const char *text, int rc, const alyx__err *err,
		       const alyx__query *q)
{
	static alyx__qarg args[4096];
	static char store[(1 << 16) * 2 + 8192];
	alyx__query *qa = NULL;
	alyx__err ea = {0};
	size_t n = fx_split_args(text, args, 4096, store, sizeof(store));
	int ra;

	if (n == (size_t)-1)	/* a bad escape: lws refuses it first */
		return;
	ra = alyx__query_parse_args(&fx_schema, fx_coll("posts"), args, n,
				    &qa, &ea);
	if (ra != rc || ea.code != err->code || strcmp(ea.msg, err->msg) ||
	    strcmp(ea.details ? ea.details : "", err->details ?
		   err->details : "")) {
		fprintf(stderr, "forms disagree: %d %s / %d %s\n", rc,
			err->msg, ra, ea.msg);
		abort();
	}
	if (ra == ALYX_OK) {
		alyx_buf s1, s2;

		alyx__buf_init(&s1, 0);
		alyx__buf_init(&s2, 0);
		if (alyx__query_sql(q, NULL, &s1, &ea) != ALYX_OK ||
		    alyx__query_sql(qa, NULL, &s2, &ea) != ALYX_OK ||
		    strcmp(s1.data, s2.data) || q->limit != qa->limit ||
		    q->offset != qa->offset || q->total != qa->total) {
			fprintf(stderr, "forms disagree on the SQL\n");
			abort();
		}
		alyx__buf_free(&s1);
		alyx__buf_free(&s2);
	}
	alyx__query_free(qa);
	alyx__err_clear(&ea);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	alyx__query *q = NULL;
	alyx__err err = {0};
	alyx_buf out;
	char *text;
	int rc;

	if (!db)
		init();
	if (size > 1 << 16)
		return 0;
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (size && text[0] == '{') {
		cJSON *j = cJSON_ParseWithLength(text, size);

		rc = j ? alyx__query_parse_json(&fx_schema, fx_coll("posts"),
						j, &q, &err) : ALYX_E_BADJSON;
		cJSON_Delete(j);
	} else {
		rc = alyx__query_parse_str(&fx_schema, fx_coll("posts"), text,
					   &q, &err);
		args_agree(text, rc, &err, q);
	}
	free(text);
	if (rc != ALYX_OK) {
		/* Every refusal carries a message and JSON details. */
		if (rc != ALYX_E_BADJSON) {
			cJSON *dj = err.details ? cJSON_Parse(err.details) :
				    NULL;

			if (!err.msg[0] || !cJSON_IsObject(dj))
				abort();
			cJSON_Delete(dj);
		}
		alyx__err_clear(&err);
		return 0;
	}
	/* The query as given runs (expand, projection, cursor and all). */
	alyx__buf_init(&out, 1 << 20);
	if (alyx__query_exec(db, q, NULL, &out, &err) != ALYX_OK) {
		fprintf(stderr, "exec failed: %s\n", err.msg);
		abort();
	}
	{
		cJSON *oj = cJSON_Parse(out.data);

		if (!oj)
			abort();
		cJSON_Delete(oj);
	}
	alyx__buf_free(&out);
	differential(q);
	alyx__query_free(q);
	return 0;
}
