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
	int64_t mmap_size;	/* PRAGMA mmap_size; default 256 MiB */
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

#endif
