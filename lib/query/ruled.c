/*
 * ruled.c - list queries under a read rule (rule push-down, issue 4).
 *
 * The rule is translated with alyx__rule_to_sql for the caller's auth and
 * request.  An exact translation is simply ANDed into the WHERE clause, so
 * LIMIT/OFFSET, cursors and totals stay in SQL and use indexes.  Otherwise
 * the translation is a pre-filter: candidates are read in batches (keyset
 * paging on the sort keys + primary key), the rule is evaluated on each,
 * and the allowed primary keys of the page are collected; the page itself
 * is then produced by the ordinary query restricted to those keys, so
 * projection, expansion and the `next` cursor (of the last returned
 * document) come from the one implementation in sql.c.
 */
#include <stdio.h>
#include <string.h>

#include "query/query-int.h"
#include "rules/rules.h"

/* Candidate rows read per statement in the per-row fallback: twice the
 * page at first, doubling up to the cap. */
#define RULED_BATCH_MIN 16
#define RULED_BATCH_MAX 512

/* One translated rule and its binds (kept alive for the expand hook). */
typedef struct tr {
	alyx_buf sql;
	alyx__value *binds;
	size_t n_binds;
	bool exact;
	const alyx__collection *coll;
} tr;

typedef struct ruled {
	const cJSON *auth, *request;
	const alyx__collection *main;	/* the queried collection ... */
	const alyx__rule *rule;		/* ... and the rule given for it */
	tr *x;		/* translations for expanded collections */
	size_t n_x;
} ruled;

static void tr_free(tr *t)
{
	alyx__buf_free(&t->sql);
	alyx__rule_binds_free(t->binds, t->n_binds);
	t->binds = NULL;
	t->n_binds = 0;
}

static int tr_make(tr *t, const alyx__rule *r, const alyx__collection *c,
		   const cJSON *auth, const cJSON *request, alyx__err *err)
{
	memset(t, 0, sizeof(*t));
	t->coll = c;
	alyx__buf_init(&t->sql, 0);
	return alyx__rule_to_sql(r, c, auth, request, &t->sql, &t->binds,
				 &t->n_binds, &t->exact, err);
}

/* auth.role == 'admin' */
static bool is_admin(const cJSON *auth)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(auth, "role");

	return cJSON_IsString(r) && !strcmp(r->valuestring, "admin");
}

/*
 * The expand hook: the referenced collection's compiled read rule (for
 * the queried collection itself, the rule given) applies to its expanded
 * documents.  No rule: only an admin sees them (a collection without a
 * read rule is admin-only, issue 5).  A rule that does not
 * translate exactly cannot be evaluated per row here, so such documents
 * expand to null (deny, never leak).
 */
static int expand_cond(void *ud, const alyx__collection *c,
		       alyx__sqlcond *cond, alyx__err *err)
{
	ruled *rd = ud;
	const alyx__rule *r = c == rd->main ? rd->rule :
			      c->programs[ALYX_RULE_READ];
	tr *t, *nx;
	size_t i;
	int rc;

	memset(cond, 0, sizeof(*cond));
	if (!r) {
		if (!is_admin(rd->auth))
			cond->sql = "0";
		return ALYX_OK;
	}
	for (i = 0; i < rd->n_x; i++)
		if (rd->x[i].coll == c)
			break;
	if (i == rd->n_x) {
		nx = alyx__realloc(rd->x, (rd->n_x + 1) * sizeof(*nx));
		if (!nx)
			return alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "out of memory");
		rd->x = nx;
		rc = tr_make(&nx[i], r, c, rd->auth, rd->request, err);
		if (rc != ALYX_OK) {
			tr_free(&nx[i]);
			return rc;
		}
		rd->n_x++;
	}
	t = &rd->x[i];
	if (t->exact) {
		cond->sql = t->sql.data;
		cond->binds = t->binds;
		cond->n_binds = t->n_binds;
	} else {
		cond->sql = "0";
	}
	return ALYX_OK;
}

/* The allowed documents of the page: primary keys of documents offset ..
 * offset+limit (the last one only tells that a next page exists), and the
 * count of all allowed documents when q->total. */
typedef struct picked {
	alyx__value *pk;
	size_t n;
	int64_t allowed;
} picked;

static void picked_free(picked *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		alyx__value_clear(&p->pk[i]);
	alyx__free(p->pk);
}

/* Frees the cursor a batch query owns. */
static void after_free(alyx__query *b)
{
	size_t k;

	alyx__free(b->after);
	for (k = 0; k < b->n_after; k++)
		alyx__value_clear(&b->after_vals[k]);
	alyx__free(b->after_vals);
}

/* count: only count the allowed documents of the whole result (ignoring
 * q->after, as totals do); else pick the page, counting to the end only
 * when the total is wanted and there is no cursor. */
static int pick(sqlite3 *db, const alyx__query *q, const alyx__rule *r,
		const tr *pre, const cJSON *auth, const cJSON *request,
		alyx__qcache *cache, bool count, picked *p, alyx__err *err)
{
	const alyx__collection *c = q->coll;
	const alyx__field *pkf = &c->fields[c->pk];
	alyx__sqlcond extra = { pre->sql.data, pre->binds, pre->n_binds };
	alyx__query_opts o = { .extra = &extra, .cache = cache };
	alyx__rule_ctx ctx = { .auth = auth, .request = request };
	size_t want = count ? 0 : (size_t)q->limit + 1;
	bool all = count || (q->total && !q->n_after);
	alyx__query b = *q;
	bool own_after = false;
	cJSON *res = NULL;
	alyx_buf out;
	int rc = ALYX_OK;

	alyx__buf_init(&out, 0);
	p->pk = alyx__calloc(want + 1, sizeof(*p->pk));
	if (!p->pk)
		goto nomem;
	if (count) {
		b.after = NULL;
		b.after_vals = NULL;
		b.n_after = 0;
	}
	/* Whole documents (the rule may read any field), no expansion. */
	b.fields = NULL;
	b.n_fields = 0;
	b.expand = NULL;
	b.n_expand = 0;
	b.total = false;
	b.offset = 0;
	b.limit = 2 * (q->limit + 1);
	if (b.limit < RULED_BATCH_MIN || count)
		b.limit = count ? RULED_BATCH_MAX : RULED_BATCH_MIN;
	if (b.limit > RULED_BATCH_MAX)
		b.limit = RULED_BATCH_MAX;
	for (;;) {
		const cJSON *d, *next;

		alyx__buf_reset(&out);
		rc = alyx__query_run(db, &b, &o, &out, err);
		if (rc != ALYX_OK)
			goto out;
		cJSON_Delete(res);
		res = cJSON_ParseWithLength(out.data, out.len);
		if (!res)
			goto nomem;
		cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(res,
								       "docs")) {
			char why[128];

			ctx.doc = d;
			if (alyx__rule_eval(r, &ctx, NULL) != ALYX_RULE_ALLOW)
				continue;
			p->allowed++;
			if (count || p->allowed <= q->offset || p->n == want)
				continue;
			if (!alyx__value_from_json(pkf,
				cJSON_GetObjectItemCaseSensitive(d, pkf->name),
				&p->pk[p->n], why)) {
				rc = alyx__err_set(err, ALYX_E_INTERNAL, NULL,
						   "primary key: %s", why);
				goto out;
			}
			p->n++;
			if (p->n == want && !all)
				goto out;
		}
		next = cJSON_GetObjectItemCaseSensitive(res, "next");
		if (!cJSON_IsString(next))
			break;
		if (own_after)
			after_free(&b);
		b.after = alyx__strdup(next->valuestring);
		b.after_vals = NULL;
		b.n_after = 0;
		own_after = true;
		if (!b.after)
			goto nomem;
		rc = alyx__cursor_decode(&b, err);
		if (rc != ALYX_OK)
			goto out;
		if (b.limit < RULED_BATCH_MAX)
			b.limit *= 2;
	}
	goto out;
nomem:
	rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
out:
	if (own_after)
		after_free(&b);
	cJSON_Delete(res);
	alyx__buf_free(&out);
	return rc;
}

/* The page of the fallback: the query restricted to the picked keys. */
static int page_of(sqlite3 *db, const alyx__query *q, const picked *p,
		   alyx__query_opts *o, alyx_buf *out, alyx__err *err)
{
	alyx__query pg = *q;
	alyx__sqlcond extra = { .binds = p->pk, .n_binds = p->n };
	alyx_buf sql;
	size_t i, mark = out->len;
	int rc;

	alyx__buf_init(&sql, 0);
	if (!p->n) {
		alyx__buf_addc(&sql, '0');
	} else {
		alyx__buf_adds(&sql, ALYX_QUERY_ALIAS ".");
		alyx__sql_ident(&sql, q->coll->fields[q->coll->pk].name);
		alyx__buf_adds(&sql, " IN (");
		for (i = 0; i < p->n; i++)
			alyx__buf_adds(&sql, i ? ",?" : "?");
		alyx__buf_addc(&sql, ')');
	}
	if (sql.err) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	extra.sql = sql.data;
	pg.offset = 0;
	pg.after = NULL;
	pg.after_vals = NULL;
	pg.n_after = 0;
	pg.total = false;
	o->extra = &extra;
	/* With limit+1 keys the ordinary page reports `next`, encoded from
	 * its last returned document. */
	rc = alyx__query_run(db, &pg, o, out, err);
	if (rc != ALYX_OK || !q->total)
		goto out;
	/* Insert the total after "docs":[...] (a cursor has no ']'). */
	{
		char *close = out->data + out->len;
		char num[32];
		size_t at, n;

		while (close > out->data + mark && *close != ']')
			close--;
		at = (size_t)(close - out->data) + 1;
		n = (size_t)snprintf(num, sizeof(num), ",\"total\":%lld",
				     (long long)p->allowed);
		alyx__buf_add(out, num, n);	/* grow by n bytes */
		if (out->err) {
			rc = alyx__err_set(err, out->err, NULL,
					   "query result too large");
			out->len = mark;
			if (out->data)
				out->data[mark] = '\0';
			goto out;
		}
		memmove(out->data + at + n, out->data + at,
			out->len - n - at);
		memcpy(out->data + at, num, n);
	}
out:
	alyx__buf_free(&sql);
	return rc;
}

int alyx__query_get_ruled(sqlite3 *db, const alyx__collection *c,
			  const alyx__value *pk,
			  const struct alyx__rule *r, const cJSON *auth,
			  const cJSON *request, alyx_buf *out, bool *done,
			  bool *found, alyx__err *err)
{
	alyx__sqlcond cond;
	tr t;
	int rc;

	*done = *found = false;
	if (!r) {
		*done = true;
		return alyx__doc_read_key(db, c, pk, NULL, out, found, err);
	}
	rc = tr_make(&t, r, c, auth, request, err);
	if (rc == ALYX_OK && t.exact) {
		cond.sql = t.sql.data;
		cond.binds = t.binds;
		cond.n_binds = t.n_binds;
		*done = true;
		rc = alyx__doc_read_key(db, c, pk, &cond, out, found, err);
	}
	tr_free(&t);
	return rc;
}

int alyx__query_run_ruled(sqlite3 *db, const alyx__query *q,
			  const alyx__rule *read_rule, const cJSON *auth,
			  const cJSON *request, alyx__qcache *cache,
			  alyx_buf *out, alyx__err *err)
{
	ruled rd = { .auth = auth, .request = request, .main = q->coll,
		     .rule = read_rule };
	alyx__query_opts o = { .cache = cache, .expand_cond = expand_cond,
			       .ud = &rd };
	alyx__sqlcond extra;
	picked p = {0};
	tr t;
	size_t i;
	int rc;

	memset(&t, 0, sizeof(t));
	alyx__buf_init(&t.sql, 0);
	if (!read_rule) {
		rc = alyx__query_run(db, q, &o, out, err);
		goto out;
	}
	rc = tr_make(&t, read_rule, q->coll, auth, request, err);
	if (rc != ALYX_OK)
		goto out;
	if (t.exact) {
		extra.sql = t.sql.data;
		extra.binds = t.binds;
		extra.n_binds = t.n_binds;
		o.extra = &extra;
		rc = alyx__query_run(db, q, &o, out, err);
		goto out;
	}
	rc = pick(db, q, read_rule, &t, auth, request, cache, false, &p, err);
	if (rc == ALYX_OK && q->total && q->n_after) {
		picked all = {0};

		rc = pick(db, q, read_rule, &t, auth, request, cache, true,
			  &all, err);
		p.allowed = all.allowed;
		picked_free(&all);
	}
	if (rc == ALYX_OK)
		rc = page_of(db, q, &p, &o, out, err);
out:
	picked_free(&p);
	tr_free(&t);
	for (i = 0; i < rd.n_x; i++)
		tr_free(&rd.x[i]);
	alyx__free(rd.x);
	return rc;
}
