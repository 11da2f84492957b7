/*
 * cursor.c - the opaque `after` cursor of keyset pagination.
 *
 * A cursor is base64url (no padding) of:
 *   u8  version (1)
 *   u8  number of sort keys, the primary key included
 *   per key: u16 field index, u8 flags (bit 0: descending), u8 tag, value
 *     tag 0 NULL | 1 INT: 8 bytes | 2 FLOAT: 8 bytes (IEEE-754 bits)
 *     | 3 TEXT: u32 length + bytes          (all integers big-endian)
 * The key list must match the query's sort exactly, so a cursor from a
 * query sorted differently is refused rather than misread.  Values are
 * only ever bound as parameters.
 */
#include <math.h>
#include <string.h>

#include "query/query-int.h"

#define CURSOR_VERSION 1

enum { TAG_NULL, TAG_INT, TAG_FLOAT, TAG_TEXT };

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64_enc(alyx_buf *b, const unsigned char *p, size_t n)
{
	size_t i;
	uint32_t v;
	char *d;

	if (!alyx__buf_grow(b, (n + 2) / 3 * 4))
		return;
	d = b->data + b->len;
	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*d++ = b64url[v >> 18 & 63];
		*d++ = b64url[v >> 12 & 63];
		*d++ = b64url[v >> 6 & 63];
		*d++ = b64url[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		*d++ = b64url[v >> 18 & 63];
		*d++ = b64url[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*d++ = b64url[v >> 18 & 63];
		*d++ = b64url[v >> 12 & 63];
		*d++ = b64url[v >> 6 & 63];
	}
	*d = '\0';
	b->len = (size_t)(d - b->data);
}

static int b64_val(char c)
{
	const char *p = c ? strchr(b64url, c) : NULL;

	return p ? (int)(p - b64url) : -1;
}

/* Strict: only the url alphabet, no padding, unused bits zero. */
static bool b64_dec(const char *s, size_t n, unsigned char *out,
		    size_t *outlen)
{
	size_t i, o = 0;
	uint32_t acc = 0;
	int bits = 0, v;

	if (n % 4 == 1)
		return false;
	for (i = 0; i < n; i++) {
		v = b64_val(s[i]);
		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc)
		return false;
	*outlen = o;
	return true;
}

static void put_be(alyx_buf *b, uint64_t v, int bytes)
{
	unsigned char t[8];
	int i;

	for (i = 0; i < bytes; i++)
		t[i] = (unsigned char)(v >> ((bytes - 1 - i) * 8) & 0xff);
	alyx__buf_add(b, t, (size_t)bytes);
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | *p++;
	return v;
}

int alyx__cursor_encode(alyx_buf *b, const alyx__query *q, sqlite3_stmt *st,
			const int *cols, alyx__err *err)
{
	alyx_buf raw;
	size_t k;
	double d;
	uint64_t bits;
	int col, n, rc = ALYX_OK;

	alyx__buf_init(&raw, ALYX_QUERY_MAX_CURSOR);
	alyx__buf_reserve(&raw, 120);	/* the usual cursor in one allocation */
	alyx__buf_addc(&raw, CURSOR_VERSION);
	alyx__buf_addc(&raw, (char)q->n_sort);
	for (k = 0; k < q->n_sort; k++) {
		col = cols[k];
		put_be(&raw, (uint64_t)q->sort[k].field, 2);
		alyx__buf_addc(&raw, q->sort[k].desc ? 1 : 0);
		switch (sqlite3_column_type(st, col)) {
		case SQLITE_INTEGER:
			alyx__buf_addc(&raw, TAG_INT);
			put_be(&raw, (uint64_t)sqlite3_column_int64(st, col),
			       8);
			break;
		case SQLITE_FLOAT:
			alyx__buf_addc(&raw, TAG_FLOAT);
			d = sqlite3_column_double(st, col);
			memcpy(&bits, &d, 8);
			put_be(&raw, bits, 8);
			break;
		case SQLITE_TEXT:
		case SQLITE_BLOB:
			/* Sortable fields are stored as TEXT; a BLOB here
			 * came from outside and is carried as its bytes. */
			alyx__buf_addc(&raw, TAG_TEXT);
			n = sqlite3_column_bytes(st, col);
			put_be(&raw, (uint64_t)n, 4);
			alyx__buf_add(&raw, sqlite3_column_blob(st, col),
				      (size_t)n);
			break;
		default:
			alyx__buf_addc(&raw, TAG_NULL);
			break;
		}
	}
	if (raw.err == ALYX_E_TOOBIG)
		rc = alyx__qerr(err, ALYX_E_TOOBIG, "after", NULL, 0, NULL,
				"the sort key values of the last document "
				"are too large for a cursor; page with "
				"offset instead");
	else if (raw.err)
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
	else
		b64_enc(b, (const unsigned char *)raw.data, raw.len);
	alyx__buf_free(&raw);
	return rc;
}

static int bad_cursor(alyx__err *err, const char *why)
{
	return alyx__qerr(err, ALYX_E_BADQUERY, "after", NULL, 0, NULL,
			  "after: invalid cursor (%s); use the \"next\" "
			  "value of a query with the same sort", why);
}

/* The value kind a key of field f may carry in a cursor. */
static bool tag_ok(const alyx__collection *c, int field, int tag)
{
	const alyx__field *f = &c->fields[field];

	if (tag == TAG_NULL)
		return f->nullable && (size_t)field != c->pk && !f->primary;
	switch (f->type) {
	case ALYX_T_INT:
	case ALYX_T_BOOL:
		return tag == TAG_INT;
	case ALYX_T_FLOAT:
		return tag == TAG_FLOAT;
	case ALYX_T_UUID:
	case ALYX_T_STRING:
	case ALYX_T_TEXT:
	case ALYX_T_TIMESTAMP:
		return tag == TAG_TEXT;
	default:
		return false;
	}
}

int alyx__cursor_decode(alyx__query *q, alyx__err *err)
{
	size_t n = strlen(q->after), len = 0, pos, k;
	unsigned char *raw = NULL;
	alyx__value *vals = NULL;
	int rc = ALYX_OK;

	if (!n || n > (ALYX_QUERY_MAX_CURSOR / 3 + 1) * 4)
		return bad_cursor(err, n ? "too long" : "empty");
	raw = alyx__malloc(n);
	vals = alyx__calloc(q->n_sort, sizeof(*vals));
	if (!raw || !vals) {
		rc = alyx__err_set(err, ALYX_E_NOMEM, NULL, "out of memory");
		goto out;
	}
	if (!b64_dec(q->after, n, raw, &len)) {
		rc = bad_cursor(err, "not base64url");
		goto out;
	}
	if (len < 2 || raw[0] != CURSOR_VERSION) {
		rc = bad_cursor(err, "unknown version");
		goto out;
	}
	if (raw[1] != q->n_sort) {
		rc = bad_cursor(err, "made for a different sort");
		goto out;
	}
	pos = 2;
	for (k = 0; k < q->n_sort; k++) {
		alyx__value *v = &vals[k];
		uint64_t u;
		int tag;

		if (len - pos < 4 ||
		    get_be(raw + pos, 2) != (uint64_t)q->sort[k].field ||
		    raw[pos + 2] != (q->sort[k].desc ? 1 : 0)) {
			rc = bad_cursor(err, "made for a different sort");
			goto out;
		}
		tag = raw[pos + 3];
		pos += 4;
		if (tag > TAG_TEXT || !tag_ok(q->coll, q->sort[k].field, tag)) {
			rc = bad_cursor(err, "value of the wrong type");
			goto out;
		}
		if (tag == TAG_NULL)
			continue;
		if (len - pos < (tag == TAG_TEXT ? 4u : 8u)) {
			rc = bad_cursor(err, "truncated");
			goto out;
		}
		u = get_be(raw + pos, tag == TAG_TEXT ? 4 : 8);
		pos += tag == TAG_TEXT ? 4 : 8;
		if (tag == TAG_INT) {
			v->kind = ALYX_V_INT;
			v->i = (int64_t)u;
			if (q->coll->fields[q->sort[k].field].type ==
			    ALYX_T_BOOL && u > 1) {
				rc = bad_cursor(err, "bool out of range");
				goto out;
			}
		} else if (tag == TAG_FLOAT) {
			v->kind = ALYX_V_FLOAT;
			memcpy(&v->f, &u, 8);
			if (isnan(v->f)) {
				rc = bad_cursor(err, "NaN");
				goto out;
			}
		} else {
			if (u > len - pos) {
				rc = bad_cursor(err, "truncated");
				goto out;
			}
			v->kind = ALYX_V_TEXT;
			v->n = (size_t)u;
			v->s = alyx__malloc(v->n + 1);
			if (v->s) {
				memcpy(v->s, raw + pos, v->n);
				v->s[v->n] = '\0';
			} else {
				rc = alyx__err_set(err, ALYX_E_NOMEM, NULL,
						   "out of memory");
				goto out;
			}
			pos += v->n;
		}
	}
	if (pos != len) {
		rc = bad_cursor(err, "trailing bytes");
		goto out;
	}
	q->after_vals = vals;
	q->n_after = q->n_sort;
	vals = NULL;
out:
	if (vals) {
		for (k = 0; k < q->n_sort; k++)
			alyx__value_clear(&vals[k]);
		alyx__free(vals);
	}
	alyx__free(raw);
	return rc;
}
