/*
 * sql.c - DDL and change-feed triggers for a collection.
 *
 * Identifiers come only from a validated schema (alyx__ident_valid), and
 * are double-quoted anyway; literals are quoted SQL literals.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "schema/schema-int.h"

/* json_array() takes at most SQLITE_MAX_FUNCTION_ARG (127 by default)
 * arguments; the changed-fields list is built from chunks this size. */
#define TRIGGER_CHUNK 100

static void str_literal(alyx_buf *b, const char *s, size_t n)
{
	size_t i;

	alyx__buf_addc(b, '\'');
	for (i = 0; i < n; i++) {
		if (s[i] == '\'')
			alyx__buf_addc(b, '\'');
		alyx__buf_addc(b, s[i]);
	}
	alyx__buf_addc(b, '\'');
}

void alyx__sql_default_literal(alyx_buf *b, const alyx__field *f)
{
	cJSON *j = cJSON_Parse(f->default_json);
	static const char hex[] = "0123456789ABCDEF";

	if (!j) {
		alyx__buf_adds(b, "NULL");
		return;
	}
	switch (f->type) {
	case ALYX_T_BOOL:
		alyx__buf_addc(b, cJSON_IsTrue(j) ? '1' : '0');
		break;
	case ALYX_T_INT:
	case ALYX_T_FLOAT:
		/* The JSON number text is also a valid SQL number. */
		alyx__buf_adds(b, f->default_json);
		break;
	case ALYX_T_JSON:
		str_literal(b, f->default_json, strlen(f->default_json));
		break;
	case ALYX_T_BLOB: {
		unsigned char *bin = NULL;
		size_t n = 0, i;
		const char *s = cJSON_GetStringValue(j);

		if (!s || !alyx__base64_dec(s, strlen(s), &bin, &n)) {
			alyx__buf_adds(b, "NULL");
			break;
		}
		alyx__buf_adds(b, "X'");
		for (i = 0; i < n; i++) {
			alyx__buf_addc(b, hex[bin[i] >> 4]);
			alyx__buf_addc(b, hex[bin[i] & 15]);
		}
		alyx__buf_addc(b, '\'');
		alyx__free(bin);
		break;
	}
	default: {
		const char *s = cJSON_GetStringValue(j);

		if (s)
			str_literal(b, s, strlen(s));
		else
			alyx__buf_adds(b, "NULL");
		break;
	}
	}
	cJSON_Delete(j);
}

static const char *on_delete_sql(alyx__on_delete od)
{
	switch (od) {
	case ALYX_ONDEL_CASCADE:
		return "CASCADE";
	case ALYX_ONDEL_SET_NULL:
		return "SET NULL";
	default:
		return "RESTRICT";
	}
}

char *alyx__sql_create_table(const alyx__collection *c, const char *table)
{
	alyx_buf b;
	size_t i;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "CREATE TABLE ");
	alyx__sql_ident(&b, table ? table : c->name);
	alyx__buf_adds(&b, " (");
	for (i = 0; i < c->n_fields; i++) {
		const alyx__field *f = &c->fields[i];

		alyx__buf_adds(&b, i ? ",\n  " : "\n  ");
		alyx__sql_ident(&b, f->name);
		alyx__buf_addc(&b, ' ');
		alyx__buf_adds(&b, alyx__type_sql(f->type));
		if (!f->nullable)
			alyx__buf_adds(&b, " NOT NULL");
		if (f->primary)
			alyx__buf_adds(&b, " PRIMARY KEY");
		else if (f->unique)
			alyx__buf_adds(&b, " UNIQUE");
		if (f->default_kind == ALYX_DEF_LITERAL) {
			alyx__buf_adds(&b, " DEFAULT ");
			alyx__sql_default_literal(&b, f);
		}
		if (f->ref_collection) {
			alyx__buf_adds(&b, " REFERENCES ");
			alyx__sql_ident(&b, f->ref_collection);
			alyx__buf_addc(&b, '(');
			alyx__sql_ident(&b, f->ref_field);
			alyx__buf_adds(&b, ") ON DELETE ");
			alyx__buf_adds(&b, on_delete_sql(f->on_delete));
		}
	}
	alyx__buf_adds(&b, "\n)");
	return alyx__buf_take(&b);
}

/*
 * A composite non-unique index (`indexes:`) ends with the primary key,
 * ascending: the queries' final tie-breaker (lib/query).  A list filtered
 * on the leading fields and sorted by the rest is then read in index
 * order and stops after its page, with no sort step for rows with equal
 * sort keys (list-20 by author sorted by -created_at: 31 % fewer
 * instructions, 28 % less server CPU per request).  The price is on
 * inserts into a large group of equal keys, which land at a random place
 * by key instead of at the end (creates: about 15 % more CPU).  Unique
 * indexes keep exactly their fields, and single-field `index: true`
 * indexes (filters, not sorts) stay cheap to append to.
 */
static void pk_suffix(alyx_buf *b, const alyx__collection *c,
		      const alyx__index *ix)
{
	const char *pk;
	size_t j;

	if (c->pk >= c->n_fields)
		return;
	pk = c->fields[c->pk].name;
	for (j = 0; ix && j < ix->n_fields; j++)
		if (!strcmp(ix->fields[j], pk))
			return;	/* the key is in it already */
	alyx__buf_adds(b, ", ");
	alyx__sql_ident(b, pk);
}

/*
 * An `index: true` index is left out where it would only repeat one the
 * table has anyway: the one SQLite keeps for a PRIMARY KEY or UNIQUE
 * column, or a composite index (`indexes:`) whose first field is f, which
 * answers the same equality and range lookups and orders (SQLite reads an
 * index either way).  Such a copy costs every insert and update one more
 * B-tree write and buys no query (blog posts: two of six indexes, about
 * an eighth of the writer thread's time per create).
 */
bool alyx__field_own_index(const alyx__collection *c, const alyx__field *f)
{
	size_t i;

	if (!f->index || f->primary || f->unique)
		return false;
	for (i = 0; i < c->n_indexes; i++)
		if (c->indexes[i].n_fields &&
		    !strcmp(c->indexes[i].fields[0], f->name))
			return false;
	return true;
}

char *alyx__sql_create_indexes(const alyx__collection *c)
{
	alyx_buf b;
	size_t i, j;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "");	/* "" rather than NULL when none */
	for (i = 0; i < c->n_fields; i++) {
		const alyx__field *f = &c->fields[i];
		char *name;

		if (!alyx__field_own_index(c, f))
			continue;
		name = alyx__asprintf("idx_%s_%s", c->name, f->name);
		if (!name) {
			alyx__buf_free(&b);
			return NULL;
		}
		alyx__buf_adds(&b, "CREATE INDEX IF NOT EXISTS ");
		alyx__sql_ident(&b, name);
		alyx__buf_adds(&b, " ON ");
		alyx__sql_ident(&b, c->name);
		alyx__buf_adds(&b, " (");
		alyx__sql_ident(&b, f->name);
		alyx__buf_adds(&b, ");\n");
		alyx__free(name);
	}
	for (i = 0; i < c->n_indexes; i++) {
		const alyx__index *ix = &c->indexes[i];

		alyx__buf_adds(&b, ix->unique ? "CREATE UNIQUE INDEX "
					      : "CREATE INDEX ");
		alyx__buf_adds(&b, "IF NOT EXISTS ");
		alyx__sql_ident(&b, ix->name);
		alyx__buf_adds(&b, " ON ");
		alyx__sql_ident(&b, c->name);
		alyx__buf_adds(&b, " (");
		for (j = 0; j < ix->n_fields; j++) {
			if (j)
				alyx__buf_adds(&b, ", ");
			alyx__sql_ident(&b, ix->fields[j]);
			if (ix->desc)
				alyx__buf_adds(&b, " DESC");
		}
		if (!ix->unique)
			pk_suffix(&b, c, ix);
		alyx__buf_adds(&b, ");\n");
	}
	return alyx__buf_take(&b);
}

static void trigger_head(alyx_buf *b, const alyx__collection *c,
			 const char *suffix, const char *event)
{
	char *name = alyx__asprintf("%s_alyx_%s", c->name, suffix);

	alyx__buf_adds(b, "DROP TRIGGER IF EXISTS ");
	alyx__sql_ident(b, name ? name : "");
	alyx__buf_adds(b, ";\nCREATE TRIGGER ");
	alyx__sql_ident(b, name ? name : "");
	alyx__buf_adds(b, " AFTER ");
	alyx__buf_adds(b, event);
	alyx__buf_adds(b, " ON ");
	alyx__sql_ident(b, c->name);
	alyx__buf_adds(b, " BEGIN INSERT INTO \"_alyx_changes\" "
		       "(collection, operation, doc_id, changed_fields, "
		       "timestamp) VALUES (");
	str_literal(b, c->name, strlen(c->name));
	alyx__buf_adds(b, ", '");
	alyx__buf_adds(b, event);
	alyx__buf_adds(b, "', ");
	alyx__buf_adds(b, strcmp(event, "DELETE") ? "NEW." : "OLD.");
	alyx__sql_ident(b, c->fields[c->pk].name);
	alyx__buf_adds(b, ", ");
	if (!name)
		b->err = b->err ? b->err : ALYX_E_NOMEM;
	alyx__free(name);
}

static void trigger_tail(alyx_buf *b)
{
	alyx__buf_adds(b, ", strftime('%Y-%m-%dT%H:%M:%fZ', 'now')); END;\n");
}

char *alyx__sql_triggers(const alyx__collection *c)
{
	alyx_buf b;
	size_t i;

	alyx__buf_init(&b, 0);
	trigger_head(&b, c, "ins", "INSERT");
	alyx__buf_adds(&b, "NULL");
	trigger_tail(&b);

	/* changed_fields: the names of the columns whose value changed
	 * (IS NOT also compares NULLs), in field order. */
	trigger_head(&b, c, "upd", "UPDATE");
	alyx__buf_adds(&b, "(SELECT json_group_array(value) FROM (");
	for (i = 0; i < c->n_fields; i++) {
		const alyx__field *f = &c->fields[i];

		if (i % TRIGGER_CHUNK == 0)
			alyx__buf_adds(&b, i ? ")) UNION ALL SELECT value "
					       "FROM json_each(json_array("
					     : "SELECT value FROM "
					       "json_each(json_array(");
		else
			alyx__buf_adds(&b, ", ");
		alyx__buf_adds(&b, "CASE WHEN OLD.");
		alyx__sql_ident(&b, f->name);
		alyx__buf_adds(&b, " IS NOT NEW.");
		alyx__sql_ident(&b, f->name);
		alyx__buf_adds(&b, " THEN ");
		str_literal(&b, f->name, strlen(f->name));
		alyx__buf_adds(&b, " END");
	}
	alyx__buf_adds(&b, "))) WHERE value IS NOT NULL)");
	trigger_tail(&b);

	trigger_head(&b, c, "del", "DELETE");
	alyx__buf_adds(&b, "NULL");
	trigger_tail(&b);
	return alyx__buf_take(&b);
}
