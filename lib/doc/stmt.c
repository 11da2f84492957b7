/*
 * stmt.c - the single-document statements (insert, update, delete, read
 * by primary key), SQLite error mapping, and the prepared-statement cache
 * they share.
 *
 * SQL is built from the schema only: every identifier is checked with
 * alyx__ident_valid and double-quoted; every value is a bound parameter.
 * After a write the row is read back by rowid or key with a second
 * (cached) statement, so the document returned is the stored one:
 * defaults, rowid and onUpdate values as SQLite holds them.  (RETURNING
 * would do it in one statement, but SQLite buffers its rows in an
 * ephemeral table: measured 15-20% more CPU per insert than the re-read.)
 */
#include <stdio.h>
#include <string.h>

#include "doc.h"
#include "query/query.h"

/* ---- statement cache ----
 *
 * The cache lives on the connection itself: statements are prepared with
 * SQLITE_PREPARE_PERSISTENT and a marker comment in front of their SQL,
 * and are found again by walking the connection's statement list
 * (sqlite3_next_stmt) for an idle one with the same text.  There is
 * nothing to set up or tear down, nothing is shared between connections,
 * and alyx__conn_close() finalizes what is left.  A connection is used by
 * one thread at a time, so no locking is needed.
 */
#define CACHE_MARK "/*alyx*/"
#define CACHE_MARK_LEN (sizeof(CACHE_MARK) - 1)

int alyx__stmt_get(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
	sqlite3_stmt *st, *oldest = NULL;
	size_t cached = 0;
	char *text;
	int rc;

	*out = NULL;
	for (st = sqlite3_next_stmt(db, NULL); st;
	     st = sqlite3_next_stmt(db, st)) {
		const char *t = sqlite3_sql(st);

		if (!t || strncmp(t, CACHE_MARK, CACHE_MARK_LEN))
			continue;
		cached++;
		if (sqlite3_stmt_busy(st))
			continue;
		if (!strcmp(t + CACHE_MARK_LEN, sql)) {
			*out = st;
			return SQLITE_OK;
		}
		/* The list is newest first: the last idle one is oldest. */
		oldest = st;
	}
	if (cached >= ALYX_STMT_CACHE_MAX && oldest)
		sqlite3_finalize(oldest);
	text = alyx__asprintf(CACHE_MARK "%s", sql);
	if (!text)
		return SQLITE_NOMEM;
	rc = sqlite3_prepare_v3(db, text, -1, SQLITE_PREPARE_PERSISTENT, out,
				NULL);
	alyx__free(text);
	return rc;
}

void alyx__stmt_put(sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

void alyx__stmt_cache_clear(sqlite3 *db)
{
	sqlite3_stmt *st = sqlite3_next_stmt(db, NULL), *next;

	while (st) {
		const char *t = sqlite3_sql(st);

		next = sqlite3_next_stmt(db, st);
		if (t && !strncmp(t, CACHE_MARK, CACHE_MARK_LEN) &&
		    !sqlite3_stmt_busy(st))
			sqlite3_finalize(st);
		st = next;
	}
}

/* ---- SQLite errors ---- */

/* Appends the column names of "... failed: t.a, t.b" as a JSON array body
 * ("a","b") and returns the first name (in `first`, cap 64). */
static void failed_columns(alyx_buf *b, const char *msg, char first[64])
{
	const char *p = strstr(msg, "failed: ");
	int k = 0;

	first[0] = '\0';
	if (!p)
		return;
	p += 8;
	while (*p) {
		const char *e = strstr(p, ", "), *dot;
		size_t n = e ? (size_t)(e - p) : strlen(p);

		dot = memchr(p, '.', n);
		if (dot) {
			n -= (size_t)(dot + 1 - p);
			p = dot + 1;
		}
		if (k++)
			alyx__buf_addc(b, ',');
		alyx__json_str(b, p, n);
		if (!first[0])
			snprintf(first, 64, "%.*s", (int)(n < 63 ? n : 63), p);
		if (!e)
			break;
		p = e + 2;
	}
}

int alyx__sqlite_err(sqlite3 *db, int rc, alyx__err *err)
{
	int ext = db ? sqlite3_extended_errcode(db) : rc;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	char first[64];
	alyx_buf d;

	if ((ext & 0xff) != (rc & 0xff))
		ext = rc;
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		alyx__buf_init(&d, 4096);
		if (ext == SQLITE_CONSTRAINT_UNIQUE ||
		    ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
			alyx__buf_adds(&d, "{\"fields\":[");
			failed_columns(&d, msg, first);
			alyx__buf_adds(&d, "],\"field\":");
			alyx__json_strz(&d, first);
			alyx__buf_adds(&d, ",\"constraint\":\"unique\"}");
			return alyx__err_setd(err, ALYX_E_CONFLICT,
				alyx__buf_take(&d),
				"'%s' must be unique: a document with this "
				"value exists (%s)", first, msg);
		}
		/* ON DELETE RESTRICT fails as SQLITE_CONSTRAINT_TRIGGER
		 * with the same message. */
		if (ext == SQLITE_CONSTRAINT_FOREIGNKEY ||
		    strstr(msg, "FOREIGN KEY constraint failed")) {
			alyx__buf_free(&d);
			return alyx__err_set(err, ALYX_E_CONFLICT,
				"{\"constraint\":\"foreign_key\"}", "%s", msg);
		}
		if (ext == SQLITE_CONSTRAINT_NOTNULL) {
			alyx_buf tmp;

			alyx__buf_init(&tmp, 4096);
			failed_columns(&tmp, msg, first);
			alyx__buf_free(&tmp);
			alyx__buf_adds(&d, "{\"fields\":[{\"field\":");
			alyx__json_strz(&d, first);
			alyx__buf_adds(&d, ",\"code\":\"null\",\"message\":"
				       "\"cannot be null\"}]}");
			return alyx__err_setd(err, ALYX_E_VALIDATION,
				alyx__buf_take(&d), "%s", msg);
		}
		if (ext == SQLITE_CONSTRAINT_CHECK) {
			alyx__buf_free(&d);
			return alyx__err_set(err, ALYX_E_VALIDATION,
				"{\"constraint\":\"check\"}", "%s", msg);
		}
		alyx__buf_free(&d);
		return alyx__err_set(err, ALYX_E_CONFLICT, NULL, "%s", msg);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return alyx__err_set(err, ALYX_E_BUSY, NULL, "%s", msg);
	case SQLITE_NOMEM:
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "%s", msg);
	case SQLITE_TOOBIG:
		return alyx__err_set(err, ALYX_E_TOOBIG, NULL, "%s", msg);
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_FULL:
	case SQLITE_NOTADB:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PROTOCOL:
		return alyx__err_set(err, ALYX_E_IO, NULL, "database: %s", msg);
	default:
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL, "database: %s",
				     msg);
	}
}

/* ---- SQL text ---- */

static int check_idents(const alyx__collection *c, alyx__err *err)
{
	size_t i;

	/* A read plan is only made by the schema builder, which refused
	 * every invalid identifier already. */
	if (c->read_plan && c->pk < c->n_fields)
		return ALYX_OK;

	if (!alyx__ident_valid(c->name) || c->pk >= c->n_fields)
		return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				     "invalid collection in the schema");
	for (i = 0; i < c->n_fields; i++)
		if (!alyx__ident_valid(c->fields[i].name))
			return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				"invalid field name in collection '%s'",
				c->name);
	return ALYX_OK;
}

/* The SQL text of a get, insert or update: one allocation of room for
 * the usual statement (a dozen columns) instead of growing from 64 bytes
 * by doubling, three reallocations for each. */
static void sql_init(alyx_buf *b)
{
	alyx__buf_init(b, 1 << 20);
	alyx__buf_reserve(b, 511);
}

static void add_ident(alyx_buf *b, const char *name)
{
	alyx__buf_addc(b, '"');
	alyx__buf_adds(b, name);
	alyx__buf_addc(b, '"');
}

static void add_cols(alyx_buf *b, const alyx__collection *c,
		     bool with_internal)
{
	size_t i;
	bool first = true;

	for (i = 0; i < c->n_fields; i++) {
		if (c->fields[i].internal && !with_internal)
			continue;
		if (!first)
			alyx__buf_addc(b, ',');
		first = false;
		add_ident(b, c->fields[i].name);
	}
	/* Every field internal: still select something valid. */
	if (first)
		add_ident(b, c->fields[c->pk].name);
}

/* Writes the current row of `st` (columns as add_cols chose them) as a
 * JSON object. */
static void write_row(alyx_buf *b, const alyx__collection *c,
		      sqlite3_stmt *st, bool with_internal)
{
	size_t i;
	int col = 0;

	if (!with_internal && alyx__qplan_write(c, st, b))
		return;
	alyx__buf_addc(b, '{');
	for (i = 0; i < c->n_fields; i++) {
		const alyx__field *f = &c->fields[i];

		if (f->internal && !with_internal)
			continue;
		if (col)
			alyx__buf_addc(b, ',');
		alyx__json_key(b, f->name);
		alyx__value_write_column(b, f, st, col++);
	}
	alyx__buf_addc(b, '}');
}

static int sql_ready(alyx_buf *sql, alyx__err *err)
{
	if (sql->err)
		return alyx__err_set(err, sql->err, NULL,
				     "statement text: out of memory");
	return ALYX_OK;
}

bool alyx__doc_pk_value(const alyx__collection *c, const char *id,
			alyx__value *out, char why[128])
{
	if (!id) {
		snprintf(why, 128, "no id given");
		memset(out, 0, sizeof(*out));
		return false;
	}
	return alyx__value_from_text(&c->fields[c->pk], id, strlen(id), out,
				     why);
}

int alyx__doc_not_found(const alyx__collection *c, const char *id,
			alyx__err *err)
{
	alyx_buf d;

	alyx__buf_init(&d, 4096);
	alyx__buf_adds(&d, "{\"collection\":");
	alyx__json_strz(&d, c->name);
	alyx__buf_adds(&d, ",\"id\":");
	alyx__json_str(&d, id ? id : "", id ? strnlen(id, 200) : 0);
	alyx__buf_addc(&d, '}');
	return alyx__err_setd(err, ALYX_E_NOTFOUND, alyx__buf_take(&d),
			      "no document '%.200s' in '%s'", id ? id : "",
			      c->name);
}

/* Runs a prepared, bound statement that returns at most one row into
 * `out` (nothing for a write).  *found tells whether a row came back. */
static int step_one(sqlite3 *db, sqlite3_stmt *st,
		    const alyx__collection *c, bool with_internal,
		    alyx_buf *out, bool *found, alyx__err *err)
{
	int rc = sqlite3_step(st);

	*found = false;
	if (rc == SQLITE_ROW) {
		*found = true;
		write_row(out, c, st, with_internal);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		return alyx__sqlite_err(db, rc, err);
	if (out->err)
		return alyx__err_set(err, out->err, NULL,
				     "document too large for the output");
	return ALYX_OK;
}

/* One SELECT with a single bound value that answers "does it exist". */
static int exists(sqlite3 *db, const char *sql, const alyx__value *v,
		  bool *yes, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = alyx__stmt_get(db, sql, &st);

	*yes = false;
	if (rc != SQLITE_OK)
		return alyx__sqlite_err(db, rc, err);
	alyx__value_bind(st, 1, v);
	rc = sqlite3_step(st);
	*yes = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		rc = alyx__sqlite_err(db, rc, err);
	else
		rc = ALYX_OK;
	alyx__stmt_put(st);
	return rc;
}

/*
 * After a foreign-key failure of an insert or update: finds the reference
 * field whose value names no document and puts it in err's details
 * ({"field","constraint":"foreign_key","collection","references"}).
 */
static void name_missing_ref(sqlite3 *db, const alyx__collection *c,
			     const alyx__row *row, alyx__err *err)
{
	size_t i;
	alyx_buf sql, d;
	alyx__err e2 = {0};

	alyx__buf_init(&sql, 4096);
	alyx__buf_init(&d, 4096);
	for (i = 0; i < c->n_fields && i < row->n; i++) {
		const alyx__field *f = &c->fields[i];
		bool yes = true;

		if (!f->ref_collection || !row->set[i] ||
		    row->vals[i].kind == ALYX_V_NULL ||
		    !alyx__ident_valid(f->ref_collection) ||
		    !alyx__ident_valid(f->ref_field))
			continue;
		alyx__buf_reset(&sql);
		alyx__buf_adds(&sql, "SELECT 1 FROM ");
		add_ident(&sql, f->ref_collection);
		alyx__buf_adds(&sql, " WHERE ");
		add_ident(&sql, f->ref_field);
		alyx__buf_adds(&sql, "=? LIMIT 1");
		if (sql.err || exists(db, sql.data, &row->vals[i], &yes,
				      &e2) != ALYX_OK || yes)
			continue;
		alyx__buf_adds(&d, "{\"field\":");
		alyx__json_strz(&d, f->name);
		alyx__buf_adds(&d, ",\"constraint\":\"foreign_key\","
			       "\"collection\":");
		alyx__json_strz(&d, f->ref_collection);
		alyx__buf_addf(&d, ",\"references\":\"%s.%s\"}",
			       f->ref_collection, f->ref_field);
		alyx__err_setd(err, ALYX_E_CONFLICT, alyx__buf_take(&d),
			       "%s.%s: no document in '%s' has this %s",
			       c->name, f->name, f->ref_collection,
			       f->ref_field);
		break;
	}
	alyx__err_clear(&e2);
	alyx__buf_free(&sql);
	alyx__buf_free(&d);
}

/* Maps a failed write; a foreign-key failure names the field. */
static int write_err(sqlite3 *db, const alyx__collection *c,
		     const alyx__row *row, int code, alyx__err *err)
{
	if (code == ALYX_E_CONFLICT && err->details &&
	    strstr(err->details, "foreign_key") && row)
		name_missing_ref(db, c, row, err);
	return err->code;
}

/* Checks the collection and converts `id` to the primary key's value;
 * an id that cannot be a key names no document. */
static int key_of(const alyx__collection *c, const char *id,
		  alyx__value *key, alyx__err *err)
{
	char why[128];
	int rc = check_idents(c, err);

	if (rc != ALYX_OK)
		return rc;
	if (!alyx__doc_pk_value(c, id, key, why))
		return strcmp(why, ALYX_DOC_WHY_NOMEM)
			       ? alyx__doc_not_found(c, id, err)
			       : alyx__err_set(err, ALYX_E_NOMEM, NULL,
					       "out of memory");
	return ALYX_OK;
}

static void add_where_pk(alyx_buf *sql, const alyx__collection *c)
{
	alyx__buf_adds(sql, " WHERE ");
	add_ident(sql, c->fields[c->pk].name);
	alyx__buf_adds(sql, "=?");
}

/* The (cached) statement for the SQL text in `sql`. */
static int get_stmt(sqlite3 *db, alyx_buf *sql, sqlite3_stmt **st,
		    alyx__err *err)
{
	int rc = sql_ready(sql, err);

	if (rc != ALYX_OK)
		return rc;
	rc = alyx__stmt_get(db, sql->data, st);
	if (rc != SQLITE_OK)
		return alyx__sqlite_err(db, rc, err);
	return ALYX_OK;
}

/* Binds without copying: the value outlives the statement's use, which
 * alyx__stmt_put() ends by clearing the bindings. */
static void bind_static(sqlite3_stmt *st, int idx, const alyx__value *v)
{
	if (v->kind == ALYX_V_TEXT)
		sqlite3_bind_text64(st, idx, v->s ? v->s : "", v->n,
				    SQLITE_STATIC, SQLITE_UTF8);
	else if (v->kind == ALYX_V_BLOB && v->n)
		sqlite3_bind_blob64(st, idx, v->s, v->n, SQLITE_STATIC);
	else
		alyx__value_bind(st, idx, v);
}

/* Binds the values the row sets, skipping the key when `skip_pk`;
 * returns the last parameter index used. */
static int bind_row(sqlite3_stmt *st, const alyx__collection *c,
		    const alyx__row *row, bool skip_pk)
{
	size_t i;
	int p = 0;

	for (i = 0; i < row->n && i < c->n_fields; i++)
		if (row->set[i] && !(skip_pk && i == c->pk))
			bind_static(st, ++p, &row->vals[i]);
	return p;
}

/* Writes the document whose primary key (or rowid, with `by_rowid`)
 * equals `key`, and that meets `cond` (NULL: none), into `out`. */
static int select_by(sqlite3 *db, const alyx__collection *c,
		     const alyx__value *key, bool by_rowid, bool with_internal,
		     const alyx__sqlcond *cond, alyx_buf *out, bool *found,
		     alyx__err *err)
{
	alyx_buf sql;
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc;

	*found = false;
	sql_init(&sql);
	/* The read plan's SELECT clause has the same columns as add_cols
	 * without the internal ones (the table as _m). */
	if (with_internal || !alyx__qplan_select(c, &sql)) {
		alyx__buf_adds(&sql, "SELECT ");
		add_cols(&sql, c, with_internal);
		alyx__buf_adds(&sql, " FROM ");
		add_ident(&sql, c->name);
	}
	if (by_rowid)
		alyx__buf_adds(&sql, " WHERE rowid=?");
	else
		add_where_pk(&sql, c);
	if (cond && cond->sql) {
		alyx__buf_adds(&sql, " AND (");
		alyx__buf_adds(&sql, cond->sql);
		alyx__buf_addc(&sql, ')');
	}
	rc = get_stmt(db, &sql, &st, err);
	if (rc == ALYX_OK) {
		bind_static(st, 1, key);
		for (i = 0; cond && i < cond->n_binds; i++)
			bind_static(st, (int)i + 2, &cond->binds[i]);
		rc = step_one(db, st, c, with_internal, out, found, err);
		alyx__stmt_put(st);
	}
	alyx__buf_free(&sql);
	return rc;
}

/* The row just written is gone: another connection deleted it between
 * the write and the re-read (only possible outside a transaction). */
static int vanished(const alyx__collection *c, alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_CONFLICT, NULL,
			     "%s: the document was deleted by another "
			     "connection right after it was written",
			     c->name);
}

int alyx__doc_insert(sqlite3 *db, const alyx__collection *c,
		     const alyx__row *row, alyx_buf *out, alyx__err *err)
{
	alyx_buf sql;
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc, p = 0;
	bool found;

	sql_init(&sql);
	rc = check_idents(c, err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(&sql, "INSERT INTO ");
	add_ident(&sql, c->name);
	for (i = 0; i < row->n && i < c->n_fields; i++) {
		if (!row->set[i])
			continue;
		alyx__buf_adds(&sql, p++ ? "," : " (");
		add_ident(&sql, c->fields[i].name);
	}
	if (p) {
		alyx__buf_adds(&sql, ") VALUES (");
		for (i = 0; i < (size_t)p; i++)
			alyx__buf_adds(&sql, i ? ",?" : "?");
		alyx__buf_addc(&sql, ')');
	} else {
		alyx__buf_adds(&sql, " DEFAULT VALUES");
	}
	/* The stored row comes back from the insert itself (the values as
	 * written, column affinity applied), not from a second statement. */
	alyx__buf_adds(&sql, " RETURNING ");
	add_cols(&sql, c, false);
	rc = get_stmt(db, &sql, &st, err);
	if (rc != ALYX_OK)
		goto out;
	bind_row(st, c, row, false);
	rc = step_one(db, st, c, false, out, &found, err);
	alyx__stmt_put(st);
	if (rc != ALYX_OK)
		rc = write_err(db, c, row, rc, err);
	else if (!found)
		rc = vanished(c, err);
out:
	alyx__buf_free(&sql);
	return rc;
}

int alyx__doc_update(sqlite3 *db, const alyx__collection *c,
		     const char *id, const alyx__row *row, alyx_buf *out,
		     alyx__err *err)
{
	alyx_buf sql;
	alyx__value key = {0};
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc, p = 0;
	bool found;

	sql_init(&sql);
	rc = key_of(c, id, &key, err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(&sql, "UPDATE ");
	add_ident(&sql, c->name);
	for (i = 0; i < row->n && i < c->n_fields; i++) {
		if (!row->set[i] || i == c->pk)
			continue;
		alyx__buf_adds(&sql, p++ ? "," : " SET ");
		add_ident(&sql, c->fields[i].name);
		alyx__buf_adds(&sql, "=?");
	}
	if (!p) {
		/* Nothing to change: the document as it is. */
		rc = alyx__doc_read(db, c, id, false, out, err);
		goto out;
	}
	add_where_pk(&sql, c);
	rc = get_stmt(db, &sql, &st, err);
	if (rc != ALYX_OK)
		goto out;
	p = bind_row(st, c, row, true);
	bind_static(st, p + 1, &key);
	rc = step_one(db, st, c, false, out, &found, err);
	alyx__stmt_put(st);
	if (rc != ALYX_OK) {
		rc = write_err(db, c, row, rc, err);
		goto out;
	}
	if (!sqlite3_changes(db)) {
		rc = alyx__doc_not_found(c, id, err);
		goto out;
	}
	rc = select_by(db, c, &key, false, false, NULL, out, &found, err);
	if (rc == ALYX_OK && !found)
		rc = vanished(c, err);
out:
	alyx__value_clear(&key);
	alyx__buf_free(&sql);
	return rc;
}

/*
 * After a foreign-key failure of a delete: finds a table whose restricting
 * reference (ON DELETE RESTRICT / NO ACTION) still points at the row, from
 * SQLite's own catalogue, and names it in err.
 */
static void name_restricting_ref(sqlite3 *db, const alyx__collection *c,
				 const alyx__value *key, alyx__err *err)
{
	static const char q[] =
		"SELECT m.name, p.\"from\", p.\"to\" FROM sqlite_schema AS m "
		"JOIN pragma_foreign_key_list(m.name) AS p "
		"WHERE m.type = 'table' AND p.\"table\" = ?1 "
		"AND p.on_delete IN ('RESTRICT', 'NO ACTION')";
	sqlite3_stmt *st = NULL;
	alyx_buf sql, d;
	alyx__err e2 = {0};

	if (alyx__stmt_get(db, q, &st) != SQLITE_OK)
		return;
	alyx__buf_init(&sql, 4096);
	alyx__buf_init(&d, 4096);
	sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *tbl = (const char *)sqlite3_column_text(st, 0);
		const char *from = (const char *)sqlite3_column_text(st, 1);
		const char *to = (const char *)sqlite3_column_text(st, 2);
		bool yes = false;

		if (!to)
			to = c->fields[c->pk].name;
		if (!tbl || !from || !alyx__ident_valid(tbl) ||
		    !alyx__ident_valid(from) || !alyx__ident_valid(to))
			continue;
		alyx__buf_reset(&sql);
		alyx__buf_adds(&sql, "SELECT 1 FROM ");
		add_ident(&sql, tbl);
		alyx__buf_adds(&sql, " WHERE ");
		add_ident(&sql, from);
		alyx__buf_adds(&sql, " IN (SELECT ");
		add_ident(&sql, to);
		alyx__buf_adds(&sql, " FROM ");
		add_ident(&sql, c->name);
		alyx__buf_adds(&sql, " WHERE ");
		add_ident(&sql, c->fields[c->pk].name);
		alyx__buf_adds(&sql, "=?) LIMIT 1");
		if (sql.err || exists(db, sql.data, key, &yes, &e2) != ALYX_OK
		    || !yes)
			continue;
		alyx__buf_adds(&d, "{\"constraint\":\"foreign_key\","
			       "\"collection\":");
		alyx__json_strz(&d, tbl);
		alyx__buf_adds(&d, ",\"field\":");
		alyx__json_strz(&d, from);
		alyx__buf_addc(&d, '}');
		alyx__err_setd(err, ALYX_E_CONFLICT, alyx__buf_take(&d),
			       "%s: the document is still referenced by "
			       "%s.%s (onDelete: restrict)", c->name, tbl,
			       from);
		break;
	}
	alyx__stmt_put(st);
	alyx__err_clear(&e2);
	alyx__buf_free(&sql);
	alyx__buf_free(&d);
}

int alyx__doc_delete(sqlite3 *db, const alyx__collection *c, const char *id,
		     alyx__err *err)
{
	alyx_buf sql;
	alyx__value key = {0};
	sqlite3_stmt *st = NULL;
	int rc;

	alyx__buf_init(&sql, 4096);
	rc = key_of(c, id, &key, err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(&sql, "DELETE FROM ");
	add_ident(&sql, c->name);
	add_where_pk(&sql, c);
	rc = get_stmt(db, &sql, &st, err);
	if (rc != ALYX_OK)
		goto out;
	alyx__value_bind(st, 1, &key);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		rc = alyx__sqlite_err(db, rc, err);
		alyx__stmt_put(st);
		if (rc == ALYX_E_CONFLICT && err->details &&
		    strstr(err->details, "foreign_key"))
			name_restricting_ref(db, c, &key, err);
		goto out;
	}
	alyx__stmt_put(st);
	rc = sqlite3_changes(db) ? ALYX_OK : alyx__doc_not_found(c, id, err);
out:
	alyx__value_clear(&key);
	alyx__buf_free(&sql);
	return rc;
}

int alyx__doc_read_key(sqlite3 *db, const alyx__collection *c,
		       const alyx__value *key, const alyx__sqlcond *cond,
		       alyx_buf *out, bool *found, alyx__err *err)
{
	return select_by(db, c, key, false, false, cond, out, found, err);
}

int alyx__doc_read(sqlite3 *db, const alyx__collection *c, const char *id,
		   bool with_internal, alyx_buf *out, alyx__err *err)
{
	alyx__value key = {0};
	int rc;
	bool found = false;

	rc = key_of(c, id, &key, err);
	if (rc == ALYX_OK)
		rc = select_by(db, c, &key, false, with_internal, NULL, out,
			       &found, err);
	if (rc == ALYX_OK && !found)
		rc = alyx__doc_not_found(c, id, err);
	alyx__value_clear(&key);
	return rc;
}
