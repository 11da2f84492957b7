/*
 * ytree.c - a positioned document tree from YAML (libyaml events) or JSON
 * (cJSON), and the schema error formatter.
 *
 * libcyaml maps YAML onto fixed C structures; a schema's mappings are keyed
 * by user-chosen names (collections, fields), which libcyaml cannot
 * express, so the schema parser reads libyaml's event stream itself and
 * keeps every node's line and column for error messages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <yaml.h>

#include "schema/schema-int.h"

int alyx__schema_err(alyx__err *err, int code, const char *file, int line,
		     int col, const char *coll, const char *field,
		     const char *fmt, ...)
{
	char msg[400];
	alyx_buf d;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!file)
		file = "schema.yaml";
	alyx__buf_init(&d, 0);
	alyx__buf_adds(&d, "{\"file\":");
	alyx__json_strz(&d, file);
	alyx__buf_adds(&d, ",\"line\":");
	alyx__json_i64(&d, line);
	alyx__buf_adds(&d, ",\"column\":");
	alyx__json_i64(&d, col);
	alyx__buf_adds(&d, ",\"collection\":");
	alyx__json_strz(&d, coll);
	alyx__buf_adds(&d, ",\"field\":");
	alyx__json_strz(&d, field);
	alyx__buf_addc(&d, '}');
	return alyx__err_setd(err, code, alyx__buf_take(&d), "%s:%d:%d: %s",
			      file, line, col, msg);
}

void alyx__ytree_free(ynode *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->n; i++)
		alyx__ytree_free(n->kids[i]);
	alyx__free(n->kids);
	alyx__free(n->str);
	alyx__free(n);
}

ynode *alyx__ytree_get(const ynode *map, const char *key)
{
	size_t i;

	if (!map || map->kind != YN_MAP)
		return NULL;
	for (i = 0; i + 1 < map->n; i += 2) {
		if (strcmp(map->kids[i]->str, key) == 0)
			return map->kids[i + 1];
	}
	return NULL;
}

static ynode *node_new(ynode_kind kind, int line, int col)
{
	ynode *n = alyx__calloc(1, sizeof(*n));

	if (n) {
		n->kind = kind;
		n->line = line;
		n->col = col;
	}
	return n;
}

static bool node_add(ynode *parent, ynode *kid)
{
	if (parent->n == parent->cap) {
		size_t ncap = parent->cap ? parent->cap * 2 : 8;
		ynode **k = alyx__realloc(parent->kids, ncap * sizeof(*k));

		if (!k)
			return false;
		parent->kids = k;
		parent->cap = ncap;
	}
	parent->kids[parent->n++] = kid;
	return true;
}

/* ---- YAML ---- */

typedef struct yctx {
	const char *text;
	size_t len;
	size_t *line_start;	/* byte offset of each line, built on the
				 * first block scalar */
	size_t n_lines;
	const char *file;
	alyx__err *err;
	ynode *root;
	ynode *stack[SCHEMA_MAX_DEPTH + 1];
	int depth;
	size_t nodes;
	int docs;
} yctx;

static int yerr(yctx *c, const yaml_mark_t *m, int code, const char *fmt,
		const char *what)
{
	return alyx__schema_err(c->err, code, c->file, (int)m->line + 1,
				(int)m->column + 1, NULL, NULL, fmt, what);
}

/* Attaches a new node to the current container (or makes it the root). */
static int attach(yctx *c, ynode *n, const yaml_mark_t *m)
{
	ynode *top;

	if (++c->nodes > SCHEMA_MAX_NODES) {
		alyx__ytree_free(n);
		return yerr(c, m, ALYX_E_TOOBIG, "%s",
			    "document has too many nodes");
	}
	if (c->depth == 0) {
		c->root = n;
		return ALYX_OK;
	}
	top = c->stack[c->depth - 1];
	if (top->kind == YN_MAP && top->n % 2 == 0 && n->kind != YN_SCALAR) {
		alyx__ytree_free(n);
		return yerr(c, m, ALYX_E_SCHEMA, "%s",
			    "mapping keys must be plain names");
	}
	if (!node_add(top, n)) {
		alyx__ytree_free(n);
		return alyx__err_set(c->err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	}
	return ALYX_OK;
}

static bool is_break(const yctx *c, size_t i)
{
	return c->text[i] == '\n' ||
	       (c->text[i] == '\r' && (i + 1 >= c->len || c->text[i + 1] != '\n'));
}

static bool index_lines(yctx *c)
{
	size_t i, n = 1;

	for (i = 0; i < c->len; i++)
		n += is_break(c, i);
	c->line_start = alyx__calloc(n, sizeof(size_t));
	if (!c->line_start)
		return false;
	c->n_lines = 1;
	for (i = 0; i < c->len; i++)
		if (is_break(c, i))
			c->line_start[c->n_lines++] = i + 1;
	return true;
}

/* A | or > scalar's text starts on the line after the indicator (leading
 * blank lines are part of it), at the indentation of its first non-blank
 * line.  libyaml marks count characters, so lines are found by number. */
static bool block_start(yctx *c, const yaml_mark_t *m, int *line, int *col)
{
	size_t ln = m->line + 1, off, sp;

	if (!c->line_start && !index_lines(c))
		return false;
	for (; ln < c->n_lines; ln++) {
		off = c->line_start[ln];
		for (sp = 0; off + sp < c->len && c->text[off + sp] == ' '; sp++)
			;
		if (off + sp < c->len && c->text[off + sp] != '\n' &&
		    c->text[off + sp] != '\r') {
			*line = (int)m->line + 2;
			*col = (int)sp + 1;
			return true;
		}
	}
	return true;
}

static int on_event(yctx *c, yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	int line = (int)m->line + 1, col = (int)m->column + 1;
	ynode *n = NULL;
	int rc;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++c->docs > 1)
			return yerr(c, m, ALYX_E_SCHEMA, "%s",
				    "only one YAML document is allowed");
		return ALYX_OK;
	case YAML_ALIAS_EVENT:
		return yerr(c, m, ALYX_E_SCHEMA,
			    "YAML aliases are not supported (*%s)",
			    (const char *)ev->data.alias.anchor);
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor)
			return yerr(c, m, ALYX_E_SCHEMA,
				    "YAML anchors are not supported (&%s)",
				    (const char *)ev->data.scalar.anchor);
		if (ev->data.scalar.tag &&
		    strcmp((const char *)ev->data.scalar.tag,
			   YAML_STR_TAG) != 0)
			return yerr(c, m, ALYX_E_SCHEMA,
				    "YAML tag '%s' is not supported",
				    (const char *)ev->data.scalar.tag);
		if (memchr(ev->data.scalar.value, '\0',
			   ev->data.scalar.length))
			return yerr(c, m, ALYX_E_SCHEMA, "%s",
				    "NUL characters are not allowed");
		n = node_new(YN_SCALAR, line, col);
		if (!n)
			goto nomem;
		n->str = alyx__strndup((const char *)ev->data.scalar.value,
				       ev->data.scalar.length);
		if (!n->str) {
			alyx__free(n);
			goto nomem;
		}
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
			   !ev->data.scalar.tag;
		n->cline = line;
		n->ccol = col;
		switch (ev->data.scalar.style) {
		case YAML_SINGLE_QUOTED_SCALAR_STYLE:
		case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
			n->ccol = col + 1;
			break;
		case YAML_LITERAL_SCALAR_STYLE:
		case YAML_FOLDED_SCALAR_STYLE:
			if (!block_start(c, m, &n->cline, &n->ccol)) {
				alyx__ytree_free(n);
				goto nomem;
			}
			break;
		default:
			break;
		}
		return attach(c, n, m);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
		const yaml_char_t *anchor = seq ?
			ev->data.sequence_start.anchor :
			ev->data.mapping_start.anchor;
		const yaml_char_t *tag = seq ? ev->data.sequence_start.tag :
					       ev->data.mapping_start.tag;

		if (anchor)
			return yerr(c, m, ALYX_E_SCHEMA,
				    "YAML anchors are not supported (&%s)",
				    (const char *)anchor);
		if (tag)
			return yerr(c, m, ALYX_E_SCHEMA,
				    "YAML tag '%s' is not supported",
				    (const char *)tag);
		if (c->depth >= SCHEMA_MAX_DEPTH)
			return yerr(c, m, ALYX_E_TOOBIG, "%s",
				    "nesting is too deep");
		n = node_new(seq ? YN_SEQ : YN_MAP, line, col);
		if (!n)
			goto nomem;
		rc = attach(c, n, m);
		if (rc != ALYX_OK)
			return rc;
		c->stack[c->depth++] = n;
		return ALYX_OK;
	}
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (c->depth > 0)
			c->depth--;
		return ALYX_OK;
	default:
		return ALYX_OK;
	}
nomem:
	return alyx__err_set(c->err, ALYX_E_NOMEM, NULL, "out of memory");
}

int alyx__ytree_parse(const char *text, size_t len, const char *file,
		      ynode **out, alyx__err *err)
{
	yaml_parser_t p;
	yaml_event_t ev;
	yctx c;
	int rc = ALYX_OK;
	bool done = false;

	*out = NULL;
	memset(&c, 0, sizeof(c));
	c.text = text;
	c.len = len;
	c.file = file;
	c.err = err;
	if (len > SCHEMA_MAX_BYTES)
		return alyx__schema_err(err, ALYX_E_TOOBIG, file, 1, 1, NULL,
					NULL,
					"document is larger than %zu bytes",
					SCHEMA_MAX_BYTES);
	if (!yaml_parser_initialize(&p))
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			const yaml_mark_t *m = &p.problem_mark;

			if (p.error == YAML_MEMORY_ERROR) {
				rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
						   "out of memory");
				goto out;
			}
			rc = alyx__schema_err(err, ALYX_E_SCHEMA, file,
					      (int)m->line + 1,
					      (int)m->column + 1, NULL, NULL,
					      "YAML syntax error: %s%s%s",
					      p.problem ? p.problem : "?",
					      p.context ? " " : "",
					      p.context ? p.context : "");
			goto out;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		rc = on_event(&c, &ev);
		yaml_event_delete(&ev);
		if (rc != ALYX_OK)
			goto out;
	}
	*out = c.root;
	c.root = NULL;
out:
	alyx__ytree_free(c.root);
	alyx__free(c.line_start);
	yaml_parser_delete(&p);
	return rc;
}

/* ---- JSON ---- */

static int from_cjson(const cJSON *j, int depth, size_t *count, ynode **out,
		      alyx__err *err)
{
	const cJSON *k;
	ynode *n = NULL, *kid;
	int rc;

	*out = NULL;
	if (depth > SCHEMA_MAX_DEPTH || ++*count > SCHEMA_MAX_NODES)
		return alyx__schema_err(err, ALYX_E_TOOBIG, "schema.json", 0,
					0, NULL, NULL,
					"JSON is too deep or too large");
	if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
		bool obj = cJSON_IsObject(j);

		n = node_new(obj ? YN_MAP : YN_SEQ, 0, 0);
		if (!n)
			goto nomem;
		cJSON_ArrayForEach(k, j) {
			if (obj) {
				kid = node_new(YN_SCALAR, 0, 0);
				if (!kid || !node_add(n, kid)) {
					alyx__free(kid);
					goto nomem;
				}
				kid->str = alyx__strdup(k->string ? k->string :
							"");
				if (!kid->str)
					goto nomem;
				kid->len = strlen(kid->str);
			}
			rc = from_cjson(k, depth + 1, count, &kid, err);
			if (rc != ALYX_OK) {
				alyx__ytree_free(n);
				return rc;
			}
			if (!node_add(n, kid)) {
				alyx__ytree_free(kid);
				goto nomem;
			}
		}
		*out = n;
		return ALYX_OK;
	}
	n = node_new(YN_SCALAR, 0, 0);
	if (!n)
		goto nomem;
	n->plain = true;
	if (cJSON_IsString(j)) {
		n->plain = false;
		n->str = alyx__strdup(j->valuestring);
	} else if (cJSON_IsNumber(j)) {
		alyx_buf b;

		alyx__buf_init(&b, 64);
		if (j->valuedouble < 9.2e18 && j->valuedouble > -9.2e18 &&
		    j->valuedouble == (double)(int64_t)j->valuedouble)
			alyx__json_i64(&b, (int64_t)j->valuedouble);
		else
			alyx__json_f64(&b, j->valuedouble);
		n->str = alyx__buf_take(&b);
	} else if (cJSON_IsBool(j)) {
		n->str = alyx__strdup(cJSON_IsTrue(j) ? "true" : "false");
	} else {
		n->str = alyx__strdup("null");
	}
	if (!n->str)
		goto nomem;
	n->len = strlen(n->str);
	*out = n;
	return ALYX_OK;
nomem:
	alyx__ytree_free(n);
	return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
}

int alyx__ytree_from_cjson(const struct cJSON *j, ynode **out,
			   alyx__err *err)
{
	size_t count = 0;

	return from_cjson(j, 0, &count, out, err);
}
