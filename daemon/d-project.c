/*
 * d-project.c - opens the project (creating the database if needed) and
 * applies pending migration files and schema.yaml's safe changes
 * (alyx_migrate_apply).  A destructive change refuses to start, listing
 * every change that needs a migration file.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "d.h"

int d_exit_code(int rc)
{
	switch (rc) {
	case ALYX_OK: return D_EXIT_OK;
	case ALYX_E_NOTFOUND:
	case ALYX_E_IO: return D_EXIT_DATA;
	case ALYX_E_CONFIG:
	case ALYX_E_SCHEMA:
	case ALYX_E_CHECKSUM: return D_EXIT_CONFIG;
	case ALYX_E_MIGRATION: return D_EXIT_MIGRATION;
	case ALYX_E_MISUSE: return D_EXIT_USAGE;
	default: return D_EXIT_FAIL;
	}
}

static bool dir_writable(const char *db_path, char *dir, size_t n)
{
	snprintf(dir, n, "%s", db_path);
	char *d = dirname(dir);
	if (d != dir)
		snprintf(dir, n, "%s", d);
	return access(dir, W_OK | X_OK) == 0;
}

int d_open_project(const struct d_opts *o, alyx **out)
{
	alyx *a = NULL;
	char *plan = NULL, dir[4096];
	int rc;

	*out = NULL;
	if (access(o->dir, F_OK) != 0) {
		d_log("error", "the project directory does not exist", "dir",
		      o->dir, "error", strerror(errno));
		return D_EXIT_DATA;
	}
	rc = alyx_open_config(o->dir, o->config, ALYX_OPEN_CREATE, &a);
	if (rc != ALYX_OK) {
		d_log("error", "cannot open the project", "dir", o->dir,
		      "error", alyx_errmsg(NULL));
		return d_exit_code(rc);
	}
	if (!dir_writable(alyx_db_path(a), dir, sizeof(dir))) {
		d_log("error", "the data directory is not writable", "dir", dir,
		      "error", strerror(errno));
		alyx_close(a);
		return D_EXIT_DATA;
	}
	rc = alyx_migrate_apply(a, &plan);
	if (rc != ALYX_OK) {
		if (rc == ALYX_E_MIGRATION)
			d_log("error", "schema.yaml has changes that need a "
			      "migration file; not starting", "error",
			      alyx_errmsg(a), "changes", alyx_errdetails(a));
		else
			d_log("error", "cannot apply the schema", "error",
			      alyx_errmsg(a), "details", alyx_errdetails(a));
		alyx_close(a);
		return d_exit_code(rc);
	}
	d_log("info", "schema up to date", "database", alyx_db_path(a),
	      "migrate", plan ? plan : "{}");
	alyx_free(plan);
	*out = a;
	return D_EXIT_OK;
}
