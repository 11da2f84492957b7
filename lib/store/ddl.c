/*
 * ddl.c - internal tables, the applied schema and schema application:
 * CREATE TABLE, ADD COLUMN, SQLite's 12-step table rebuild
 * (https://www.sqlite.org/lang_altertable.html#otheralter), index sync and
 * change-feed triggers, all inside one savepoint.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"

static const char internal_tables_sql[] =
	"CREATE TABLE IF NOT EXISTS _alyx_migrations ("
	" id INTEGER PRIMARY KEY,"
	" version TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" applied_at TEXT NOT NULL,"
	" checksum TEXT NOT NULL,"
	" file TEXT,"
	" down_sql TEXT,"		/* the sql operations' `down`, for humans */
	" schema_before TEXT,"		/* applied schema JSON before */
	" undo TEXT);"			/* JSON steps rollback runs */
	"CREATE UNIQUE INDEX IF NOT EXISTS _alyx_migrations_version"
	" ON _alyx_migrations(version);"
	"CREATE TABLE IF NOT EXISTS _alyx_changes ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" collection TEXT NOT NULL,"
	" operation TEXT NOT NULL,"
	" doc_id TEXT NOT NULL,"
	" changed_fields TEXT,"
	" timestamp TEXT NOT NULL"
	"  DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
	" processed INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS _alyx_changes_unprocessed"
	" ON _alyx_changes(processed, timestamp);"
	"CREATE TABLE IF NOT EXISTS _alyx_schema ("
	" id INTEGER PRIMARY KEY,"
	" applied_at TEXT,"
	" schema_json TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS _alyx_users ("
	" id TEXT PRIMARY KEY,"
	" email TEXT UNIQUE NOT NULL,"
	" password_hash TEXT,"
	" created_at TEXT NOT NULL"
	"  DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
	" updated_at TEXT NOT NULL"
	"  DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
	" verified INTEGER NOT NULL DEFAULT 0,"
	" metadata TEXT);"
	"CREATE TABLE IF NOT EXISTS _alyx_sessions ("
	" id TEXT PRIMARY KEY,"
	" user_id TEXT NOT NULL REFERENCES _alyx_users(id) ON DELETE CASCADE,"
	" refresh_token_hash TEXT NOT NULL,"
	" expires_at TEXT NOT NULL,"
	" created_at TEXT NOT NULL"
	"  DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
	" user_agent TEXT,"
	" ip_address TEXT);"
	"CREATE INDEX IF NOT EXISTS _alyx_sessions_user"
	" ON _alyx_sessions(user_id);"
	"CREATE TABLE IF NOT EXISTS _alyx_oauth_accounts ("
	" id TEXT PRIMARY KEY,"
	" user_id TEXT NOT NULL REFERENCES _alyx_users(id) ON DELETE CASCADE,"
	" provider TEXT NOT NULL,"
	" provider_user_id TEXT NOT NULL,"
	" created_at TEXT NOT NULL"
	"  DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
	" UNIQUE(provider, provider_user_id));"
	"CREATE INDEX IF NOT EXISTS _alyx_oauth_accounts_user"
	" ON _alyx_oauth_accounts(user_id);";

/* SQL expressions that fill a new NOT NULL column of a rebuilt table whose
 * default is `now` or `auto` (the document layer fills them on writes). */
#define SQL_NOW "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
#define SQL_UUID "_alyx_uuid7()"

/* _alyx_uuid7(): the automatic id of documents (a version-7 UUID, in
 * the order rows are copied), defined on the connection only while a
 * rebuild's copy runs. */
static void sql_uuid7(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	char id[37];

	(void)argc;
	(void)argv;
	alyx__uuid_v7_pooled(id);
	sqlite3_result_text(cx, id, 36, SQLITE_TRANSIENT);
}

static int uuid7_fn(sqlite3 *db, bool on)
{
	return sqlite3_create_function_v2(db, "_alyx_uuid7", 0, SQLITE_UTF8,
					  NULL, on ? sql_uuid7 : NULL, NULL,
					  NULL, NULL);
}

int alyx__ddl_exec(sqlite3 *db, const char *sql, const char *what,
		   alyx__err *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return ALYX_OK;
	alyx__conn_err(db, rc, what, err);
	if (err->code == ALYX_E_CONFLICT || err->code == ALYX_E_INTERNAL)
		err->code = ALYX_E_MIGRATION;
	return err->code;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		*out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, sql, err);
	return ALYX_OK;
}

int alyx__store_init(sqlite3 *db, alyx__err *err)
{
	int rc = alyx__sp_begin(db, err);

	if (rc != ALYX_OK)
		return rc;
	rc = alyx__exec(db, internal_tables_sql, err);
	if (rc != ALYX_OK) {
		alyx__sp_rollback(db);
		return rc;
	}
	return alyx__sp_release(db, err);
}

/* ---- the applied schema ---- */

static bool table_exists(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE "
			       "type='table' AND name=?", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

int alyx__store_load_schema_json(sqlite3 *db, char **out, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	if (!table_exists(db, "_alyx_schema"))
		return ALYX_OK;
	rc = sqlite3_prepare_v2(db, "SELECT schema_json FROM _alyx_schema "
				"ORDER BY id DESC LIMIT 1", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = alyx__strdup(
				(const char *)sqlite3_column_text(st, 0));
			if (!*out) {
				sqlite3_finalize(st);
				return alyx__err_set(err, ALYX_E_NOMEM, NULL,
						     "out of memory");
			}
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, "loading the applied schema",
				      err);
	return ALYX_OK;
}

int alyx__store_load_schema(sqlite3 *db, alyx__schema **out, alyx__err *err)
{
	char *json = NULL;
	int rc;

	*out = NULL;
	rc = alyx__store_load_schema_json(db, &json, err);
	if (rc == ALYX_OK && json) {
		rc = alyx__schema_from_json(json, out, err);
		if (rc != ALYX_OK) {
			char m[512];

			snprintf(m, sizeof(m), "%s", err->msg);
			rc = alyx__err_set(err, ALYX_E_INTERNAL, NULL,
					   "the applied schema stored in "
					   "_alyx_schema is unreadable: %s", m);
		}
	}
	alyx__free(json);
	return rc;
}

/* The stored JSON is the only record of the applied schema: make sure it
 * reads back as the same schema before storing it (a serializer that
 * swallowed an allocation failure would otherwise store a wrong one). */
static int check_round_trip(const char *json, alyx__err *err)
{
	alyx__schema *back = NULL;
	char *again = NULL;
	int rc = alyx__schema_from_json(json, &back, err);

	if (rc == ALYX_OK) {
		again = alyx__schema_to_json(back);
		if (!again || strcmp(again, json) != 0)
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "the schema JSON did not round-trip "
					   "(out of memory?)");
	} else if (rc != ALYX_E_NOMEM) {
		rc = alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				   "the schema JSON to store does not read "
				   "back");
	}
	alyx__free(again);
	alyx__schema_free(back);
	return rc;
}

int alyx__store_save_schema(sqlite3 *db, const alyx__schema *s,
			    alyx__err *err)
{
	char *json = alyx__schema_to_json(s), *prev = NULL;
	sqlite3_stmt *st = NULL;
	char now[25];
	int rc;

	if (!json)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	rc = check_round_trip(json, err);
	if (rc == ALYX_OK)
		rc = alyx__store_load_schema_json(db, &prev, err);
	if (rc != ALYX_OK || (prev && strcmp(prev, json) == 0))
		goto out;
	alyx__iso8601_ms(alyx__now_ms(), now);
	rc = sqlite3_prepare_v2(db, "INSERT INTO _alyx_schema(applied_at, "
				"schema_json) VALUES (?, ?)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK)
		rc = alyx__conn_err(db, rc, "storing the applied schema", err);
out:
	sqlite3_finalize(st);
	alyx__free(prev);
	alyx__free(json);
	return rc;
}

/* ---- transactions around schema work ---- */

int alyx__ddl_begin(sqlite3 *db, alyx__ddl_tx *tx, bool fk_off,
		    alyx__err *err)
{
	int fk = 0, rc;

	memset(tx, 0, sizeof(*tx));
	/* PRAGMA foreign_keys is a no-op inside a transaction, so it can only
	 * be switched off here, before the savepoint starts one. */
	if (fk_off && sqlite3_get_autocommit(db)) {
		rc = pragma_int(db, "PRAGMA foreign_keys", &fk, err);
		if (rc != ALYX_OK)
			return rc;
		if (fk) {
			rc = alyx__exec(db, "PRAGMA foreign_keys=OFF", err);
			if (rc != ALYX_OK)
				return rc;
			tx->fk_restore = true;
		}
	}
	/* Our own transaction takes the write lock at once (BEGIN
	 * IMMEDIATE), so a concurrent writer makes us wait (busy_timeout)
	 * instead of failing half-way when the read turns into a write. */
	if (sqlite3_get_autocommit(db)) {
		rc = alyx__tx_begin(db, true, err);
		if (rc != ALYX_OK) {
			alyx__ddl_rollback(db, tx);
			return rc;
		}
		tx->began = true;
	}
	rc = alyx__sp_begin(db, err);
	if (rc != ALYX_OK) {
		alyx__ddl_rollback(db, tx);
		return rc;
	}
	tx->open = true;
	return ALYX_OK;
}

void alyx__ddl_rollback(sqlite3 *db, alyx__ddl_tx *tx)
{
	if (tx->open)
		alyx__sp_rollback(db);
	tx->open = false;
	if (tx->began)
		alyx__tx_rollback(db);
	tx->began = false;
	if (tx->fk_restore && sqlite3_get_autocommit(db))
		sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
	tx->fk_restore = false;
}

/* Up to 20 violations as details {"violations":[{"table","rowid",
 * "parent"}],"count":N}. */
static int fk_check(sqlite3 *db, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	alyx_buf b;
	int rc, n = 0;

	rc = sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, "foreign_key_check", err);
	alyx__buf_init(&b, 1 << 16);
	alyx__buf_adds(&b, "{\"violations\":[");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n < 20) {
			alyx__buf_adds(&b, n ? ",{\"table\":" : "{\"table\":");
			alyx__json_strz(&b, (const char *)
					sqlite3_column_text(st, 0));
			alyx__buf_adds(&b, ",\"rowid\":");
			alyx__json_i64(&b, sqlite3_column_int64(st, 1));
			alyx__buf_adds(&b, ",\"parent\":");
			alyx__json_strz(&b, (const char *)
					sqlite3_column_text(st, 2));
			alyx__buf_addc(&b, '}');
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		alyx__buf_free(&b);
		return alyx__conn_err(db, rc, "foreign_key_check", err);
	}
	if (n == 0) {
		alyx__buf_free(&b);
		return ALYX_OK;
	}
	alyx__buf_addf(&b, "],\"count\":%d}", n);
	return alyx__err_setd(err, ALYX_E_MIGRATION, alyx__buf_take(&b),
			      "the change leaves %d row(s) whose references "
			      "point nowhere (foreign_key_check); nothing "
			      "was changed", n);
}

/* Table rebuilds leave views alone (legacy_alter_table): make sure every
 * view still compiles, or refuse the change. */
static int views_check(sqlite3 *db, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE "
				    "type='view' ORDER BY name", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, "reading sqlite_master", err);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		char *q = alyx__quote_ident(name);
		char *sql = q ? alyx__asprintf("SELECT * FROM %s LIMIT 0", q) :
				NULL;
		sqlite3_stmt *v = NULL;
		int vrc;

		alyx__free(q);
		if (!sql) {
			sqlite3_finalize(st);
			return alyx__err_set(err, ALYX_E_NOMEM, NULL,
					     "out of memory");
		}
		vrc = sqlite3_prepare_v2(db, sql, -1, &v, NULL);
		sqlite3_finalize(v);
		alyx__free(sql);
		if (vrc != SQLITE_OK) {
			alyx_buf d;

			alyx__buf_init(&d, 0);
			alyx__buf_adds(&d, "{\"view\":");
			alyx__json_strz(&d, name);
			alyx__buf_addc(&d, '}');
			rc = alyx__err_setd(err, ALYX_E_MIGRATION,
					    alyx__buf_take(&d),
					    "view '%s' no longer works after "
					    "this change (%s); drop or change "
					    "it first; nothing was changed",
					    name, sqlite3_errmsg(db));
			sqlite3_finalize(st);
			return rc;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return alyx__conn_err(db, rc, "reading sqlite_master", err);
	return ALYX_OK;
}

int alyx__ddl_commit(sqlite3 *db, alyx__ddl_tx *tx, alyx__err *err)
{
	int rc = views_check(db, err);

	if (rc == ALYX_OK)
		rc = fk_check(db, err);

	if (rc == ALYX_OK)
		rc = alyx__sp_release(db, err);
	if (rc != ALYX_OK) {
		alyx__ddl_rollback(db, tx);
		return rc;
	}
	tx->open = false;
	if (tx->began) {
		rc = alyx__tx_commit(db, err);	/* rolls back on failure */
		tx->began = false;
		if (rc != ALYX_OK) {
			alyx__ddl_rollback(db, tx);
			return rc;
		}
	}
	if (tx->fk_restore && sqlite3_get_autocommit(db))
		rc = alyx__exec(db, "PRAGMA foreign_keys=ON", err);
	tx->fk_restore = false;
	return rc;
}

/* ---- reading generated SQL ---- */

/* A list of owned strings. */
typedef struct strv {
	char **v;
	size_t n;
} strv;

static void strv_free(strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		alyx__free(s->v[i]);
	alyx__free(s->v);
	s->v = NULL;
	s->n = 0;
}

static bool strv_push(strv *s, const char *p, size_t n)
{
	char **v = alyx__realloc(s->v, (s->n + 1) * sizeof(*v));

	if (!v)
		return false;
	s->v = v;
	v[s->n] = alyx__strndup(p, n);
	if (!v[s->n])
		return false;
	s->n++;
	return true;
}

static bool strv_has(const strv *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], x) == 0)
			return true;
	return false;
}

/* Skips a quoted token starting at s[i] ('...', "..." or `...`, doubled
 * quote = escape); returns the index after it. */
static size_t skip_quoted(const char *s, size_t i)
{
	char q = s[i++];

	while (s[i]) {
		if (s[i] == q && s[i + 1] == q)
			i += 2;
		else if (s[i++] == q)
			break;
	}
	return i;
}

static bool push_trimmed(strv *out, const char *p, size_t n)
{
	while (n && isspace((unsigned char)*p))
		p++, n--;
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	return n == 0 || strv_push(out, p, n);
}

/* Splits `sql` at `sep` characters outside quotes and parentheses. */
static bool split_sql(const char *sql, char sep, strv *out)
{
	size_t i = 0, from = 0;
	int depth = 0;

	while (sql[i]) {
		char c = sql[i];

		if (c == '\'' || c == '"' || c == '`') {
			i = skip_quoted(sql, i);
			continue;
		}
		if (c == '(')
			depth++;
		else if (c == ')')
			depth--;
		else if (c == sep && depth == 0) {
			if (!push_trimmed(out, sql + from, i - from))
				return false;
			from = i + 1;
		}
		i++;
	}
	return push_trimmed(out, sql + from, i - from);
}

/* The column definitions and table constraints of a CREATE TABLE
 * statement: the top-level comma-separated parts inside its outer
 * parentheses. */
static bool table_parts(const char *create, strv *out)
{
	size_t i = 0, open = 0, close = 0;
	int depth = 0;
	char *inner;
	bool ok;

	while (create[i]) {
		char c = create[i];

		if (c == '\'' || c == '"' || c == '`') {
			i = skip_quoted(create, i);
			continue;
		}
		if (c == '(' && depth++ == 0)
			open = i;
		else if (c == ')' && --depth == 0) {
			close = i;
			break;
		}
		i++;
	}
	if (!close)
		return false;
	inner = alyx__strndup(create + open + 1, close - open - 1);
	if (!inner)
		return false;
	ok = split_sql(inner, ',', out);
	alyx__free(inner);
	return ok;
}

/* The identifier at the start of `s` (quoted or bare) into out[256];
 * returns the length consumed, 0 if none. */
static size_t lead_ident(const char *s, char out[256])
{
	size_t i = 0, o = 0;

	if (*s == '"' || *s == '`' || *s == '[') {
		char q = *s == '[' ? ']' : *s;

		for (i = 1; s[i]; i++) {
			if (s[i] == q && s[i + 1] == q && q != ']')
				i++;
			else if (s[i] == q)
				break;
			if (o < 255)
				out[o++] = s[i];
		}
		out[o] = 0;
		return s[i] ? i + 1 : 0;
	}
	while (isalnum((unsigned char)s[i]) || s[i] == '_') {
		if (o < 255)
			out[o++] = s[i];
		i++;
	}
	out[o] = 0;
	return i;
}

/* Column part of `parts` whose leading identifier is `name`, or NULL. */
static const char *part_for(const strv *parts, const char *name)
{
	char id[256];

	for (size_t i = 0; i < parts->n; i++)
		if (parts->v[i][0] == '"' && lead_ident(parts->v[i], id) &&
		    strcmp(id, name) == 0)
			return parts->v[i];
	return NULL;
}

/* Uppercase copy of s with quoted parts blanked, for keyword tests. */
static bool has_keyword(const char *s, const char *kw)
{
	char buf[1024];
	size_t i = 0, o = 0;

	while (s[i] && o < sizeof(buf) - 1) {
		if (s[i] == '\'' || s[i] == '"' || s[i] == '`') {
			i = skip_quoted(s, i);
			buf[o++] = ' ';
			continue;
		}
		buf[o++] = (char)toupper((unsigned char)s[i++]);
	}
	buf[o] = 0;
	return strstr(buf, kw) != NULL;
}

/* Whitespace-normalised statement without "IF NOT EXISTS", the form
 * sqlite_master stores. */
static char *norm_stmt(const char *s)
{
	alyx_buf b;
	size_t i = 0;
	bool space = false;

	alyx__buf_init(&b, 0);
	while (s[i]) {
		if (s[i] == '\'' || s[i] == '"' || s[i] == '`') {
			size_t e = skip_quoted(s, i);

			if (space && b.len)
				alyx__buf_addc(&b, ' ');
			space = false;
			alyx__buf_add(&b, s + i, e - i);
			i = e;
			continue;
		}
		if (strncasecmp(s + i, "IF NOT EXISTS", 13) == 0 &&
		    (i == 0 || isspace((unsigned char)s[i - 1]))) {
			i += 13;
			continue;
		}
		if (isspace((unsigned char)s[i])) {
			space = true;
			i++;
			continue;
		}
		if (space && b.len)
			alyx__buf_addc(&b, ' ');
		space = false;
		alyx__buf_addc(&b, s[i++]);
	}
	while (b.len && b.data[b.len - 1] == ';')
		b.data[--b.len] = 0;
	return alyx__buf_take(&b);
}

/* Name of the index a CREATE [UNIQUE] INDEX [IF NOT EXISTS] statement
 * creates, into out[256]. */
static bool index_name(const char *stmt, char out[256])
{
	const char *p = stmt;
	static const char *const words[] = {"CREATE", "UNIQUE", "INDEX",
					     "IF", "NOT", "EXISTS"};
	char w[256];

	for (;;) {
		size_t n, k;

		while (isspace((unsigned char)*p))
			p++;
		n = lead_ident(p, w);
		if (!n)
			return false;
		if (*p == '"' || *p == '`' || *p == '[') {
			memcpy(out, w, strlen(w) + 1);
			return true;
		}
		for (k = 0; k < ALYX_ARRAY_LEN(words); k++)
			if (strcasecmp(w, words[k]) == 0)
				break;
		if (k == ALYX_ARRAY_LEN(words)) {
			memcpy(out, w, strlen(w) + 1);
			return true;
		}
		p += n;
	}
}

char *alyx__quote_ident(const char *s)
{
	alyx_buf b;

	alyx__buf_init(&b, 0);
	alyx__buf_addc(&b, '"');
	for (; *s; s++) {
		if (*s == '"')
			alyx__buf_addc(&b, '"');
		alyx__buf_addc(&b, *s);
	}
	alyx__buf_addc(&b, '"');
	return alyx__buf_take(&b);
}

/* ---- deciding how a collection changes ---- */

static const alyx__ddl_conv *find_conv(const alyx__ddl_conv *conv, size_t n,
				       const char *coll, const char *field)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(conv[i].collection, coll) == 0 &&
		    (!field || strcmp(conv[i].field, field) == 0))
			return &conv[i];
	return NULL;
}

/* Can ALTER TABLE ADD COLUMN add this field (SQLite's rules: no PRIMARY
 * KEY or UNIQUE, NOT NULL needs a constant default, no expression
 * default, no REFERENCES with a non-NULL default)? */
static bool addable(const alyx__field *f, const char *def)
{
	if (f->primary || f->unique)
		return false;
	if (has_keyword(def, "PRIMARY") || has_keyword(def, "UNIQUE") ||
	    has_keyword(def, "DEFAULT (") || has_keyword(def, "DEFAULT(") ||
	    has_keyword(def, "CURRENT_") || has_keyword(def, "CHECK"))
		return false;
	if (!f->nullable && !has_keyword(def, "DEFAULT"))
		return false;
	if (f->ref_collection && has_keyword(def, "DEFAULT"))
		return false;
	return true;
}

/*
 * Compares the generated CREATE TABLE of both versions: a changed or
 * removed column definition, a changed table constraint or a conversion
 * needs a rebuild; otherwise every new column must be addable.
 */
static bool needs_rebuild(const alyx__collection *oc,
			  const alyx__collection *c, const strv *op,
			  const strv *np, const alyx__plan *plan,
			  const alyx__ddl_conv *conv, size_t n_conv)
{
	char id[256];

	if (find_conv(conv, n_conv, c->name, NULL))
		return true;
	for (size_t i = 0; plan && i < plan->n_changes; i++)
		if (plan->changes[i].needs_rebuild &&
		    plan->changes[i].collection &&
		    strcmp(plan->changes[i].collection, c->name) == 0)
			return true;
	for (size_t i = 0; i < op->n; i++) {
		const char *p = op->v[i];

		if (p[0] == '"') {
			const char *q;

			lead_ident(p, id);
			q = part_for(np, id);
			if (!q || strcmp(p, q) != 0)
				return true;
		} else if (!strv_has(np, p)) {
			/* a table constraint changed or went away */
			return true;
		}
	}
	for (size_t i = 0; i < np->n; i++) {
		const char *p = np->v[i];
		const alyx__field *f;

		if (p[0] != '"') {
			if (!strv_has(op, p))
				return true;
			continue;
		}
		lead_ident(p, id);
		if (part_for(op, id))
			continue;
		f = alyx__coll_field(c, id);
		if (!f || !addable(f, p))
			return true;
		/* NOT NULL now/auto defaults are filled by a rebuild */
		if (!f->nullable && (f->default_kind == ALYX_DEF_NOW ||
				     f->default_kind == ALYX_DEF_AUTO))
			return true;
	}
	(void)oc;
	return false;
}

static int fk_enabled(sqlite3 *db, bool *on, alyx__err *err)
{
	int v = 0, rc = pragma_int(db, "PRAGMA foreign_keys", &v, err);

	*on = v != 0;
	return rc;
}

static int need_fk_off(sqlite3 *db, const char *what, const char *coll,
		       alyx__err *err)
{
	bool on;
	int rc = fk_enabled(db, &on, err);

	if (rc != ALYX_OK || !on)
		return rc;
	return alyx__err_set(err, ALYX_E_MISUSE, NULL,
			     "%s of collection '%s' needs foreign_keys off; "
			     "apply the schema outside a transaction", what,
			     coll);
}

/* Collects sqlite_master.sql of the triggers and indexes on `table` that
 * Alyx does not generate (`managed` names), to recreate after a rebuild. */
static int foreign_objects(sqlite3 *db, const char *table,
			   const strv *managed, strv *out, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(
		db, "SELECT name, sql FROM sqlite_master WHERE tbl_name=? AND "
		"type IN ('trigger','index') AND sql IS NOT NULL ORDER BY "
		"type='trigger', rowid", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, "reading sqlite_master", err);
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *sql = (const char *)sqlite3_column_text(st, 1);
		size_t k, tl = strlen(table);

		for (k = 0; k < managed->n; k++)
			if (strcmp(managed->v[k], name) == 0)
				break;
		if (k < managed->n)
			continue;
		/* our change-feed triggers are regenerated anyway */
		if (strncmp(name, table, tl) == 0 &&
		    strncmp(name + tl, "_alyx_", 6) == 0)
			continue;
		if (!strv_push(out, sql, strlen(sql))) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return alyx__conn_err(db, rc, "reading sqlite_master", err);
	return ALYX_OK;
}

/* Names of the indexes alyx__sql_create_indexes(c) creates, and the
 * statements themselves. */
static int gen_indexes(const alyx__collection *c, strv *names, strv *stmts,
		       alyx__err *err)
{
	char *sql = c ? alyx__sql_create_indexes(c) : NULL;
	char id[256];

	if (!c)
		return ALYX_OK;
	if (!sql || !split_sql(sql, ';', stmts)) {
		alyx__free(sql);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	}
	alyx__free(sql);
	for (size_t i = 0; i < stmts->n; i++) {
		if (!index_name(stmts->v[i], id) ||
		    !strv_push(names, id, strlen(id)))
			return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
					     "cannot read index statement: %s",
					     stmts->v[i]);
	}
	return ALYX_OK;
}

/* The 12-step procedure, steps 4-10 (1-3 and 11-12 are the savepoint,
 * foreign_keys off and foreign_key_check around it). */
static int rebuild(sqlite3 *db, const alyx__collection *oc,
		   const alyx__collection *c, const alyx__ddl_conv *conv,
		   size_t n_conv, alyx__err *err)
{
	char *tmp = NULL, *qtmp = NULL, *qold = NULL, *qnew = NULL;
	char *create = NULL, *what = NULL;
	strv keep = {0}, managed = {0}, stmts = {0};
	alyx_buf cols, sel, sql;
	int rc, legacy = 0;

	alyx__buf_init(&cols, 0);
	alyx__buf_init(&sel, 0);
	alyx__buf_init(&sql, 0);
	rc = need_fk_off(db, "a table rebuild", c->name, err);
	if (rc != ALYX_OK)
		goto out;
	rc = gen_indexes(oc, &managed, &stmts, err);
	if (rc != ALYX_OK)
		goto out;
	rc = foreign_objects(db, oc->name, &managed, &keep, err);
	if (rc != ALYX_OK)
		goto out;
	tmp = alyx__asprintf("_alyx_new_%s", c->name);
	what = alyx__asprintf("rebuilding table '%s'", c->name);
	qtmp = tmp ? alyx__quote_ident(tmp) : NULL;
	qold = alyx__quote_ident(oc->name);
	qnew = alyx__quote_ident(c->name);
	create = alyx__sql_create_table(c, tmp);
	if (!tmp || !what || !qtmp || !qold || !qnew || !create) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	rc = alyx__ddl_exec(db, create, what, err);
	if (rc != ALYX_OK)
		goto out;

	/* copy: INSERT INTO new (mapped columns) SELECT exprs FROM old */
	for (size_t i = 0; i < c->n_fields; i++) {
		const alyx__field *f = &c->fields[i];
		const alyx__field *of = alyx__coll_field(oc, f->name);
		const alyx__ddl_conv *cv = find_conv(conv, n_conv, c->name,
						     f->name);
		char *qf = alyx__quote_ident(f->name);

		if (!qf) {
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
		const char *sep = cols.len ? ", " : "";

		if (cv) {
			alyx__buf_addf(&cols, "%s%s", sep, qf);
			alyx__buf_addf(&sel, "%s(%s)", sep, cv->expr);
		} else if (of && of->type != f->type) {
			alyx__buf_addf(&cols, "%s%s", sep, qf);
			alyx__buf_addf(&sel, "%sCAST(%s AS %s)", sep, qf,
				       alyx__type_sql(f->type));
		} else if (of) {
			alyx__buf_addf(&cols, "%s%s", sep, qf);
			alyx__buf_addf(&sel, "%s%s", sep, qf);
		} else if (!f->nullable && f->default_kind == ALYX_DEF_NOW) {
			alyx__buf_addf(&cols, "%s%s", sep, qf);
			alyx__buf_addf(&sel, "%s%s", sep, SQL_NOW);
		} else if (!f->nullable && f->default_kind == ALYX_DEF_AUTO) {
			alyx__buf_addf(&cols, "%s%s", sep, qf);
			alyx__buf_addf(&sel, "%s%s", sep, SQL_UUID);
		}
		alyx__free(qf);
	}
	if (cols.len)
		alyx__buf_addf(&sql, "INSERT INTO %s (%s) SELECT %s FROM %s",
			       qtmp, cols.data, sel.data, qold);
	else
		alyx__buf_addf(&sql, "INSERT INTO %s DEFAULT VALUES", qtmp);
	if (sql.err) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (uuid7_fn(db, true) != SQLITE_OK) {
		rc = alyx__conn_err(db, sqlite3_errcode(db), what, err);
		goto out;
	}
	rc = alyx__ddl_exec(db, sql.data, what, err);
	uuid7_fn(db, false);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_reset(&sql);
	alyx__buf_addf(&sql, "DROP TABLE %s", qold);
	rc = alyx__ddl_exec(db, sql.data, what, err);
	if (rc != ALYX_OK)
		goto out;
	/* legacy_alter_table keeps RENAME from re-parsing views and
	 * triggers that name the (momentarily missing) table. */
	rc = pragma_int(db, "PRAGMA legacy_alter_table", &legacy, err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_reset(&sql);
	alyx__buf_addf(&sql, "PRAGMA legacy_alter_table=ON; "
		       "ALTER TABLE %s RENAME TO %s; "
		       "PRAGMA legacy_alter_table=%d", qtmp, qnew, legacy);
	rc = alyx__ddl_exec(db, sql.data, what, err);
	if (rc != ALYX_OK) {
		sqlite3_exec(db, legacy ? "PRAGMA legacy_alter_table=ON" :
			     "PRAGMA legacy_alter_table=OFF", NULL, NULL,
			     NULL);
		goto out;
	}
	for (size_t i = 0; i < keep.n; i++) {
		rc = alyx__ddl_exec(db, keep.v[i], what, err);
		if (rc != ALYX_OK)
			goto out;
	}
out:
	if (rc != ALYX_OK && rc != ALYX_E_NOMEM && err->details == NULL) {
		alyx_buf d;

		alyx__buf_init(&d, 0);
		alyx__buf_adds(&d, "{\"collection\":");
		alyx__json_strz(&d, c->name);
		alyx__buf_addc(&d, '}');
		err->details = alyx__buf_take(&d);
	}
	strv_free(&keep);
	strv_free(&managed);
	strv_free(&stmts);
	alyx__buf_free(&cols);
	alyx__buf_free(&sel);
	alyx__buf_free(&sql);
	alyx__free(create);
	alyx__free(what);
	alyx__free(tmp);
	alyx__free(qtmp);
	alyx__free(qold);
	alyx__free(qnew);
	return rc;
}

static int add_columns(sqlite3 *db, const alyx__collection *c,
		       const strv *op, const strv *np, alyx__err *err)
{
	char id[256];
	char *qt = alyx__quote_ident(c->name), *sql = NULL;
	int rc = qt ? ALYX_OK : alyx__err_set(err, ALYX_E_NOMEM, NULL,
					      "out of memory");

	for (size_t i = 0; rc == ALYX_OK && i < np->n; i++) {
		if (np->v[i][0] != '"')
			continue;
		lead_ident(np->v[i], id);
		if (part_for(op, id))
			continue;
		sql = alyx__asprintf("ALTER TABLE %s ADD COLUMN %s", qt,
				     np->v[i]);
		rc = sql ? alyx__ddl_exec(db, sql, "adding a field", err) :
			   alyx__err_set(err, ALYX_E_NOMEM, NULL,
					 "out of memory");
		alyx__free(sql);
	}
	alyx__free(qt);
	return rc;
}

/* DROP <kind> "<name>" */
static int drop_named(sqlite3 *db, const char *kind, const char *name,
		      const char *what, alyx__err *err)
{
	char *q = alyx__quote_ident(name);
	char *sql = q ? alyx__asprintf("DROP %s %s", kind, q) : NULL;
	int rc = sql ? alyx__ddl_exec(db, sql, what, err) :
		       alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");

	alyx__free(q);
	alyx__free(sql);
	return rc;
}

/* Creates, keeps or drops indexes so the table has exactly the indexes
 * `c` generates (plus the ones Alyx does not manage). */
static int sync_indexes(sqlite3 *db, const alyx__collection *oc,
			const alyx__collection *c, alyx__err *err)
{
	strv old_names = {0}, old_stmts = {0}, names = {0}, stmts = {0};
	sqlite3_stmt *st = NULL;
	int rc;

	rc = gen_indexes(oc, &old_names, &old_stmts, err);
	if (rc == ALYX_OK)
		rc = gen_indexes(c, &names, &stmts, err);
	if (rc != ALYX_OK)
		goto out;
	if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE "
			       "type='index' AND name=? AND tbl_name=?", -1,
			       &st, NULL) != SQLITE_OK) {
		rc = alyx__conn_err(db, sqlite3_errcode(db),
				    "reading sqlite_master", err);
		goto out;
	}
	/* drop the ones no longer generated */
	for (size_t i = 0; i < old_names.n; i++) {
		size_t k;

		for (k = 0; k < names.n; k++)
			if (strcmp(names.v[k], old_names.v[i]) == 0)
				break;
		if (k < names.n)
			continue;
		rc = drop_named(db, "INDEX IF EXISTS", old_names.v[i],
				"dropping an index", err);
		if (rc != ALYX_OK)
			goto out;
	}
	for (size_t i = 0; i < stmts.n; i++) {
		char *want = norm_stmt(stmts.v[i]), *have = NULL;
		bool same = false, exists = false;

		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, names.v[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			exists = true;
			have = norm_stmt((const char *)
					 sqlite3_column_text(st, 0));
			same = want && have && strcmp(want, have) == 0;
		}
		alyx__free(want);
		alyx__free(have);
		if (same)
			continue;
		if (exists) {
			rc = drop_named(db, "INDEX", names.v[i],
					"replacing an index", err);
			if (rc != ALYX_OK)
				goto out;
		}
		rc = alyx__ddl_exec(db, stmts.v[i], "creating an index", err);
		if (rc != ALYX_OK)
			goto out;
	}
out:
	sqlite3_finalize(st);
	strv_free(&old_names);
	strv_free(&old_stmts);
	strv_free(&names);
	strv_free(&stmts);
	return rc;
}

static int sync_collection(sqlite3 *db, const alyx__collection *oc,
			   const alyx__collection *c, const alyx__plan *plan,
			   const alyx__ddl_conv *conv, size_t n_conv,
			   alyx__err *err)
{
	char *ocreate = NULL, *ncreate = NULL, *trig = NULL;
	strv op = {0}, np = {0};
	int rc = ALYX_OK;

	ncreate = alyx__sql_create_table(c, NULL);
	if (!ncreate)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	if (!oc) {
		rc = alyx__ddl_exec(db, ncreate, "creating a table", err);
	} else {
		ocreate = alyx__sql_create_table(oc, NULL);
		if (!ocreate || !table_parts(ocreate, &op) ||
		    !table_parts(ncreate, &np)) {
			rc = alyx__err_set(err, ALYX_E_INTERNAL, NULL,
					   "cannot read the table definition "
					   "of '%s'", c->name);
			goto out;
		}
		if (needs_rebuild(oc, c, &op, &np, plan, conv, n_conv))
			rc = rebuild(db, oc, c, conv, n_conv, err);
		else
			rc = add_columns(db, c, &op, &np, err);
	}
	if (rc == ALYX_OK)
		rc = sync_indexes(db, oc, c, err);
	if (rc == ALYX_OK) {
		trig = alyx__sql_triggers(c);
		rc = trig ? alyx__ddl_exec(db, trig, "creating triggers", err) :
			    alyx__err_set(err, ALYX_E_NOMEM, NULL,
					  "out of memory");
	}
out:
	strv_free(&op);
	strv_free(&np);
	alyx__free(ocreate);
	alyx__free(ncreate);
	alyx__free(trig);
	return rc;
}

int alyx__ddl_sync(sqlite3 *db, const alyx__schema *old,
		   const alyx__schema *new_, const alyx__plan *plan,
		   const alyx__ddl_conv *conv, size_t n_conv, alyx__err *err)
{
	int rc = ALYX_OK;

	/* dropped collections first: a new one may reuse nothing of them,
	 * but their tables must be gone before foreign_key_check */
	for (size_t i = 0; old && i < old->n_colls; i++) {
		const alyx__collection *oc = &old->colls[i];

		if (new_ && alyx__schema_coll(new_, oc->name))
			continue;
		rc = need_fk_off(db, "dropping the table", oc->name, err);
		if (rc != ALYX_OK)
			return rc;
		rc = drop_named(db, "TABLE IF EXISTS", oc->name,
				"dropping a collection", err);
		if (rc != ALYX_OK)
			return rc;
	}
	for (size_t i = 0; new_ && i < new_->n_colls; i++) {
		const alyx__collection *c = &new_->colls[i];
		const alyx__collection *oc =
			old ? alyx__schema_coll(old, c->name) : NULL;

		rc = sync_collection(db, oc, c, plan, conv, n_conv, err);
		if (rc != ALYX_OK)
			return rc;
	}
	return ALYX_OK;
}

/* {"changes":[...the destructive ones...],"hint":...} */
static char *destructive_details(const alyx__plan *plan, int *count)
{
	alyx_buf b;
	int n = 0;

	alyx__buf_init(&b, 1 << 20);
	alyx__buf_adds(&b, "{\"changes\":[");
	for (size_t i = 0; i < plan->n_changes; i++) {
		const alyx__change *ch = &plan->changes[i];

		if (ch->safe)
			continue;
		alyx__buf_adds(&b, n++ ? ",{\"op\":" : "{\"op\":");
		alyx__json_strz(&b, alyx__change_op_name(ch->op));
		alyx__buf_adds(&b, ",\"collection\":");
		alyx__json_strz(&b, ch->collection);
		alyx__buf_adds(&b, ",\"field\":");
		alyx__json_strz(&b, ch->field);
		alyx__buf_adds(&b, ",\"description\":");
		alyx__json_strz(&b, ch->description);
		alyx__buf_addc(&b, '}');
	}
	alyx__buf_adds(&b, "],\"hint\":\"write a migration file "
		       "(alyx migrate create <name>) for these changes\"}");
	*count = n;
	return alyx__buf_take(&b);
}

int alyx__plan_refuse(const alyx__plan *plan, alyx__err *err)
{
	int n = 0;
	char *d = destructive_details(plan, &n);

	return alyx__err_setd(err, ALYX_E_MIGRATION, d,
			      "%d change(s) need a migration file; nothing "
			      "was changed", n);
}

int alyx__store_apply_schema(sqlite3 *db, const alyx__schema *old,
			     const alyx__schema *new_,
			     const alyx__plan *plan, unsigned flags,
			     alyx__err *err)
{
	alyx__plan *own = NULL;
	alyx__ddl_tx tx;
	int rc;

	if (!plan) {
		rc = alyx__schema_diff(old, new_, &own, err);
		if (rc != ALYX_OK)
			return rc;
		plan = own;
	}
	if (plan->destructive && !(flags & ALYX_STORE_ALLOW_DESTRUCTIVE)) {
		rc = alyx__plan_refuse(plan, err);
		goto out;
	}
	rc = alyx__ddl_begin(db, &tx, true, err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__exec(db, internal_tables_sql, err);
	/* Nothing to change: leave the DDL alone (a schema change makes
	 * every connection re-prepare its statements). */
	if (rc == ALYX_OK && (!old || plan->n_changes))
		rc = alyx__ddl_sync(db, old, new_, plan, NULL, 0, err);
	if (rc == ALYX_OK)
		rc = alyx__store_save_schema(db, new_, err);
	if (rc == ALYX_OK)
		rc = alyx__ddl_commit(db, &tx, err);
	else
		alyx__ddl_rollback(db, &tx);
out:
	alyx__plan_free(own);
	return rc;
}
