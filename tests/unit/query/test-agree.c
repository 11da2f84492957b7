/*
 * test-agree.c - the two evaluators agree (DESIGN.md principle 2).
 *
 * Random documents (every field type, NULLs, duplicates, unicode, edge
 * numbers) go into an in-memory SQLite table; random filters (every
 * operator, AND/OR nesting) and sorts run through SQL, and the result must
 * equal the documents the in-memory matcher accepts, in the order
 * alyx__query_doc_cmp gives.  Keyset pagination with `after`, in random
 * page sizes, must walk exactly the same sequence.  Queries the REST form
 * can express are also written as query strings (with all its escapes)
 * and must compile to the same SQL and return the same documents.
 * Seeded: the seed is printed, ALYX_AGREE_SEED=N replays (N, N+1, ...).
 */
#include "harness.h"
#include "fixture.h"

#define DATASETS 10	/* per test; four tests, so each has its own timeout */
#define QUERIES 75

static unsigned long long rng_state;

static unsigned rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return n ? (unsigned)((rng_state >> 33) % n) : 0;
}

#define PICK(arr) (arr[rnd(ALYX_ARRAY_LEN(arr))])

static const char *const strs[] = {
	"", "a", "A", "ab", "aB", "abc", "b", "b%", "_x", "x_y", "100%",
	"a\\b", "h\xc3\xa9llo", "H\xc3\x89LLO", "\xe6\x97\xa5\xe6\x9c\xac",
	"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xf0\x9f\x98\x80", "zz",
	" a", "a ", "null", "Zebra", "zebra", "a%b", "it's", "\"q\"",
	"a,b", "x|y", "(p)", "\\", "[1]", "a=b&c", "+1", "%41",
};
static const char *const pats[] = {
	"%", "a%", "A%", "%b", "%B%", "_", "__", "a_", "_b%", "%\\%",
	"%\\_%", "h%o", "H\xc3\xa9%", "%\xc3\xa9%", "\xe6\x97\xa5%", "_%_",
	"%a%b%", "a\\\\b", "z%", "", "null", "%'%", "\\a%", "%_",
};
static const char *const subs[] = {
	"", "a", "b", "A", "%", "_", "\xe6\x97\xa5", "\xc3\xa9", "ll", "ab",
	"\\", "'",
};
static const double ints[] = {
	0, 1, -1, 2, 3, 42, -42, 1000000, 9007199254740991.0,
	-9007199254740991.0, 123456789,
};
static const double floats[] = {
	0.0, -0.0, 0.5, 1.0, 1.5, -2.25, 1e300, -1e-300, 3.14159, 2.0, 42.0,
	1e-7, -1.0, 0.1, 0.30000000000000004,
};
static const char *const stamps[] = {
	"2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.001Z",
	"1970-01-01T00:00:00.000Z", "2025-12-31T23:59:59.999Z",
	"9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z",
	"2026-01-01", "2026-01-01T01:00:00+01:00",
};
static const char *const jsons[] = {
	"[1,2]", "[\"a\",\"b\"]", "[1.5,\"1\",true,null]", "{\"a\":1}", "[]",
	"\"str\"", "3", "[[1],{\"a\":1}]", "[false]",
	"[\"\xe6\x97\xa5\xe6\x9c\xac\",\"A\"]", "[1e300,-0.5]", "[2]",
	"[1.0]", "{\"b\":[1,2]}", "[\"a\",1,\"1\"]", "true",
};
static const char *const elems[] = {
	"1", "2", "1.5", "\"a\"", "\"1\"", "true", "false", "null", "\"A\"",
	"1e300", "-0.5", "\"\xe6\x97\xa5\xe6\x9c\xac\"", "0",
};
static const char *const uuids[] = {
	"00000000-0000-4000-8000-000000000000",
	"0c9a8b3e-1234-4abc-8def-0123456789ab",
	"FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF",
	"5d3e7a10-aaaa-4bbb-8ccc-dddddddddddd",
};

/* A random valid value of field f, as JSON. */
static cJSON *rvalue(const alyx__field *f)
{
	switch (f->type) {
	case ALYX_T_STRING:
	case ALYX_T_TEXT:
		return cJSON_CreateString(PICK(strs));
	case ALYX_T_INT:
		return cJSON_CreateNumber(PICK(ints));
	case ALYX_T_FLOAT:
		return cJSON_CreateNumber(rnd(3) ? PICK(floats) : PICK(ints));
	case ALYX_T_BOOL:
		return cJSON_CreateBool(rnd(2));
	case ALYX_T_TIMESTAMP:
		if (!rnd(8))
			return cJSON_CreateNumber(1767225600000.0 + rnd(3));
		return cJSON_CreateString(PICK(stamps));
	case ALYX_T_JSON:
		return cJSON_Parse(PICK(jsons));
	case ALYX_T_UUID:
		return cJSON_CreateString(PICK(uuids));
	default:
		return cJSON_CreateNull();
	}
}

static void make_docs(sqlite3 *db, const alyx__collection *c, int n)
{
	int i;
	size_t k;

	for (i = 1; i <= n; i++) {
		cJSON *d = cJSON_CreateObject();

		cJSON_AddNumberToObject(d, "id", i * 7 % 101);
		for (k = 1; k < c->n_fields; k++) {
			const alyx__field *f = &c->fields[k];

			if (f->nullable && !rnd(5))
				cJSON_AddNullToObject(d, f->name);
			else
				cJSON_AddItemToObject(d, f->name, rvalue(f));
		}
		fx_insert_cjson(db, c, d);
		cJSON_Delete(d);
	}
}

static bool op_ok(alyx__type t, int op)
{
	return alyx__qop_allowed(t, (alyx__op)op);
}

static const char *const opn[] = {
	"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$like", "$in",
	"$contains",
};

static cJSON *rcond(const alyx__collection *c)
{
	const alyx__field *f = &c->fields[rnd((unsigned)c->n_fields)];
	cJSON *obj = cJSON_CreateObject(), *ops = cJSON_CreateObject(), *v;
	int op, i, n;

	do
		op = (int)rnd(9);
	while (!op_ok(f->type, op));
	switch (op) {
	case ALYX_OP_LIKE:
		v = cJSON_CreateString(rnd(4) ? PICK(pats) : PICK(strs));
		break;
	case ALYX_OP_CONTAINS:
		v = f->type == ALYX_T_JSON ? cJSON_Parse(PICK(elems)) :
		    cJSON_CreateString(PICK(subs));
		break;
	case ALYX_OP_IN:
		v = cJSON_CreateArray();
		n = (int)rnd(4);
		for (i = 0; i < n; i++)
			cJSON_AddItemToArray(v, f->primary ?
				cJSON_CreateNumber(rnd(101)) : rvalue(f));
		break;
	case ALYX_OP_EQ:
	case ALYX_OP_NE:
		if (!rnd(6)) {
			v = cJSON_CreateNull();
			break;
		}
		/* fall through */
	default:
		v = f->primary ? cJSON_CreateNumber(rnd(101)) : rvalue(f);
		break;
	}
	if (op == ALYX_OP_EQ && !rnd(2)) {
		cJSON_Delete(ops);
		cJSON_AddItemToObject(obj, f->name, v);
		return obj;
	}
	cJSON_AddItemToObject(ops, opn[op], v);
	cJSON_AddItemToObject(obj, f->name, ops);
	return obj;
}

static cJSON *rfilter(const alyx__collection *c, int depth)
{
	unsigned r = rnd(10);
	cJSON *obj, *arr;
	int i, n;

	if (depth >= 3 || r < 5)
		return rcond(c);
	obj = cJSON_CreateObject();
	arr = cJSON_CreateArray();
	n = 1 + (int)rnd(3);
	for (i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, rfilter(c, depth + 1));
	cJSON_AddItemToObject(obj, r < 8 ? "$or" : "$and", arr);
	return obj;
}

static cJSON *rquery(const alyx__collection *c)
{
	cJSON *q = cJSON_CreateObject(), *sort = cJSON_CreateArray();
	int i, n = (int)rnd(4);
	bool used[16] = {0};

	if (rnd(8))
		cJSON_AddItemToObject(q, "filter", rfilter(c, 0));
	for (i = 0; i < n; i++) {
		size_t k = rnd((unsigned)c->n_fields);
		char name[80];

		if (used[k] || !alyx__qsortable(c->fields[k].type))
			continue;
		used[k] = true;
		snprintf(name, sizeof(name), "%s%s", rnd(2) ? "-" : "",
			 c->fields[k].name);
		cJSON_AddItemToArray(sort, cJSON_CreateString(name));
	}
	cJSON_AddItemToObject(q, "sort", sort);
	return q;
}

/* The statement cache of the current dataset's connection: odd datasets
 * run with one (so its reuse and eviction are checked too). */
static alyx__qcache *cur_cache;

/* Runs q (with limit/after set) and returns the output parsed. */
static cJSON *exec_json(sqlite3 *db, const alyx__collection *c,
			cJSON *qj, char **sqlout)
{
	alyx__query *q = NULL;
	alyx__err err = {0};
	alyx__query_opts o = { .cache = cur_cache };
	alyx_buf out;
	cJSON *r;

	alyx__buf_init(&out, 0);
	if (alyx__query_parse_json(&fx_schema, c, qj, &q, &err) != ALYX_OK ||
	    alyx__query_run(db, q, &o, &out, &err) != ALYX_OK) {
		char *t = cJSON_PrintUnformatted(qj);

		fprintf(stderr, "  query %s failed: %s %s\n", t, err.msg,
			err.details ? err.details : "");
		free(t);
		abort();
	}
	if (sqlout) {
		alyx_buf s;

		alyx__buf_init(&s, 0);
		alyx__query_sql(q, NULL, &s, &err);
		*sqlout = alyx__buf_take(&s);
	}
	alyx__query_free(q);
	r = cJSON_Parse(out.data);
	alyx__buf_free(&out);
	if (!r)
		abort();
	return r;
}

/* ---- the same query in the REST form ----
 * Random JSON queries that the REST form can express (a top-level AND of
 * conditions and flat $or groups) are also written as a query string,
 * with every escape the REST syntax needs; both must compile to the same
 * SQL and return the same output. */

static void url_enc(alyx_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
			alyx__buf_addc(b, (char)ch);
		} else {
			alyx__buf_addc(b, '%');
			alyx__buf_addc(b, hex[ch >> 4]);
			alyx__buf_addc(b, hex[ch & 15]);
		}
	}
}

/* A value as REST text; false if it has none. */
static bool rest_text(const alyx__field *f, const cJSON *v, alyx_buf *b)
{
	char num[64];

	if (f->type == ALYX_T_JSON) {
		char *t = cJSON_PrintUnformatted(v);

		alyx__buf_adds(b, t);
		free(t);
		return true;
	}
	if (cJSON_IsString(v)) {
		alyx__buf_adds(b, v->valuestring);
		return true;
	}
	if (cJSON_IsBool(v)) {
		alyx__buf_adds(b, cJSON_IsTrue(v) ? "true" : "false");
		return true;
	}
	if (cJSON_IsNumber(v)) {
		snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		alyx__buf_adds(b, num);
		return true;
	}
	return false;
}

/* Appends `s` with a backslash before each character of `special`. */
static void escape(alyx_buf *b, const char *s, size_t n, const char *special)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strchr(special, s[i]))
			alyx__buf_addc(b, '\\');
		alyx__buf_addc(b, s[i]);
	}
}

/* field:op:value of a one-field filter object, or false. */
static bool rest_cond(const alyx__collection *c, const cJSON *obj,
		      alyx_buf *b)
{
	const cJSON *k = obj->child, *v, *el;
	const alyx__field *f;
	const char *op = "eq";
	alyx_buf t;
	bool ok = true;

	if (!k || k->next || k->string[0] == '$')
		return false;
	f = &c->fields[alyx__qfield(c, k->string, strlen(k->string))];
	v = k;
	if (cJSON_IsObject(k) && k->child && k->child->string[0] == '$') {
		if (k->child->next)
			return false;
		op = k->child->string + 1;
		v = k->child;
	}
	alyx__buf_adds(b, k->string);
	alyx__buf_addc(b, ':');
	alyx__buf_adds(b, op);
	alyx__buf_addc(b, ':');
	alyx__buf_init(&t, 0);
	if (!strcmp(op, "in")) {
		if (!v->child || rnd(3) == 0) {
			/* The JSON-array form (numbers printed exactly:
			 * cJSON's printer rounds some to 15 digits). */
			alyx__buf_addc(b, '[');
			for (el = v->child; el && ok; el = el->next) {
				if (el != v->child)
					alyx__buf_addc(b, ',');
				if (cJSON_IsString(el) &&
				    f->type != ALYX_T_JSON) {
					alyx__json_strz(b, el->valuestring);
				} else {
					alyx__buf_reset(&t);
					ok = rest_text(f, el, &t);
					alyx__buf_add(b, t.data, t.len);
				}
			}
			alyx__buf_addc(b, ']');
		} else {
			for (el = v->child; el && ok; el = el->next) {
				alyx__buf_reset(&t);
				ok = rest_text(f, el, &t);
				if (el != v->child)
					alyx__buf_addc(b, ',');
				else if (t.len && t.data[0] == '[')
					alyx__buf_addc(b, '\\');
				escape(b, t.data ? t.data : "", t.len, "\\,");
			}
		}
	} else if (cJSON_IsNull(v)) {
		/* eq/ne: the null literal; contains: a JSON null. */
		alyx__buf_adds(b, "null");
	} else {
		ok = rest_text(f, v, &t);
		/* The text "null" would be the null literal. */
		if (ok && (!strcmp(op, "eq") || !strcmp(op, "ne")) &&
		    t.len == 4 && !memcmp(t.data, "null", 4))
			ok = false;
		if (ok)
			alyx__buf_add(b, t.data ? t.data : "", t.len);
	}
	alyx__buf_free(&t);
	return ok;
}

static bool rest_filter(const alyx__collection *c, const cJSON *obj,
			alyx_buf *b)
{
	const cJSON *k, *el;
	alyx_buf t, one;
	bool ok = true;

	if (!obj)
		return true;
	alyx__buf_init(&t, 0);
	alyx__buf_init(&one, 0);
	for (k = obj->child; k && ok; k = k->next) {
		cJSON *single;

		if (!strcmp(k->string, "$and")) {
			for (el = k->child; el && ok; el = el->next)
				ok = rest_filter(c, el, b);
			continue;
		}
		alyx__buf_adds(b, "&filter=");
		alyx__buf_reset(&t);
		if (!strcmp(k->string, "$or")) {
			alyx__buf_adds(&t, "or(");
			for (el = k->child; el && ok; el = el->next) {
				alyx__buf_reset(&one);
				ok = rest_cond(c, el, &one);
				if (el != k->child)
					alyx__buf_addc(&t, '|');
				escape(&t, one.data ? one.data : "", one.len,
				       "\\|");
			}
			alyx__buf_addc(&t, ')');
		} else {
			single = cJSON_CreateObject();
			cJSON_AddItemReferenceToObject(single, k->string,
						       (cJSON *)k);
			ok = rest_cond(c, single, &t);
			cJSON_Delete(single);
		}
		url_enc(b, t.data ? t.data : "", t.len);
	}
	alyx__buf_free(&t);
	alyx__buf_free(&one);
	return ok;
}

/* The REST string of qj, or NULL when the REST form cannot say it. */
static char *rest_of(const alyx__collection *c, const cJSON *qj)
{
	const cJSON *sort = cJSON_GetObjectItem(qj, "sort"), *el;
	alyx_buf b;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "limit=1000");
	if (!rest_filter(c, cJSON_GetObjectItem(qj, "filter"), &b)) {
		alyx__buf_free(&b);
		return NULL;
	}
	if (sort && sort->child) {
		alyx__buf_adds(&b, "&sort=");
		for (el = sort->child; el; el = el->next) {
			if (el != sort->child)
				alyx__buf_addc(&b, ',');
			alyx__buf_adds(&b, el->valuestring);
		}
	}
	return alyx__buf_take(&b);
}

/* Same SQL and same output from both forms. */
static int rest_same(sqlite3 *db, const alyx__collection *c, cJSON *qj,
		     const char *json_sql)
{
	char *qs = rest_of(c, qj);
	alyx__query *q = NULL;
	alyx__err err = {0};
	alyx_buf sql, out;
	cJSON *jr = NULL;
	char *jout = NULL;
	int ok;

	if (!qs)
		return 0;
	alyx__buf_init(&sql, 0);
	alyx__buf_init(&out, 0);
	if (alyx__query_parse_str(&fx_schema, c, qs, &q, &err) != ALYX_OK) {
		fprintf(stderr, "  REST %s: %s %s\n", qs, err.msg,
			err.details ? err.details : "");
		TH_FAIL("REST form refused");
	}
	alyx__query_sql(q, NULL, &sql, &err);
	if (strcmp(sql.data, json_sql)) {
		fprintf(stderr, "  REST %s\n  %s\n  JSON sql\n  %s\n", qs,
			sql.data, json_sql);
		TH_FAIL("REST and JSON forms compile differently");
	}
	ok = alyx__query_exec(db, q, NULL, &out, &err) == ALYX_OK;
	ASSERT(ok);
	jr = exec_json(db, c, qj, NULL);
	jout = cJSON_PrintUnformatted(jr);
	{
		cJSON *rr = cJSON_Parse(out.data);
		char *rout = cJSON_PrintUnformatted(rr);

		if (strcmp(rout, jout)) {
			fprintf(stderr, "  REST %s\n", qs);
			TH_FAIL("REST and JSON forms return different docs");
		}
		free(rout);
		cJSON_Delete(rr);
	}
	free(jout);
	cJSON_Delete(jr);
	alyx__query_free(q);
	alyx__buf_free(&sql);
	alyx__buf_free(&out);
	alyx__free(qs);
	return 1;
}

static const alyx__query *cmp_q;

static int doc_cmp(const void *a, const void *b)
{
	return alyx__query_doc_cmp(cmp_q, *(cJSON *const *)a,
				   *(cJSON *const *)b);
}

static void ids_append(char *buf, size_t cap, const cJSON *doc)
{
	size_t o = strlen(buf);

	snprintf(buf + o, cap - o, "%d,",
		 cJSON_GetObjectItem(doc, "id")->valueint);
}

static void agree(unsigned long long seed)
{
	const alyx__collection *c = fx_coll("things");
	const char *env = getenv("ALYX_AGREE_SEED");
	int ds, qi, cases = 0, pages = 0, matched = 0, rest_forms = 0;
	char *sql_ids = malloc(65536), *mem_ids = malloc(65536);
	char *page_ids = malloc(65536);

	if (env)	/* replays: each of the four tests keeps its offset */
		seed = strtoull(env, NULL, 10) + (seed - 20261124);
	fprintf(stderr, "  seed %llu\n", seed);
	rng_state = seed;
	for (ds = 0; ds < DATASETS; ds++) {
		sqlite3 *db = fx_open();
		cJSON *all, *docs, *d;
		cJSON **arr;
		int n = 0;

		cur_cache = ds % 2 ? alyx__qcache_new(db) : NULL;
		make_docs(db, c, 20 + (int)rnd(50));
		{
			cJSON *qa = cJSON_Parse("{\"limit\":1000}");

			all = exec_json(db, c, qa, NULL);
			cJSON_Delete(qa);
		}
		docs = cJSON_GetObjectItem(all, "docs");
		arr = malloc(sizeof(*arr) * 200);
		for (qi = 0; qi < QUERIES; qi++) {
			cJSON *qj = rquery(c), *res, *next;
			alyx__query *q = NULL;
			alyx__err err = {0};
			char *sql = NULL;
			int i, limit;

			cJSON_AddNumberToObject(qj, "limit", 1000);
			res = exec_json(db, c, qj, &sql);
			sql_ids[0] = mem_ids[0] = '\0';
			cJSON_ArrayForEach(d, cJSON_GetObjectItem(res, "docs"))
				ids_append(sql_ids, 65536, d);
			cJSON_Delete(res);
			/* The matcher's view of the same query. */
			ASSERT_EQ(alyx__query_parse_json(&fx_schema, c, qj, &q,
							 &err), ALYX_OK);
			n = 0;
			cJSON_ArrayForEach(d, docs)
				if (alyx__filter_match(c, q->where, d))
					arr[n++] = d;
			cmp_q = q;
			qsort(arr, (size_t)n, sizeof(*arr), doc_cmp);
			for (i = 0; i < n; i++)
				ids_append(mem_ids, 65536, arr[i]);
			matched += n;
			if (strcmp(sql_ids, mem_ids)) {
				char *t = cJSON_PrintUnformatted(qj);
				char *dd = cJSON_PrintUnformatted(docs);

				fprintf(stderr, "  query %s\n  sql %s\n  SQL:"
					"  %s\n  mem:  %s\n  docs %s\n", t, sql,
					sql_ids, mem_ids, dd);
				free(t);
				free(dd);
				TH_FAIL("evaluators disagree (seed %llu, "
					"dataset %d, query %d)", seed, ds, qi);
			}
			alyx__query_free(q);
			rest_forms += rest_same(db, c, qj, sql);
			free(sql);
			/* Keyset pages of a random size walk the same list. */
			limit = 1 + (int)rnd(7);
			cJSON_ReplaceItemInObject(qj, "limit",
						  cJSON_CreateNumber(limit));
			page_ids[0] = '\0';
			for (i = 0; i < 200; i++) {
				res = exec_json(db, c, qj, NULL);
				pages++;
				cJSON_ArrayForEach(d, cJSON_GetObjectItem(res,
									  "docs"))
					ids_append(page_ids, 65536, d);
				next = cJSON_GetObjectItem(res, "next");
				if (!next) {
					cJSON_Delete(res);
					break;
				}
				cJSON_DeleteItemFromObject(qj, "after");
				cJSON_AddStringToObject(qj, "after",
							next->valuestring);
				cJSON_Delete(res);
			}
			if (strcmp(page_ids, mem_ids)) {
				char *t = cJSON_PrintUnformatted(qj);

				fprintf(stderr, "  query %s\n  pages %s\n  "
					"full  %s\n", t, page_ids, mem_ids);
				free(t);
				TH_FAIL("keyset pages differ (seed %llu, "
					"dataset %d, query %d)", seed, ds, qi);
			}
			cJSON_Delete(qj);
			cases++;
		}
		free(arr);
		cJSON_Delete(all);
		alyx__qcache_free(cur_cache);
		cur_cache = NULL;
		ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
	}
	fprintf(stderr, "  %d queries agreed (%d matches in total), %d keyset "
		"pages; %d also in REST form\n", cases, matched, pages,
		rest_forms);
	free(sql_ids);
	free(mem_ids);
	free(page_ids);
}

TEST(evaluators_agree_1) { agree(20261124); }
TEST(evaluators_agree_2) { agree(20261125); }
TEST(evaluators_agree_3) { agree(20261126); }
TEST(evaluators_agree_4) { agree(20261127); }

TEST_MAIN()
