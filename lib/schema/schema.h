/*
 * schema.h - the schema model (SEED-PLAN.md §Schema System), its YAML
 * parser, canonical JSON form, diff (migration plan) and SQL generation.
 *
 * Internal to libalyx.  A parsed alyx__schema is immutable once built and
 * may be shared read-only between threads.
 */
#ifndef ALYX_SCHEMA_H
#define ALYX_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef enum alyx__type {
	ALYX_T_UUID,
	ALYX_T_STRING,
	ALYX_T_TEXT,
	ALYX_T_INT,
	ALYX_T_FLOAT,
	ALYX_T_BOOL,
	ALYX_T_TIMESTAMP,
	ALYX_T_JSON,
	ALYX_T_BLOB
} alyx__type;

/* "uuid", "string", ...; NULL for an unknown value. */
const char *alyx__type_name(alyx__type t);
/* Returns false for an unknown name. */
bool alyx__type_parse(const char *name, alyx__type *out);
/* "TEXT", "INTEGER", "REAL", "BLOB": the SQLite column type. */
const char *alyx__type_sql(alyx__type t);

typedef enum alyx__default_kind {
	ALYX_DEF_NONE,
	ALYX_DEF_LITERAL,	/* default_json holds the value as JSON */
	ALYX_DEF_AUTO,		/* uuid v4 (uuid fields only) */
	ALYX_DEF_NOW		/* current time (timestamp fields only) */
} alyx__default_kind;

typedef enum alyx__on_delete {
	ALYX_ONDEL_RESTRICT,	/* the default */
	ALYX_ONDEL_CASCADE,
	ALYX_ONDEL_SET_NULL
} alyx__on_delete;

typedef enum alyx__format {
	ALYX_FMT_NONE,
	ALYX_FMT_EMAIL,
	ALYX_FMT_URL,
	ALYX_FMT_UUID
} alyx__format;

typedef struct alyx__field {
	char *name;
	alyx__type type;
	bool primary;
	bool unique;
	bool nullable;
	bool index;
	bool internal;		/* never returned by reads */
	bool on_update_now;	/* onUpdate: now */
	alyx__default_kind default_kind;
	char *default_json;	/* ALYX_DEF_LITERAL: the value as JSON text */
	char *ref_collection;	/* references: coll.field, or NULL */
	char *ref_field;
	alyx__on_delete on_delete;
	/* validate: (also accepted directly on the field) */
	bool has_min_length, has_max_length, has_min, has_max;
	int64_t min_length, max_length;	/* in characters (code points) */
	double min, max;
	alyx__format format;
	char *pattern;		/* pcre2 source, or NULL */
	void *pattern_code;	/* compiled pcre2_code *, or NULL */
	char **enum_json;	/* allowed values as JSON texts, or NULL */
	size_t n_enum;
	int line, col;		/* where the field is defined (1-based) */
} alyx__field;

typedef struct alyx__index {
	char *name;
	char **fields;
	size_t n_fields;
	bool unique;
	bool desc;		/* order: desc (applies to every column) */
	int line, col;
} alyx__index;

enum { ALYX_RULE_CREATE, ALYX_RULE_READ, ALYX_RULE_UPDATE, ALYX_RULE_DELETE,
       ALYX_RULE_COUNT };

struct alyx__rule;	/* a compiled CEL program (lib/rules/rules.h) */

typedef struct alyx__collection {
	char *name;
	alyx__field *fields;	/* in file order */
	size_t n_fields;
	size_t pk;		/* index of the primary-key field */
	alyx__index *indexes;	/* explicit `indexes:` entries */
	size_t n_indexes;
	char *rules[ALYX_RULE_COUNT];	/* CEL source text, or NULL */
	/* Where the rule text's first character is in the file (after an
	 * opening quote; for | and > block scalars, the first content
	 * line at its indentation); 0 when parsed from JSON. */
	int rule_line[ALYX_RULE_COUNT], rule_col[ALYX_RULE_COUNT];
	/* The rules compiled and type-checked against this collection when
	 * the schema was built (parse or from_json): the program cache.  It
	 * lives exactly as long as the schema, so a schema change rebuilds
	 * it.  NULL where there is no rule. */
	struct alyx__rule *programs[ALYX_RULE_COUNT];
	/* The select list and document writer of a list or get that shows
	 * every field (no `fields`, no `expand`), made with the schema
	 * (lib/query/sql.c); NULL if there was no memory for it, and each
	 * query then makes its own. */
	struct alyx__qplan *read_plan;
	int line, col;
} alyx__collection;

typedef struct alyx__schema {
	int version;
	alyx__collection *colls;	/* in file order */
	size_t n_colls;
} alyx__schema;

/*
 * Parses and validates schema YAML.  `filename` (may be NULL) is used in
 * messages.  Every error is ALYX_E_SCHEMA with a message of the form
 * "schema.yaml:12:7: unknown type 'strng' for field posts.title" and
 * details {"file":..,"line":12,"column":7,"collection":..,"field":..}.
 * Checks: unknown type or option, references to a missing collection or
 * field (and type mismatch with the referenced field), defaults of the
 * wrong type, duplicate or invalid identifiers, reserved names (leading
 * "_alyx", SQL keywords that cannot be quoted safely are fine since all
 * identifiers are quoted, but names starting with "_alyx" or "sqlite_" are
 * refused), exactly one primary key per collection, bad regex patterns,
 * enum values of the wrong type, min > max, index fields that do not
 * exist.  A collection without a primary key field gets none implicitly:
 * it is an error.  Every rule is compiled and type-checked against its
 * collection (lib/rules): a rule naming a field the collection lacks, or
 * comparing one with a value of the wrong type, is ALYX_E_SCHEMA with the
 * collection, the operation and the position in the file.
 */
int alyx__schema_parse(const char *yaml, size_t len, const char *filename,
		       alyx__schema **out, alyx__err *err);
void alyx__schema_free(alyx__schema *s);

/* Canonical JSON (stable key order; what the database stores as the
 * applied schema and what alyx_schema_json() returns):
 *  {"version":1,"collections":{"users":{"fields":{"id":{"type":"uuid",
 *   "primary":true,"default":"auto"},...},"indexes":[...],
 *   "rules":{"read":"..."}}}}
 * Round-trips through alyx__schema_from_json(). */
char *alyx__schema_to_json(const alyx__schema *s);
int alyx__schema_from_json(const char *json, alyx__schema **out,
			   alyx__err *err);

const alyx__collection *alyx__schema_coll(const alyx__schema *s,
					  const char *name);
const alyx__field *alyx__coll_field(const alyx__collection *c,
				    const char *name);
/* Index of a field in c->fields, or -1. */
int alyx__coll_field_index(const alyx__collection *c, const char *name);

/* Case-insensitive Levenshtein distance of two names (at most 63 bytes
 * each; longer names count as 64 apart).  Used for "did you mean"
 * suggestions, here and in the config loader. */
size_t alyx__edit_distance(const char *a, const char *b);

/* ---- diff: from the applied schema to a new one ---- */

typedef enum alyx__change_op {
	ALYX_CH_ADD_COLLECTION,
	ALYX_CH_DROP_COLLECTION,	/* destructive */
	ALYX_CH_ADD_FIELD,		/* safe if nullable or defaulted */
	ALYX_CH_DROP_FIELD,		/* destructive */
	ALYX_CH_CHANGE_TYPE,		/* destructive */
	ALYX_CH_LOOSEN,			/* safe: constraint relaxed */
	ALYX_CH_TIGHTEN,		/* destructive: constraint stricter */
	ALYX_CH_ADD_INDEX,		/* safe */
	ALYX_CH_DROP_INDEX,		/* safe (no data lost) */
	ALYX_CH_RULES,			/* safe: rules changed */
	ALYX_CH_META			/* safe: internal/validation-only
					 * metadata (e.g. internal flag) */
} alyx__change_op;

typedef struct alyx__change {
	alyx__change_op op;
	bool safe;
	bool needs_rebuild;	/* the table must be rebuilt (SQLite cannot
				 * ALTER the column/constraint in place) */
	char *collection;
	char *field;		/* or index name, or NULL */
	char *description;	/* human text: "+ Added field 'posts.x'" */
} alyx__change;

typedef struct alyx__plan {
	alyx__change *changes;
	size_t n_changes;
	bool destructive;	/* some change is not safe */
} alyx__plan;

/* `old` may be NULL (empty database).  Never fails except on NOMEM. */
int alyx__schema_diff(const alyx__schema *old, const alyx__schema *new_,
		      alyx__plan **out, alyx__err *err);
void alyx__plan_free(alyx__plan *p);
/* {"changes":[{"op":"add_field","collection":..,"field":..,"safe":true,
 *   "description":..},...],"destructive":false} */
char *alyx__plan_to_json(const alyx__plan *p);
/* "add_field", ... */
const char *alyx__change_op_name(alyx__change_op op);

/* ---- SQL generation (identifiers always double-quoted) ---- */

/* CREATE TABLE "name" (...) with types, NOT NULL, PRIMARY KEY, UNIQUE,
 * REFERENCES ... ON DELETE ..., DEFAULT for literals.  `table` overrides
 * the table name (for rebuilds into a temporary table), or NULL. */
char *alyx__sql_create_table(const alyx__collection *c, const char *table);
/* CREATE INDEX statements for `index: true` fields and `indexes:`,
 * separated by ";\n".  Index names for field indexes are
 * idx_<coll>_<field>. */
char *alyx__sql_create_indexes(const alyx__collection *c);
/* Whether f gets its own idx_<coll>_<field>: `index: true`, unless the
 * table has that index anyway (primary key, unique field, first field of
 * a composite index).  The SQL and the migration plan both follow it. */
bool alyx__field_own_index(const alyx__collection *c, const alyx__field *f);
/* The three change-feed triggers <coll>_alyx_ins/_upd/_del (AFTER
 * INSERT/UPDATE/DELETE) appending to _alyx_changes; the update trigger
 * records changed_fields as a JSON array of the names of the fields whose
 * value changed (IS NOT comparisons), and DROP TRIGGER IF EXISTS for each
 * first.  Statements separated by ";\n". */
char *alyx__sql_triggers(const alyx__collection *c);

#endif
