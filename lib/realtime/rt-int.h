/*
 * rt-int.h - what the files of lib/realtime share: a string-keyed hash
 * map and a vector of subscriptions (index.c).
 */
#ifndef ALYX_RT_INT_H
#define ALYX_RT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>



/* A set of pointers (unordered; removal swaps with the last). */
typedef struct alyx__subvec {
	void **v;
	size_t n, cap;
} alyx__subvec;

bool alyx__subvec_add(alyx__subvec *sv, void *s);
/* Removes one occurrence of s (no-op if absent). */
void alyx__subvec_del(alyx__subvec *sv, const void *s);
void alyx__subvec_free(alyx__subvec *sv);

/* A hash map from byte-string keys (any bytes, `klen` long) to values. */
typedef struct alyx__hent {
	struct alyx__hent *next;
	uint64_t h;
	void *val;
	size_t klen;
	char key[];
} alyx__hent;

typedef struct alyx__hmap {
	alyx__hent **b;
	size_t nb, n;
} alyx__hmap;

void *alyx__hmap_get(const alyx__hmap *m, const char *key, size_t klen);
/* Inserts or replaces; false when out of memory. */
bool alyx__hmap_put(alyx__hmap *m, const char *key, size_t klen, void *val);
/* Removes the key; returns its value (NULL if absent). */
void *alyx__hmap_del(alyx__hmap *m, const char *key, size_t klen);
/* Calls fn on every value, then empties the map (fn may be NULL). */
void alyx__hmap_clear(alyx__hmap *m, void (*fn)(void *val));

/* Map of key -> alyx__subvec* (the index's buckets): add s under key;
 * remove s from key's set (dropping an empty set). */
bool alyx__hmap_sub_add(alyx__hmap *m, const char *key, size_t klen,
			void *s);
void alyx__hmap_sub_del(alyx__hmap *m, const char *key, size_t klen,
			void *s);
/* Frees a key's subvec (for alyx__hmap_clear). */
void alyx__subvec_destroy(void *sv);

#endif
