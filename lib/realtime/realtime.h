/*
 * realtime.h - the realtime broker: live queries over the change feed
 * (docs/realtime.md).  Internal to libalyx.
 *
 * One broker per alyx handle, created on first use of the realtime API
 * (alyx_subscribe, alyx_get_fd, alyx_next_timeout_ms, alyx_dispatch) and
 * freed by alyx_close().  It owns one reader connection of its own, an
 * eventfd, the subscriptions and their indexes.  All its work happens in
 * alyx_dispatch() on the caller's thread; writers only poke the eventfd.
 */
#ifndef ALYX_REALTIME_H
#define ALYX_REALTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct alyx;
struct alyx__rt;

/* Wakes the broker of `a` (if it has one) after a commit: makes its
 * eventfd readable.  Async-signal-free, lock-free, cheap; called by the
 * core right after every successful COMMIT of a public write. */
void alyx__rt_notify(struct alyx *a);
/* Makes the next dispatch re-run every subscription's query (and send
 * the difference): for writes that leave no trace in the change feed,
 * like alyx_db_reset() which empties it in the same transaction. */
void alyx__rt_resync(struct alyx *a);
/* Frees the broker: every subscription (their destroy callbacks run),
 * the connection and the eventfd.  NULL ok.  No other call may run. */
void alyx__rt_free(struct alyx__rt *rt);

#endif
