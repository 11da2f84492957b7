/*
 * schema-int.h - private to lib/schema: a small positioned document tree
 * (built from YAML with libyaml, or from JSON with cJSON) that the schema
 * builder walks, so both inputs share one validator and one set of error
 * messages.
 */
#ifndef ALYX_SCHEMA_INT_H
#define ALYX_SCHEMA_INT_H

#include "schema/schema.h"

/* Caps on untrusted input (docs/schema.md, "Limits"). */
#define SCHEMA_MAX_BYTES ((size_t)1 << 20)
#define SCHEMA_MAX_DEPTH 32
#define SCHEMA_MAX_NODES 200000
#define SCHEMA_MAX_COLLS 256
#define SCHEMA_MAX_FIELDS 256
#define SCHEMA_MAX_INDEXES 64
#define SCHEMA_MAX_ENUM 1024
#define SCHEMA_MAX_PATTERN 4096
#define SCHEMA_MAX_RULE (64 * 1024)

typedef enum ynode_kind { YN_SCALAR, YN_SEQ, YN_MAP } ynode_kind;

typedef struct ynode {
	ynode_kind kind;
	char *str;		/* YN_SCALAR: NUL-terminated value */
	size_t len;		/* its length in bytes (may contain NULs) */
	bool plain;		/* unquoted scalar: subject to typing */
	/* YN_SEQ: items; YN_MAP: key, value, key, value, ... */
	struct ynode **kids;
	size_t n;
	size_t cap;
	int line, col;		/* 1-based; 0 when unknown (JSON input) */
	int cline, ccol;	/* scalars: where the text itself starts
				 * (after a quote; a block scalar's first
				 * content line and indentation) */
} ynode;

/* Parses YAML text into a tree.  Aliases and anchors are refused (a
 * schema never needs them and they are the classic memory bomb); depth and
 * node count are capped.  An empty document gives *out = NULL. */
int alyx__ytree_parse(const char *text, size_t len, const char *file,
		      ynode **out, alyx__err *err);
/* Converts parsed JSON (a cJSON item) into the same tree shape; JSON
 * strings become quoted scalars, numbers/true/false/null plain ones. */
struct cJSON;
int alyx__ytree_from_cjson(const struct cJSON *j, ynode **out,
			   alyx__err *err);
void alyx__ytree_free(ynode *n);
/* The value for `key` in a map node, or NULL. */
ynode *alyx__ytree_get(const ynode *map, const char *key);

/* Builds and validates a schema from a tree (NULL tree = empty schema). */
int alyx__schema_build(const ynode *root, const char *file,
		       alyx__schema **out, alyx__err *err);

/* Sets an error "file:line:col: message" with details {"file","line",
 * "column","collection","field"} (coll/field may be NULL).  Returns code. */
int alyx__schema_err(alyx__err *err, int code, const char *file, int line,
		     int col, const char *coll, const char *field,
		     const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));

/* Writes a field default as an SQL literal ("'x'", "0", "X'00'"). */
void alyx__sql_default_literal(alyx_buf *b, const alyx__field *f);

#endif
