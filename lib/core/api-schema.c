/* api-schema.c - the public schema and migration functions. */
#include <stdio.h>
#include <string.h>

#include "core/handle.h"

#define SCHEMA_MAX_BYTES (4u << 20)

/* Reloads the applied schema from the database into a new snapshot.  The
 * caller holds the writer lock. */
static int reload_schema(alyx *a, alyx__err *err)
{
	alyx__schema *s = NULL;
	int rc = alyx__store_load_schema(a->wdb, &s, err);

	if (rc == ALYX_OK)
		rc = alyx__snap_set(a, s, err);
	return rc;
}

static int check_writable(alyx *a, alyx__err *err)
{
	int rc = alyx__enter(a, err);

	if (rc == ALYX_OK && !a->wdb)
		rc = alyx__err_set(err, ALYX_E_MISUSE, NULL,
				   "the handle was opened read-only");
	return rc;
}

/* plan JSON {...,"destructive":x} + "applied":y before the final '}'. */
static char *plan_json(const alyx__plan *p, bool applied)
{
	char *j = alyx__plan_to_json(p), *r;
	size_t n;

	if (!j)
		return NULL;
	n = strlen(j);
	if (n < 2 || j[n - 1] != '}') {
		alyx__free(j);
		return NULL;
	}
	j[n - 1] = '\0';
	r = alyx__asprintf("%s%s\"applied\":%s}", j, n > 2 ? "," : "",
			   applied ? "true" : "false");
	alyx__free(j);
	return r;
}

ALYX_API int alyx_apply_schema(alyx *a, const char *yaml, size_t len,
			       const char *filename, unsigned flags,
			       char **plan_out)
{
	alyx__err err = {0};
	alyx__schema *new_ = NULL, *old = NULL;
	alyx__plan *plan = NULL;
	alyx__snap *snap = NULL;
	bool locked = false, dry = flags & ALYX_APPLY_DRY_RUN;
	char *pj = NULL;
	int rc;

	if (plan_out)
		*plan_out = NULL;
	rc = dry ? alyx__enter(a, &err) : check_writable(a, &err);
	if (rc != ALYX_OK)
		goto out;
	if (!yaml) {
		rc = alyx__misuse(&err, "yaml");
		goto out;
	}
	if (len == (size_t)-1)
		len = strnlen(yaml, SCHEMA_MAX_BYTES + 1);
	if (len > SCHEMA_MAX_BYTES) {
		rc = alyx__err_set(&err, ALYX_E_TOOBIG, NULL,
				   "schema is larger than %u bytes",
				   SCHEMA_MAX_BYTES);
		goto out;
	}
	rc = alyx__schema_parse(yaml, len, filename ? filename : "schema.yaml",
				&new_, &err);
	if (rc != ALYX_OK)
		goto out;
	if (a->wdb) {
		/* The database, not the snapshot, is the truth: another
		 * process (the CLI) may have applied a schema meanwhile. */
		pthread_mutex_lock(&a->wmu);
		locked = true;
		rc = alyx__store_load_schema(a->wdb, &old, &err);
	} else {
		snap = alyx__snap_get(a);
	}
	if (rc == ALYX_OK)
		rc = alyx__schema_diff(snap ? snap->schema : old, new_, &plan,
				       &err);
	if (rc != ALYX_OK)
		goto out;
	if (!dry) {
		rc = alyx__store_apply_schema(a->wdb, old, new_, plan, 0, &err);
		if (rc != ALYX_OK)
			goto out;
		rc = alyx__snap_set(a, new_, &err);
		new_ = NULL;
		if (rc != ALYX_OK)
			goto out;
	}
	if (plan_out) {
		pj = plan_json(plan, !dry);
		if (!pj) {
			rc = alyx__err_set(&err, ALYX_E_NOMEM, NULL,
					   "out of memory");
			goto out;
		}
		*plan_out = pj;
	}
out:
	if (locked)
		pthread_mutex_unlock(&a->wmu);
	alyx__snap_put(snap);
	alyx__plan_free(plan);
	alyx__schema_free(old);
	alyx__schema_free(new_);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_schema_json(alyx *a, char **out)
{
	alyx__err err = {0};
	alyx__snap *s;
	int rc;

	if (!out)
		rc = alyx__misuse(&err, "out");
	else
		rc = alyx__enter(a, &err);
	if (out)
		*out = NULL;
	if (rc != ALYX_OK)
		return alyx__finish(a, &err);
	s = alyx__snap_get(a);
	*out = alyx__schema_to_json(s->schema);
	alyx__snap_put(s);
	if (!*out)
		alyx__err_set(&err, ALYX_E_NOMEM, NULL, "out of memory");
	return alyx__finish(a, &err);
}

/* schema.yaml of the project parsed, or NULL when the file is missing. */
static int project_schema(alyx *a, alyx__schema **out, alyx__err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = alyx__read_file(a->schema_path, SCHEMA_MAX_BYTES, &text, &len,
			     err);
	if (rc == ALYX_E_NOTFOUND) {
		alyx__err_clear(err);
		return ALYX_OK;
	}
	if (rc == ALYX_OK)
		rc = alyx__schema_parse(text, len, a->schema_path, out, err);
	alyx__free(text);
	return rc;
}

enum { MIG_STATUS, MIG_APPLY, MIG_ROLLBACK, MIG_CREATE };

static int migrate(alyx *a, int what, int n, const char *name, char **out)
{
	alyx__err err = {0};
	alyx__schema *ps = NULL;
	alyx_buf b;
	int rc;

	alyx__buf_init(&b, 0);
	if (out)
		*out = NULL;
	rc = what == MIG_STATUS ? alyx__enter(a, &err)
				: check_writable(a, &err);
	if (rc == ALYX_OK && !out)
		rc = alyx__misuse(&err, "out");
	if (rc == ALYX_OK && what == MIG_CREATE && !name)
		rc = alyx__misuse(&err, "name");
	if (rc == ALYX_OK && what == MIG_ROLLBACK && n < 1)
		rc = alyx__err_set(&err, ALYX_E_MISUSE, NULL,
				   "rollback count must be at least 1");
	if (rc == ALYX_OK && (what == MIG_STATUS || what == MIG_APPLY))
		rc = project_schema(a, &ps, &err);
	if (rc != ALYX_OK)
		goto out;
	if (what == MIG_CREATE) {
		rc = alyx__migrate_create(a->migrations_dir, name, &b, &err);
	} else if (what == MIG_STATUS && !a->wdb) {
		alyx__rd rd;

		rc = alyx__reader_get(a, &rd, &err);
		if (rc == ALYX_OK) {
			rc = alyx__migrate_status(rd.db, a->migrations_dir, ps,
						  &b, &err);
			alyx__reader_put(a, &rd);
		}
	} else {
		pthread_mutex_lock(&a->wmu);
		if (what == MIG_STATUS)
			rc = alyx__migrate_status(a->wdb, a->migrations_dir,
						  ps, &b, &err);
		else if (what == MIG_APPLY)
			rc = alyx__migrate_apply(a->wdb, a->migrations_dir, ps,
						 &b, &err);
		else
			rc = alyx__migrate_rollback(a->wdb, a->migrations_dir,
						    n, &b, &err);
		/* Even a failed apply may have applied earlier files. */
		if (what != MIG_STATUS) {
			alyx__err e2 = {0};
			int rc2 = reload_schema(a, &e2);

			if (rc == ALYX_OK && rc2 != ALYX_OK) {
				alyx__err_move(&err, &e2);
				rc = rc2;
			}
			alyx__err_clear(&e2);
		}
		pthread_mutex_unlock(&a->wmu);
	}
	if (rc == ALYX_OK && b.err)
		rc = alyx__err_set(&err, b.err, NULL, "report too large");
	if (rc == ALYX_OK)
		*out = alyx__buf_take(&b);
out:
	alyx__schema_free(ps);
	alyx__buf_free(&b);
	return alyx__finish(a, &err);
}

ALYX_API int alyx_migrate_status(alyx *a, char **out)
{
	return migrate(a, MIG_STATUS, 0, NULL, out);
}

ALYX_API int alyx_migrate_apply(alyx *a, char **out)
{
	return migrate(a, MIG_APPLY, 0, NULL, out);
}

ALYX_API int alyx_migrate_rollback(alyx *a, int n, char **out)
{
	return migrate(a, MIG_ROLLBACK, n, NULL, out);
}

ALYX_API int alyx_migrate_create(alyx *a, const char *name, char **out)
{
	return migrate(a, MIG_CREATE, 0, name, out);
}
