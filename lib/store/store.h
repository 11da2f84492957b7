/*
 * store.h - SQLite storage: connections and pragmas, transactions
 * (lib/store/conn.c), internal tables, schema application and migrations.
 * Internal to libalyx.
 *
 * Connections are opened with SQLITE_OPEN_NOMUTEX: each one is used by one
 * thread at a time; the alyx handle (lib/core/handle.c) decides which
 * thread holds which connection.
 */
#ifndef ALYX_STORE_H
#define ALYX_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "schema/schema.h"
#include "util/util.h"

/* ---- connections (lib/store/conn.c) ---- */

typedef struct alyx__conn_opts {
	bool create;		/* create the database file if missing */
	bool readonly;		/* SQLITE_OPEN_READONLY + query_only */
	bool reader;		/* a reader: query_only, no journal_mode
				 * change (the writer sets WAL) */
	int busy_timeout_ms;	/* PRAGMA busy_timeout; default 5000 */
	int64_t cache_size;	/* PRAGMA cache_size (negative: KiB);
				 * default -64000 (64 MB) */
	int64_t mmap_size;	/* PRAGMA mmap_size; default 2047 MiB */
} alyx__conn_opts;

void alyx__conn_opts_default(alyx__conn_opts *o);

/* Opens `path` with SQLITE_OPEN_NOMUTEX and sets the pragmas: WAL (not on
 * readers or read-only connections), synchronous=NORMAL, foreign_keys=ON,
 * busy_timeout, cache_size, mmap_size.  ALYX_E_NOTFOUND if the file is
 * missing and !o->create; ALYX_E_IO otherwise. */
int alyx__conn_open(const char *path, const alyx__conn_opts *o,
		    sqlite3 **out, alyx__err *err);
/* Finalizes nothing: every statement must be finalized already (prepared
 * statements cached on the connection are finalized here).  NULL ok. */
void alyx__conn_close(sqlite3 *db);

/* Runs one or more ';'-separated statements that return no rows. */
int alyx__exec(sqlite3 *db, const char *sql, alyx__err *err);

/* Transactions.  begin: BEGIN IMMEDIATE (write) or BEGIN (deferred, for
 * a read snapshot).  commit: COMMIT, and ROLLBACK if the commit fails.
 * rollback: ROLLBACK if a transaction is open (never fails). */
int alyx__tx_begin(sqlite3 *db, bool write, alyx__err *err);
int alyx__tx_commit(sqlite3 *db, alyx__err *err);
void alyx__tx_rollback(sqlite3 *db);
/* Savepoints named "alyx_sp" nest; release or roll back the innermost. */
int alyx__sp_begin(sqlite3 *db, alyx__err *err);
int alyx__sp_release(sqlite3 *db, alyx__err *err);
void alyx__sp_rollback(sqlite3 *db);

/* PRAGMA wal_checkpoint(TRUNCATE). */
int alyx__wal_checkpoint(sqlite3 *db, alyx__err *err);

/* Maps a SQLite result code on `db` to an ALYX_E_* error in err (BUSY,
 * NOMEM, CONFLICT for constraints, NOTFOUND for CANTOPEN, IO) with
 * SQLite's message, prefixed by `what`.  Returns the code. */
int alyx__conn_err(sqlite3 *db, int rc, const char *what, alyx__err *err);

/* ---- internal tables, applied schema, schema application (ddl.c) ---- */

/* alyx__store_apply_schema flag: perform destructive changes (drop, type
 * change, stricter constraint) instead of refusing them.  Only the
 * migration runner and explicit callers set it. */
#define ALYX_STORE_ALLOW_DESTRUCTIVE 0x1u

/* Creates the internal tables if missing (idempotent): _alyx_migrations,
 * _alyx_changes (+ index), _alyx_schema, _alyx_users, _alyx_sessions,
 * _alyx_oauth_accounts.  Runs in its own savepoint. */
int alyx__store_init(sqlite3 *db, alyx__err *err);
/* The applied schema: the latest row of _alyx_schema, parsed; *out is
 * NULL when none was ever applied.  Free with alyx__schema_free(). */
int alyx__store_load_schema(sqlite3 *db, alyx__schema **out,
			    alyx__err *err);
/* The latest applied schema JSON (alyx__malloc'd) or NULL in *out. */
int alyx__store_load_schema_json(sqlite3 *db, char **out, alyx__err *err);
/* Appends `s` to _alyx_schema unless it equals the latest row. */
int alyx__store_save_schema(sqlite3 *db, const alyx__schema *s,
			    alyx__err *err);
/*
 * Applies `plan` (the diff from `old`, the applied schema or NULL, to
 * `new_`; computed here when plan is NULL) and records new_ as the applied
 * schema.  Everything happens in one savepoint: on any failure the
 * database is exactly as before.  A destructive plan is refused with
 * ALYX_E_MIGRATION and details {"changes":[...every destructive change]}
 * unless flags has ALYX_STORE_ALLOW_DESTRUCTIVE.  Called in autocommit
 * mode it switches foreign_keys off for the duration (table rebuilds need
 * it) and runs PRAGMA foreign_key_check before committing; called inside
 * the caller's transaction with foreign_keys on, a change that needs a
 * table rebuild or a DROP TABLE fails with ALYX_E_MISUSE.
 */
int alyx__store_apply_schema(sqlite3 *db, const alyx__schema *old,
			     const alyx__schema *new_,
			     const alyx__plan *plan, unsigned flags,
			     alyx__err *err);

/* The refusal of a destructive plan: ALYX_E_MIGRATION, "N change(s) need
 * a migration file; nothing was changed", details {"changes":[...every
 * destructive change],"hint":..}.  Returns ALYX_E_MIGRATION. */
int alyx__plan_refuse(const alyx__plan *plan, alyx__err *err);

/* Building blocks shared by ddl.c and migrate.c. */
typedef struct alyx__ddl_tx {
	bool began;		/* BEGIN IMMEDIATE issued here */
	bool open;		/* savepoint open */
	bool fk_restore;	/* foreign_keys was on and is switched off */
} alyx__ddl_tx;
/* BEGIN IMMEDIATE (in autocommit mode) + SAVEPOINT.  With `fk_off`, in
 * autocommit mode, foreign_keys is switched off first (table rebuilds and
 * drops need it; ON DELETE actions then do not run until
 * alyx__ddl_commit switches it back on). */
int alyx__ddl_begin(sqlite3 *db, alyx__ddl_tx *tx, bool fk_off,
		    alyx__err *err);
/* PRAGMA foreign_key_check (violations: ALYX_E_MIGRATION, rolled back),
 * RELEASE, foreign_keys back on.  On failure everything is undone. */
int alyx__ddl_commit(sqlite3 *db, alyx__ddl_tx *tx, alyx__err *err);
void alyx__ddl_rollback(sqlite3 *db, alyx__ddl_tx *tx);
/* alyx__exec for schema work: a failing statement (constraint, SQL
 * error) becomes ALYX_E_MIGRATION "<what>: <sqlite message>"; BUSY,
 * NOMEM and I/O errors keep their codes. */
int alyx__ddl_exec(sqlite3 *db, const char *sql, const char *what,
		   alyx__err *err);

/* `s` as a double-quoted SQL identifier ("a""b"); alyx__malloc'd. */
char *alyx__quote_ident(const char *s);

/* A conversion for a table rebuild: the new column `field` of
 * `collection` is computed by the SQL expression `expr` over the old row
 * (e.g. CAST("age" AS INTEGER)). */
typedef struct alyx__ddl_conv {
	const char *collection;
	const char *field;
	const char *expr;
} alyx__ddl_conv;
/* Brings the tables from `old` to `new_` (no savepoint, no destructive
 * check, _alyx_schema untouched): CREATE/DROP TABLE, ADD COLUMN or a
 * 12-step table rebuild (rows copied, new columns defaulted, `conv`
 * applied, other triggers and indexes kept), index sync, every
 * collection's change-feed triggers regenerated.  `plan` may be NULL. */
int alyx__ddl_sync(sqlite3 *db, const alyx__schema *old,
		   const alyx__schema *new_, const alyx__plan *plan,
		   const alyx__ddl_conv *conv, size_t n_conv,
		   alyx__err *err);

/* ---- migration files (migrate.c) ---- */

/* Caps: a migration file's size and the number of files in a directory. */
#define ALYX_MIGRATION_MAX_BYTES (1u << 20)
#define ALYX_MIGRATION_MAX_FILES 10000

/*
 * migrations/NNN_name.yaml runner (docs/migrations.md).  `dir` is the
 * migrations directory (a missing directory has no files).
 * `project_schema` is schema.yaml parsed, or NULL to consider files only.
 *
 * status: {"applied":[{"version","name","file","applied_at","checksum",
 *   "modified","missing"}],"pending":[{"version","name","file"}],
 *   "schema":{plan JSON of the changes to schema.yaml after the pending
 *   files}} (schema is null without project_schema).
 * apply: refuses up front, with nothing changed, when a pending file is
 *   bad or the files would leave destructive changes to project_schema
 *   (ALYX_E_MIGRATION, the list in details) or an applied file was edited
 *   (ALYX_E_CHECKSUM).  Then every pending file in its own transaction,
 *   then the safe diff to project_schema; stops at the first failure
 *   (that migration changed nothing; earlier ones stay applied and are
 *   listed in the error details' "applied").  On an empty database
 *   project_schema is created first and the files run against it
 *   ("baseline").  report (complete JSON also after a failure):
 *   {"applied":[{"version","name","file","notes"}],"baseline":bool,
 *    "schema":{plan JSON}|null}
 * rollback: undoes the last n applied migrations, newest first, each in
 *   its own transaction.  report: {"rolled_back":[{"version","name",
 *   "file","notes":[...]}]}
 * create: writes dir/NNN_name.yaml (next number, 3 digits at least) from
 *   a commented template; out_path_json: {"path":..,"version":N}.
 *   ALYX_E_MISUSE for a bad name ([a-z0-9_], starts with a letter).
 */
int alyx__migrate_status(sqlite3 *db, const char *dir,
			 const alyx__schema *project_schema, alyx_buf *out_json,
			 alyx__err *err);
int alyx__migrate_apply(sqlite3 *db, const char *dir,
			const alyx__schema *project_schema, alyx_buf *report,
			alyx__err *err);
int alyx__migrate_rollback(sqlite3 *db, const char *dir, int n,
			   alyx_buf *report, alyx__err *err);
int alyx__migrate_create(const char *dir, const char *name,
			 alyx_buf *out_path_json, alyx__err *err);

#endif
