/*
 * doc.h - typed values and documents: JSON <-> SQLite per schema, write
 * validation, and the single-document statements (insert, update, delete,
 * get).  Internal to libalyx.
 *
 * Storage representation per type (what SQLite holds):
 *   uuid, string, text  TEXT
 *   int                 INTEGER
 *   float               REAL
 *   bool                INTEGER 0/1
 *   timestamp           TEXT "YYYY-MM-DDTHH:MM:SS.mmmZ" (always this exact
 *                       UTC millisecond form, so text order = time order)
 *   json                TEXT (compact JSON)
 *   blob                BLOB (base64 text at the JSON boundary)
 */
#ifndef ALYX_DOC_H
#define ALYX_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "schema/schema.h"
#include "util/util.h"

/* Caps on one value at the boundary (the caller caps whole documents). */
#define ALYX_DOC_MAX_STRING ((size_t)16 << 20)	/* bytes of a string, text,
						 * json or decoded blob */
#define ALYX_DOC_JSON_DEPTH 64	/* nesting of a json field's value */
/* cJSON keeps numbers as doubles, so integers read from JSON are exact
 * only up to 2^53-1; larger magnitudes are refused, not rounded.  Text
 * input (alyx__value_from_text) takes the full int64 range. */
#define ALYX_DOC_INT_EXACT 9007199254740991.0

typedef enum alyx__vkind {
	ALYX_V_NULL,
	ALYX_V_INT,	/* int, bool (0/1) */
	ALYX_V_FLOAT,
	ALYX_V_TEXT,	/* uuid, string, text, timestamp, json */
	ALYX_V_BLOB
} alyx__vkind;

/* A value in its storage form.  `s` is owned (alyx__malloc'd) for TEXT and
 * BLOB; n is its byte length (TEXT is also NUL-terminated). */
typedef struct alyx__value {
	alyx__vkind kind;
	int64_t i;
	double f;
	char *s;
	size_t n;
} alyx__value;

void alyx__value_clear(alyx__value *v);	/* frees s; kind = NULL */
int alyx__value_copy(alyx__value *dst, const alyx__value *src);
/* Binds v to parameter `idx` of stmt (SQLITE_TRANSIENT). */
int alyx__value_bind(sqlite3_stmt *st, int idx, const alyx__value *v);
/* Three-way compare of two values of the same field type (SQLite order:
 * NULL < numbers < text < blob; numbers compare numerically). */
int alyx__value_cmp(const alyx__value *a, const alyx__value *b);

/*
 * Converts a JSON value to the storage form of field `f`.  Accepts: for
 * uuid a valid UUID string (stored lower-case); for string/text a string; for int an integral
 * number within int64 (1.0 is fine, 1.5 is not); for float any number; for
 * bool true/false; for timestamp an ISO-8601 string (normalised to UTC ms)
 * or an integer of epoch milliseconds; for json any JSON (stored compact);
 * for blob a base64 string.  JSON null gives ALYX_V_NULL (nullability is
 * checked by alyx__doc_validate, not here).
 * On failure returns false and writes a short reason ("expected an
 * integer") into why[128].
 */
/* The `why` of a conversion that failed for lack of memory (not a fault
 * of the input). */
#define ALYX_DOC_WHY_NOMEM "out of memory"
bool alyx__value_from_json(const alyx__field *f, const cJSON *j,
			   alyx__value *out, char why[128]);
/* The same from text (URL query values, CLI flags): "true"/"false"/"1"/"0"
 * for bool, decimal numbers, ISO-8601 timestamps, raw strings; for json
 * fields the text is the JSON itself, unless it does not parse, then it is
 * taken as a JSON string. */
bool alyx__value_from_text(const alyx__field *f, const char *s, size_t n,
			   alyx__value *out, char why[128]);
/* Writes a stored column value (sqlite3_column_* at `col`) as the JSON
 * boundary form of field f (bool true/false, blob base64, json raw,
 * timestamp text as stored, NULL as null). */
void alyx__value_write_column(alyx_buf *b, const alyx__field *f,
			      sqlite3_stmt *st, int col);
/* One value of a row writer: the field, its result column, and its key
 * text (such as `,"name":`) at keys + off, len bytes. */
typedef struct alyx__colout {
	const alyx__field *f;
	int col;
	unsigned off, len;
} alyx__colout;
/* Writes the n values of the current row of st, each after its key, as
 * alyx__value_write_column would; `keys` keeps 15 bytes of padding after
 * its text (the row writers of util/jsonrow.h read keys in blocks). */
void alyx__value_write_row(alyx_buf *b, const alyx__colout *out, size_t n,
			   const char *keys, sqlite3_stmt *st);
/* Writes an alyx__value in the JSON boundary form of field f. */
void alyx__value_write(alyx_buf *b, const alyx__field *f,
		       const alyx__value *v);
/* A stored column as an alyx__value (copies). */
int alyx__value_from_column(sqlite3_stmt *st, int col, alyx__value *out);

/* ---- validation ---- */

enum { ALYX_DOC_CREATE, ALYX_DOC_UPDATE };

/*
 * The prepared values of one write.  vals[i] and set[i] follow
 * c->fields[i]; set[i] is false for fields the write leaves untouched.
 */
typedef struct alyx__row {
	size_t n;
	alyx__value *vals;
	bool *set;
} alyx__row;

void alyx__row_free(alyx__row *r);

/*
 * Validates a create (every field: defaults applied — literal, auto uuid,
 * now — then required/nullable checks) or an update (only the given
 * fields; onUpdate:now fields refreshed; the primary key cannot change)
 * from a JSON object.  Checks every field and reports *every* failure in
 * one ALYX_E_VALIDATION with details {"fields":[...]} (codes: "required",
 * "type", "null", "min_length", "max_length", "min", "max", "format",
 * "pattern", "enum", "unknown_field", "immutable", and "duplicate_field"
 * for a key given twice).  Unknown keys are errors (the first 20 named,
 * the rest counted).  Out of memory is ALYX_E_NOMEM, never a field
 * error.  ALYX_E_BADJSON if `in` is not an object.  docs/documents.md
 * has the full rules.
 */
int alyx__doc_prepare(const alyx__collection *c, const cJSON *in, int mode,
		      alyx__row *out, alyx__err *err);

/* ---- single-document statements ----
 * `db` is a connection the caller has already put in the right state (the
 * caller owns transactions).  On a SQLite constraint failure the error is
 * ALYX_E_CONFLICT with details {"field":..,"constraint":"unique"|
 * "foreign_key"} when it can be told.  *out receives the stored document
 * (re-read after the write) as JSON, without internal fields; the JSON is
 * appended to `out`. */
int alyx__doc_insert(sqlite3 *db, const alyx__collection *c,
		     const alyx__row *row, alyx_buf *out, alyx__err *err);
int alyx__doc_update(sqlite3 *db, const alyx__collection *c,
		     const char *id, const alyx__row *row, alyx_buf *out,
		     alyx__err *err);
int alyx__doc_delete(sqlite3 *db, const alyx__collection *c, const char *id,
		     alyx__err *err);
/* An extra SQL condition ANDed into the WHERE clause (rule push-down):
 * `sql` uses only `?` parameters, bound in order from `binds`. */
typedef struct alyx__sqlcond {
	const char *sql;
	const alyx__value *binds;
	size_t n_binds;
} alyx__sqlcond;

/* alyx__doc_read of the document whose primary key is *key (the field's
 * storage value) and that also meets `cond` (NULL: none; it may name
 * columns unqualified): *found false and nothing written when no row
 * matches. */
int alyx__doc_read_key(sqlite3 *db, const alyx__collection *c,
		       const alyx__value *key, const alyx__sqlcond *cond,
		       alyx_buf *out, bool *found, alyx__err *err);
/* Reads one document by primary key into `out` (all non-internal fields,
 * or all fields if `with_internal`).  ALYX_E_NOTFOUND if missing. */
int alyx__doc_read(sqlite3 *db, const alyx__collection *c, const char *id,
		   bool with_internal, alyx_buf *out, alyx__err *err);
/* The error of a missing document: ALYX_E_NOTFOUND "no document 'ID' in
 * 'coll'", details {"collection","id"} (also used for documents a rule
 * hides). */
int alyx__doc_not_found(const alyx__collection *c, const char *id,
			alyx__err *err);
/* Converts an id given as text into the primary key's storage value. */
bool alyx__doc_pk_value(const alyx__collection *c, const char *id,
			alyx__value *out, char why[128]);

/* ---- prepared-statement cache ----
 * Statements are cached on the connection itself (prepared with
 * SQLITE_PREPARE_PERSISTENT, found again through sqlite3_next_stmt by
 * their SQL text), at most ALYX_STMT_CACHE_MAX per connection, oldest
 * idle one evicted.  get: an idle cached statement for `sql` or a newly
 * prepared one (returns a SQLite result code).  put: reset + clear
 * bindings; never finalize a statement obtained here.  Between get and
 * put, do not call get for the same SQL on the same connection (a bound
 * but not yet stepped statement looks idle).  alyx__conn_close()
 * finalizes whatever is cached; alyx__stmt_cache_clear() drops the idle
 * cached statements earlier (e.g. after a schema change). */
#define ALYX_STMT_CACHE_MAX 64
int alyx__stmt_get(sqlite3 *db, const char *sql, sqlite3_stmt **out);
void alyx__stmt_put(sqlite3_stmt *st);
void alyx__stmt_cache_clear(sqlite3 *db);

/* Maps a SQLite error on `db` to an alyx error (CONFLICT for constraint
 * violations, BUSY, IO, INTERNAL) with SQLite's message. */
int alyx__sqlite_err(sqlite3 *db, int rc, alyx__err *err);

#endif
