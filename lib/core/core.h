/*
 * core.h - the alyx handle's cross-module helpers: the per-thread last
 * error that alyx_errcode()/alyx_errmsg() report.
 */
#ifndef ALYX_CORE_H
#define ALYX_CORE_H

#include "util/util.h"

/* Records `e` as this thread's last error for handle `a` (a may be NULL
 * for alyx_open failures) and returns e->code.  The error's details are
 * copied.  Every public entry point ends with alyx__report(a, &err). */
int alyx__report(const alyx *a, const alyx__err *e);
/* Marks the last call on `a` from this thread as successful. */
void alyx__report_ok(const alyx *a);

#endif
