/*
 * migrate.c - migration files (migrations/NNN_name.yaml, parsed with
 * libcyaml), their history in _alyx_migrations, status, apply, rollback
 * and create.  docs/migrations.md describes the behaviour.
 *
 * A migration's operations change both the database and a copy of the
 * applied schema (the "snapshot"); each structural operation is carried
 * out by alyx__ddl_sync() between the snapshot before and after it, so
 * rows survive every table rebuild.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>
#include <cyaml/cyaml.h>

#include "store/store.h"

/* ---- the file format (libcyaml schema) ---- */

typedef struct mig_op {
	char *type;
	char *collection;
	char *from;
	char *to;
	char *field;
	char *using_;
	char *up;
	char *down;
	int line;		/* filled from the YAML text, 0 if unknown */
} mig_op;

typedef struct mig_doc {
	int64_t version;
	char *name;
	char *description;
	mig_op *ops;
	unsigned ops_count;
} mig_doc;

#define STR_OPT(key, member)                                            \
	CYAML_FIELD_STRING_PTR(key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, \
			       mig_op, member, 0, CYAML_UNLIMITED)

static const cyaml_schema_field_t op_fields[] = {
	CYAML_FIELD_STRING_PTR("type", CYAML_FLAG_POINTER, mig_op, type, 1,
			       64),
	STR_OPT("collection", collection),
	STR_OPT("from", from),
	STR_OPT("to", to),
	STR_OPT("field", field),
	STR_OPT("using", using_),
	STR_OPT("up", up),
	STR_OPT("down", down),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t op_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, mig_op, op_fields),
};

static const cyaml_schema_field_t doc_fields[] = {
	CYAML_FIELD_INT("version", CYAML_FLAG_DEFAULT, mig_doc, version),
	CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
			       mig_doc, name, 0, 200),
	CYAML_FIELD_STRING_PTR("description",
			       CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
			       mig_doc, description, 0, CYAML_UNLIMITED),
	CYAML_FIELD_SEQUENCE("operations", CYAML_FLAG_POINTER, mig_doc, ops,
			     &op_schema, 0, 10000),
	CYAML_FIELD_END
};

static const cyaml_schema_value_t doc_schema = {
	CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, mig_doc, doc_fields),
};

static void *cy_mem(void *ctx, void *ptr, size_t size)
{
	(void)ctx;
	if (size == 0) {
		alyx__free(ptr);
		return NULL;
	}
	return alyx__realloc(ptr, size);
}

/* libcyaml reports errors through its log function: keep the first
 * error line and the backtrace lines (they name the key and, for libyaml
 * errors, the line). */
static void cy_log(cyaml_log_t level, void *ctx, const char *fmt,
		   va_list ap)
{
	alyx_buf *b = ctx;

	if (level < CYAML_LOG_ERROR || b->len > 400)
		return;
	alyx__buf_vaddf(b, fmt, ap);
}

/* One migration file found in the directory. */
typedef struct mig_file {
	int64_t version;
	char *fname;		/* "002_rename.yaml" */
	char *path;
	char *name;		/* from the file name */
} mig_file;

typedef struct mig_list {
	mig_file *v;
	size_t n;
} mig_list;

static void mig_list_free(mig_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		alyx__free(l->v[i].fname);
		alyx__free(l->v[i].path);
		alyx__free(l->v[i].name);
	}
	alyx__free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int cmp_mig(const void *a, const void *b)
{
	const mig_file *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

static bool ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Parses "NNN_name.yaml": version and name; false if not of that form. */
static bool parse_fname(const char *f, int64_t *version, char **name)
{
	const char *p = f, *us, *dot;
	int64_t v = 0;

	if (!isdigit((unsigned char)*p))
		return false;
	while (isdigit((unsigned char)*p)) {
		if (p - f >= 9)
			return false;
		v = v * 10 + (*p++ - '0');
	}
	if (*p != '_')
		return false;
	us = p + 1;
	dot = strrchr(us, '.');
	if (!dot || dot == us || (strcmp(dot, ".yaml") != 0 &&
				  strcmp(dot, ".yml") != 0))
		return false;
	for (p = us; p < dot; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	*version = v;
	*name = alyx__strndup(us, (size_t)(dot - us));
	return *name != NULL;
}

static int list_dir(const char *dir, mig_list *out, alyx__err *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = ALYX_OK;

	memset(out, 0, sizeof(*out));
	if (!d) {
		if (errno == ENOENT)
			return ALYX_OK;
		return alyx__err_set(err, ALYX_E_IO, NULL, "%s: %s", dir,
				     strerror(errno));
	}
	for (e = readdir(d); e; e = readdir(d)) {
		mig_file f = {0};
		mig_file *v;

		if (e->d_name[0] == '.' || (!ends_with(e->d_name, ".yaml") &&
					    !ends_with(e->d_name, ".yml")))
			continue;
		if (!parse_fname(e->d_name, &f.version, &f.name)) {
			alyx_buf det;

			alyx__buf_init(&det, 0);
			alyx__buf_adds(&det, "{\"file\":");
			alyx__json_strz(&det, e->d_name);
			alyx__buf_addc(&det, '}');
			rc = alyx__err_setd(err, ALYX_E_MIGRATION,
					    alyx__buf_take(&det),
					    "%s/%s: a migration file is named "
					    "NNN_name.yaml (digits, '_', "
					    "letters, digits and '_')", dir,
					    e->d_name);
			break;
		}
		if (out->n >= ALYX_MIGRATION_MAX_FILES) {
			alyx__free(f.name);
			rc = alyx__err_set(err, ALYX_E_TOOBIG, NULL,
					   "%s: more than %d migration files",
					   dir, ALYX_MIGRATION_MAX_FILES);
			break;
		}
		f.fname = alyx__strdup(e->d_name);
		f.path = alyx__path_join(dir, e->d_name);
		v = alyx__realloc(out->v, (out->n + 1) * sizeof(*v));
		if (!f.fname || !f.path || !v) {
			alyx__free(f.fname);
			alyx__free(f.path);
			alyx__free(f.name);
			if (v)
				out->v = v;
			rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			break;
		}
		out->v = v;
		out->v[out->n++] = f;
	}
	closedir(d);
	if (rc == ALYX_OK && out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_mig);
	for (size_t i = 1; rc == ALYX_OK && i < out->n; i++)
		if (out->v[i].version == out->v[i - 1].version)
			rc = alyx__err_set(err, ALYX_E_MIGRATION, NULL,
					   "%s: %s and %s have the same "
					   "version %lld", dir,
					   out->v[i - 1].fname, out->v[i].fname,
					   (long long)out->v[i].version);
	if (rc != ALYX_OK)
		mig_list_free(out);
	return rc;
}

/* Line (1-based) of the n-th "- " sequence entry under "operations:",
 * found in the text so errors can point at an operation. */
static void op_lines(const char *text, mig_doc *doc)
{
	const char *p = strstr(text, "\noperations:");
	unsigned k = 0;
	int line = 1;

	if (!p && strncmp(text, "operations:", 11) == 0)
		p = text;
	if (!p)
		return;
	for (const char *q = text; q < p; q++)
		line += *q == '\n';
	/* entries are the "- " lines at the indentation of the first one
	 * (a "- " inside an sql block scalar is deeper) */
	long indent = -1;

	for (; *p && k < doc->ops_count; p++) {
		if (*p != '\n')
			continue;
		line++;
		const char *s = p + 1;

		while (*s == ' ')
			s++;
		if (s[0] != '-' || (s[1] != ' ' && s[1] != '\n'))
			continue;
		if (indent < 0)
			indent = s - (p + 1);
		if (s - (p + 1) == indent)
			doc->ops[k++].line = line;
	}
}

static void doc_free(mig_doc *doc);

/* Reads and parses one file; *text gets its bytes (for the checksum). */
static int load_file(const mig_file *mf, mig_doc **out, char **text,
		     size_t *len, alyx__err *err)
{
	cyaml_config_t cfg = {0};
	alyx_buf log;
	cyaml_err_t cerr;
	int rc;

	*out = NULL;
	rc = alyx__read_file(mf->path, ALYX_MIGRATION_MAX_BYTES, text, len,
			     err);
	if (rc != ALYX_OK)
		return rc;
	alyx__buf_init(&log, 4096);
	cfg.log_fn = cy_log;
	cfg.log_ctx = &log;
	cfg.mem_fn = cy_mem;
	cfg.log_level = CYAML_LOG_ERROR;
	cfg.flags = CYAML_CFG_DEFAULT;
	cerr = cyaml_load_data((const uint8_t *)*text, *len, &cfg,
			       &doc_schema, (cyaml_data_t **)out, NULL);
	if (cerr != CYAML_OK) {
		alyx_buf d;
		char *m = log.data ? log.data : "", *nl, *at;
		unsigned line = 0, col = 0;

		/* "Load: <problem>\nLoad: Backtrace:\n  in mapping (line: 5,
		 * column: 17)\n...": the problem and the innermost place */
		at = strstr(m, "(line: ");
		if (at && sscanf(at, "(line: %u, column: %u)", &line, &col) < 1)
			line = 0;
		if (strncmp(m, "Load: ", 6) == 0)
			m += 6;
		nl = strchr(m, '\n');
		if (nl)
			*nl = 0;
		alyx__buf_init(&d, 0);
		alyx__buf_adds(&d, "{\"file\":");
		alyx__json_strz(&d, mf->path);
		alyx__buf_addf(&d, ",\"line\":%u,\"column\":%u,\"cause\":",
			       line, col);
		alyx__json_strz(&d, cyaml_strerror(cerr));
		alyx__buf_addc(&d, '}');
		if (!*m)
			m = (char *)cyaml_strerror(cerr);
		if (line)
			rc = alyx__err_setd(err, cerr == CYAML_ERR_OOM ?
					    ALYX_E_NOMEM : ALYX_E_MIGRATION,
					    alyx__buf_take(&d), "%s:%u:%u: %s",
					    mf->path, line, col, m);
		else
			rc = alyx__err_setd(err, cerr == CYAML_ERR_OOM ?
					    ALYX_E_NOMEM : ALYX_E_MIGRATION,
					    alyx__buf_take(&d), "%s: %s",
					    mf->path, m);
		*out = NULL;
	} else if ((*out)->version != mf->version) {
		rc = alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				   "%s: version %lld does not match the file "
				   "name's %lld", mf->path,
				   (long long)(*out)->version,
				   (long long)mf->version);
		doc_free(*out);
		*out = NULL;
	} else {
		op_lines(*text, *out);
	}
	alyx__buf_free(&log);
	return rc;
}

static void doc_free(mig_doc *doc)
{
	cyaml_config_t cfg = {0};

	if (!doc)
		return;
	cfg.mem_fn = cy_mem;
	cfg.log_level = CYAML_LOG_ERROR;
	cyaml_free(&cfg, &doc_schema, doc, 0);
}

/* ---- errors with the file and operation as context ---- */

static int op_fail(alyx__err *err, const mig_file *mf, const mig_op *op,
		   unsigned idx, int code, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* "<path>:<line>: operation N (type): <message>", details
 * {"file","line","operation","type","cause":<previous details>}.  With
 * fmt NULL the current err message is the message. */
static int op_fail(alyx__err *err, const mig_file *mf, const mig_op *op,
		   unsigned idx, int code, const char *fmt, ...)
{
	char msg[512];
	alyx_buf d;

	if (fmt) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		alyx__free(err->details);
		err->details = NULL;
	} else {
		snprintf(msg, sizeof(msg), "%s", err->msg);
		code = err->code;
	}
	alyx__buf_init(&d, 0);
	alyx__buf_adds(&d, "{\"file\":");
	alyx__json_strz(&d, mf->path);
	alyx__buf_addf(&d, ",\"line\":%d,\"operation\":%u,\"type\":",
		       op ? op->line : 0, idx + 1);
	alyx__json_strz(&d, op ? op->type : NULL);
	if (err->details) {
		alyx__buf_adds(&d, ",\"cause\":");
		alyx__buf_adds(&d, err->details);
	}
	alyx__buf_addc(&d, '}');
	alyx__free(err->details);
	err->details = NULL;
	if (op && op->line)
		return alyx__err_setd(err, code, alyx__buf_take(&d),
				      "%s:%d: operation %u (%s): %s", mf->path,
				      op->line, idx + 1, op->type, msg);
	return alyx__err_setd(err, code, alyx__buf_take(&d),
			      "%s: operation %u (%s): %s", mf->path, idx + 1,
			      op ? op->type : "?", msg);
}

/* ---- a mutable copy of a schema (the snapshot) ---- */

static char **strs_dup(char **v, size_t n, bool *ok)
{
	char **r;

	if (!n)
		return NULL;
	r = alyx__calloc(n, sizeof(*r));
	if (!r) {
		*ok = false;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i]) {
			r[i] = alyx__strdup(v[i]);
			*ok = *ok && r[i];
		}
	return r;
}

static void strs_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		alyx__free(v[i]);
	alyx__free(v);
}

static void field_clear(alyx__field *f)
{
	alyx__free(f->name);
	alyx__free(f->default_json);
	alyx__free(f->ref_collection);
	alyx__free(f->ref_field);
	alyx__free(f->pattern);
	strs_free(f->enum_json, f->n_enum);
	memset(f, 0, sizeof(*f));
}

static bool field_copy(alyx__field *d, const alyx__field *s)
{
	bool ok = true;

	*d = *s;
	d->pattern_code = NULL;	/* clones never match; SQL needs no regex */
	d->name = alyx__strdup(s->name);
	d->default_json = alyx__strdup(s->default_json);
	d->ref_collection = alyx__strdup(s->ref_collection);
	d->ref_field = alyx__strdup(s->ref_field);
	d->pattern = alyx__strdup(s->pattern);
	d->enum_json = strs_dup(s->enum_json, s->n_enum, &ok);
	return ok && d->name && (!s->default_json || d->default_json) &&
	       (!s->ref_collection || d->ref_collection) &&
	       (!s->ref_field || d->ref_field) && (!s->pattern || d->pattern);
}

static void index_clear(alyx__index *ix)
{
	alyx__free(ix->name);
	strs_free(ix->fields, ix->n_fields);
	memset(ix, 0, sizeof(*ix));
}

static bool index_copy(alyx__index *d, const alyx__index *s)
{
	bool ok = true;

	*d = *s;
	d->name = alyx__strdup(s->name);
	d->fields = strs_dup(s->fields, s->n_fields, &ok);
	return ok && d->name;
}

static void coll_clear(alyx__collection *c)
{
	alyx__free(c->name);
	for (size_t i = 0; i < c->n_fields; i++)
		field_clear(&c->fields[i]);
	alyx__free(c->fields);
	for (size_t i = 0; i < c->n_indexes; i++)
		index_clear(&c->indexes[i]);
	alyx__free(c->indexes);
	for (int r = 0; r < ALYX_RULE_COUNT; r++)
		alyx__free(c->rules[r]);
	memset(c, 0, sizeof(*c));
}

static bool coll_copy(alyx__collection *d, const alyx__collection *s)
{
	bool ok = true;

	*d = *s;
	d->read_plan = NULL;	/* it points into s's fields */
	d->fields = NULL;
	d->indexes = NULL;
	d->n_fields = d->n_indexes = 0;
	d->name = alyx__strdup(s->name);
	for (int r = 0; r < ALYX_RULE_COUNT; r++)
		d->rules[r] = NULL;
	if (!d->name)
		return false;
	for (int r = 0; r < ALYX_RULE_COUNT; r++)
		if (s->rules[r]) {
			d->rules[r] = alyx__strdup(s->rules[r]);
			ok = ok && d->rules[r];
		}
	if (s->n_fields) {
		d->fields = alyx__calloc(s->n_fields, sizeof(*d->fields));
		if (!d->fields)
			return false;
		for (size_t i = 0; i < s->n_fields; i++, d->n_fields++)
			if (!field_copy(&d->fields[i], &s->fields[i]))
				ok = false;
	}
	if (s->n_indexes) {
		d->indexes = alyx__calloc(s->n_indexes, sizeof(*d->indexes));
		if (!d->indexes)
			return false;
		for (size_t i = 0; i < s->n_indexes; i++, d->n_indexes++)
			if (!index_copy(&d->indexes[i], &s->indexes[i]))
				ok = false;
	}
	return ok;
}

static void snap_free(alyx__schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_colls; i++)
		coll_clear(&s->colls[i]);
	alyx__free(s->colls);
	alyx__free(s);
}

/* A deep copy owned by this file (free with snap_free); s may be NULL
 * (an empty schema). */
static alyx__schema *snap_clone(const alyx__schema *s)
{
	alyx__schema *d = alyx__calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->version = s ? s->version : 1;
	if (!s || !s->n_colls)
		return d;
	d->colls = alyx__calloc(s->n_colls, sizeof(*d->colls));
	if (!d->colls) {
		alyx__free(d);
		return NULL;
	}
	for (size_t i = 0; i < s->n_colls; i++) {
		d->n_colls++;
		if (!coll_copy(&d->colls[i], &s->colls[i])) {
			snap_free(d);
			return NULL;
		}
	}
	return d;
}

static alyx__collection *snap_coll(alyx__schema *s, const char *name)
{
	for (size_t i = 0; i < s->n_colls; i++)
		if (strcmp(s->colls[i].name, name) == 0)
			return &s->colls[i];
	return NULL;
}

static alyx__field *snap_field(alyx__collection *c, const char *name)
{
	for (size_t i = 0; i < c->n_fields; i++)
		if (strcmp(c->fields[i].name, name) == 0)
			return &c->fields[i];
	return NULL;
}

/* The first field of another collection (or this one) that references
 * coll.field (field NULL: any field of coll), formatted "c.f" in out. */
static bool referenced(const alyx__schema *s, const char *coll,
		       const char *field, bool other_colls_only,
		       char out[300])
{
	for (size_t i = 0; i < s->n_colls; i++) {
		const alyx__collection *c = &s->colls[i];

		if (other_colls_only && strcmp(c->name, coll) == 0)
			continue;
		for (size_t k = 0; k < c->n_fields; k++) {
			const alyx__field *f = &c->fields[k];

			if (f->ref_collection &&
			    strcmp(f->ref_collection, coll) == 0 &&
			    (!field || (f->ref_field &&
					strcmp(f->ref_field, field) == 0))) {
				snprintf(out, 300, "%s.%s", c->name, f->name);
				return true;
			}
		}
	}
	return false;
}

static void remove_index_at(alyx__collection *c, size_t i)
{
	index_clear(&c->indexes[i]);
	memmove(&c->indexes[i], &c->indexes[i + 1],
		(c->n_indexes - i - 1) * sizeof(*c->indexes));
	c->n_indexes--;
}

static bool index_has(const alyx__index *ix, const char *field)
{
	for (size_t k = 0; k < ix->n_fields; k++)
		if (strcmp(ix->fields[k], field) == 0)
			return true;
	return false;
}

/* Does a literal default (JSON text) fit type t? */
static bool default_fits(const char *json, alyx__type t)
{
	char c = json ? json[0] : 0;

	switch (t) {
	case ALYX_T_INT:
	case ALYX_T_FLOAT:
		return c == '-' || isdigit((unsigned char)c);
	case ALYX_T_BOOL:
		return c == 't' || c == 'f';
	case ALYX_T_JSON:
		return true;
	default:
		return c == '"' || c == 'n';
	}
}

/* ---- operations ---- */

enum op_kind { OP_RENAME, OP_DROP_FIELD, OP_DROP_COLL, OP_CHANGE_TYPE,
	       OP_SQL };

/* Keys each operation type takes: bit per optional key of mig_op. */
enum { K_COLL = 1, K_FROM = 2, K_TO = 4, K_FIELD = 8, K_USING = 16,
       K_UP = 32, K_DOWN = 64 };

static const struct {
	const char *name;
	enum op_kind kind;
	unsigned required, allowed;
} op_types[] = {
	{"rename_field", OP_RENAME, K_COLL | K_FROM | K_TO,
	 K_COLL | K_FROM | K_TO},
	{"drop_field", OP_DROP_FIELD, K_COLL | K_FIELD, K_COLL | K_FIELD},
	{"drop_collection", OP_DROP_COLL, K_COLL, K_COLL},
	{"change_type", OP_CHANGE_TYPE, K_COLL | K_FIELD | K_TO,
	 K_COLL | K_FIELD | K_TO | K_USING},
	{"sql", OP_SQL, K_UP, K_UP | K_DOWN},
};

static unsigned op_keys(const mig_op *op)
{
	return (op->collection ? K_COLL : 0) | (op->from ? K_FROM : 0) |
	       (op->to ? K_TO : 0) | (op->field ? K_FIELD : 0) |
	       (op->using_ ? K_USING : 0) | (op->up ? K_UP : 0) |
	       (op->down ? K_DOWN : 0);
}

static const char *const key_names[] = {"collection", "from", "to", "field",
					"using", "up", "down"};

/* Checks the operation's shape; *kind gets its type. */
static int op_check(const mig_file *mf, const mig_op *op, unsigned idx,
		    enum op_kind *kind, alyx__err *err)
{
	unsigned have = op_keys(op);
	size_t t;

	for (t = 0; t < ALYX_ARRAY_LEN(op_types); t++)
		if (strcmp(op->type, op_types[t].name) == 0)
			break;
	if (t == ALYX_ARRAY_LEN(op_types))
		return op_fail(err, mf, op, idx, ALYX_E_MIGRATION,
			       "unknown operation type '%s' (rename_field, "
			       "drop_field, drop_collection, change_type, "
			       "sql)", op->type);
	for (unsigned k = 0; k < ALYX_ARRAY_LEN(key_names); k++) {
		unsigned bit = 1u << k;

		if ((op_types[t].required & bit) && !(have & bit))
			return op_fail(err, mf, op, idx, ALYX_E_MIGRATION,
				       "missing key '%s'", key_names[k]);
		if (!(op_types[t].allowed & bit) && (have & bit))
			return op_fail(err, mf, op, idx, ALYX_E_MIGRATION,
				       "key '%s' does not belong to %s",
				       key_names[k], op->type);
	}
	*kind = op_types[t].kind;
	return ALYX_OK;
}

/* What applying a migration accumulates. */
typedef struct mig_run {
	alyx__schema *snap;	/* the snapshot, owned (snap_clone) */
	bool tolerant;		/* skip structural ops already reflected */
	bool dry;		/* snapshot only, no database */
	alyx_buf undo;		/* JSON objects, newest last, comma-joined */
	alyx_buf downs;		/* the sql `down` texts, newest first */
	alyx_buf notes;		/* JSON strings, comma-joined */
	bool irreversible;	/* an sql op without `down` */
	const alyx__schema *project;	/* schema.yaml, or NULL */
} mig_run;

static void run_note(mig_run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void run_note(mig_run *r, const char *fmt, ...)
{
	char m[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	if (r->notes.len)
		alyx__buf_addc(&r->notes, ',');
	alyx__json_strz(&r->notes, m);
}

/* Appends one undo step: {"op":op,"collection":c,k1:v1,k2:v2}. */
static void undo_add(mig_run *r, const char *op, const char *coll,
		     const char *k1, const char *v1, const char *k2,
		     const char *v2)
{
	alyx_buf *b = &r->undo;

	if (b->len)
		alyx__buf_addc(b, ',');
	alyx__buf_adds(b, "{\"op\":");
	alyx__json_strz(b, op);
	if (coll) {
		alyx__buf_adds(b, ",\"collection\":");
		alyx__json_strz(b, coll);
	}
	if (k1) {
		alyx__buf_addc(b, ',');
		alyx__json_strz(b, k1);
		alyx__buf_addc(b, ':');
		alyx__json_strz(b, v1);
	}
	if (k2) {
		alyx__buf_addc(b, ',');
		alyx__json_strz(b, k2);
		alyx__buf_addc(b, ':');
		alyx__json_strz(b, v2);
	}
	alyx__buf_addc(b, '}');
}

/* Replaces r->snap by `next` after bringing the database from the one to
 * the other (unless dry). */
static int run_sync(sqlite3 *db, mig_run *r, alyx__schema *next,
		    const alyx__ddl_conv *conv, size_t n_conv, alyx__err *err)
{
	int rc = ALYX_OK;

	if (!r->dry)
		rc = alyx__ddl_sync(db, r->snap, next, NULL, conv, n_conv,
				    err);
	if (rc != ALYX_OK) {
		snap_free(next);
		return rc;
	}
	snap_free(r->snap);
	r->snap = next;
	return ALYX_OK;
}

static int nomem(alyx__err *err)
{
	return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
}

static int do_rename(sqlite3 *db, mig_run *r, const char *coll,
		     const char *from, const char *to, alyx__err *err)
{
	alyx__schema *next;
	alyx__collection *c = snap_coll(r->snap, coll);
	alyx__ddl_conv cv;
	char *expr;
	int rc;

	if (c && r->tolerant && !snap_field(c, from) && snap_field(c, to)) {
		run_note(r, "skipped rename of %s.%s: the schema already has "
			 "%s", coll, from, to);
		return ALYX_OK;
	}
	if (!c)
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "no collection '%s' in the applied schema",
				     coll);
	if (!snap_field(c, from))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "no field '%s.%s' in the applied schema",
				     coll, from);
	if (!alyx__ident_valid(to) || strncmp(to, "_alyx", 5) == 0)
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "'%s' is not a valid field name", to);
	if (snap_field(c, to))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "field '%s.%s' exists already", coll, to);
	next = snap_clone(r->snap);
	if (!next)
		return nomem(err);
	c = snap_coll(next, coll);
	alyx__field *f = snap_field(c, from);
	char *nn = alyx__strdup(to);

	if (!nn) {
		snap_free(next);
		return nomem(err);
	}
	alyx__free(f->name);
	f->name = nn;
	for (size_t i = 0; i < c->n_indexes; i++)
		for (size_t k = 0; k < c->indexes[i].n_fields; k++)
			if (strcmp(c->indexes[i].fields[k], from) == 0) {
				char *x = alyx__strdup(to);

				if (!x) {
					snap_free(next);
					return nomem(err);
				}
				alyx__free(c->indexes[i].fields[k]);
				c->indexes[i].fields[k] = x;
			}
	for (size_t i = 0; i < next->n_colls; i++)
		for (size_t k = 0; k < next->colls[i].n_fields; k++) {
			alyx__field *g = &next->colls[i].fields[k];

			if (g->ref_collection && g->ref_field &&
			    strcmp(g->ref_collection, coll) == 0 &&
			    strcmp(g->ref_field, from) == 0) {
				char *x = alyx__strdup(to);

				if (!x) {
					snap_free(next);
					return nomem(err);
				}
				alyx__free(g->ref_field);
				g->ref_field = x;
			}
		}
	expr = alyx__quote_ident(from);
	if (!expr) {
		snap_free(next);
		return nomem(err);
	}
	cv = (alyx__ddl_conv){coll, to, expr};
	rc = run_sync(db, r, next, &cv, 1, err);
	alyx__free(expr);
	if (rc == ALYX_OK)
		undo_add(r, "rename_field", coll, "from", to, "to", from);
	return rc;
}

static int do_drop_field(sqlite3 *db, mig_run *r, const char *coll,
			 const char *field, alyx__err *err)
{
	alyx__collection *c = snap_coll(r->snap, coll);
	alyx__schema *next;
	char by[300];
	int rc;

	if (r->tolerant && (!c || !snap_field(c, field))) {
		run_note(r, "skipped drop of %s.%s: not in the schema", coll,
			 field);
		return ALYX_OK;
	}
	if (!c || !snap_field(c, field))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "no field '%s.%s' in the applied schema",
				     coll, field);
	if (snap_field(c, field)->primary)
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "'%s.%s' is the primary key and cannot "
				     "be dropped", coll, field);
	if (referenced(r->snap, coll, field, false, by))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "'%s.%s' is referenced by %s: drop or "
				     "change that field first", coll, field,
				     by);
	next = snap_clone(r->snap);
	if (!next)
		return nomem(err);
	c = snap_coll(next, coll);
	for (size_t i = 0; i < c->n_fields; i++)
		if (strcmp(c->fields[i].name, field) == 0) {
			field_clear(&c->fields[i]);
			memmove(&c->fields[i], &c->fields[i + 1],
				(c->n_fields - i - 1) * sizeof(*c->fields));
			c->n_fields--;
			break;
		}
	for (size_t i = 0; i < c->n_indexes;) {
		if (index_has(&c->indexes[i], field)) {
			run_note(r, "index %s dropped with %s.%s",
				 c->indexes[i].name, coll, field);
			remove_index_at(c, i);
		} else {
			i++;
		}
	}
	for (size_t i = 0; i < c->n_fields; i++)
		if (c->fields[i].primary)
			c->pk = i;
	rc = run_sync(db, r, next, NULL, 0, err);
	if (rc == ALYX_OK)
		undo_add(r, "restore_field", coll, "field", field, NULL, NULL);
	return rc;
}

static int do_drop_coll(sqlite3 *db, mig_run *r, const char *coll,
			alyx__err *err)
{
	alyx__schema *next;
	char by[300];
	int rc;

	if (!snap_coll(r->snap, coll)) {
		if (r->tolerant) {
			run_note(r, "skipped drop of collection %s: not in "
				 "the schema", coll);
			return ALYX_OK;
		}
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "no collection '%s' in the applied schema",
				     coll);
	}
	if (referenced(r->snap, coll, NULL, true, by))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "collection '%s' is referenced by %s: "
				     "drop or change that field first", coll,
				     by);
	next = snap_clone(r->snap);
	if (!next)
		return nomem(err);
	for (size_t i = 0; i < next->n_colls; i++)
		if (strcmp(next->colls[i].name, coll) == 0) {
			coll_clear(&next->colls[i]);
			memmove(&next->colls[i], &next->colls[i + 1],
				(next->n_colls - i - 1) *
					sizeof(*next->colls));
			next->n_colls--;
			break;
		}
	rc = run_sync(db, r, next, NULL, 0, err);
	if (rc == ALYX_OK)
		undo_add(r, "restore_collection", coll, NULL, NULL, NULL,
			 NULL);
	return rc;
}

/* Clears the options that do not apply to the new type. */
static void retype_field(alyx__field *f, alyx__type t)
{
	bool num = t == ALYX_T_INT || t == ALYX_T_FLOAT;
	bool str = t == ALYX_T_STRING || t == ALYX_T_TEXT;

	f->type = t;
	if ((f->default_kind == ALYX_DEF_LITERAL &&
	     !default_fits(f->default_json, t)) ||
	    (f->default_kind == ALYX_DEF_AUTO && t != ALYX_T_UUID) ||
	    (f->default_kind == ALYX_DEF_NOW && t != ALYX_T_TIMESTAMP)) {
		f->default_kind = ALYX_DEF_NONE;
		alyx__free(f->default_json);
		f->default_json = NULL;
	}
	if (!num)
		f->has_min = f->has_max = false;
	if (!str) {
		f->has_min_length = f->has_max_length = false;
		f->format = ALYX_FMT_NONE;
		alyx__free(f->pattern);
		f->pattern = NULL;
	}
	if (t != ALYX_T_TIMESTAMP)
		f->on_update_now = false;
	strs_free(f->enum_json, f->n_enum);
	f->enum_json = NULL;
	f->n_enum = 0;
}

/* After a type change the field takes its validation and default from
 * schema.yaml when that has the field with the new type, so the schema
 * diff afterwards has nothing to tighten. */
static bool take_checks(alyx__field *f, const alyx__field *p)
{
	alyx__field t;
	bool ok;

	ok = field_copy(&t, p);
	if (!ok) {
		field_clear(&t);
		return false;
	}
	alyx__free(f->default_json);
	alyx__free(f->pattern);
	strs_free(f->enum_json, f->n_enum);
	f->default_kind = t.default_kind;
	f->default_json = t.default_json;
	f->has_min_length = t.has_min_length;
	f->has_max_length = t.has_max_length;
	f->has_min = t.has_min;
	f->has_max = t.has_max;
	f->min_length = t.min_length;
	f->max_length = t.max_length;
	f->min = t.min;
	f->max = t.max;
	f->format = t.format;
	f->pattern = t.pattern;
	f->enum_json = t.enum_json;
	f->n_enum = t.n_enum;
	f->on_update_now = t.on_update_now;
	t.default_json = t.pattern = NULL;
	t.enum_json = NULL;
	t.n_enum = 0;
	field_clear(&t);
	return true;
}

static int do_change_type(sqlite3 *db, mig_run *r, const char *coll,
			  const char *field, const char *to, const char *using_,
			  alyx__err *err)
{
	alyx__collection *c = snap_coll(r->snap, coll);
	alyx__field *f = c ? snap_field(c, field) : NULL;
	alyx__schema *next;
	alyx__type t;
	alyx__ddl_conv cv;
	const alyx__collection *pc;
	const alyx__field *pf;
	alyx__field *nf;
	char by[300], *expr = NULL, *qf;
	int rc;

	if (!alyx__type_parse(to, &t))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "unknown type '%s'", to);
	if (r->tolerant && (!f || f->type == t)) {
		run_note(r, "skipped type change of %s.%s: not needed", coll,
			 field);
		return ALYX_OK;
	}
	if (!f)
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "no field '%s.%s' in the applied schema",
				     coll, field);
	if (f->type == t && !using_)
		return ALYX_OK;
	if (f->ref_collection || referenced(r->snap, coll, field, false, by))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "'%s.%s' is part of a reference; change "
				     "the reference first", coll, field);
	next = snap_clone(r->snap);
	if (!next)
		return nomem(err);
	const char *old_type = alyx__type_name(f->type);

	nf = snap_field(snap_coll(next, coll), field);
	retype_field(nf, t);
	pc = r->project ? alyx__schema_coll(r->project, coll) : NULL;
	pf = pc ? alyx__coll_field(pc, field) : NULL;
	if (pf && pf->type == t && !take_checks(nf, pf)) {
		snap_free(next);
		return nomem(err);
	}
	qf = alyx__quote_ident(field);
	if (qf)
		expr = using_ ? alyx__strdup(using_) :
			alyx__asprintf("CAST(%s AS %s)", qf, alyx__type_sql(t));
	alyx__free(qf);
	if (!expr) {
		snap_free(next);
		return nomem(err);
	}
	cv = (alyx__ddl_conv){coll, field, expr};
	rc = run_sync(db, r, next, &cv, 1, err);
	alyx__free(expr);
	if (rc == ALYX_OK)
		undo_add(r, "change_type", coll, "field", field, "to",
			 old_type);
	return rc;
}

static int do_sql(sqlite3 *db, mig_run *r, const char *up, const char *down,
		  alyx__err *err)
{
	int rc = ALYX_OK;

	if (!r->dry)
		rc = alyx__ddl_exec(db, up, "sql up", err);
	if (rc != ALYX_OK)
		return rc;
	if (!down) {
		r->irreversible = true;
		undo_add(r, "irreversible", NULL, NULL, NULL, NULL, NULL);
		return ALYX_OK;
	}
	undo_add(r, "sql", NULL, "sql", down, NULL, NULL);
	return ALYX_OK;
}

/* Runs every operation of `doc` on the snapshot (and the database). */
static int run_ops(sqlite3 *db, mig_run *r, const mig_file *mf,
		   const mig_doc *doc, alyx__err *err)
{
	if (doc->ops_count == 0)
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "%s: no operations yet (replace "
				     "'operations: []' with a list; see the "
				     "commented examples)", mf->path);
	for (unsigned i = 0; i < doc->ops_count; i++) {
		const mig_op *op = &doc->ops[i];
		enum op_kind kind = OP_SQL;
		int rc = op_check(mf, op, i, &kind, err);

		if (rc != ALYX_OK)
			return rc;
		switch (kind) {
		case OP_RENAME:
			rc = do_rename(db, r, op->collection, op->from, op->to,
				       err);
			break;
		case OP_DROP_FIELD:
			rc = do_drop_field(db, r, op->collection, op->field,
					   err);
			break;
		case OP_DROP_COLL:
			rc = do_drop_coll(db, r, op->collection, err);
			break;
		case OP_CHANGE_TYPE:
			rc = do_change_type(db, r, op->collection, op->field,
					    op->to, op->using_, err);
			break;
		case OP_SQL:
			rc = do_sql(db, r, op->up, op->down, err);
			if (rc == ALYX_OK && op->down) {
				if (r->downs.len)
					alyx__buf_adds(&r->downs, "\n");
				alyx__buf_adds(&r->downs, op->down);
			}
			break;
		}
		if (rc != ALYX_OK)
			return op_fail(err, mf, op, i, rc, NULL);
	}
	return ALYX_OK;
}

static void run_init(mig_run *r)
{
	memset(r, 0, sizeof(*r));
	alyx__buf_init(&r->undo, 0);
	alyx__buf_init(&r->downs, 0);
	alyx__buf_init(&r->notes, 0);
}

static void run_free(mig_run *r)
{
	snap_free(r->snap);
	alyx__buf_free(&r->undo);
	alyx__buf_free(&r->downs);
	alyx__buf_free(&r->notes);
}

/* ---- history ---- */

typedef struct applied {
	int64_t id;
	int64_t version;
	char *name, *file, *applied_at, *checksum;
} applied;

typedef struct applied_list {
	applied *v;
	size_t n;
} applied_list;

static void applied_free(applied_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		alyx__free(l->v[i].name);
		alyx__free(l->v[i].file);
		alyx__free(l->v[i].applied_at);
		alyx__free(l->v[i].checksum);
	}
	alyx__free(l->v);
	l->v = NULL;
	l->n = 0;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return alyx__strdup(s ? s : "");
}

/* Applied migrations in the order they were applied. */
static int load_applied(sqlite3 *db, applied_list *out, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	/* status may run on a read-only connection of a database that was
	 * never initialised */
	rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type="
				"'table' AND name='_alyx_migrations'", -1, &st,
				NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		st = NULL;
		if (rc == SQLITE_DONE)
			return ALYX_OK;
		rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT id, CAST(version AS "
					"INTEGER), name, file, applied_at, "
					"checksum FROM _alyx_migrations ORDER "
					"BY id", -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		applied *v = alyx__realloc(out->v, (out->n + 1) * sizeof(*v));
		applied *a;

		if (!v) {
			rc = SQLITE_NOMEM;
			break;
		}
		out->v = v;
		a = &v[out->n++];
		a->id = sqlite3_column_int64(st, 0);
		a->version = sqlite3_column_int64(st, 1);
		a->name = col_dup(st, 2);
		a->file = col_dup(st, 3);
		a->applied_at = col_dup(st, 4);
		a->checksum = col_dup(st, 5);
		if (!a->name || !a->file || !a->applied_at || !a->checksum) {
			rc = SQLITE_NOMEM;
			break;
		}
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		applied_free(out);
		return alyx__conn_err(db, rc, "reading _alyx_migrations", err);
	}
	return ALYX_OK;
}

static const applied *find_applied(const applied_list *l, int64_t version)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].version == version)
			return &l->v[i];
	return NULL;
}

static const mig_file *find_file(const mig_list *l, int64_t version)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].version == version)
			return &l->v[i];
	return NULL;
}

static int file_checksum(const mig_file *mf, char out[65], alyx__err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = alyx__read_file(mf->path, ALYX_MIGRATION_MAX_BYTES, &text,
				 &len, err);

	if (rc == ALYX_OK)
		alyx__sha256_hex(text, len, out);
	alyx__free(text);
	return rc;
}

/* Loads directory, history and applied schema; checks nothing. */
typedef struct mig_state {
	mig_list files;
	applied_list done;
} mig_state;

static void state_free(mig_state *s)
{
	mig_list_free(&s->files);
	applied_free(&s->done);
}

static int state_load(sqlite3 *db, const char *dir, bool init,
		      mig_state *s, alyx__err *err)
{
	int rc = ALYX_OK;

	memset(s, 0, sizeof(*s));
	if (!db || !dir)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "no database or migrations directory");
	if (init)
		rc = alyx__store_init(db, err);
	if (rc == ALYX_OK)
		rc = list_dir(dir, &s->files, err);
	if (rc == ALYX_OK)
		rc = load_applied(db, &s->done, err);
	if (rc != ALYX_OK)
		state_free(s);
	return rc;
}

/* ---- status ---- */

static void json_file_entry(alyx_buf *b, const mig_file *mf)
{
	alyx__buf_addf(b, "{\"version\":%lld,\"name\":", (long long)mf->version);
	alyx__json_strz(b, mf->name);
	alyx__buf_adds(b, ",\"file\":");
	alyx__json_strz(b, mf->fname);
}

/* Is this a database where nothing was ever applied? */
static bool is_fresh(const alyx__schema *applied_schema,
		     const mig_state *s)
{
	return !applied_schema && s->done.n == 0;
}

/* Runs the pending files on a copy of the applied schema (no database
 * change) and returns the schema they would leave. */
static int simulate(sqlite3 *db, const mig_state *s, const alyx__schema *cur,
		    const alyx__schema *project, bool fresh,
		    alyx__schema **out, alyx__err *err)
{
	mig_run r;
	int rc = ALYX_OK;

	*out = NULL;
	run_init(&r);
	r.dry = true;
	r.project = project;
	r.tolerant = fresh;
	r.snap = snap_clone(fresh ? project : cur);
	if (!r.snap)
		rc = nomem(err);
	for (size_t i = 0; rc == ALYX_OK && i < s->files.n; i++) {
		const mig_file *mf = &s->files.v[i];
		mig_doc *doc = NULL;
		char *text = NULL;
		size_t len;

		if (find_applied(&s->done, mf->version))
			continue;
		rc = load_file(mf, &doc, &text, &len, err);
		if (rc == ALYX_OK)
			rc = run_ops(db, &r, mf, doc, err);
		doc_free(doc);
		alyx__free(text);
	}
	if (rc == ALYX_OK) {
		*out = r.snap;
		r.snap = NULL;
	}
	run_free(&r);
	return rc;
}

int alyx__migrate_status(sqlite3 *db, const char *dir,
			 const alyx__schema *project_schema, alyx_buf *out,
			 alyx__err *err)
{
	alyx__schema *cur = NULL;
	alyx__plan *plan = NULL;
	mig_state s;
	mig_run r;
	bool first = true, sim_ok = true;
	int rc;

	rc = state_load(db, dir, false, &s, err);
	if (rc != ALYX_OK)
		return rc;
	run_init(&r);
	rc = alyx__store_load_schema(db, &cur, err);
	if (rc != ALYX_OK)
		goto out;
	r.dry = true;
	r.project = project_schema;
	r.tolerant = is_fresh(cur, &s) && project_schema;
	r.snap = snap_clone(r.tolerant ? project_schema : cur);
	if (!r.snap) {
		rc = nomem(err);
		goto out;
	}
	alyx__buf_adds(out, "{\"applied\":[");
	for (size_t i = 0; i < s.done.n; i++) {
		const applied *a = &s.done.v[i];
		const mig_file *mf = find_file(&s.files, a->version);
		char sum[65];
		bool modified = false;

		if (mf) {
			rc = file_checksum(mf, sum, err);
			if (rc != ALYX_OK)
				goto out;
			modified = strcmp(sum, a->checksum) != 0;
		}
		alyx__buf_addf(out, "%s{\"version\":%lld,\"name\":",
			       i ? "," : "", (long long)a->version);
		alyx__json_strz(out, a->name);
		alyx__buf_adds(out, ",\"file\":");
		alyx__json_strz(out, a->file);
		alyx__buf_adds(out, ",\"applied_at\":");
		alyx__json_strz(out, a->applied_at);
		alyx__buf_adds(out, ",\"checksum\":");
		alyx__json_strz(out, a->checksum);
		alyx__buf_addf(out, ",\"modified\":%s,\"missing\":%s}",
			       modified ? "true" : "false",
			       mf ? "false" : "true");
	}
	alyx__buf_adds(out, "],\"pending\":[");
	for (size_t i = 0; i < s.files.n; i++) {
		const mig_file *mf = &s.files.v[i];
		mig_doc *doc = NULL;
		char *text = NULL;
		size_t len;
		alyx__err e = {0};

		if (find_applied(&s.done, mf->version))
			continue;
		alyx__buf_adds(out, first ? "" : ",");
		first = false;
		json_file_entry(out, mf);
		/* simulate on the snapshot to preview the schema diff */
		int lrc = load_file(mf, &doc, &text, &len, &e);

		if (lrc == ALYX_OK && sim_ok)
			lrc = run_ops(db, &r, mf, doc, &e);
		if (lrc != ALYX_OK) {
			if (lrc == ALYX_E_NOMEM) {
				alyx__err_move(err, &e);
				rc = lrc;
				doc_free(doc);
				alyx__free(text);
				goto out;
			}
			sim_ok = false;
			alyx__buf_adds(out, ",\"error\":");
			alyx__json_strz(out, e.msg);
		}
		alyx__err_clear(&e);
		alyx__buf_addc(out, '}');
		doc_free(doc);
		alyx__free(text);
	}
	alyx__buf_adds(out, "],\"schema\":");
	if (project_schema && sim_ok) {
		char *pj;

		rc = alyx__schema_diff(r.snap, project_schema, &plan, err);
		if (rc != ALYX_OK)
			goto out;
		pj = alyx__plan_to_json(plan);
		if (!pj) {
			rc = nomem(err);
			goto out;
		}
		alyx__buf_adds(out, pj);
		alyx__free(pj);
	} else {
		alyx__buf_adds(out, "null");
	}
	alyx__buf_adds(out, ",\"baseline\":");
	alyx__buf_adds(out, is_fresh(cur, &s) && project_schema ? "true" :
		       "false");
	alyx__buf_addc(out, '}');
	if (out->err)
		rc = alyx__err_set(err, out->err, NULL,
				   "status output too large");
out:
	alyx__plan_free(plan);
	alyx__schema_free(cur);
	run_free(&r);
	state_free(&s);
	return rc;
}

/* ---- apply ---- */

static int insert_history(sqlite3 *db, const mig_file *mf,
			  const mig_doc *doc, const char *sum,
			  const char *before, mig_run *r, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	char now[25], ver[24];
	alyx_buf undo;
	int rc;

	alyx__buf_init(&undo, 0);
	alyx__buf_addc(&undo, '[');
	/* newest first, so rollback runs them in order */
	{
		cJSON *arr;
		char *tmp = alyx__asprintf("[%s]", r->undo.data ?
					   r->undo.data : "");

		arr = tmp ? cJSON_Parse(tmp) : NULL;
		alyx__free(tmp);
		if (!arr) {
			alyx__buf_free(&undo);
			return nomem(err);
		}
		for (int i = cJSON_GetArraySize(arr) - 1; i >= 0; i--) {
			char *p = cJSON_PrintUnformatted(
				cJSON_GetArrayItem(arr, i));

			if (!p) {
				cJSON_Delete(arr);
				alyx__buf_free(&undo);
				return nomem(err);
			}
			if (undo.len > 1)
				alyx__buf_addc(&undo, ',');
			alyx__buf_adds(&undo, p);
			cJSON_free(p);
		}
		cJSON_Delete(arr);
	}
	alyx__buf_addc(&undo, ']');
	alyx__iso8601_ms(alyx__now_ms(), now);
	snprintf(ver, sizeof(ver), "%lld", (long long)mf->version);
	rc = sqlite3_prepare_v2(db, "INSERT INTO _alyx_migrations(version, "
				"name, applied_at, checksum, file, down_sql, "
				"schema_before, undo) VALUES "
				"(?,?,?,?,?,?,?,?)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, ver, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, doc->name ? doc->name : mf->name, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, sum, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, mf->fname, -1, SQLITE_STATIC);
		if (r->downs.len)
			sqlite3_bind_text(st, 6, r->downs.data, -1,
					  SQLITE_STATIC);
		if (before)
			sqlite3_bind_text(st, 7, before, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, undo.data, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	alyx__buf_free(&undo);
	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, "recording the migration", err);
	return ALYX_OK;
}

/* Does the migration change tables (so it runs with foreign_keys off)?
 * sql-only migrations keep foreign keys and their ON DELETE actions. */
static bool structural(const mig_doc *doc)
{
	for (unsigned i = 0; i < doc->ops_count; i++)
		if (strcmp(doc->ops[i].type, "sql") != 0)
			return true;
	return false;
}

/* Applies one file in its own transaction. */
static int apply_one(sqlite3 *db, const mig_file *mf, bool tolerant,
		     const alyx__schema *project, alyx_buf *report,
		     bool first, alyx__err *err)
{
	alyx__schema *cur = NULL;
	mig_doc *doc = NULL;
	char *text = NULL, *before = NULL, sum[65];
	size_t len = 0;
	alyx__ddl_tx tx;
	mig_run r;
	int rc;

	run_init(&r);
	r.tolerant = tolerant;
	r.project = project;
	rc = load_file(mf, &doc, &text, &len, err);
	if (rc != ALYX_OK)
		goto out;
	alyx__sha256_hex(text, len, sum);
	rc = alyx__ddl_begin(db, &tx, structural(doc), err);
	if (rc != ALYX_OK)
		goto out;
	rc = alyx__store_load_schema_json(db, &before, err);
	if (rc == ALYX_OK)
		rc = alyx__store_load_schema(db, &cur, err);
	if (rc == ALYX_OK) {
		r.snap = snap_clone(cur);
		if (!r.snap)
			rc = nomem(err);
	}
	if (rc == ALYX_OK)
		rc = run_ops(db, &r, mf, doc, err);
	if (rc == ALYX_OK && (cur || r.snap->n_colls))
		rc = alyx__store_save_schema(db, r.snap, err);
	if (rc == ALYX_OK)
		rc = insert_history(db, mf, doc, sum, before, &r, err);
	if (rc == ALYX_OK)
		rc = alyx__ddl_commit(db, &tx, err);
	else
		alyx__ddl_rollback(db, &tx);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(report, first ? "" : ",");
	json_file_entry(report, mf);
	alyx__buf_adds(report, ",\"notes\":[");
	if (r.notes.len)
		alyx__buf_adds(report, r.notes.data);
	alyx__buf_adds(report, "]}");
out:
	if (rc != ALYX_OK && strncmp(err->msg, mf->path,
				     strlen(mf->path)) != 0) {
		char m[512], *d = err->details;

		snprintf(m, sizeof(m), "%s", err->msg);
		err->details = NULL;
		alyx__err_setd(err, rc, d, "%s: %s", mf->path, m);
	}
	alyx__schema_free(cur);
	alyx__free(before);
	alyx__free(text);
	doc_free(doc);
	run_free(&r);
	return rc;
}

/* ALYX_E_CHECKSUM listing every applied file that was edited. */
static int check_sums(const mig_state *s, alyx__err *err)
{
	alyx_buf d;
	int n = 0, rc = ALYX_OK;
	const char *first = NULL;

	alyx__buf_init(&d, 1 << 16);
	alyx__buf_adds(&d, "{\"modified\":[");
	for (size_t i = 0; i < s->done.n; i++) {
		const mig_file *mf = find_file(&s->files, s->done.v[i].version);
		char sum[65];

		if (!mf)
			continue;
		rc = file_checksum(mf, sum, err);
		if (rc != ALYX_OK)
			break;
		if (strcmp(sum, s->done.v[i].checksum) == 0)
			continue;
		if (!first)
			first = mf->path;
		alyx__buf_adds(&d, n++ ? "," : "");
		json_file_entry(&d, mf);
		alyx__buf_adds(&d, ",\"checksum\":");
		alyx__json_strz(&d, s->done.v[i].checksum);
		alyx__buf_adds(&d, ",\"actual\":");
		alyx__json_strz(&d, sum);
		alyx__buf_addc(&d, '}');
	}
	alyx__buf_adds(&d, "]}");
	if (rc == ALYX_OK && n)
		return alyx__err_setd(err, ALYX_E_CHECKSUM, alyx__buf_take(&d),
				      "%s was edited after it was applied "
				      "(%d modified file(s)); restore it or "
				      "write a new migration", first, n);
	alyx__buf_free(&d);
	return rc;
}

/* Adds "applied":[...] to the error's details object, so a caller learns
 * which migrations went in before the failure. */
static void details_add_applied(alyx__err *err, const alyx_buf *done)
{
	alyx_buf d;

	alyx__buf_init(&d, 0);
	alyx__buf_adds(&d, "{\"applied\":[");
	if (done->len)
		alyx__buf_adds(&d, done->data);
	alyx__buf_addc(&d, ']');
	if (err->details && err->details[0] == '{' && err->details[1] != '}') {
		alyx__buf_addc(&d, ',');
		alyx__buf_adds(&d, err->details + 1);
	} else {
		alyx__buf_addc(&d, '}');
	}
	if (!d.err) {
		alyx__free(err->details);
		err->details = alyx__buf_take(&d);
	}
	alyx__buf_free(&d);
}

int alyx__migrate_apply(sqlite3 *db, const char *dir,
			const alyx__schema *project_schema, alyx_buf *report,
			alyx__err *err)
{
	alyx__schema *cur = NULL;
	alyx__plan *plan = NULL;
	char *pj = NULL;
	alyx_buf done;
	mig_state s;
	bool fresh = false;
	int rc;

	alyx__buf_init(&done, 0);
	rc = state_load(db, dir, true, &s, err);
	if (rc != ALYX_OK)
		return rc;
	rc = check_sums(&s, err);
	if (rc == ALYX_OK)
		rc = alyx__store_load_schema(db, &cur, err);
	if (rc != ALYX_OK)
		goto out;
	fresh = is_fresh(cur, &s) && project_schema;
	if (project_schema) {
		/* Refuse before anything runs when a file is bad or the
		 * files leave destructive changes to schema.yaml. */
		alyx__schema *sim = NULL;

		rc = simulate(db, &s, cur, project_schema, fresh, &sim, err);
		if (rc == ALYX_OK)
			rc = alyx__schema_diff(sim, project_schema, &plan,
					       err);
		snap_free(sim);
		if (rc == ALYX_OK && plan->destructive)
			rc = alyx__plan_refuse(plan, err);
		alyx__plan_free(plan);
		plan = NULL;
		if (rc != ALYX_OK)
			goto out;
	}
	if (fresh) {
		/* An empty database: create schema.yaml's collections first,
		 * then run the files against them, skipping structural
		 * operations the schema already reflects. */
		rc = alyx__store_apply_schema(db, NULL, project_schema, NULL,
					      0, err);
		if (rc != ALYX_OK)
			goto out;
	}
	for (size_t i = 0; i < s.files.n; i++) {
		if (find_applied(&s.done, s.files.v[i].version))
			continue;
		rc = apply_one(db, &s.files.v[i], fresh, project_schema, &done,
			       done.len == 0, err);
		if (rc != ALYX_OK)
			goto out;
	}
	if (project_schema) {
		alyx__schema_free(cur);
		cur = NULL;
		rc = alyx__store_load_schema(db, &cur, err);
		if (rc == ALYX_OK)
			rc = alyx__schema_diff(cur, project_schema, &plan, err);
		if (rc == ALYX_OK)
			rc = alyx__store_apply_schema(db, cur, project_schema,
						      plan, 0, err);
		if (rc == ALYX_OK) {
			pj = alyx__plan_to_json(plan);
			if (!pj)
				rc = nomem(err);
		}
	}
out:
	/* the report is complete JSON even after a failure */
	alyx__buf_adds(report, "{\"applied\":[");
	if (done.len)
		alyx__buf_adds(report, done.data);
	alyx__buf_adds(report, "],\"baseline\":");
	alyx__buf_adds(report, fresh ? "true" : "false");
	alyx__buf_adds(report, ",\"schema\":");
	alyx__buf_adds(report, pj ? pj : "null");
	alyx__buf_addc(report, '}');
	if (rc == ALYX_OK && (report->err || done.err))
		rc = alyx__err_set(err, report->err ? report->err : done.err,
				   NULL, "report too large");
	else if (rc != ALYX_OK && rc != ALYX_E_NOMEM)
		details_add_applied(err, &done);
	alyx__free(pj);
	alyx__buf_free(&done);
	alyx__plan_free(plan);
	alyx__schema_free(cur);
	state_free(&s);
	return rc;
}

/* ---- rollback ---- */

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Re-adds a dropped field with its former definition (empty values). */
static int undo_restore_field(sqlite3 *db, mig_run *r,
			      const alyx__schema *before, const char *coll,
			      const char *field, alyx__err *err)
{
	const alyx__collection *bc = before ? alyx__schema_coll(before, coll) :
					      NULL;
	const alyx__field *bf = bc ? alyx__coll_field(bc, field) : NULL;
	alyx__collection *c = snap_coll(r->snap, coll);
	alyx__schema *next;
	alyx__field *nf, *v;

	if (!bf || !c)
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "cannot restore %s.%s: its collection or "
				     "former definition is missing", coll,
				     field);
	if (snap_field(c, field))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "cannot restore %s.%s: a field of that "
				     "name exists", coll, field);
	next = snap_clone(r->snap);
	if (!next)
		return nomem(err);
	c = snap_coll(next, coll);
	v = alyx__realloc(c->fields, (c->n_fields + 1) * sizeof(*v));
	if (!v) {
		snap_free(next);
		return nomem(err);
	}
	c->fields = v;
	nf = &c->fields[c->n_fields++];
	if (!field_copy(nf, bf)) {
		snap_free(next);
		return nomem(err);
	}
	if (!nf->nullable && nf->default_kind == ALYX_DEF_NONE) {
		nf->nullable = true;
		run_note(r, "%s.%s restored as nullable: its values were "
			 "dropped and cannot come back", coll, field);
	} else {
		run_note(r, "%s.%s restored with default/empty values: its "
			 "values were dropped and cannot come back", coll,
			 field);
	}
	for (size_t i = 0; i < bc->n_indexes; i++) {
		const alyx__index *ix = &bc->indexes[i];
		bool all = index_has(ix, field);
		alyx__index *iv;

		for (size_t k = 0; all && k < ix->n_fields; k++)
			all = snap_field(c, ix->fields[k]) != NULL;
		for (size_t k = 0; all && k < c->n_indexes; k++)
			all = strcmp(c->indexes[k].name, ix->name) != 0;
		if (!all)
			continue;
		iv = alyx__realloc(c->indexes,
				   (c->n_indexes + 1) * sizeof(*iv));
		if (!iv) {
			snap_free(next);
			return nomem(err);
		}
		c->indexes = iv;
		if (!index_copy(&c->indexes[c->n_indexes++], ix)) {
			snap_free(next);
			return nomem(err);
		}
	}
	return run_sync(db, r, next, NULL, 0, err);
}

static int undo_restore_coll(sqlite3 *db, mig_run *r,
			     const alyx__schema *before, const char *coll,
			     alyx__err *err)
{
	const alyx__collection *bc = before ? alyx__schema_coll(before, coll) :
					      NULL;
	alyx__schema *next;
	alyx__collection *v;

	if (!bc)
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "cannot restore collection %s: its former "
				     "definition is missing", coll);
	if (snap_coll(r->snap, coll))
		return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
				     "cannot restore collection %s: it exists",
				     coll);
	for (size_t i = 0; i < bc->n_fields; i++) {
		const char *rc_ = bc->fields[i].ref_collection;

		if (rc_ && strcmp(rc_, coll) != 0 && !snap_coll(r->snap, rc_))
			return alyx__err_set(err, ALYX_E_MIGRATION, NULL,
					     "cannot restore collection %s: "
					     "it references %s, which is gone",
					     coll, rc_);
	}
	next = snap_clone(r->snap);
	if (!next)
		return nomem(err);
	v = alyx__realloc(next->colls, (next->n_colls + 1) * sizeof(*v));
	if (!v) {
		snap_free(next);
		return nomem(err);
	}
	next->colls = v;
	memset(&v[next->n_colls], 0, sizeof(*v));
	if (!coll_copy(&v[next->n_colls++], bc)) {
		snap_free(next);
		return nomem(err);
	}
	run_note(r, "collection %s restored empty: its documents were dropped "
		 "and cannot come back", coll);
	return run_sync(db, r, next, NULL, 0, err);
}

/* Runs one migration's undo steps (stored newest first). */
static int run_undo(sqlite3 *db, mig_run *r, const alyx__schema *before,
		    const cJSON *steps, alyx__err *err)
{
	const cJSON *st;
	int rc = ALYX_OK;

	cJSON_ArrayForEach(st, steps) {
		const char *op = jstr(st, "op"), *c = jstr(st, "collection");

		if (!op)
			return alyx__err_set(err, ALYX_E_INTERNAL, NULL,
					     "unreadable undo step");
		if (strcmp(op, "rename_field") == 0)
			rc = do_rename(db, r, c, jstr(st, "from"),
				       jstr(st, "to"), err);
		else if (strcmp(op, "restore_field") == 0)
			rc = undo_restore_field(db, r, before, c,
						jstr(st, "field"), err);
		else if (strcmp(op, "restore_collection") == 0)
			rc = undo_restore_coll(db, r, before, c, err);
		else if (strcmp(op, "change_type") == 0)
			rc = do_change_type(db, r, c, jstr(st, "field"),
					    jstr(st, "to"), NULL, err);
		else if (strcmp(op, "sql") == 0)
			rc = alyx__ddl_exec(db, jstr(st, "sql"), "sql down",
					    err);
		else
			rc = alyx__err_set(err, ALYX_E_MIGRATION, NULL,
					   "an sql operation has no 'down'");
		if (rc != ALYX_OK)
			return rc;
	}
	return ALYX_OK;
}

static bool undo_structural(const cJSON *steps)
{
	const cJSON *st;

	cJSON_ArrayForEach(st, steps) {
		const char *op = jstr(st, "op");

		if (!op || strcmp(op, "sql") != 0)
			return true;
	}
	return false;
}

static int rollback_one(sqlite3 *db, const applied *a, alyx_buf *report,
			bool first, alyx__err *err)
{
	sqlite3_stmt *st = NULL;
	alyx__schema *cur = NULL, *before = NULL;
	cJSON *steps = NULL;
	alyx__ddl_tx tx;
	mig_run r;
	int rc;

	run_init(&r);
	memset(&tx, 0, sizeof(tx));
	rc = sqlite3_prepare_v2(db, "SELECT schema_before, undo FROM "
				"_alyx_migrations WHERE id=?", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, a->id);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_ROW) {
		rc = alyx__conn_err(db, rc, "reading _alyx_migrations", err);
		goto out;
	}
	rc = ALYX_OK;
	if (sqlite3_column_type(st, 0) != SQLITE_NULL)
		rc = alyx__schema_from_json(
			(const char *)sqlite3_column_text(st, 0), &before, err);
	if (rc != ALYX_OK)
		goto out;
	steps = cJSON_Parse((const char *)sqlite3_column_text(st, 1));
	/* a pending read would lock the tables the undo steps rebuild */
	sqlite3_finalize(st);
	st = NULL;
	if (!cJSON_IsArray(steps)) {
		rc = alyx__err_set(err, ALYX_E_INTERNAL, NULL,
				   "migration %lld has no readable undo steps",
				   (long long)a->version);
		goto out;
	}
	rc = alyx__ddl_begin(db, &tx, undo_structural(steps), err);
	if (rc != ALYX_OK)
		goto out;
	/* a type changed back takes its former validation and default */
	r.project = before;
	rc = alyx__store_load_schema(db, &cur, err);
	if (rc == ALYX_OK) {
		r.snap = snap_clone(cur);
		if (!r.snap)
			rc = nomem(err);
	}
	if (rc == ALYX_OK)
		rc = run_undo(db, &r, before, steps, err);
	if (rc != ALYX_OK) {
		char m[512], *d = err->details;

		snprintf(m, sizeof(m), "%s", err->msg);
		err->details = NULL;
		alyx__err_setd(err, err->code, d, "rolling back %s: %s",
			       a->file, m);
		goto out;
	}
	if (cur || r.snap->n_colls)
		rc = alyx__store_save_schema(db, r.snap, err);
	if (rc == ALYX_OK) {
		sqlite3_stmt *del = NULL;

		rc = sqlite3_prepare_v2(db, "DELETE FROM _alyx_migrations "
					"WHERE id=?", -1, &del, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(del, 1, a->id);
			rc = sqlite3_step(del);
			rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		}
		sqlite3_finalize(del);
		if (rc != SQLITE_OK)
			rc = alyx__conn_err(db, rc, "updating history", err);
	}
out:
	sqlite3_finalize(st);
	if (rc == ALYX_OK)
		rc = alyx__ddl_commit(db, &tx, err);
	else
		alyx__ddl_rollback(db, &tx);
	if (rc == ALYX_OK) {
		alyx__buf_addf(report, "%s{\"version\":%lld,\"name\":",
			       first ? "" : ",", (long long)a->version);
		alyx__json_strz(report, a->name);
		alyx__buf_adds(report, ",\"file\":");
		alyx__json_strz(report, a->file);
		alyx__buf_adds(report, ",\"notes\":[");
		if (r.notes.len)
			alyx__buf_adds(report, r.notes.data);
		alyx__buf_adds(report, "]}");
	}
	cJSON_Delete(steps);
	alyx__schema_free(cur);
	alyx__schema_free(before);
	run_free(&r);
	return rc;
}

int alyx__migrate_rollback(sqlite3 *db, const char *dir, int n,
			   alyx_buf *report, alyx__err *err)
{
	mig_state s;
	int rc;

	if (n < 1)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "rollback needs a count of at least 1");
	rc = state_load(db, dir, true, &s, err);
	if (rc != ALYX_OK)
		return rc;
	if (s.done.n == 0) {
		rc = alyx__err_set(err, ALYX_E_NOTFOUND, NULL,
				   "no applied migration to roll back");
		goto out;
	}
	alyx__buf_adds(report, "{\"rolled_back\":[");
	for (size_t i = 0; i < (size_t)n && i < s.done.n; i++) {
		rc = rollback_one(db, &s.done.v[s.done.n - 1 - i], report,
				  i == 0, err);
		if (rc != ALYX_OK)
			goto out;
	}
	alyx__buf_adds(report, "]}");
	if (report->err)
		rc = alyx__err_set(err, report->err, NULL, "report too large");
out:
	state_free(&s);
	return rc;
}

/* ---- create ---- */

static const char template_text[] =
	"# Migration %03lld: %s\n"
	"# Applied by `alyx migrate apply` in one transaction, in order.\n"
	"# Never edit this file after it was applied: its checksum is kept.\n"
	"version: %lld\n"
	"name: %s\n"
	"description: \"\"\n"
	"\n"
	"# Replace [] with a list of operations; they run in order.\n"
	"operations: []\n"
	"#  - type: rename_field\n"
	"#    collection: users\n"
	"#    from: name\n"
	"#    to: display_name\n"
	"#\n"
	"#  - type: drop_field          # its values are gone for good\n"
	"#    collection: users\n"
	"#    field: legacy_flag\n"
	"#\n"
	"#  - type: drop_collection     # its documents are gone for good\n"
	"#    collection: old_logs\n"
	"#\n"
	"#  - type: change_type\n"
	"#    collection: posts\n"
	"#    field: views\n"
	"#    to: int\n"
	"#    using: CAST(views AS INTEGER)   # optional; default CAST\n"
	"#\n"
	"#  - type: sql\n"
	"#    up: |\n"
	"#      UPDATE users SET display_name = 'Anonymous'\n"
	"#        WHERE display_name IS NULL;\n"
	"#    down: |\n"
	"#      -- nothing to undo\n";

int alyx__migrate_create(const char *dir, const char *name, alyx_buf *out,
			 alyx__err *err)
{
	mig_list l;
	char fname[128], *path = NULL, *text = NULL;
	long long next = 1;
	struct stat sb;
	int rc;

	if (!dir || !name || !islower((unsigned char)name[0]) ||
	    strlen(name) > 60)
		return alyx__err_set(err, ALYX_E_MISUSE, NULL,
				     "bad migration name '%s': use lower-case "
				     "letters, digits and '_', starting with "
				     "a letter (at most 60)", name ? name : "");
	for (const char *p = name; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '_')
			return alyx__err_set(err, ALYX_E_MISUSE, NULL,
					     "bad migration name '%s': use "
					     "lower-case letters, digits and "
					     "'_'", name);
	rc = alyx__mkdirs(dir, 0755, err);
	if (rc != ALYX_OK)
		return rc;
	rc = list_dir(dir, &l, err);
	if (rc != ALYX_OK)
		return rc;
	if (l.n)
		next = l.v[l.n - 1].version + 1;
	mig_list_free(&l);
	snprintf(fname, sizeof(fname), "%03lld_%s.yaml", next, name);
	path = alyx__path_join(dir, fname);
	text = alyx__asprintf(template_text, next, name, next, name);
	if (!path || !text) {
		rc = nomem(err);
		goto out;
	}
	if (stat(path, &sb) == 0) {
		rc = alyx__err_set(err, ALYX_E_EXISTS, NULL, "%s exists", path);
		goto out;
	}
	rc = alyx__write_file(path, text, strlen(text), err);
	if (rc != ALYX_OK)
		goto out;
	alyx__buf_adds(out, "{\"path\":");
	alyx__json_strz(out, path);
	alyx__buf_addf(out, ",\"version\":%lld}", next);
out:
	alyx__free(path);
	alyx__free(text);
	return rc;
}
