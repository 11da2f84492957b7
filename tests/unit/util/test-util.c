/* Unit tests of lib/util: buffers, JSON writer, time, ids, encodings. */
#include <string.h>
#include <time.h>

#include "harness.h"
#include "util/util.h"
#include "util/jsonrow.h"

TEST(buf_cap_is_sticky)
{
	alyx_buf b;

	alyx__buf_init(&b, 8);
	alyx__buf_adds(&b, "12345678");
	ASSERT_EQ(b.err, ALYX_OK);
	alyx__buf_addc(&b, '9');
	ASSERT_EQ(b.err, ALYX_E_TOOBIG);
	ASSERT(alyx__buf_take(&b) == NULL);
	alyx__buf_free(&b);
}

/* Trimming empties the buffer and clears its error; memory past `keep`
 * is released, memory within it kept. */
TEST(buf_trim_keeps_small_memory)
{
	alyx_buf b;
	char *kept;

	alyx__buf_init(&b, 4);
	alyx__buf_adds(&b, "abc");
	kept = b.data;
	alyx__buf_trim(&b, 1024);
	ASSERT(b.data == kept && b.len == 0);
	ASSERT_STR_EQ(b.data, "");
	alyx__buf_adds(&b, "12345");		/* over the cap */
	ASSERT_EQ(b.err, ALYX_E_TOOBIG);
	alyx__buf_trim(&b, 0);
	ASSERT(b.data == NULL && b.cap == 0 && b.len == 0);
	ASSERT_EQ(b.err, ALYX_OK);
	alyx__buf_adds(&b, "wxyz");		/* the cap still holds */
	ASSERT_STR_EQ(b.data, "wxyz");
	alyx__buf_addc(&b, '!');
	ASSERT_EQ(b.err, ALYX_E_TOOBIG);
	alyx__buf_free(&b);
}

/* A reservation is a hint: room and a terminated empty string when it
 * can be had; otherwise the buffer as it was, its error included. */
TEST(buf_reserve_is_a_hint)
{
	alyx_buf b;
	size_t cap;
	char *s;

	alyx__buf_init(&b, 100);
	alyx__buf_reserve(&b, 50);
	ASSERT_EQ(b.err, ALYX_OK);
	ASSERT(b.data && b.cap > 50 && b.len == 0);
	ASSERT_STR_EQ(b.data, "");
	cap = b.cap;
	alyx__buf_adds(&b, "abc");
	ASSERT_EQ(b.cap, cap);			/* no growth */
	alyx__buf_reserve(&b, 1000);		/* past the cap: ignored */
	ASSERT_EQ(b.err, ALYX_OK);
	ASSERT_STR_EQ(b.data, "abc");
	alyx__buf_adds(&b, "def");
	s = alyx__buf_take(&b);
	ASSERT_STR_EQ(s, "abcdef");
	alyx__free(s);
	alyx__buf_init(&b, 4);
	alyx__buf_adds(&b, "12345");		/* over the cap: sticky */
	alyx__buf_reserve(&b, 1);
	ASSERT_EQ(b.err, ALYX_E_TOOBIG);
	alyx__buf_free(&b);
}

TEST(json_escapes_and_utf8)
{
	alyx_buf b;
	char *s;

	alyx__buf_init(&b, 0);
	alyx__json_str(&b, "a\"b\\\n\x01\xC3\xA9\xFF", 9);
	s = alyx__buf_take(&b);
	ASSERT_STR_EQ(s, "\"a\\\"b\\\\\\n\\u0001\xC3\xA9\xEF\xBF\xBD\"");
	alyx__free(s);
	ASSERT(alyx__utf8_valid("\xC3\xA9", 2));
	ASSERT(!alyx__utf8_valid("\xC0\xAF", 2));
	ASSERT(!alyx__utf8_valid("\xED\xA0\x80", 3));
}

/* Each special byte or sequence at every offset of strings up to 70
 * bytes: the 16- and 8-byte scans hand over to the byte loop at the right
 * place whatever the alignment. */
TEST(json_escapes_at_every_offset)
{
	static const struct {
		const char *in, *out;
	} sp[] = {
		{"\"", "\\\""}, {"\\", "\\\\"}, {"\n", "\\n"},
		{"\x01", "\\u0001"}, {"\x1f", "\\u001f"},
		{"\xC3\xA9", "\xC3\xA9"}, {"\xE2\x82\xAC", "\xE2\x82\xAC"},
		{"\xFF", "\xEF\xBF\xBD"}, {"\xC3", "\xEF\xBF\xBD"},
		{"\x7f", "\x7f"},
	};

	for (size_t k = 0; k < sizeof(sp) / sizeof(sp[0]); k++) {
		for (size_t at = 0; at < 64; at++) {
			char in[80], want[100];
			size_t n = 0, w = 0, sl = strlen(sp[k].in);
			alyx_buf b;

			want[w++] = '"';
			for (; n < at; n++)
				in[n] = want[w++] = (char)('a' + n % 26);
			memcpy(in + n, sp[k].in, sl);
			n += sl;
			memcpy(want + w, sp[k].out, strlen(sp[k].out));
			w += strlen(sp[k].out);
			for (size_t t = 0; t < 5; t++)
				in[n++] = want[w++] = 'z';
			want[w++] = '"';
			alyx__buf_init(&b, 0);
			alyx__json_str(&b, in, n);
			ASSERT_EQ(b.err, ALYX_OK);
			ASSERT_EQ(b.len, w);
			ASSERT(memcmp(b.data, want, w) == 0);
			alyx__buf_free(&b);
		}
	}
}

/* The row writers write exactly what the key and the general writer
 * write, for every string of the escape test above (at every offset and
 * length, so every block boundary), or refuse and leave the buffer as it
 * was: never a different text. */
TEST(json_row_writers_match_the_writer)
{
	static const char *const sp[] = {
		"", "\"", "\\", "\n", "\x01", "\x1f", "\xC3\xA9", "\xFF", "\x7f",
		"~",
	};
	/* Keys padded as the row writers ask (15 bytes after the text). */
	static const char keys[] = ",\"a_rather_long_field_name\":"
				   "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
	size_t kl = strlen(keys);

	for (size_t k = 0; k < sizeof(sp) / sizeof(sp[0]); k++) {
		for (size_t at = 0; at < 64; at++) {
			char in[80];
			size_t n = 0, sl = strlen(sp[k]);
			alyx_buf want, got;
			bool fast;

			for (; n < at; n++)
				in[n] = (char)('a' + n % 26);
			memcpy(in + n, sp[k], sl);
			n += sl;
			alyx__buf_init(&want, 0);
			alyx__buf_init(&got, 0);
			alyx__buf_adds(&want, "[1");
			alyx__buf_adds(&got, "[1");
			alyx__buf_add(&want, keys, kl);
			alyx__json_str(&want, in, n);
			fast = alyx__json_kstr(&got, keys, kl, in, n);
			/* Plain ASCII is always taken; anything else never. */
			ASSERT_EQ(fast, sl == 0 || (sp[k][0] >= 0x20 &&
				  sp[k][0] != '"' && sp[k][0] != '\\' &&
				  (unsigned char)sp[k][0] < 0x80));
			if (!fast) {
				ASSERT_EQ(got.len, 2);
				ASSERT_STR_EQ(got.data, "[1");
				alyx__buf_add(&got, keys, kl);
				alyx__json_str(&got, in, n);
			}
			ASSERT_EQ(got.err, ALYX_OK);
			ASSERT_EQ(got.len, want.len);
			ASSERT(memcmp(got.data, want.data, want.len + 1) == 0);
			alyx__buf_free(&want);
			alyx__buf_free(&got);
		}
	}
}

TEST(json_row_writers_numbers_raw_and_cap)
{
	static const char key[] = ",\"n\":\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
	static const int64_t nums[] = {0, 7, -1, 10, 99, 100, 123456789,
				       INT64_MAX, INT64_MIN};
	alyx_buf b, w;

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		alyx__buf_init(&b, 0);
		alyx__buf_init(&w, 0);
		ASSERT(alyx__json_ki64(&b, key, 5, nums[i]));
		alyx__buf_add(&w, key, 5);
		alyx__json_i64(&w, nums[i]);
		ASSERT_STR_EQ(b.data, w.data);
		ASSERT_EQ(b.len, w.len);
		alyx__buf_free(&b);
		alyx__buf_free(&w);
	}
	alyx__buf_init(&b, 0);
	ASSERT(alyx__json_kraw(&b, key, 5, "[\"x\"]", 5));
	ASSERT(alyx__json_kraw(&b, key, 5, "null", 4));
	ASSERT_STR_EQ(b.data, ",\"n\":[\"x\"],\"n\":null");
	alyx__buf_free(&b);
	/* Near the cap they refuse without an error, so the exact writer
	 * decides: here it still fits. */
	alyx__buf_init(&b, 12);
	ASSERT(!alyx__json_kstr(&b, key, 5, "abcde", 5));
	ASSERT_EQ(b.err, ALYX_OK);
	ASSERT_EQ(b.len, 0);
	alyx__buf_add(&b, key, 5);
	alyx__json_str(&b, "abcde", 5);
	ASSERT_EQ(b.err, ALYX_OK);
	ASSERT_STR_EQ(b.data, ",\"n\":\"abcde\"");
	alyx__buf_free(&b);
}

TEST(json_numbers)
{
	alyx_buf b;
	char *s;

	alyx__buf_init(&b, 0);
	alyx__json_i64(&b, INT64_MIN);
	alyx__buf_addc(&b, ' ');
	alyx__json_f64(&b, 0.1);
	alyx__buf_addc(&b, ' ');
	alyx__json_f64(&b, 2.0);
	s = alyx__buf_take(&b);
	ASSERT_STR_EQ(s, "-9223372036854775808 0.1 2.0");
	alyx__free(s);
}

TEST(iso8601_round_trip)
{
	int64_t ms;
	char out[25];

	ASSERT(alyx__parse_iso8601("2026-01-02T03:04:05.006Z", 24, &ms));
	alyx__iso8601_ms(ms, out);
	ASSERT_STR_EQ(out, "2026-01-02T03:04:05.006Z");
	ASSERT(alyx__parse_iso8601("2026-01-02T05:04:05+02:00", 25, &ms));
	alyx__iso8601_ms(ms, out);
	ASSERT_STR_EQ(out, "2026-01-02T03:04:05.000Z");
	ASSERT(alyx__parse_iso8601("1969-12-31", 10, &ms));
	ASSERT_EQ(ms, -86400000);
	ASSERT(!alyx__parse_iso8601("2026-02-30", 10, &ms));
	ASSERT(!alyx__parse_iso8601("2026-01-02T25:00", 16, &ms));
	ASSERT(!alyx__parse_iso8601("yesterday", 9, &ms));
}

TEST(uuid_and_base64)
{
	char u[37];
	alyx_buf b;
	unsigned char *d;
	size_t n;
	char *s;

	alyx__uuid_v4(u);
	ASSERT(alyx__uuid_valid(u, 36));
	ASSERT_EQ(u[14], '4');
	alyx__buf_init(&b, 0);
	alyx__base64_enc(&b, "hello!?", 7);
	s = alyx__buf_take(&b);
	ASSERT_STR_EQ(s, "aGVsbG8hPw==");
	ASSERT(alyx__base64_dec(s, strlen(s), &d, &n));
	ASSERT_EQ(n, 7);
	ASSERT(memcmp(d, "hello!?", 7) == 0);
	alyx__free(d);
	alyx__free(s);
	ASSERT(!alyx__base64_dec("a$==", 4, &d, &n));
}

/* RFC 4231 test cases 2 (a short key) and 6 (a key longer than the
 * block, hashed first). */
TEST(hmac_sha256_rfc4231)
{
	static const unsigned char want2[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
		0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
		0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
	static const unsigned char want6[32] = {
		0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f, 0x0d, 0x8a, 0x26,
		0xaa, 0xcb, 0xf5, 0xb7, 0x7f, 0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28,
		0xc5, 0x14, 0x05, 0x46, 0x04, 0x0f, 0x0e, 0xe3, 0x7f, 0x54};
	static const char msg6[] =
		"Test Using Larger Than Block-Size Key - Hash Key First";
	unsigned char key6[131], md[32];

	ASSERT(alyx__hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28,
				 md));
	ASSERT(memcmp(md, want2, 32) == 0);
	memset(key6, 0xaa, sizeof(key6));
	ASSERT(alyx__hmac_sha256(key6, sizeof(key6), msg6, strlen(msg6), md));
	ASSERT(memcmp(md, want6, 32) == 0);
}

/* Version-7 ids: the RFC 9562 layout, the current time in their first 48
 * bits, and strictly increasing when made one after another. */
TEST(uuid_v7_time_ordered)
{
	char prev[37], u[37];
	struct timespec ts;
	uint64_t now_ms, id_ms = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	alyx__uuid_v7_pooled(prev);
	ASSERT(alyx__uuid_valid(prev, 36));
	ASSERT_EQ(prev[14], '7');
	ASSERT(strchr("89ab", prev[19]) != NULL);
	for (int i = 0; i < 12; i++) {
		char c = prev[i < 8 ? i : i + 1];
		id_ms = id_ms << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	ASSERT(id_ms >= now_ms && id_ms < now_ms + 5000);
	for (int i = 0; i < 20000; i++) {
		alyx__uuid_v7_pooled(u);
		ASSERT(strcmp(prev, u) < 0);
		memcpy(prev, u, sizeof(u));
	}
}

TEST(url_decode)
{
	char *s;
	size_t n;

	ASSERT(alyx__url_decode("a%20b+c%2C", 10, &s, &n));
	ASSERT_STR_EQ(s, "a b c,");
	alyx__free(s);
	ASSERT(!alyx__url_decode("%2", 2, &s, &n));
	ASSERT(!alyx__url_decode("%zz", 3, &s, &n));
}

TEST(idents)
{
	ASSERT(alyx__ident_valid("posts"));
	ASSERT(alyx__ident_valid("_x1"));
	ASSERT(!alyx__ident_valid("1x"));
	ASSERT(!alyx__ident_valid("a-b"));
	ASSERT(!alyx__ident_valid("a\"b"));
	ASSERT(!alyx__ident_valid(""));
	ASSERT(alyx__ident_valid("Zz_9"));
	ASSERT(!alyx__ident_valid("caf\xC3\xA9"));
	ASSERT(!alyx__ident_valid("\xC3\xA9t\xC3\xA9"));
	ASSERT(!alyx__ident_valid("a b"));
	{
		char id[66];

		memset(id, 'a', 65);
		id[63] = '\0';
		ASSERT(alyx__ident_valid(id));	/* 63 bytes */
		id[63] = 'a';
		id[64] = '\0';
		ASSERT(!alyx__ident_valid(id));	/* 64 */
	}
}

TEST(alloc_failure_is_reported)
{
	alyx_buf b;

	alyx__buf_init(&b, 0);
	alyx__fail_alloc_after(1);
	alyx__buf_adds(&b, "x");
	ASSERT_EQ(b.err, ALYX_E_NOMEM);
	alyx__fail_alloc_after(0);
	alyx__buf_free(&b);
}

TEST_MAIN()
