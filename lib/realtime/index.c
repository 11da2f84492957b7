/* index.c - the broker's containers: subscription sets and a hash map. */
#include <string.h>

#include "realtime/rt-int.h"
#include "util/util.h"

bool alyx__subvec_add(alyx__subvec *sv, void *s)
{
	if (sv->n == sv->cap) {
		size_t nc = sv->cap ? sv->cap * 2 : 4;
		void **nv = alyx__realloc(sv->v, nc * sizeof(*nv));

		if (!nv)
			return false;
		sv->v = nv;
		sv->cap = nc;
	}
	sv->v[sv->n++] = s;
	return true;
}

void alyx__subvec_del(alyx__subvec *sv, const void *s)
{
	size_t i;

	for (i = 0; i < sv->n; i++) {
		if (sv->v[i] == s) {
			sv->v[i] = sv->v[--sv->n];
			return;
		}
	}
}

void alyx__subvec_free(alyx__subvec *sv)
{
	alyx__free(sv->v);
	memset(sv, 0, sizeof(*sv));
}

void alyx__subvec_destroy(void *p)
{
	alyx__subvec *sv = p;

	if (sv) {
		alyx__subvec_free(sv);
		alyx__free(sv);
	}
}

/* FNV-1a, 64 bits. */
static uint64_t hash(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ull;
	}
	return h;
}

static alyx__hent **find(const alyx__hmap *m, const char *key, size_t klen,
			 uint64_t h)
{
	alyx__hent **pp;

	if (!m->nb)
		return NULL;
	for (pp = &m->b[h & (m->nb - 1)]; *pp; pp = &(*pp)->next) {
		if ((*pp)->h == h && (*pp)->klen == klen &&
		    memcmp((*pp)->key, key, klen) == 0)
			return pp;
	}
	return pp;
}

void *alyx__hmap_get(const alyx__hmap *m, const char *key, size_t klen)
{
	alyx__hent **pp = find(m, key, klen, hash(key, klen));

	return pp && *pp ? (*pp)->val : NULL;
}

static bool grow(alyx__hmap *m)
{
	size_t nb = m->nb ? m->nb * 2 : 16, i;
	alyx__hent **b = alyx__calloc(nb, sizeof(*b));

	if (!b)
		return false;
	for (i = 0; i < m->nb; i++) {
		alyx__hent *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = b[e->h & (nb - 1)];
			b[e->h & (nb - 1)] = e;
		}
	}
	alyx__free(m->b);
	m->b = b;
	m->nb = nb;
	return true;
}

bool alyx__hmap_put(alyx__hmap *m, const char *key, size_t klen, void *val)
{
	uint64_t h = hash(key, klen);
	alyx__hent **pp, *e;

	if (m->n >= m->nb && !grow(m))
		return false;
	pp = find(m, key, klen, h);
	if (*pp) {
		(*pp)->val = val;
		return true;
	}
	e = alyx__malloc(sizeof(*e) + klen + 1);
	if (!e)
		return false;
	e->next = NULL;
	e->h = h;
	e->val = val;
	e->klen = klen;
	memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	*pp = e;
	m->n++;
	return true;
}

void *alyx__hmap_del(alyx__hmap *m, const char *key, size_t klen)
{
	alyx__hent **pp = find(m, key, klen, hash(key, klen)), *e;
	void *val;

	if (!pp || !*pp)
		return NULL;
	e = *pp;
	*pp = e->next;
	val = e->val;
	alyx__free(e);
	m->n--;
	return val;
}

void alyx__hmap_clear(alyx__hmap *m, void (*fn)(void *val))
{
	size_t i;

	for (i = 0; i < m->nb; i++) {
		alyx__hent *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			if (fn)
				fn(e->val);
			alyx__free(e);
		}
	}
	alyx__free(m->b);
	memset(m, 0, sizeof(*m));
}

bool alyx__hmap_sub_add(alyx__hmap *m, const char *key, size_t klen,
			void *s)
{
	alyx__subvec *sv = alyx__hmap_get(m, key, klen);

	if (!sv) {
		sv = alyx__calloc(1, sizeof(*sv));
		if (!sv)
			return false;
		if (!alyx__hmap_put(m, key, klen, sv)) {
			alyx__free(sv);
			return false;
		}
	}
	return alyx__subvec_add(sv, s);
}

void alyx__hmap_sub_del(alyx__hmap *m, const char *key, size_t klen,
			void *s)
{
	alyx__subvec *sv = alyx__hmap_get(m, key, klen);

	if (!sv)
		return;
	alyx__subvec_del(sv, s);
	if (sv->n == 0)
		alyx__subvec_destroy(alyx__hmap_del(m, key, klen));
}
