/*
 * sql.c - the SQL evaluator: compiles a query to one parametrised SELECT
 * (identifiers only from the schema, double-quoted; every value bound),
 * runs it, and streams {"docs":[...],"total":N,"next":"..."} with the
 * JSON writer.  Expanded references are fetched with one IN (...) query
 * per expand level and attached under "expand".
 *
 * The semantics (NULLs, like, contains) are defined in docs/queries.md
 * and mirrored exactly by the in-memory matcher in match.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query-int.h"

#define IN_CHUNK 500	/* ids per expand query */

/* ---- bound values, in the order their `?` appear ---- */

typedef struct binds {
	const alyx__value **v;
	size_t n, cap;
	bool nomem;
} binds;

static void bind_add(binds *bl, const alyx__value *v)
{
	const alyx__value **nv;

	if (bl->n == bl->cap) {
		bl->cap = bl->cap ? bl->cap * 2 : 16;
		nv = alyx__realloc(bl->v, bl->cap * sizeof(*nv));
		if (!nv) {
			bl->nomem = true;
			bl->cap = bl->n;
			return;
		}
		bl->v = nv;
	}
	bl->v[bl->n++] = v;
}

static void col_sql(alyx_buf *b, const alyx__field *f)
{
	alyx__buf_adds(b, ALYX_QUERY_ALIAS ".");
	alyx__sql_ident(b, f->name);
}

static void param(alyx_buf *b, binds *bl, const alyx__value *v)
{
	alyx__buf_addc(b, '?');
	bind_add(bl, v);
}

/* ---- WHERE ---- */

static void cond_sql(alyx_buf *b, binds *bl, const alyx__collection *c,
		     const alyx__filter *f)
{
	static const char *const cmp[] = {
		[ALYX_OP_GT] = " > ", [ALYX_OP_GTE] = " >= ",
		[ALYX_OP_LT] = " < ", [ALYX_OP_LTE] = " <= ",
	};
	const alyx__field *fd = &c->fields[f->field];
	bool null = f->n_vals == 1 && f->vals[0].kind == ALYX_V_NULL;
	size_t i;

	switch (f->op) {
	case ALYX_OP_EQ:
	case ALYX_OP_NE:
		/* eq: `=` (never true for a NULL field); ne: IS NOT, so
		 * documents whose field is NULL match `ne`. */
		col_sql(b, fd);
		if (null) {
			alyx__buf_adds(b, f->op == ALYX_OP_EQ ? " IS NULL" :
				       " IS NOT NULL");
			return;
		}
		alyx__buf_adds(b, f->op == ALYX_OP_EQ ? " = " : " IS NOT ");
		param(b, bl, &f->vals[0]);
		return;
	case ALYX_OP_GT:
	case ALYX_OP_GTE:
	case ALYX_OP_LT:
	case ALYX_OP_LTE:
		col_sql(b, fd);
		alyx__buf_adds(b, cmp[f->op]);
		param(b, bl, &f->vals[0]);
		return;
	case ALYX_OP_LIKE:
		col_sql(b, fd);
		alyx__buf_adds(b, " LIKE ");
		param(b, bl, &f->vals[0]);
		alyx__buf_adds(b, " ESCAPE '\\'");
		return;
	case ALYX_OP_IN:
		col_sql(b, fd);
		alyx__buf_adds(b, " IN (");
		for (i = 0; i < f->n_vals; i++) {
			if (i)
				alyx__buf_addc(b, ',');
			param(b, bl, &f->vals[i]);
		}
		alyx__buf_addc(b, ')');
		return;
	case ALYX_OP_CONTAINS:
		if (fd->type != ALYX_T_JSON) {
			alyx__buf_adds(b, "instr(");
			col_sql(b, fd);
			alyx__buf_adds(b, ", ");
			param(b, bl, &f->vals[0]);
			alyx__buf_adds(b, ") > 0");
			return;
		}
		/* An element of a JSON array, compared as json_each() sees
		 * it: type and value (numbers numerically). */
		alyx__buf_adds(b, "(json_type(");
		col_sql(b, fd);
		alyx__buf_adds(b, ") = 'array' AND EXISTS (SELECT 1 FROM "
			       "json_each(");
		col_sql(b, fd);
		alyx__buf_adds(b, ") AS _je WHERE ");
		switch (f->elem_type) {
		case cJSON_String:
			alyx__buf_adds(b, "_je.type = 'text' AND _je.value = ");
			param(b, bl, &f->elem);
			break;
		case cJSON_Number:
			alyx__buf_adds(b, "_je.type IN ('integer','real') AND "
				       "_je.value = ");
			param(b, bl, &f->elem);
			break;
		case cJSON_True:
			alyx__buf_adds(b, "_je.type = 'true'");
			break;
		case cJSON_False:
			alyx__buf_adds(b, "_je.type = 'false'");
			break;
		default:
			alyx__buf_adds(b, "_je.type = 'null'");
			break;
		}
		alyx__buf_adds(b, "))");
		return;
	}
}

static void filter_sql(alyx_buf *b, binds *bl, const alyx__collection *c,
		       const alyx__filter *f)
{
	size_t i;

	if (f->kind == ALYX_F_COND) {
		cond_sql(b, bl, c, f);
		return;
	}
	if (!f->n_kids) {
		/* An empty AND is true; an empty OR false. */
		alyx__buf_adds(b, f->kind == ALYX_F_AND ? "1" : "0");
		return;
	}
	alyx__buf_addc(b, '(');
	for (i = 0; i < f->n_kids; i++) {
		if (i)
			alyx__buf_adds(b, f->kind == ALYX_F_AND ? " AND " :
				       " OR ");
		filter_sql(b, bl, c, f->kids[i]);
	}
	alyx__buf_addc(b, ')');
}

/*
 * The keyset condition "the row sorts after the cursor", for mixed
 * directions and NULLs (SQLite puts NULLs first ascending, last
 * descending), nested so that a leading index column can be used:
 *   (k0 after v0 OR (k0 = v0 AND (k1 after v1 OR (...))))
 */
static void keyset_sql(alyx_buf *b, binds *bl, const alyx__query *q,
		       size_t k)
{
	const alyx__field *f = &q->coll->fields[q->sort[k].field];
	const alyx__value *v = &q->after_vals[k];
	bool null = v->kind == ALYX_V_NULL, desc = q->sort[k].desc;
	bool last = k + 1 == q->n_sort, has_after = !(desc && null);
	bool nullable = f->nullable && (size_t)q->sort[k].field != q->coll->pk;

	if (!last)
		alyx__buf_addc(b, '(');
	if (has_after) {
		if (!desc && null) {
			col_sql(b, f);
			alyx__buf_adds(b, " IS NOT NULL");
		} else if (!desc) {
			col_sql(b, f);
			alyx__buf_adds(b, " > ");
			param(b, bl, v);
		} else {
			if (nullable)
				alyx__buf_addc(b, '(');
			col_sql(b, f);
			alyx__buf_adds(b, " < ");
			param(b, bl, v);
			if (nullable) {
				alyx__buf_adds(b, " OR ");
				col_sql(b, f);
				alyx__buf_adds(b, " IS NULL)");
			}
		}
	} else if (last) {
		alyx__buf_addc(b, '0');
	}
	if (last)
		return;
	if (has_after)
		alyx__buf_adds(b, " OR ");
	alyx__buf_addc(b, '(');
	col_sql(b, f);
	if (null) {
		alyx__buf_adds(b, " IS NULL");
	} else {
		alyx__buf_adds(b, " = ");
		param(b, bl, v);
	}
	alyx__buf_adds(b, " AND ");
	keyset_sql(b, bl, q, k + 1);
	alyx__buf_adds(b, "))");
}

static void where_sql(alyx_buf *b, binds *bl, const alyx__query *q,
		      const alyx__sqlcond *extra, bool keyset)
{
	const char *kw = " WHERE ";
	size_t i;

	if (q->where) {
		alyx__buf_adds(b, kw);
		filter_sql(b, bl, q->coll, q->where);
		kw = " AND ";
	}
	if (extra && extra->sql) {
		alyx__buf_adds(b, kw);
		alyx__buf_addc(b, '(');
		alyx__buf_adds(b, extra->sql);
		alyx__buf_addc(b, ')');
		for (i = 0; i < extra->n_binds; i++)
			bind_add(bl, &extra->binds[i]);
		kw = " AND ";
	}
	if (keyset && q->n_after) {
		alyx__buf_adds(b, kw);
		keyset_sql(b, bl, q, 0);
	}
}

/* ---- the select list ---- */

typedef struct sel {
	int *col;	/* per field: result column, or -1 */
	bool *show;	/* per field: written into the documents */
	int *order;	/* per result column: the field */
	int n;
	/* Made by sel_plan once the list is complete: the shown fields in
	 * order, each with the text written before its value (`{"name":`
	 * for the first, `,"name":` after), so a row is written with one
	 * append per key and no per-row name lengths or flag checks. */
	alyx__colout *out;
	char *keys;
	int n_out;
} sel;

static void sel_free(sel *s)
{
	alyx__free(s->col);
	alyx__free(s->show);
	alyx__free(s->order);
	alyx__free(s->out);
	alyx__free(s->keys);
	memset(s, 0, sizeof(*s));
}

static int sel_plan(sel *s, const alyx__collection *c)
{
	alyx_buf k;
	size_t i;

	alyx__buf_init(&k, 0);
	s->out = alyx__calloc(c->n_fields + 1, sizeof(*s->out));
	if (!s->out)
		return ALYX_E_NOMEM;
	for (i = 0; i < c->n_fields; i++) {
		alyx__colout *o;

		if (!s->show[i])
			continue;
		o = &s->out[s->n_out++];
		o->f = &c->fields[i];
		o->col = s->col[i];
		o->off = (unsigned)k.len;
		alyx__buf_addc(&k, s->n_out == 1 ? '{' : ',');
		alyx__json_key(&k, c->fields[i].name);
		o->len = (unsigned)(k.len - o->off);
	}
	/* The row writers read keys in 16-byte blocks. */
	alyx__buf_grow(&k, 16);
	if (k.err) {
		alyx__buf_free(&k);
		return ALYX_E_NOMEM;
	}
	memset(k.data + k.len, 0, k.cap - k.len);
	s->keys = alyx__buf_take(&k);
	return s->keys || !s->n_out ? ALYX_OK : ALYX_E_NOMEM;
}

static int sel_init(sel *s, const alyx__collection *c)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	s->col = alyx__malloc((c->n_fields + 1) * sizeof(*s->col));
	s->show = alyx__calloc(c->n_fields + 1, sizeof(*s->show));
	s->order = alyx__malloc((c->n_fields + 1) * sizeof(*s->order));
	if (!s->col || !s->show || !s->order) {
		sel_free(s);
		return ALYX_E_NOMEM;
	}
	for (i = 0; i < c->n_fields; i++)
		s->col[i] = -1;
	return ALYX_OK;
}

static int sel_need(sel *s, int field, bool show)
{
	if (s->col[field] < 0) {
		s->order[s->n] = field;
		s->col[field] = s->n++;
	}
	if (show)
		s->show[field] = true;
	return s->col[field];
}

/* Every non-internal field shown. */
static void sel_all(sel *s, const alyx__collection *c)
{
	size_t i;

	for (i = 0; i < c->n_fields; i++)
		if (!c->fields[i].internal)
			sel_need(s, (int)i, true);
}

static void sel_sql(alyx_buf *b, const alyx__collection *c, const sel *s)
{
	int i;

	alyx__buf_adds(b, "SELECT ");
	for (i = 0; i < s->n; i++) {
		if (i)
			alyx__buf_adds(b, ", ");
		col_sql(b, &c->fields[s->order[i]]);
	}
	alyx__buf_adds(b, " FROM ");
	alyx__sql_ident(b, c->name);
	alyx__buf_adds(b, " AS " ALYX_QUERY_ALIAS);
}

/* ---- a collection's read plan ---- */

struct alyx__qplan {
	sel s;		/* every non-internal field, shown */
	alyx_buf sql;	/* "SELECT ... FROM ... AS _m" */
};

void alyx__qplan_free(struct alyx__qplan *p)
{
	if (!p)
		return;
	sel_free(&p->s);
	alyx__buf_free(&p->sql);
	alyx__free(p);
}

struct alyx__qplan *alyx__qplan_new(const alyx__collection *c)
{
	struct alyx__qplan *p = alyx__calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	alyx__buf_init(&p->sql, 0);
	if (sel_init(&p->s, c) != ALYX_OK) {
		alyx__free(p);
		return NULL;
	}
	sel_all(&p->s, c);
	/* A collection of internal fields only has no plan: its reads
	 * select the primary key (stmt.c). */
	if (!p->s.n || sel_plan(&p->s, c) != ALYX_OK) {
		alyx__qplan_free(p);
		return NULL;
	}
	sel_sql(&p->sql, c, &p->s);
	if (p->sql.err) {
		alyx__qplan_free(p);
		return NULL;
	}
	return p;
}

/* Writes the shown fields of the current row (sel_plan made s->out);
 * `close` adds the '}'. */
static void doc_write(alyx_buf *b, const sel *s, sqlite3_stmt *st,
		      bool close)
{
	if (!s->n_out)
		alyx__buf_addc(b, '{');
	alyx__value_write_row(b, s->out, (size_t)s->n_out, s->keys, st);
	if (close)
		alyx__buf_addc(b, '}');
}

static int sqlerr(sqlite3 *db, int rc, alyx__err *err)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return alyx__err_set(err, ALYX_E_BUSY, NULL, "database busy: "
				     "%s", sqlite3_errmsg(db));
	case SQLITE_INTERRUPT:
		return alyx__err_set(err, ALYX_E_TIMEOUT, NULL,
				     "query interrupted");
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_FULL:
	case SQLITE_CANTOPEN:
		return alyx__err_set(err, ALYX_E_IO, NULL, "database I/O: %s",
				     sqlite3_errmsg(db));
	default:
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL, "query "
				     "failed: %s", sqlite3_errmsg(db));
	}
}

/* ---- the statement cache ---- */

#define QCACHE_SIZE 32
#define QCACHE_MAX_SQL 4096	/* longer statements are not kept */

typedef struct qentry {
	char *sql;
	size_t len;
	sqlite3_stmt *st;
	uint64_t used;		/* LRU clock; 0 = free slot */
	bool busy;		/* handed out and not yet released */
} qentry;

struct alyx__qcache {
	sqlite3 *db;
	uint64_t clock;
	qentry e[QCACHE_SIZE];
};

alyx__qcache *alyx__qcache_new(sqlite3 *db)
{
	alyx__qcache *c = alyx__calloc(1, sizeof(*c));

	if (c)
		c->db = db;
	return c;
}

void alyx__qcache_free(alyx__qcache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < QCACHE_SIZE; i++) {
		sqlite3_finalize(c->e[i].st);
		alyx__free(c->e[i].sql);
	}
	alyx__free(c);
}

/* Gives a statement back: cached ones are reset for the next use. */
static void release(alyx__qcache *c, sqlite3_stmt *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; c && i < QCACHE_SIZE; i++) {
		if (c->e[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			c->e[i].busy = false;
			return;
		}
	}
	sqlite3_finalize(st);
}

static int prepare_cached(sqlite3 *db, alyx__qcache *c, const alyx_buf *sql,
			  sqlite3_stmt **st)
{
	qentry *e, *victim = NULL;
	size_t i;
	int rc;

	if (!c || c->db != db || sql->len > QCACHE_MAX_SQL)
		return sqlite3_prepare_v2(db, sql->data, (int)sql->len, st,
					  NULL);
	for (i = 0; i < QCACHE_SIZE; i++) {
		e = &c->e[i];
		if (e->used && !e->busy && e->len == sql->len &&
		    !memcmp(e->sql, sql->data, sql->len)) {
			e->used = ++c->clock;
			e->busy = true;
			*st = e->st;
			return SQLITE_OK;
		}
		if (!e->busy && (!victim || e->used < victim->used))
			victim = e;
	}
	rc = sqlite3_prepare_v3(db, sql->data, (int)sql->len,
				SQLITE_PREPARE_PERSISTENT, st, NULL);
	if (rc != SQLITE_OK || !victim)
		return rc;
	sqlite3_finalize(victim->st);
	alyx__free(victim->sql);
	memset(victim, 0, sizeof(*victim));
	victim->sql = alyx__strndup(sql->data, sql->len);
	if (!victim->sql)
		return SQLITE_OK;	/* used once, uncached */
	victim->len = sql->len;
	victim->st = *st;
	victim->used = ++c->clock;
	victim->busy = true;
	return SQLITE_OK;
}

static int prepare(sqlite3 *db, alyx__qcache *c, const alyx_buf *sql,
		   const binds *bl, sqlite3_stmt **st, alyx__err *err)
{
	size_t i;
	int rc;

	*st = NULL;
	if (sql->err || bl->nomem)
		return alyx__err_set(err, sql->err == ALYX_E_TOOBIG ?
				     ALYX_E_TOOBIG : ALYX_E_NOMEM, NULL,
				     "query too large to compile");
	rc = prepare_cached(db, c, sql, st);
	if (rc != SQLITE_OK)
		return sqlerr(db, rc, err);
	for (i = 0; i < bl->n; i++) {
		rc = alyx__value_bind(*st, (int)i + 1, bl->v[i]);
		if (rc != SQLITE_OK && rc != ALYX_OK) {
			rc = sqlerr(db, rc, err);
			release(c, *st);
			*st = NULL;
			return rc;
		}
	}
	return ALYX_OK;
}

/* The current row of a statement selecting the read plan's columns (every
 * non-internal field, in order) as a document; false without a plan. */
bool alyx__qplan_write(const alyx__collection *c, sqlite3_stmt *st,
		       alyx_buf *b)
{
	const struct alyx__qplan *p = c->read_plan;

	if (!p)
		return false;
	doc_write(b, &p->s, st, true);
	return true;
}

bool alyx__qplan_select(const alyx__collection *c, alyx_buf *sql)
{
	const struct alyx__qplan *p = c->read_plan;

	if (!p)
		return false;
	alyx__buf_add(sql, p->sql.data, p->sql.len);
	return true;
}

/* ---- the page query ---- */

typedef struct page {
	sel own;	/* the select list made for this query, or */
	const sel *s;	/* ... the collection's read plan's */
	int *sortcol;	/* per sort key: result column */
	alyx_buf sql;
	binds bl;
	alyx__value lim, off;
} page;

static void page_free(page *p)
{
	sel_free(&p->own);
	alyx__free(p->sortcol);
	alyx__buf_free(&p->sql);
	alyx__free(p->bl.v);
}

static bool projected(const alyx__query *q, size_t i)
{
	const alyx__collection *c = q->coll;
	size_t j;

	if (c->fields[i].internal)
		return false;
	if (!q->fields || i == c->pk)
		return true;
	for (j = 0; j < q->n_fields; j++)
		if (!strcmp(q->fields[j], c->fields[i].name))
			return true;
	return false;
}

/* The read plan serves a query that shows every field and sorts on shown
 * ones (all but internal fields). */
static const struct alyx__qplan *plan_for(const alyx__query *q)
{
	const struct alyx__qplan *pl = q->coll->read_plan;
	size_t i;

	if (!pl || q->fields || q->n_expand)
		return NULL;
	for (i = 0; i < q->n_sort; i++)
		if (pl->s.col[q->sort[i].field] < 0)
			return NULL;
	return pl;
}

static int page_build(const alyx__query *q, const alyx__sqlcond *extra,
		      page *p, alyx__err *err)
{
	const alyx__collection *c = q->coll;
	const struct alyx__qplan *pl = plan_for(q);
	size_t i;

	memset(p, 0, sizeof(*p));
	alyx__buf_init(&p->sql, 0);
	p->sortcol = alyx__calloc(q->n_sort + 1, sizeof(*p->sortcol));
	if (!p->sortcol)
		goto nomem;
	if (pl) {
		p->s = &pl->s;
		for (i = 0; i < q->n_sort; i++)
			p->sortcol[i] = pl->s.col[q->sort[i].field];
		alyx__buf_add(&p->sql, pl->sql.data, pl->sql.len);
	} else {
		if (sel_init(&p->own, c) != ALYX_OK)
			goto nomem;
		p->s = &p->own;
		for (i = 0; i < c->n_fields; i++)
			if (projected(q, i))
				sel_need(&p->own, (int)i, true);
		for (i = 0; i < q->n_sort; i++)
			p->sortcol[i] = sel_need(&p->own, q->sort[i].field,
						 false);
		for (i = 0; i < q->n_expand; i++) {
			const char *path = q->expand[i];
			const char *dot = strchr(path, '.');
			int f = alyx__qfield(c, path, dot ? (size_t)(dot - path)
					     : strlen(path));

			if (f >= 0)
				sel_need(&p->own, f, false);
		}
		if (sel_plan(&p->own, c) != ALYX_OK)
			goto nomem;
		sel_sql(&p->sql, c, &p->own);
	}
	where_sql(&p->sql, &p->bl, q, extra, true);
	alyx__buf_adds(&p->sql, " ORDER BY ");
	for (i = 0; i < q->n_sort; i++) {
		if (i)
			alyx__buf_adds(&p->sql, ", ");
		col_sql(&p->sql, &c->fields[q->sort[i].field]);
		alyx__buf_adds(&p->sql, q->sort[i].desc ? " DESC" : " ASC");
	}
	/* One row more than asked tells whether a next page exists. */
	p->lim.kind = ALYX_V_INT;
	p->lim.i = q->limit + 1;
	p->off.kind = ALYX_V_INT;
	p->off.i = q->offset;
	alyx__buf_adds(&p->sql, " LIMIT ");
	param(&p->sql, &p->bl, &p->lim);
	alyx__buf_adds(&p->sql, " OFFSET ");
	param(&p->sql, &p->bl, &p->off);
	if (p->sql.err == ALYX_E_NOMEM || p->bl.nomem)
		goto nomem;
	return ALYX_OK;
nomem:
	page_free(p);
	return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
}

int alyx__query_sql(const alyx__query *q, const alyx__sqlcond *extra,
		    alyx_buf *sql, alyx__err *err)
{
	page p;
	int rc = page_build(q, extra, &p, err);

	if (rc != ALYX_OK)
		return rc;
	alyx__buf_add(sql, p.sql.data, p.sql.len);
	page_free(&p);
	return sql->err ? alyx__err_set(err, sql->err, NULL,
					"query text too large") : ALYX_OK;
}

/* ---- expand ---- */

typedef struct xdoc {
	size_t off, len;	/* the document, without its '}', in json */
	alyx__value key;	/* its referenced field (lookup key) */
	alyx__value *refs;	/* per kid: the reference value */
} xdoc;

typedef struct xnode {
	char *name;			/* the reference field */
	int field;			/* ... in the parent's collection */
	const alyx__collection *coll;	/* the collection it points to */
	int tfield;			/* the referenced field in coll */
	struct xnode *kids;
	size_t n_kids;
	sel s;
	alyx_buf json;
	xdoc *docs;
	size_t n_docs, cap_docs;
} xnode;

static void xnode_clear(xnode *x)
{
	size_t i, j;

	for (i = 0; i < x->n_kids; i++)
		xnode_clear(&x->kids[i]);
	alyx__free(x->kids);
	for (i = 0; i < x->n_docs; i++) {
		alyx__value_clear(&x->docs[i].key);
		for (j = 0; j < x->n_kids && x->docs[i].refs; j++)
			alyx__value_clear(&x->docs[i].refs[j]);
		alyx__free(x->docs[i].refs);
	}
	alyx__free(x->docs);
	alyx__free(x->name);
	sel_free(&x->s);
	alyx__buf_free(&x->json);
}

/* Builds the tree of expand paths below `root` (the main collection). */
static int xtree(const alyx__query *q, xnode *root)
{
	size_t i;

	for (i = 0; i < q->n_expand; i++) {
		const char *p = q->expand[i], *dot;
		xnode *x = root;

		for (;;) {
			size_t n, k;
			int f;

			dot = strchr(p, '.');
			n = dot ? (size_t)(dot - p) : strlen(p);
			f = alyx__qfield(x->coll, p, n);
			if (f < 0)
				return ALYX_E_INTERNAL;
			for (k = 0; k < x->n_kids; k++)
				if (x->kids[k].field == f)
					break;
			if (k == x->n_kids) {
				const alyx__field *fd = &x->coll->fields[f];
				xnode *nk = alyx__realloc(x->kids,
					(x->n_kids + 1) * sizeof(*nk));

				if (!nk)
					return ALYX_E_NOMEM;
				x->kids = nk;
				memset(&nk[k], 0, sizeof(nk[k]));
				x->n_kids++;
				nk[k].field = f;
				nk[k].name = alyx__strdup(fd->name);
				nk[k].coll = alyx__qcoll(q->schema,
							 fd->ref_collection);
				if (!nk[k].name)
					return ALYX_E_NOMEM;
				if (!nk[k].coll)
					return ALYX_E_INTERNAL;
				nk[k].tfield = fd->ref_field ?
					alyx__qfield(nk[k].coll, fd->ref_field,
						     strlen(fd->ref_field)) :
					(int)nk[k].coll->pk;
				if (nk[k].tfield < 0)
					return ALYX_E_INTERNAL;
				alyx__buf_init(&nk[k].json, 0);
			}
			x = &x->kids[k];
			if (!dot)
				break;
			p = dot + 1;
		}
	}
	return ALYX_OK;
}

/* Records the current row of `st` as a document of x (its JSON without
 * the closing brace, its key and its kids' reference values). */
static int xdoc_add(xnode *x, sqlite3_stmt *st, bool with_key)
{
	xdoc *d;
	size_t j;
	int rc;

	if (x->n_docs == x->cap_docs) {
		size_t cap = x->cap_docs ? x->cap_docs * 2 : 32;

		d = alyx__realloc(x->docs, cap * sizeof(*d));
		if (!d)
			return ALYX_E_NOMEM;
		x->docs = d;
		x->cap_docs = cap;
	}
	d = &x->docs[x->n_docs];
	memset(d, 0, sizeof(*d));
	x->n_docs++;
	d->off = x->json.len;
	doc_write(&x->json, &x->s, st, false);
	d->len = x->json.len - d->off;
	if (x->json.err)
		return x->json.err;
	if (with_key) {
		rc = alyx__value_from_column(st, x->s.col[x->tfield], &d->key);
		if (rc != ALYX_OK)
			return rc;
	}
	if (!x->n_kids)
		return ALYX_OK;
	d->refs = alyx__calloc(x->n_kids, sizeof(*d->refs));
	if (!d->refs)
		return ALYX_E_NOMEM;
	for (j = 0; j < x->n_kids; j++) {
		rc = alyx__value_from_column(st, x->s.col[x->kids[j].field],
					     &d->refs[j]);
		if (rc != ALYX_OK)
			return rc;
	}
	return ALYX_OK;
}

static int vcmp_ptr(const void *a, const void *b)
{
	return alyx__value_cmp(*(const alyx__value *const *)a,
			       *(const alyx__value *const *)b);
}

static int xdoc_cmp(const void *a, const void *b)
{
	return alyx__value_cmp(&((const xdoc *)a)->key,
			       &((const xdoc *)b)->key);
}

static const xdoc *xlookup(const xnode *x, const alyx__value *v)
{
	xdoc key;

	if (v->kind == ALYX_V_NULL || !x->n_docs)
		return NULL;
	key.key = *v;
	return bsearch(&key, x->docs, x->n_docs, sizeof(*x->docs), xdoc_cmp);
}

/* Fetches the documents kid `k` of `parent` points to, then theirs. */
static int xfetch(sqlite3 *db, xnode *parent, size_t k,
		  const alyx__query_opts *o, alyx__err *err)
{
	xnode *x = &parent->kids[k];
	const alyx__value **ids = NULL;
	sqlite3_stmt *st = NULL;
	alyx__sqlcond cond = {0};
	alyx_buf sql;
	binds bl = {0};
	size_t i, n = 0, at, cnt;
	int rc = ALYX_OK, src;

	alyx__buf_init(&sql, 0);
	if (o && o->expand_cond) {
		rc = o->expand_cond(o->ud, x->coll, &cond, err);
		if (rc != ALYX_OK)
			goto out;
	}
	if (sel_init(&x->s, x->coll) != ALYX_OK)
		goto nomem;
	sel_all(&x->s, x->coll);
	sel_need(&x->s, x->tfield, false);
	for (i = 0; i < x->n_kids; i++)
		sel_need(&x->s, x->kids[i].field, false);
	if (sel_plan(&x->s, x->coll) != ALYX_OK)
		goto nomem;
	ids = alyx__calloc(parent->n_docs + 1, sizeof(*ids));
	if (!ids)
		goto nomem;
	for (i = 0; i < parent->n_docs; i++)
		if (parent->docs[i].refs[k].kind != ALYX_V_NULL)
			ids[n++] = &parent->docs[i].refs[k];
	qsort(ids, n, sizeof(*ids), vcmp_ptr);
	for (i = 0, cnt = 0; i < n; i++)
		if (!cnt || alyx__value_cmp(ids[cnt - 1], ids[i]))
			ids[cnt++] = ids[i];
	for (at = 0; at < cnt; at += IN_CHUNK) {
		size_t m = cnt - at < IN_CHUNK ? cnt - at : IN_CHUNK;

		alyx__buf_reset(&sql);
		bl.n = 0;
		sel_sql(&sql, x->coll, &x->s);
		alyx__buf_adds(&sql, " WHERE ");
		col_sql(&sql, &x->coll->fields[x->tfield]);
		alyx__buf_adds(&sql, " IN (");
		for (i = 0; i < m; i++) {
			if (i)
				alyx__buf_addc(&sql, ',');
			param(&sql, &bl, ids[at + i]);
		}
		alyx__buf_addc(&sql, ')');
		if (cond.sql) {
			alyx__buf_adds(&sql, " AND (");
			alyx__buf_adds(&sql, cond.sql);
			alyx__buf_addc(&sql, ')');
			for (i = 0; i < cond.n_binds; i++)
				bind_add(&bl, &cond.binds[i]);
		}
		rc = prepare(db, o ? o->cache : NULL, &sql, &bl, &st, err);
		if (rc != ALYX_OK)
			goto out;
		for (;;) {
			src = sqlite3_step(st);
			if (src != SQLITE_ROW)
				break;
			rc = xdoc_add(x, st, true);
			if (rc != ALYX_OK) {
				rc = alyx__err_set(err, rc, NULL, rc ==
						   ALYX_E_TOOBIG ? "result too "
						   "large" : "out of memory");
				goto out;
			}
		}
		if (src != SQLITE_DONE) {
			rc = sqlerr(db, src, err);
			goto out;
		}
		release(o ? o->cache : NULL, st);
		st = NULL;
	}
	if (x->n_docs)
		qsort(x->docs, x->n_docs, sizeof(*x->docs), xdoc_cmp);
	for (i = 0; i < x->n_kids && rc == ALYX_OK; i++)
		rc = xfetch(db, x, i, o, err);
	goto out;
nomem:
	rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
out:
	release(o ? o->cache : NULL, st);
	alyx__free(ids);
	alyx__free(bl.v);
	alyx__buf_free(&sql);
	return rc;
}

static void xrender(alyx_buf *b, const xnode *x, const xdoc *d)
{
	size_t j;
	const xdoc *t;

	alyx__buf_add(b, x->json.data + d->off, d->len);
	if (x->n_kids) {
		alyx__buf_adds(b, ",\"expand\":{");
		for (j = 0; j < x->n_kids; j++) {
			if (j)
				alyx__buf_addc(b, ',');
			alyx__json_strz(b, x->kids[j].name);
			alyx__buf_addc(b, ':');
			t = xlookup(&x->kids[j], &d->refs[j]);
			if (t)
				xrender(b, &x->kids[j], t);
			else
				alyx__buf_adds(b, "null");
		}
		alyx__buf_addc(b, '}');
	}
	alyx__buf_addc(b, '}');
}

/* ---- exec ---- */

static int count_rows(sqlite3 *db, alyx__qcache *c, const alyx__query *q,
		      const alyx__sqlcond *extra, int64_t *n, alyx__err *err)
{
	alyx_buf sql;
	binds bl = {0};
	sqlite3_stmt *st = NULL;
	int rc;

	alyx__buf_init(&sql, 0);
	alyx__buf_adds(&sql, "SELECT COUNT(*) FROM ");
	alyx__sql_ident(&sql, q->coll->name);
	alyx__buf_adds(&sql, " AS " ALYX_QUERY_ALIAS);
	where_sql(&sql, &bl, q, extra, false);
	rc = prepare(db, c, &sql, &bl, &st, err);
	if (rc == ALYX_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*n = sqlite3_column_int64(st, 0);
			rc = ALYX_OK;
		} else {
			rc = sqlerr(db, rc, err);
		}
	}
	release(c, st);
	alyx__free(bl.v);
	alyx__buf_free(&sql);
	return rc;
}

int alyx__query_exec(sqlite3 *db, const alyx__query *q,
		     const alyx__sqlcond *extra, alyx_buf *out,
		     alyx__err *err)
{
	alyx__query_opts o = { .extra = extra };

	return alyx__query_run(db, q, &o, out, err);
}

/* After the first document of a page: room for `limit` documents of its
 * size (and a quarter more), so the page grows by one reallocation
 * instead of doubling its way up from 64 bytes.  At most RESERVE_MAX
 * (past that the doubling is cheap enough, and one large first document
 * must not make a thread's reply buffer reserve hundreds of MiB), and
 * never more than the buffer's cap: reaching the cap stays the writer's
 * error. */
#define RESERVE_MAX ((size_t)4 << 20)

static void reserve_page(alyx_buf *out, size_t mark, int64_t limit)
{
	size_t one = out->len - mark, want;

	if (out->err || limit <= 1 || one > RESERVE_MAX / (size_t)limit)
		return;
	want = one * (size_t)limit + one * (size_t)limit / 4 + 64;
	if (want > RESERVE_MAX)
		want = RESERVE_MAX;
	if (want > out->max - out->len)
		want = out->max - out->len;
	alyx__buf_grow(out, want);
}

int alyx__query_run(sqlite3 *db, const alyx__query *q,
		    const alyx__query_opts *o, alyx_buf *out, alyx__err *err)
{
	const alyx__sqlcond *extra = o ? o->extra : NULL;
	alyx__qcache *cache = o ? o->cache : NULL;
	size_t mark = out->len, i;
	sqlite3_stmt *st = NULL;
	alyx_buf next;
	xnode root;
	page p;
	int64_t rows = 0, total = 0;
	bool has_next = false;
	int rc, src;

	memset(&root, 0, sizeof(root));
	alyx__buf_init(&next, 0);
	alyx__buf_init(&root.json, out->max);
	rc = page_build(q, extra, &p, err);
	if (rc != ALYX_OK)
		goto done;
	if (q->n_expand) {
		root.coll = q->coll;
		root.s = *p.s;	/* borrowed: cleared before xnode_clear */
		rc = xtree(q, &root);
		if (rc != ALYX_OK) {
			rc = alyx__err_set(err, rc, NULL, "expand failed");
			goto out;
		}
	}
	rc = prepare(db, cache, &p.sql, &p.bl, &st, err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(out, "{\"docs\":[");
	for (;;) {
		src = sqlite3_step(st);
		if (src != SQLITE_ROW)
			break;
		if (rows == q->limit) {
			has_next = true;
			break;
		}
		if (q->n_expand) {
			rc = xdoc_add(&root, st, false);
			if (rc != ALYX_OK) {
				rc = alyx__err_set(err, rc, NULL, rc ==
						   ALYX_E_TOOBIG ? "result too "
						   "large" : "out of memory");
				goto out;
			}
		} else {
			if (rows)
				alyx__buf_addc(out, ',');
			doc_write(out, p.s, st, true);
			if (!rows)
				reserve_page(out, mark, q->limit);
		}
		if (rows == q->limit - 1) {
			rc = alyx__cursor_encode(&next, q, st, p.sortcol, err);
			if (rc != ALYX_OK)
				goto out;
		}
		rows++;
	}
	if (!has_next && src != SQLITE_DONE) {
		rc = sqlerr(db, src, err);
		goto out;
	}
	release(cache, st);
	st = NULL;
	if (q->n_expand) {
		for (i = 0; i < root.n_kids && rc == ALYX_OK; i++)
			rc = xfetch(db, &root, i, o, err);
		if (rc != ALYX_OK)
			goto out;
		for (i = 0; i < root.n_docs; i++) {
			if (i)
				alyx__buf_addc(out, ',');
			xrender(out, &root, &root.docs[i]);
		}
	}
	alyx__buf_addc(out, ']');
	if (q->total) {
		rc = count_rows(db, cache, q, extra, &total, err);
		if (rc != ALYX_OK)
			goto out;
		alyx__buf_adds(out, ",\"total\":");
		alyx__json_i64(out, total);
	}
	if (has_next) {
		alyx__buf_adds(out, ",\"next\":\"");
		alyx__buf_add(out, next.data, next.len);
		alyx__buf_addc(out, '"');
	}
	alyx__buf_addc(out, '}');
	if (out->err)
		rc = alyx__err_set(err, out->err, NULL, out->err ==
				   ALYX_E_TOOBIG ? "query result too large" :
				   "out of memory");
out:
	release(cache, st);
	memset(&root.s, 0, sizeof(root.s));
	page_free(&p);
done:
	xnode_clear(&root);
	alyx__buf_free(&next);
	if (rc != ALYX_OK && out->len > mark && out->data) {
		out->len = mark;
		out->data[mark] = '\0';
	}
	return rc;
}
