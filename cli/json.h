/*
 * json.h - a small JSON reader and re-indenter for the CLI.
 *
 * libalyx answers in JSON text; the CLI only needs to walk a few of those
 * answers to print them for humans (migration status, seed counts) and to
 * re-indent them for --pretty.  The CLI links nothing but libalyx, so it
 * carries this small reader instead of a JSON library.
 */
#ifndef CLI_JSON_H
#define CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cj_type { CJ_NULL, CJ_BOOL, CJ_NUM, CJ_STR, CJ_ARR, CJ_OBJ };

typedef struct cj {
	enum cj_type type;
	char *key;		/* member name inside an object, else NULL */
	char *str;		/* CJ_STR: decoded text; CJ_NUM: the number's
				 * text exactly as written */
	double num;		/* CJ_NUM */
	bool b;			/* CJ_BOOL */
	struct cj *kid;		/* first element or member */
	struct cj *next;	/* next sibling */
} cj;

/* Parses `len` bytes of JSON (nesting capped at 512 levels).  NULL on
 * malformed input or out of memory. */
cj *cj_parse(const char *text, size_t len);
void cj_free(cj *v);

/* The member `key` of object `o`, or NULL (also when o is NULL or not an
 * object). */
const cj *cj_get(const cj *o, const char *key);
/* The member's string, or NULL when missing or not a string. */
const char *cj_getstr(const cj *o, const char *key);
/* True when the member is `true`. */
bool cj_gettrue(const cj *o, const char *key);
/* Number of elements or members. */
size_t cj_count(const cj *v);
/* A scalar as short text ("3", "abc", "true", "null"); "" otherwise. */
const char *cj_text(const cj *v);

/* Writes `len` bytes of JSON text to f, indented by two spaces per level
 * when `pretty`, then a newline.  The text is re-spaced, never
 * re-encoded: strings and numbers come out byte for byte. */
void cj_print(FILE *f, const char *text, size_t len, bool pretty);

#endif
