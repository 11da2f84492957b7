/*
 * diff.c - the migration plan from the applied schema to a new one
 * (SEED-PLAN.md §Migration Strategy; the table is in docs/schema.md).
 *
 * Safe: add collection, add nullable or defaulted field, add or drop an
 * index, loosen a constraint, change rules, defaults, onDelete, onUpdate
 * or the internal flag.  Destructive: drop collection or field, change a
 * type, tighten a constraint, add a required field without a default, add
 * a unique index.  A rename cannot be told from drop + add, so it shows up
 * as both (and is destructive).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "schema/schema-int.h"

typedef struct dctx {
	alyx__plan *p;
	size_t cap;
	int rc;
	const char *coll;
} dctx;

static void add(dctx *d, alyx__change_op op, bool safe, bool rebuild,
		const char *field, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static void add(dctx *d, alyx__change_op op, bool safe, bool rebuild,
		const char *field, const char *fmt, ...)
{
	alyx__change *ch;
	char text[512];
	va_list ap;

	if (d->rc != ALYX_OK)
		return;
	if (d->p->n_changes == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		alyx__change *v = alyx__realloc(d->p->changes,
						ncap * sizeof(*v));

		if (!v) {
			d->rc = ALYX_E_NOMEM;
			return;
		}
		d->p->changes = v;
		d->cap = ncap;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ch = &d->p->changes[d->p->n_changes];
	memset(ch, 0, sizeof(*ch));
	ch->op = op;
	ch->safe = safe;
	ch->needs_rebuild = rebuild;
	ch->collection = alyx__strdup(d->coll);
	ch->field = alyx__strdup(field);
	ch->description = alyx__strdup(text);
	d->p->n_changes++;
	if (!ch->collection || (field && !ch->field) || !ch->description)
		d->rc = ALYX_E_NOMEM;
	if (!safe)
		d->p->destructive = true;
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool has_enum(const alyx__field *f, const char *v)
{
	size_t i;

	for (i = 0; i < f->n_enum; i++)
		if (strcmp(f->enum_json[i], v) == 0)
			return true;
	return false;
}

/* Every value of a's enum is in b's. */
static bool enum_subset(const alyx__field *a, const alyx__field *b)
{
	size_t i;

	for (i = 0; i < a->n_enum; i++)
		if (!has_enum(b, a->enum_json[i]))
			return false;
	return true;
}

static const char *default_text(const alyx__field *f)
{
	switch (f->default_kind) {
	case ALYX_DEF_AUTO:
		return "auto";
	case ALYX_DEF_NOW:
		return "now";
	case ALYX_DEF_LITERAL:
		return f->default_json;
	default:
		return "none";
	}
}

/* A bound change: `has` + value; `lower` says whether a bigger value is
 * looser (maxLength, max) or stricter (minLength, min). */
static void bound(dctx *d, const char *fn, const char *what, bool oh,
		  double ov, bool nh, double nv, bool upper)
{
	bool looser;

	if (oh == nh && (!oh || ov == nv))
		return;
	if (!nh)
		looser = true;
	else if (!oh)
		looser = false;
	else
		looser = upper ? nv > ov : nv < ov;
	if (looser)
		add(d, ALYX_CH_LOOSEN, true, false, fn,
		    "~ Loosened '%s.%s': %s %s", d->coll, fn, what,
		    nh ? "widened" : "removed");
	else
		add(d, ALYX_CH_TIGHTEN, false, false, fn,
		    "! Tightened '%s.%s': %s %s", d->coll, fn, what,
		    oh ? "narrowed" : "added");
}

static void diff_validation(dctx *d, const alyx__field *o,
			    const alyx__field *n)
{
	const char *fn = n->name;

	bound(d, fn, "minLength", o->has_min_length, (double)o->min_length,
	      n->has_min_length, (double)n->min_length, false);
	bound(d, fn, "maxLength", o->has_max_length, (double)o->max_length,
	      n->has_max_length, (double)n->max_length, true);
	bound(d, fn, "min", o->has_min, o->min, n->has_min, n->min, false);
	bound(d, fn, "max", o->has_max, o->max, n->has_max, n->max, true);
	if (o->format != n->format) {
		if (n->format == ALYX_FMT_NONE)
			add(d, ALYX_CH_LOOSEN, true, false, fn,
			    "~ Loosened '%s.%s': format removed", d->coll, fn);
		else
			add(d, ALYX_CH_TIGHTEN, false, false, fn,
			    "! Tightened '%s.%s': format %s", d->coll, fn,
			    o->format ? "changed" : "added");
	}
	if (!str_eq(o->pattern, n->pattern)) {
		if (!n->pattern)
			add(d, ALYX_CH_LOOSEN, true, false, fn,
			    "~ Loosened '%s.%s': pattern removed", d->coll,
			    fn);
		else
			add(d, ALYX_CH_TIGHTEN, false, false, fn,
			    "! Tightened '%s.%s': pattern %s", d->coll, fn,
			    o->pattern ? "changed" : "added");
	}
	if (o->n_enum || n->n_enum) {
		bool grew = enum_subset(o, n), shrank = enum_subset(n, o);

		if (!n->n_enum)
			add(d, ALYX_CH_LOOSEN, true, false, fn,
			    "~ Loosened '%s.%s': enum removed", d->coll, fn);
		else if (!o->n_enum)
			add(d, ALYX_CH_TIGHTEN, false, false, fn,
			    "! Tightened '%s.%s': enum added", d->coll, fn);
		else if (grew && !shrank)
			add(d, ALYX_CH_LOOSEN, true, false, fn,
			    "~ Loosened '%s.%s': enum values added", d->coll,
			    fn);
		else if (!grew)
			add(d, ALYX_CH_TIGHTEN, false, false, fn,
			    "! Tightened '%s.%s': enum values removed",
			    d->coll, fn);
	}
}

static void diff_field(dctx *d, const alyx__collection *oc,
		       const alyx__collection *nc, const alyx__field *o,
		       const alyx__field *n)
{
	bool oix = alyx__field_own_index(oc, o),
	     nix = alyx__field_own_index(nc, n);

	const char *fn = n->name, *c = d->coll;

	if (o->type != n->type) {
		add(d, ALYX_CH_CHANGE_TYPE, false, true, fn,
		    "! Changed type of '%s.%s' from %s to %s", c, fn,
		    alyx__type_name(o->type), alyx__type_name(n->type));
		return;
	}
	if (o->primary != n->primary)
		add(d, ALYX_CH_TIGHTEN, false, true, fn,
		    "! Changed primary key of '%s' %s '%s'", c,
		    n->primary ? "to" : "away from", fn);
	if (o->nullable != n->nullable) {
		if (n->nullable)
			add(d, ALYX_CH_LOOSEN, true, true, fn,
			    "~ Loosened '%s.%s': now nullable", c, fn);
		else
			add(d, ALYX_CH_TIGHTEN, false, true, fn,
			    "! Tightened '%s.%s': now NOT NULL", c, fn);
	}
	if (o->unique != n->unique && !n->primary && !o->primary) {
		if (n->unique)
			add(d, ALYX_CH_TIGHTEN, false, true, fn,
			    "! Tightened '%s.%s': now unique", c, fn);
		else
			add(d, ALYX_CH_LOOSEN, true, true, fn,
			    "~ Loosened '%s.%s': no longer unique", c, fn);
	}
	if (!str_eq(o->ref_collection, n->ref_collection) ||
	    !str_eq(o->ref_field, n->ref_field)) {
		if (!n->ref_collection)
			add(d, ALYX_CH_LOOSEN, true, true, fn,
			    "~ Loosened '%s.%s': reference removed", c, fn);
		else
			add(d, ALYX_CH_TIGHTEN, false, true, fn,
			    "! Tightened '%s.%s': now references %s.%s", c,
			    fn, n->ref_collection, n->ref_field);
	} else if (n->ref_collection && o->on_delete != n->on_delete) {
		add(d, ALYX_CH_META, true, true, fn,
		    "~ Changed onDelete of '%s.%s'", c, fn);
	}
	if (o->default_kind != n->default_kind ||
	    !str_eq(o->default_json, n->default_json)) {
		/* Only literal defaults are in the table's DDL. */
		bool sql = o->default_kind == ALYX_DEF_LITERAL ||
			   n->default_kind == ALYX_DEF_LITERAL;

		add(d, ALYX_CH_META, true, sql, fn,
		    "~ Changed default of '%s.%s' from %.100s to %.100s", c,
		    fn, default_text(o), default_text(n));
	}
	if (o->on_update_now != n->on_update_now)
		add(d, ALYX_CH_META, true, false, fn,
		    "~ %s onUpdate: now on '%s.%s'",
		    n->on_update_now ? "Added" : "Removed", c, fn);
	if (o->internal != n->internal)
		add(d, ALYX_CH_META, true, false, fn,
		    "~ '%s.%s' is %s internal", c, fn,
		    n->internal ? "now" : "no longer");
	if (oix != nix) {
		char *ix = alyx__asprintf("idx_%s_%s", nc->name, fn);

		if (!ix) {
			d->rc = ALYX_E_NOMEM;
			return;
		}
		if (nix)
			add(d, ALYX_CH_ADD_INDEX, true, false, ix,
			    "+ Added index '%s' on '%s.%s'", ix, c, fn);
		else
			add(d, ALYX_CH_DROP_INDEX, true, false, ix,
			    "- Dropped index '%s'", ix);
		alyx__free(ix);
	}
	diff_validation(d, o, n);
}

static void add_field(dctx *d, const alyx__collection *nc,
		      const alyx__field *f)
{
	bool safe = f->nullable || f->default_kind != ALYX_DEF_NONE;
	/* ALTER TABLE ADD COLUMN cannot add PRIMARY KEY or UNIQUE columns,
	 * a REFERENCES column with a non-NULL default, or a NOT NULL column
	 * whose default is computed per row (auto/now): those rebuild. */
	bool rebuild = f->primary || f->unique ||
		       (f->ref_collection &&
			f->default_kind == ALYX_DEF_LITERAL) ||
		       (!f->nullable && f->default_kind != ALYX_DEF_LITERAL);

	/* One literal default copied into every existing row of a NOT NULL
	 * unique column collides as soon as there are two rows. */
	bool collides = f->unique && !f->nullable &&
			f->default_kind == ALYX_DEF_LITERAL;

	if (safe && collides)
		add(d, ALYX_CH_ADD_FIELD, false, rebuild, f->name,
		    "! Added unique field '%s.%s' with one default for "
		    "every row", d->coll, f->name);
	else if (safe)
		add(d, ALYX_CH_ADD_FIELD, true, rebuild, f->name,
		    "+ Added field '%s.%s'", d->coll, f->name);
	else
		add(d, ALYX_CH_ADD_FIELD, false, rebuild, f->name,
		    "! Added required field '%s.%s' without a default "
		    "(existing rows have no value)", d->coll, f->name);
	if (alyx__field_own_index(nc, f)) {
		char *ix = alyx__asprintf("idx_%s_%s", d->coll, f->name);

		if (!ix) {
			d->rc = ALYX_E_NOMEM;
			return;
		}
		add(d, ALYX_CH_ADD_INDEX, true, false, ix,
		    "+ Added index '%s' on '%s.%s'", ix, d->coll, f->name);
		alyx__free(ix);
	}
}

static bool field_in_indexes(const alyx__collection *c, const char *name)
{
	size_t i, j;

	for (i = 0; i < c->n_indexes; i++)
		for (j = 0; j < c->indexes[i].n_fields; j++)
			if (!strcmp(c->indexes[i].fields[j], name))
				return true;
	return false;
}

static bool index_eq(const alyx__index *a, const alyx__index *b)
{
	size_t i;

	if (a->unique != b->unique || a->desc != b->desc ||
	    a->n_fields != b->n_fields)
		return false;
	for (i = 0; i < a->n_fields; i++)
		if (strcmp(a->fields[i], b->fields[i]))
			return false;
	return true;
}

static const alyx__index *find_index(const alyx__collection *c,
				     const char *name)
{
	size_t i;

	for (i = 0; i < c->n_indexes; i++)
		if (!strcmp(c->indexes[i].name, name))
			return &c->indexes[i];
	return NULL;
}

static void add_index(dctx *d, const alyx__index *ix)
{
	if (ix->unique)
		add(d, ALYX_CH_ADD_INDEX, false, false, ix->name,
		    "! Added unique index '%s' on '%s' (existing rows may "
		    "collide)", ix->name, d->coll);
	else
		add(d, ALYX_CH_ADD_INDEX, true, false, ix->name,
		    "+ Added index '%s' on '%s'", ix->name, d->coll);
}

static void diff_collection(dctx *d, const alyx__collection *o,
			    const alyx__collection *n)
{
	static const char *const rn[ALYX_RULE_COUNT] = {"create", "read",
							"update", "delete"};
	char which[64] = "";
	size_t i, wl = 0;

	for (i = 0; i < o->n_fields; i++) {
		const alyx__field *of = &o->fields[i];

		if (alyx__coll_field(n, of->name))
			continue;
		add(d, ALYX_CH_DROP_FIELD, false,
		    of->primary || of->unique || of->index ||
			    of->ref_collection || field_in_indexes(o, of->name),
		    of->name, "- Dropped field '%s.%s'", d->coll, of->name);
	}
	for (i = 0; i < n->n_fields; i++) {
		const alyx__field *nf = &n->fields[i];
		const alyx__field *of = alyx__coll_field(o, nf->name);

		if (of)
			diff_field(d, o, n, of, nf);
		else
			add_field(d, n, nf);
	}
	for (i = 0; i < o->n_indexes; i++) {
		const alyx__index *nx = find_index(n, o->indexes[i].name);

		if (!nx || !index_eq(&o->indexes[i], nx))
			add(d, ALYX_CH_DROP_INDEX, true, false,
			    o->indexes[i].name, "- Dropped index '%s'%s",
			    o->indexes[i].name, nx ? " (redefined)" : "");
	}
	for (i = 0; i < n->n_indexes; i++) {
		const alyx__index *ox = find_index(o, n->indexes[i].name);

		if (!ox || !index_eq(ox, &n->indexes[i]))
			add_index(d, &n->indexes[i]);
	}
	for (i = 0; i < ALYX_RULE_COUNT; i++) {
		if (str_eq(o->rules[i], n->rules[i]))
			continue;
		wl += (size_t)snprintf(which + wl, sizeof(which) - wl, "%s%s",
				       wl ? ", " : "", rn[i]);
	}
	if (which[0])
		add(d, ALYX_CH_RULES, true, false, NULL,
		    "~ Changed rules of '%s' (%s)", d->coll, which);
}

int alyx__schema_diff(const alyx__schema *old, const alyx__schema *new_,
		      alyx__plan **out, alyx__err *err)
{
	dctx d;
	size_t i;

	*out = NULL;
	memset(&d, 0, sizeof(d));
	d.p = alyx__calloc(1, sizeof(*d.p));
	if (!d.p)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	for (i = 0; old && i < old->n_colls; i++) {
		d.coll = old->colls[i].name;
		if (!alyx__schema_coll(new_, d.coll))
			add(&d, ALYX_CH_DROP_COLLECTION, false, false, NULL,
			    "- Dropped collection '%s'", d.coll);
	}
	for (i = 0; new_ && i < new_->n_colls; i++) {
		const alyx__collection *nc = &new_->colls[i];
		const alyx__collection *oc = alyx__schema_coll(old, nc->name);

		d.coll = nc->name;
		if (oc)
			diff_collection(&d, oc, nc);
		else
			add(&d, ALYX_CH_ADD_COLLECTION, true, false, NULL,
			    "+ Added collection '%s'", d.coll);
	}
	if (d.rc != ALYX_OK) {
		alyx__plan_free(d.p);
		return alyx__err_set(err, d.rc, NULL, "out of memory");
	}
	*out = d.p;
	return ALYX_OK;
}

void alyx__plan_free(alyx__plan *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->n_changes; i++) {
		alyx__free(p->changes[i].collection);
		alyx__free(p->changes[i].field);
		alyx__free(p->changes[i].description);
	}
	alyx__free(p->changes);
	alyx__free(p);
}

const char *alyx__change_op_name(alyx__change_op op)
{
	static const char *const names[] = {
		[ALYX_CH_ADD_COLLECTION] = "add_collection",
		[ALYX_CH_DROP_COLLECTION] = "drop_collection",
		[ALYX_CH_ADD_FIELD] = "add_field",
		[ALYX_CH_DROP_FIELD] = "drop_field",
		[ALYX_CH_CHANGE_TYPE] = "change_type",
		[ALYX_CH_LOOSEN] = "loosen",
		[ALYX_CH_TIGHTEN] = "tighten",
		[ALYX_CH_ADD_INDEX] = "add_index",
		[ALYX_CH_DROP_INDEX] = "drop_index",
		[ALYX_CH_RULES] = "rules",
		[ALYX_CH_META] = "meta",
	};

	if ((unsigned)op >= ALYX_ARRAY_LEN(names))
		return "unknown";
	return names[op];
}

char *alyx__plan_to_json(const alyx__plan *p)
{
	alyx_buf b;
	size_t i;

	alyx__buf_init(&b, 0);
	alyx__buf_adds(&b, "{\"changes\":[");
	for (i = 0; i < p->n_changes; i++) {
		const alyx__change *ch = &p->changes[i];

		alyx__buf_adds(&b, i ? ",{\"op\":" : "{\"op\":");
		alyx__json_strz(&b, alyx__change_op_name(ch->op));
		alyx__buf_adds(&b, ",\"collection\":");
		alyx__json_strz(&b, ch->collection);
		alyx__buf_adds(&b, ",\"field\":");
		alyx__json_strz(&b, ch->field);
		alyx__buf_adds(&b, ",\"safe\":");
		alyx__json_bool(&b, ch->safe);
		alyx__buf_adds(&b, ",\"needs_rebuild\":");
		alyx__json_bool(&b, ch->needs_rebuild);
		alyx__buf_adds(&b, ",\"description\":");
		alyx__json_strz(&b, ch->description);
		alyx__buf_addc(&b, '}');
	}
	alyx__buf_adds(&b, "],\"destructive\":");
	alyx__json_bool(&b, p->destructive);
	alyx__buf_addc(&b, '}');
	return alyx__buf_take(&b);
}
