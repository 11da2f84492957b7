/* ratelimit.c - in-memory fixed-window rate limits, keyed by text. */
#include <string.h>

#include "auth/auth.h"

#define N_SLOTS 4096

int alyx__rl_init(alyx__ratelimit *rl)
{
	memset(rl, 0, sizeof(*rl));
	rl->slots = alyx__calloc(N_SLOTS, sizeof(*rl->slots));
	if (!rl->slots)
		return ALYX_E_NOMEM;
	rl->n_slots = N_SLOTS;
	pthread_mutex_init(&rl->mu, NULL);
	return ALYX_OK;
}

/* Drops entries whose window ended by now_ms (all when now_ms is
 * INT64_MAX). */
static void sweep(alyx__ratelimit *rl, int64_t now_ms)
{
	size_t i;

	for (i = 0; i < rl->n_slots; i++) {
		alyx__rl_entry **pp = &rl->slots[i];

		while (*pp) {
			alyx__rl_entry *e = *pp;

			if (now_ms == INT64_MAX ||
			    e->start_ms + e->window_ms <= now_ms) {
				*pp = e->next;
				alyx__free(e);
				rl->n_keys--;
			} else {
				pp = &e->next;
			}
		}
	}
}

void alyx__rl_free(alyx__ratelimit *rl)
{
	if (!rl->slots)
		return;
	sweep(rl, INT64_MAX);
	alyx__free(rl->slots);
	rl->slots = NULL;
	pthread_mutex_destroy(&rl->mu);
}

static size_t hash_key(const char *s)
{
	size_t h = 1469598103934665603u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

int64_t alyx__rl_hit(alyx__ratelimit *rl, const alyx__rate *r,
		     const char *key, int64_t now_ms)
{
	alyx__rl_entry *e;
	size_t slot, klen;
	int64_t wait = 0;

	if (r->count <= 0 || r->window_ms <= 0)
		return 0;
	klen = strlen(key);
	slot = hash_key(key) % rl->n_slots;
	pthread_mutex_lock(&rl->mu);
	for (e = rl->slots[slot]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			break;
	if (e && e->start_ms + r->window_ms <= now_ms) {
		e->start_ms = now_ms;
		e->count = 0;
	}
	if (!e) {
		/* Bounded memory: expired windows go first; if the table is
		 * still full every counter restarts (docs/auth.md). */
		if (rl->n_keys >= ALYX_RL_MAX_KEYS)
			sweep(rl, now_ms);
		if (rl->n_keys >= ALYX_RL_MAX_KEYS)
			sweep(rl, INT64_MAX);
		e = alyx__malloc(sizeof(*e) + klen + 1);
		if (!e)
			goto out;	/* out of memory: not counted */
		memcpy(e->key, key, klen + 1);
		e->start_ms = now_ms;
		e->count = 0;
		e->window_ms = r->window_ms;
		e->next = rl->slots[slot];
		rl->slots[slot] = e;
		rl->n_keys++;
	}
	if (e->count >= r->count) {
		int64_t ms = e->start_ms + r->window_ms - now_ms;

		wait = (ms + 999) / 1000;
		if (wait < 1)
			wait = 1;
	} else {
		e->count++;
	}
out:
	pthread_mutex_unlock(&rl->mu);
	return wait;
}
