/* conn.c - SQLite connections, pragmas and transaction statements. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"

void alyx__conn_opts_default(alyx__conn_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->busy_timeout_ms = 5000;
	o->cache_size = -64000;
	/* Up to 2 GiB of the file read through the mapping (SQLite caps it
	 * at its compile-time SQLITE_MAX_MMAP_SIZE): pages read that way stay
	 * out of the connection's page cache, which SQLite walks whole (every
	 * slot its hash table ever grew to) each time a reader starts a read
	 * transaction after a write.  256 MiB left the end of a larger
	 * database, where new rows and the change feed live, to the cache. */
	o->mmap_size = (int64_t)2047 << 20;
}

int alyx__conn_err(sqlite3 *db, int rc, const char *what, alyx__err *err)
{
	const char *m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	int code;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = ALYX_E_BUSY;
		break;
	case SQLITE_NOMEM:
		code = ALYX_E_NOMEM;
		break;
	case SQLITE_CONSTRAINT:
		code = ALYX_E_CONFLICT;
		break;
	case SQLITE_CANTOPEN:
		code = ALYX_E_NOTFOUND;
		break;
	case SQLITE_TOOBIG:
		code = ALYX_E_TOOBIG;
		break;
	case SQLITE_READONLY:
		code = ALYX_E_MISUSE;
		break;
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_FULL:
	case SQLITE_NOTADB:
	case SQLITE_PERM:
		code = ALYX_E_IO;
		break;
	default:
		code = ALYX_E_INTERNAL;
		break;
	}
	return alyx__err_set(err, code, NULL, "%s: %s", what, m);
}

int alyx__exec(sqlite3 *db, const char *sql, alyx__err *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, "database", err);
	return ALYX_OK;
}

static int pragma_i64(sqlite3 *db, const char *name, int64_t v,
		      alyx__err *err)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "PRAGMA %s=%lld", name, (long long)v);
	return alyx__exec(db, sql, err);
}

/*
 * Process-wide SQLite settings, applied once before the first connection
 * (sqlite3_config() only works before sqlite3_initialize(); if the
 * embedding program already initialised SQLite it keeps its own):
 *  - no memory statistics: they take a global mutex on every allocation
 *    (about 2 % of a list request);
 *  - statement journals always in memory: every write of a group commit
 *    runs in its own savepoint, whose journal (the pages that write
 *    changed) would otherwise spill to a temporary file past 64 KiB: a
 *    file created, written and deleted per group, thousands of pwrite()
 *    calls a second.  A savepoint's journal holds only the pages its
 *    own statements changed, so it stays small.  (A positive spill
 *    threshold is also its chunk size in SQLite 3.40, and 4 MiB ones
 *    failed with SQLITE_FULL under /api/batch.)
 */
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static void sqlite_config(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, -1);
}

int alyx__conn_open(const char *path, const alyx__conn_opts *o,
		    sqlite3 **out, alyx__err *err)
{
	sqlite3 *db = NULL;
	struct stat st;
	int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	int rc = ALYX_OK;

	*out = NULL;
	pthread_once(&config_once, sqlite_config);
	if (!o->create && stat(path, &st) != 0) {
		rc = alyx__err_set(err, ALYX_E_NOTFOUND, NULL,
				   "database %s does not exist", path);
		goto out;
	}
	if (o->readonly)
		flags |= SQLITE_OPEN_READONLY;
	else
		flags |= SQLITE_OPEN_READWRITE |
			 (o->create ? SQLITE_OPEN_CREATE : 0);
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		rc = alyx__err_set(err, db ? ALYX_E_IO : ALYX_E_NOMEM, NULL,
				   "cannot open database %s: %s", path,
				   db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	sqlite3_extended_result_codes(db, 1);
	rc = pragma_i64(db, "busy_timeout", o->busy_timeout_ms, err);
	if (rc == ALYX_OK && !o->readonly && !o->reader)
		rc = alyx__exec(db, "PRAGMA journal_mode=WAL", err);
	if (rc == ALYX_OK)
		rc = alyx__exec(db, "PRAGMA synchronous=NORMAL;"
				    "PRAGMA foreign_keys=ON", err);
	if (rc == ALYX_OK)
		rc = pragma_i64(db, "cache_size", o->cache_size, err);
	if (rc == ALYX_OK)
		rc = pragma_i64(db, "mmap_size", o->mmap_size, err);
	if (rc == ALYX_OK && (o->readonly || o->reader))
		rc = alyx__exec(db, "PRAGMA query_only=1", err);
	if (rc != ALYX_OK)
		goto out;
	*out = db;
	db = NULL;
out:
	alyx__conn_close(db);
	return rc;
}

void alyx__conn_close(sqlite3 *db)
{
	sqlite3_stmt *st;

	if (!db)
		return;
	/* Statements cached with SQLITE_PREPARE_PERSISTENT by other modules
	 * would keep sqlite3_close() from closing; finalize what is left. */
	while ((st = sqlite3_next_stmt(db, NULL)) != NULL)
		sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Runs a fixed transaction-control statement through a statement kept
 * on the connection (found again by its text, like the document cache of
 * lib/doc): these run once or twice per write, and preparing them each
 * time costs more than the walk. */
static int step_cached(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int rc;

	for (st = sqlite3_next_stmt(db, NULL); st;
	     st = sqlite3_next_stmt(db, st)) {
		const char *t = sqlite3_sql(st);

		if (t && !sqlite3_stmt_busy(st) && strcmp(t, sql) == 0)
			break;
	}
	if (!st) {
		rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT,
					&st, NULL);
		if (rc != SQLITE_OK)
			return rc;
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int exec_cached(sqlite3 *db, const char *sql, alyx__err *err)
{
	int rc = step_cached(db, sql);

	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, "database", err);
	return ALYX_OK;
}

int alyx__tx_begin(sqlite3 *db, bool write, alyx__err *err)
{
	return exec_cached(db, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
}

int alyx__tx_commit(sqlite3 *db, alyx__err *err)
{
	int rc = step_cached(db, "COMMIT");

	if (rc == SQLITE_OK)
		return ALYX_OK;
	alyx__conn_err(db, rc, "commit", err);
	alyx__tx_rollback(db);
	return err->code;
}

void alyx__tx_rollback(sqlite3 *db)
{
	/* Through the kept statement: the realtime dispatch thread ends
	 * every pass's read transaction here, and parsing ROLLBACK each
	 * time was most of what an empty pass cost.  sqlite3_exec() stays
	 * as the fallback, as in the readers (lib/core/handle.c). */
	if (!sqlite3_get_autocommit(db) &&
	    step_cached(db, "ROLLBACK") != SQLITE_OK &&
	    !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int alyx__sp_begin(sqlite3 *db, alyx__err *err)
{
	return exec_cached(db, "SAVEPOINT alyx_sp", err);
}

int alyx__sp_release(sqlite3 *db, alyx__err *err)
{
	return exec_cached(db, "RELEASE alyx_sp", err);
}

void alyx__sp_rollback(sqlite3 *db)
{
	/* ROLLBACK TO keeps the savepoint open; RELEASE then drops it. */
	sqlite3_exec(db, "ROLLBACK TO alyx_sp; RELEASE alyx_sp", NULL, NULL,
		     NULL);
}

int alyx__wal_checkpoint(sqlite3 *db, alyx__err *err)
{
	int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
					   NULL, NULL);

	if (rc != SQLITE_OK)
		return alyx__conn_err(db, rc, "checkpoint", err);
	return ALYX_OK;
}
