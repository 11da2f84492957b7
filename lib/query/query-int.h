/*
 * query-int.h - what the files of lib/query share among themselves.
 */
#ifndef ALYX_QUERY_INT_H
#define ALYX_QUERY_INT_H

#include "query/query.h"

/* The main table's alias in every generated statement. */
#define ALYX_QUERY_ALIAS "_m"

/* Sets a query error: code, message, and details {"param":..,"field":..,
 * "op":..} (each part left out when NULL; `field` is `flen` bytes).
 * Returns `code`. */
int alyx__qerr(alyx__err *err, int code, const char *param,
	       const char *field, size_t flen, const char *op,
	       const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Index of the field called `name` (n bytes) in c, or -1. */
int alyx__qfield(const alyx__collection *c, const char *name, size_t n);
/* The collection called `name`, or NULL (s may be NULL). */
const alyx__collection *alyx__qcoll(const alyx__schema *s, const char *name);

/* May `op` be used on a field of type t?  May t be sorted? */
bool alyx__qop_allowed(alyx__type t, alyx__op op);
bool alyx__qsortable(alyx__type t);

/* Decodes q->after against q->sort into q->after_vals (ALYX_E_BADQUERY,
 * details {"param":"after"}, on any flaw). */
int alyx__cursor_decode(alyx__query *q, alyx__err *err);
/* Appends the cursor of the current row of `st`; cols[k] is the result
 * column of sort key k.  ALYX_E_TOOBIG if the key values are too big. */
int alyx__cursor_encode(alyx_buf *b, const alyx__query *q, sqlite3_stmt *st,
			const int *cols, alyx__err *err);

#endif
