/*
 * test-h1.c - the HTTP/1.1 request-head parser and the path and query
 * decoders of lib/http/h1.c: where a head ends (whole, incremental and
 * pipelined), the request line and header fields with every refusal and
 * its status, path decoding with dot segments, and query splitting.
 */
#include "harness.h"

#include "http/h1.h"
#include "http/http.h"

/* The span `sp` of head `p` is exactly the string `want`. */
#define SPAN_EQ(p, sp, want)                                            \
	do {                                                            \
		const char *se_w = (want);                              \
		size_t se_n = strlen(se_w);                             \
		ASSERT_EQ((sp).len, se_n);                              \
		if (memcmp((p) + (sp).off, se_w, se_n) != 0)            \
			TH_FAIL("span %s: got \"%.*s\", want \"%s\"",   \
				#sp, (int)(sp).len, (p) + (sp).off,     \
				se_w);                                  \
	} while (0)

/* ---- alyx__h1_head_end ---- */

/* Where the head of s ends, in one call. */
static size_t end_whole(const char *s, size_t n)
{
	size_t scan = 0;

	return alyx__h1_head_end(s, n, &scan);
}

/*
 * Feeds s[0..n) a byte at a time (n = 1, 2, ...) with one resume point,
 * as bytes trickle in, and checks the end is found once, at `want`, and
 * not before all its bytes are there.
 */
static void check_trickle(const char *s, size_t n, size_t want)
{
	size_t scan = 0, k;

	for (k = 1; k <= n; k++) {
		size_t end = alyx__h1_head_end(s, k, &scan);

		if (!want || k < want) {
			ASSERT_EQ(end, 0);
			ASSERT(scan <= k);
			continue;
		}
		ASSERT_EQ(k, want);
		ASSERT_EQ(end, want);
		return;
	}
	ASSERT_EQ(want, 0);	/* never found: it must not have one */
}

/* Every split in two calls: s[0..k) then s[0..n). */
static void check_splits(const char *s, size_t n, size_t want)
{
	for (size_t k = 0; k <= n; k++) {
		size_t scan = 0;
		size_t e1 = alyx__h1_head_end(s, k, &scan);

		if (want && k >= want) {
			ASSERT_EQ(e1, want);
			continue;
		}
		ASSERT_EQ(e1, 0);
		ASSERT(scan <= k);
		ASSERT_EQ(alyx__h1_head_end(s, n, &scan), want);
	}
}

static void check_end(const char *s, size_t want)
{
	size_t n = strlen(s);

	ASSERT_EQ(end_whole(s, n), want);
	check_trickle(s, n, want);
	check_splits(s, n, want);
}

TEST(head_end_crlf)
{
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

	check_end(s, strlen(s));
	check_end("GET / HTTP/1.1\r\n\r\n", 18);
}

TEST(head_end_bare_lf)
{
	const char *s = "GET / HTTP/1.1\nHost: a\nX: y\n\n";

	check_end(s, strlen(s));
	check_end("GET / HTTP/1.1\n\n", 16);
}

TEST(head_end_mixed_line_ends)
{
	/* "\n\r\n" and "\r\n\n" both end a head. */
	check_end("GET / HTTP/1.1\nHost: a\n\r\n", 25);
	check_end("GET / HTTP/1.1\r\nHost: a\r\n\n", 26);
}

TEST(head_end_not_yet)
{
	const char *partial[] = {
		"",
		"G",
		"GET / HTTP/1.1",
		"GET / HTTP/1.1\r",
		"GET / HTTP/1.1\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r",
		"GET / HTTP/1.1\r\nHost: a\r\r\n",	/* "\r\r\n" is no blank */
		"GET / HTTP/1.1\nHost: a\n\r",
	};

	for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		size_t n = strlen(partial[i]), scan = 0;

		ASSERT_EQ(alyx__h1_head_end(partial[i], n, &scan), 0);
		ASSERT(scan <= n);
		check_trickle(partial[i], n, 0);
	}
}

TEST(head_end_pipelined)
{
	const char *s = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
			"GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t first = strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");

	check_end(s, first);
	/* The second head, from where the first ended. */
	check_end(s + first, strlen(s) - first);
	/* A body after the head does not move the end. */
	check_end("POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n\r\n\r\nab", 38);
	check_end("GET / HTTP/1.1\n\nGET / HTTP/1.1\n\n", 16);
}

/* ---- alyx__h1_parse ---- */

/* Parses the head at the start of s (through its end); the status, or 0
 * when it parsed. */
static int parse(const char *s, alyx__h1head *h)
{
	size_t n = end_whole(s, strlen(s));
	int status = -1;
	const char *why = NULL;

	if (!n)
		TH_FAIL("no head end in \"%s\"", s);
	if (alyx__h1_parse(s, n, h, &status, &why) == 0) {
		ASSERT_EQ(h->head_len, n);
		return 0;
	}
	ASSERT(why != NULL && why[0] != '\0');
	ASSERT(status == 400 || status == 431 || status == 501 ||
	       status == 505);
	return status;
}

static int status_of(const char *s)
{
	alyx__h1head h;

	return parse(s, &h);
}

TEST(parse_methods)
{
	static const struct {
		const char *tok;
		int m;
	} ms[] = {
		{"GET", M_GET},		{"POST", M_POST},
		{"PATCH", M_PATCH},	{"DELETE", M_DELETE},
		{"PUT", M_PUT},		{"OPTIONS", M_OPTIONS},
		{"HEAD", M_HEAD},
	};

	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		char buf[128];
		alyx__h1head h;

		snprintf(buf, sizeof(buf), "%s /x HTTP/1.1\r\n\r\n", ms[i].tok);
		ASSERT_EQ(parse(buf, &h), 0);
		ASSERT_EQ(h.method, ms[i].m);
		ASSERT_EQ(h.method_tok.off, 0);
		SPAN_EQ(buf, h.method_tok, ms[i].tok);
		ASSERT_EQ(h.minor, 1);
		SPAN_EQ(buf, h.path, "/x");
		ASSERT(!h.has_query);
		ASSERT_EQ(h.query.len, 0);
		ASSERT_EQ(h.have, 0);
		ASSERT_EQ(h.head_len, strlen(buf));
	}
}

TEST(parse_unknown_methods)
{
	alyx__h1head h;

	ASSERT_EQ(parse("FOO / HTTP/1.1\r\n\r\n", &h), 501);
	ASSERT_EQ(h.method, M_OTHER);
	ASSERT_EQ(status_of("CONNECT / HTTP/1.1\r\n\r\n"), 501);
	ASSERT_EQ(status_of("TRACE / HTTP/1.1\r\n\r\n"), 501);
	ASSERT_EQ(status_of("M-SEARCH / HTTP/1.1\r\n\r\n"), 501);
	/* Methods are case-sensitive. */
	ASSERT_EQ(status_of("get / HTTP/1.1\r\n\r\n"), 501);
	ASSERT_EQ(status_of("Post / HTTP/1.1\r\n\r\n"), 501);
	ASSERT_EQ(status_of("GETX / HTTP/1.1\r\n\r\n"), 501);
	/* Not a token at all. */
	ASSERT_EQ(status_of("G(T / HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET\t/ HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of(" GET / HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("\x80GET / HTTP/1.1\r\n\r\n"), 400);
}

TEST(parse_versions)
{
	alyx__h1head h;

	ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", &h), 0);
	ASSERT_EQ(h.minor, 0);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\n\r\n", &h), 0);
	ASSERT_EQ(h.minor, 1);
	ASSERT_EQ(status_of("GET / HTTP/2.0\r\n\r\n"), 505);
	ASSERT_EQ(status_of("GET / HTTP/1.2\r\n\r\n"), 505);
	ASSERT_EQ(status_of("GET / HTTP/1.9\r\n\r\n"), 505);
	ASSERT_EQ(status_of("GET / HTTP/0.9\r\n\r\n"), 505);
	ASSERT_EQ(status_of("GET / HTTP/x.y\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.x\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1,1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/11\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.10\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / http/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1 \r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / \r\n\r\n"), 400);
	/* The version is checked before the method. */
	ASSERT_EQ(status_of("FOO / HTTP/2.0\r\n\r\n"), 505);
}

TEST(parse_bad_targets)
{
	ASSERT_EQ(status_of("GET HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET  HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /\r\n\r\n"), 400);
	ASSERT_EQ(status_of("\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET a/b HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET ?a=1 HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET http:/h/ HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET ://h/ HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET 1http://h/ HTTP/1.1\r\n\r\n"), 400);
	/* '*' is a target for OPTIONS only, and alone. */
	ASSERT_EQ(status_of("GET * HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("POST * HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("OPTIONS ** HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("OPTIONS *?a=1 HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("OPTIONS */a HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET #f HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /a#f HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /a?x=1#f HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /a b HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /a\tb HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /a\x01 HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /a\x1f HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /a\x7f HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /\x80 HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /\xc3\xa9 HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /?\xff HTTP/1.1\r\n\r\n"), 400);
}

TEST(parse_target_spans)
{
	alyx__h1head h;
	const char *s;

	s = "GET /a/b HTTP/1.1\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.path.off, 4);
	SPAN_EQ(s, h.path, "/a/b");
	ASSERT(!h.has_query);
	ASSERT_EQ(h.query.off, 0);
	ASSERT_EQ(h.query.len, 0);

	s = "GET /a/b?x=1&y=%20 HTTP/1.1\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	SPAN_EQ(s, h.path, "/a/b");
	ASSERT(h.has_query);
	ASSERT_EQ(h.query.off, 9);
	SPAN_EQ(s, h.query, "x=1&y=%20");

	s = "GET /? HTTP/1.1\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	SPAN_EQ(s, h.path, "/");
	ASSERT(h.has_query);
	ASSERT_EQ(h.query.off, 6);
	ASSERT_EQ(h.query.len, 0);

	/* Only the first '?' splits. */
	s = "DELETE /p/%2F?a?b HTTP/1.0\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.method, M_DELETE);
	ASSERT_EQ(h.minor, 0);
	SPAN_EQ(s, h.path, "/p/%2F");
	SPAN_EQ(s, h.query, "a?b");

	s = "GET / HTTP/1.1\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	SPAN_EQ(s, h.path, "/");
	ASSERT(!h.has_query);
}

TEST(parse_absolute_form)
{
	alyx__h1head h;
	const char *s;

	/* RFC 9112 §3.2.2: a server accepts absolute-form; the scheme and
	 * the authority are skipped. */
	s = "GET http://example.com:8090/a/b?x=1 HTTP/1.1\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	SPAN_EQ(s, h.path, "/a/b");
	ASSERT(h.has_query);
	SPAN_EQ(s, h.query, "x=1");

	s = "GET HTTPS://h HTTP/1.1\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.path.len, 0);	/* no path: "/" */
	ASSERT(!h.has_query);

	s = "GET svn+ssh.x-y://h?q HTTP/1.1\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.path.len, 0);
	ASSERT(h.has_query);
	SPAN_EQ(s, h.query, "q");
}

TEST(parse_asterisk_form)
{
	alyx__h1head h;
	const char *s = "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n";

	/* RFC 9112 §3.2.4: the server as a whole. */
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.method, M_OPTIONS);
	SPAN_EQ(s, h.path, "*");
	ASSERT(!h.has_query);
}

TEST(parse_connection_lists)
{
	alyx__h1head h;

	/* Every Connection and Upgrade line counts, not only the first. */
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\n"
			"Connection: close\r\n\r\n", &h), 0);
	ASSERT(h.conn_close);
	ASSERT(!h.conn_upgrade);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: Keep-Alive, "
			"UPGRADE\r\nUpgrade: h2c\r\nUpgrade: WebSocket\r\n"
			"\r\n", &h), 0);
	ASSERT(!h.conn_close);
	ASSERT(h.conn_upgrade);
	ASSERT(h.upgrade_websocket);
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: closed, x-close\r\n"
			"Upgrade: websockets\r\n\r\n", &h), 0);
	ASSERT(!h.conn_close);
	ASSERT(!h.upgrade_websocket);
	ASSERT(alyx__h1_has_token(" a ,\tb\t, c", 11, "b"));
	ASSERT(!alyx__h1_has_token("ab, c", 5, "a"));
	ASSERT(!alyx__h1_has_token("", 0, "a"));
}

TEST(parse_known_headers)
{
	static const struct {
		const char *name;
		int hh;
	} hs[] = {
		{"Host", HH_HOST},
		{"Content-Type", HH_CONTENT_TYPE},
		{"Content-Length", HH_CONTENT_LENGTH},
		{"Transfer-Encoding", HH_TRANSFER_ENCODING},
		{"Expect", HH_EXPECT},
		{"Authorization", HH_AUTHORIZATION},
		{"Origin", HH_ORIGIN},
		{"Access-Control-Request-Headers", HH_AC_REQUEST_HEADERS},
		{"X-Request-Id", HH_X_REQUEST_ID},
		{"Connection", HH_CONNECTION},
		{"Upgrade", HH_UPGRADE},
	};

	for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
		char name[3][64], buf[256];
		size_t l = strlen(hs[i].name);

		/* As written, lower case and upper case. */
		for (size_t j = 0; j <= l; j++) {
			char c = hs[i].name[j];

			name[0][j] = c;
			name[1][j] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			name[2][j] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
		}
		for (int v = 0; v < 3; v++) {
			alyx__h1head h;
			const char *val;

			snprintf(buf, sizeof(buf),
				 "GET / HTTP/1.1\r\nX-Other: 1\r\n"
				 "%s: \t v a\t \r\nX-After: 2\r\n\r\n",
				 name[v]);
			ASSERT_EQ(parse(buf, &h), 0);
			ASSERT_EQ(h.have, 1u << hs[i].hh);
			val = strstr(buf, "v a");
			ASSERT_EQ(h.hv[hs[i].hh].off, val - buf);
			SPAN_EQ(buf, h.hv[hs[i].hh], "v a");
			for (int k = 0; k < HH_COUNT; k++) {
				if (k == hs[i].hh)
					continue;
				ASSERT_EQ(h.hv[k].off, 0);
				ASSERT_EQ(h.hv[k].len, 0);
			}
		}
	}
}

TEST(parse_all_headers)
{
	const char *s =
		"POST /c?x HTTP/1.1\r\n"
		"host: example.com:8080\r\n"
		"CONTENT-TYPE:application/json\r\n"
		"Content-Length:   12   \r\n"
		"Transfer-Encoding: chunked\r\n"
		"Expect: 100-continue\r\n"
		"Authorization: Bearer abc.def\r\n"
		"Origin: https://o.example\r\n"
		"access-control-request-headers: a, b\r\n"
		"X-Request-ID: r-1\r\n"
		"Connection: Upgrade\r\n"
		"Upgrade: websocket\r\n"
		"Accept: */*\r\n"
		"\r\n";
	alyx__h1head h;

	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.method, M_POST);
	ASSERT_EQ(h.have, (1u << HH_COUNT) - 1);
	SPAN_EQ(s, h.hv[HH_HOST], "example.com:8080");
	SPAN_EQ(s, h.hv[HH_CONTENT_TYPE], "application/json");
	SPAN_EQ(s, h.hv[HH_CONTENT_LENGTH], "12");
	SPAN_EQ(s, h.hv[HH_TRANSFER_ENCODING], "chunked");
	SPAN_EQ(s, h.hv[HH_EXPECT], "100-continue");
	SPAN_EQ(s, h.hv[HH_AUTHORIZATION], "Bearer abc.def");
	SPAN_EQ(s, h.hv[HH_ORIGIN], "https://o.example");
	SPAN_EQ(s, h.hv[HH_AC_REQUEST_HEADERS], "a, b");
	SPAN_EQ(s, h.hv[HH_X_REQUEST_ID], "r-1");
	SPAN_EQ(s, h.hv[HH_CONNECTION], "Upgrade");
	SPAN_EQ(s, h.hv[HH_UPGRADE], "websocket");
	ASSERT_EQ(h.head_len, strlen(s));
}

TEST(parse_bare_lf_head)
{
	const char *s = "PUT /x?y=1 HTTP/1.0\nHost:h\nX-Request-Id: \tq\n\n";
	alyx__h1head h;

	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.method, M_PUT);
	ASSERT_EQ(h.minor, 0);
	SPAN_EQ(s, h.path, "/x");
	SPAN_EQ(s, h.query, "y=1");
	ASSERT_EQ(h.have, (1u << HH_HOST) | (1u << HH_X_REQUEST_ID));
	SPAN_EQ(s, h.hv[HH_HOST], "h");
	SPAN_EQ(s, h.hv[HH_X_REQUEST_ID], "q");
	ASSERT_EQ(h.head_len, strlen(s));
}

TEST(parse_empty_and_unknown_headers)
{
	alyx__h1head h;
	const char *s;

	s = "GET / HTTP/1.1\r\nAccept: */*\r\nX-Hosty: 1\r\nHos: 2\r\n"
	    "Content-Lengths: 3\r\nUser-Agent: t\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.have, 0);
	for (int k = 0; k < HH_COUNT; k++)
		ASSERT_EQ(h.hv[k].len, 0);

	/* An empty value is present, with length 0. */
	s = "GET / HTTP/1.1\r\nHost:\r\nOrigin: \t \r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.have, (1u << HH_HOST) | (1u << HH_ORIGIN));
	ASSERT_EQ(h.hv[HH_HOST].len, 0);
	ASSERT_EQ(h.hv[HH_ORIGIN].len, 0);
}

TEST(parse_duplicates)
{
	static const char *const once[] = {
		"Host", "Content-Length", "Transfer-Encoding", "Content-Type",
		"Authorization",
	};
	alyx__h1head h;
	const char *s;

	for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++) {
		char buf[256];

		snprintf(buf, sizeof(buf),
			 "GET / HTTP/1.1\r\n%s: a\r\nX: y\r\n%s: a\r\n\r\n",
			 once[i], once[i]);
		ASSERT_EQ(status_of(buf), 400);
	}
	/* Case does not hide a duplicate. */
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n"),
		  400);
	ASSERT_EQ(status_of("POST / HTTP/1.1\r\nContent-Length: 1\r\n"
			    "content-length: 1\r\n\r\n"), 400);

	/* A second Origin is ignored: the first value stays. */
	s = "GET / HTTP/1.1\r\nOrigin: https://a\r\nOrigin: https://b\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.have, 1u << HH_ORIGIN);
	SPAN_EQ(s, h.hv[HH_ORIGIN], "https://a");

	/* Unknown headers may repeat. */
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nAccept: a\r\nAccept: b\r\n\r\n"),
		  0);
}

TEST(parse_refusal_names_its_part)
{
	alyx__h1head h;
	const char *s;

	/* The repeated header is named (the second line, as sent). */
	s = "GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 400);
	ASSERT_EQ(h.fail_part, ALYX_H1_HEADERS);
	SPAN_EQ(s, h.fail_name, "HOST");
	s = "GET / HTTP/1.1\r\nX-A: a\x01\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 400);
	ASSERT_EQ(h.fail_part, ALYX_H1_HEADERS);
	SPAN_EQ(s, h.fail_name, "X-A");
	/* A malformed line has no name to give. */
	s = "GET / HTTP/1.1\r\nBad Line\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 400);
	ASSERT_EQ(h.fail_part, ALYX_H1_HEADERS);
	ASSERT_EQ(h.fail_name.len, 0);
	s = "GET / HTTP/2.0\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 505);
	ASSERT_EQ(h.fail_part, ALYX_H1_LINE);
	ASSERT_EQ(h.fail_name.len, 0);
}

TEST(parse_bad_header_lines)
{
	/* obs-fold */
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
	/* whitespace before ':' */
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400);
	/* no ':', empty name, a name that is not a token */
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost a\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\n: a\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX(y): a\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX\x80: a\r\n\r\n"), 400);
	/* control bytes in a value */
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX-A: a\x1b\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX-A: a\x7fz\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: \x0b\r\n\r\n"), 400);
	/* a lone CR inside a line */
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET /\r HTTP/1.1\r\n\r\n"), 400);
	ASSERT_EQ(status_of("GET / HTTP/1.1\r\nX\rY: a\r\n\r\n"), 400);
}

TEST(parse_value_bytes_allowed)
{
	alyx__h1head h;
	const char *s;

	/* A tab inside a value is allowed and kept. */
	s = "GET / HTTP/1.1\r\nX-Request-Id: a\tb\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	SPAN_EQ(s, h.hv[HH_X_REQUEST_ID], "a\tb");
	/* obs-text (0x80-0xff) is allowed in a value. */
	s = "GET / HTTP/1.1\r\nOrigin: \xc3\xa9\xff\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	SPAN_EQ(s, h.hv[HH_ORIGIN], "\xc3\xa9\xff");
	/* A value of tabs and spaces only is empty. */
	s = "GET / HTTP/1.1\r\nExpect:\t\r\n\r\n";
	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.have, 1u << HH_EXPECT);
	ASSERT_EQ(h.hv[HH_EXPECT].len, 0);
}

/* A head with `count` header lines "X-N: v". */
static char *many_headers(int count, size_t *n)
{
	size_t cap = 64 + (size_t)count * 32, o = 0;
	char *s = malloc(cap);

	if (!s)
		abort();
	o += (size_t)snprintf(s + o, cap - o, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < count; i++) {
		if (i == count - 1)
			o += (size_t)snprintf(s + o, cap - o, "Host: h\r\n");
		else
			o += (size_t)snprintf(s + o, cap - o, "X-%d: v\r\n", i);
	}
	o += (size_t)snprintf(s + o, cap - o, "\r\n");
	*n = o;
	return s;
}

TEST(parse_header_limit)
{
	alyx__h1head h;
	size_t n;
	char *s;
	int st;

	s = many_headers(ALYX_H1_MAX_HEADERS, &n);
	st = parse(s, &h);
	ASSERT_EQ(st, 0);
	ASSERT_EQ(h.have, 1u << HH_HOST);
	SPAN_EQ(s, h.hv[HH_HOST], "h");
	ASSERT_EQ(h.head_len, n);
	free(s);

	s = many_headers(ALYX_H1_MAX_HEADERS + 1, &n);
	st = parse(s, &h);
	free(s);
	ASSERT_EQ(st, 431);
}

TEST(parse_head_len_pipelined)
{
	const char *s = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
			"POST /b HTTP/1.1\r\nHost: y\r\n\r\n";
	size_t first = strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
	alyx__h1head h;

	ASSERT_EQ(parse(s, &h), 0);
	ASSERT_EQ(h.head_len, first);
	ASSERT_EQ(h.method, M_GET);
	SPAN_EQ(s, h.hv[HH_HOST], "x");
	ASSERT_EQ(parse(s + first, &h), 0);
	ASSERT_EQ(h.method, M_POST);
	SPAN_EQ(s + first, h.path, "/b");
	SPAN_EQ(s + first, h.hv[HH_HOST], "y");
}

/* ---- alyx__h1_path ---- */

/* Decodes s with a roomy buffer; checks the NUL and the length. */
static long path_of(const char *s, char *out, size_t cap)
{
	long k;

	memset(out, 'X', cap);
	k = alyx__h1_path(s, strlen(s), out, cap);
	if (k >= 0) {
		ASSERT((size_t)k < cap);
		ASSERT_EQ(out[k], '\0');
		ASSERT_EQ(strlen(out), k);
	}
	return k;
}

#define PATH_IS(in, want)                                               \
	do {                                                            \
		char pi_out[256];                                       \
		long pi_k = path_of((in), pi_out, sizeof(pi_out));      \
		ASSERT_EQ(pi_k, strlen(want));                          \
		ASSERT_STR_EQ(pi_out, (want));                          \
	} while (0)

#define PATH_BAD(in)                                                    \
	do {                                                            \
		char pb_out[256];                                       \
		ASSERT_EQ(path_of((in), pb_out, sizeof(pb_out)), -1);   \
	} while (0)

TEST(path_plain_and_escapes)
{
	PATH_IS("/", "/");
	PATH_IS("/a", "/a");
	PATH_IS("/api/v1/posts", "/api/v1/posts");
	PATH_IS("/a/", "/a/");
	PATH_IS("/%41%62c", "/Abc");
	PATH_IS("/%4a%4A", "/JJ");
	PATH_IS("/a%20b", "/a b");
	PATH_IS("/%e2%82%AC", "/\xe2\x82\xac");
	PATH_IS("/%25", "/%");
	PATH_IS("/%3F%23", "/?#");
	PATH_IS("/a+b", "/a+b");	/* '+' is literal in a path */
	PATH_IS("/...", "/...");
	PATH_IS("/.a/..b/a../a./", "/.a/..b/a../a./");
}

TEST(path_bad_escapes)
{
	PATH_BAD("/%00");
	PATH_BAD("/a%00b");
	PATH_BAD("%");
	PATH_BAD("/%");
	PATH_BAD("/%2");
	PATH_BAD("/a%2");
	PATH_BAD("/%zz");
	PATH_BAD("/%g0");
	PATH_BAD("/%0g");
	PATH_BAD("/%-1");
	PATH_BAD("/% 1");
	PATH_BAD("/%%41");
}

TEST(path_slashes_and_dots)
{
	PATH_IS("//", "/");
	PATH_IS("///a//b///", "/a/b/");
	PATH_IS("/a//b", "/a/b");
	PATH_IS("/a/b/../c", "/a/c");
	PATH_IS("/a/bb/../c", "/a/c");
	PATH_IS("/a/./b", "/a/b");
	PATH_IS("/../../x", "/x");
	PATH_IS("/a/..", "/");
	PATH_IS("/a/.", "/a/");
	PATH_IS("/a/b/..", "/a/");
	PATH_IS("/a/b/.", "/a/b/");
	PATH_IS("/..", "/");
	PATH_IS("/.", "/");
	PATH_IS("/./", "/");
	PATH_IS("/../", "/");
	PATH_IS("/a/b/c/./../../g", "/a/g");
	PATH_IS("/a/./../b", "/b");
	PATH_IS("/a/b/../../../../x/y", "/x/y");
	PATH_IS("/a//../b", "/b");
	PATH_IS("/a/..//b", "/b");
	PATH_IS("/./././a", "/a");
	/* Escaped dots and slashes are decoded first. */
	PATH_IS("/a/b/%2e%2e/c", "/a/c");
	PATH_IS("/a/b/%2E%2E", "/a/");
	PATH_IS("/a/.%2e/c", "/c");
	PATH_IS("/a/%2e/b", "/a/b");
	PATH_IS("/a%2fb", "/a/b");
	PATH_IS("/a%2F..%2Fb", "/b");
	PATH_IS("/%2e%2e%2f%2e%2e%2fetc", "/etc");
	PATH_IS("/a%2f%2f%2fb", "/a/b");
}

TEST(path_cap)
{
	char out[8];

	ASSERT_EQ(alyx__h1_path("/abc", 4, out, 5), 4);
	ASSERT_STR_EQ(out, "/abc");
	ASSERT_EQ(alyx__h1_path("/abc", 4, out, 4), -1);
	ASSERT_EQ(alyx__h1_path("/abc", 4, out, 1), -1);
	ASSERT_EQ(alyx__h1_path("/abc", 4, out, 0), -1);
	ASSERT_EQ(alyx__h1_path("/%41", 4, out, 3), 2);
	ASSERT_STR_EQ(out, "/A");
	ASSERT_EQ(alyx__h1_path("/%41", 4, out, 2), -1);
	ASSERT_EQ(alyx__h1_path("/", 1, out, 2), 1);
	ASSERT_STR_EQ(out, "/");
	/* Only the first n bytes are read. */
	ASSERT_EQ(alyx__h1_path("/ab?c", 3, out, sizeof(out)), 3);
	ASSERT_STR_EQ(out, "/ab");
}

/* ---- alyx__h1_args ---- */

struct args {
	char out[256];
	alyx__h1span a[16];
	int n;
};

/* Decodes q; checks every piece lies in out and ends in a NUL. */
static int args_of(const char *q, struct args *r, size_t cap, int max)
{
	memset(r->out, 'X', sizeof(r->out));
	memset(r->a, 0xa5, sizeof(r->a));
	r->n = alyx__h1_args(q, strlen(q), r->out, cap, r->a, max);
	for (int i = 0; i < r->n; i++) {
		ASSERT(r->a[i].off + r->a[i].len < cap);
		ASSERT_EQ(r->out[r->a[i].off + r->a[i].len], '\0');
		ASSERT_EQ(strlen(r->out + r->a[i].off), r->a[i].len);
		if (i)
			ASSERT(r->a[i].off > r->a[i - 1].off +
					     r->a[i - 1].len);
	}
	return r->n;
}

#define PIECE_IS(r, i, want) ASSERT_STR_EQ((r).out + (r).a[i].off, (want))

TEST(args_split_and_decode)
{
	struct args r;

	ASSERT_EQ(args_of("a=1&b=2", &r, sizeof(r.out), 16), 2);
	PIECE_IS(r, 0, "a=1");
	PIECE_IS(r, 1, "b=2");
	ASSERT_EQ(r.a[0].off, 0);
	ASSERT_EQ(r.a[0].len, 3);
	ASSERT_EQ(r.a[1].off, 4);
	ASSERT_EQ(r.a[1].len, 3);

	ASSERT_EQ(args_of("x", &r, sizeof(r.out), 16), 1);
	PIECE_IS(r, 0, "x");

	ASSERT_EQ(args_of("q=a+b+%2B&w=%41%6a%4A", &r, sizeof(r.out), 16), 2);
	PIECE_IS(r, 0, "q=a b +");
	PIECE_IS(r, 1, "w=AjJ");

	/* An escaped '&' or '=' is data, not a separator. */
	ASSERT_EQ(args_of("k=%26%3d&z", &r, sizeof(r.out), 16), 2);
	PIECE_IS(r, 0, "k=&=");
	PIECE_IS(r, 1, "z");

	ASSERT_EQ(args_of("e=%e2%82%ac", &r, sizeof(r.out), 16), 1);
	PIECE_IS(r, 0, "e=\xe2\x82\xac");
}

TEST(args_empty_pieces)
{
	struct args r;

	ASSERT_EQ(args_of("a=1&&b=2", &r, sizeof(r.out), 16), 3);
	PIECE_IS(r, 0, "a=1");
	PIECE_IS(r, 1, "");
	ASSERT_EQ(r.a[1].len, 0);
	PIECE_IS(r, 2, "b=2");

	ASSERT_EQ(args_of("&", &r, sizeof(r.out), 16), 2);
	ASSERT_EQ(r.a[0].len, 0);
	ASSERT_EQ(r.a[1].len, 0);

	ASSERT_EQ(args_of("a&", &r, sizeof(r.out), 16), 2);
	PIECE_IS(r, 0, "a");
	PIECE_IS(r, 1, "");

	ASSERT_EQ(args_of("&a", &r, sizeof(r.out), 16), 2);
	PIECE_IS(r, 0, "");
	PIECE_IS(r, 1, "a");
}

TEST(args_bad_escapes)
{
	struct args r;

	ASSERT_EQ(args_of("a=%00", &r, sizeof(r.out), 16), -1);
	ASSERT_EQ(args_of("b=1&a=x%00y", &r, sizeof(r.out), 16), -1);
	ASSERT_EQ(args_of("a=%", &r, sizeof(r.out), 16), -1);
	ASSERT_EQ(args_of("a=%2", &r, sizeof(r.out), 16), -1);
	ASSERT_EQ(args_of("a=%zz", &r, sizeof(r.out), 16), -1);
	ASSERT_EQ(args_of("a=%2&b=1", &r, sizeof(r.out), 16), -1);
	/* An escape does not borrow the next piece's bytes. */
	ASSERT_EQ(args_of("a=%4&1", &r, sizeof(r.out), 16), -1);
	ASSERT_EQ(args_of("%&41", &r, sizeof(r.out), 16), -1);
}

TEST(args_limits)
{
	struct args r;

	ASSERT_EQ(args_of("a&b&c", &r, sizeof(r.out), 3), 3);
	PIECE_IS(r, 2, "c");
	ASSERT_EQ(args_of("a&b&c", &r, sizeof(r.out), 2), -2);
	ASSERT_EQ(args_of("a&&", &r, sizeof(r.out), 2), -2);
	ASSERT_EQ(args_of("a", &r, sizeof(r.out), 0), -2);

	/* "abc" needs 4 bytes with its NUL, "a&b" 4 ("a\0b\0"). */
	ASSERT_EQ(args_of("abc", &r, 4, 16), 1);
	PIECE_IS(r, 0, "abc");
	ASSERT_EQ(args_of("abc", &r, 3, 16), -2);
	ASSERT_EQ(args_of("a&b", &r, 4, 16), 2);
	PIECE_IS(r, 0, "a");
	PIECE_IS(r, 1, "b");
	ASSERT_EQ(args_of("a&b", &r, 3, 16), -2);
	ASSERT_EQ(args_of("a", &r, 0, 16), -2);
	/* Nothing is written at or past cap. */
	ASSERT_EQ(args_of("ab&cd", &r, 6, 16), 2);
	ASSERT_EQ(r.out[6], 'X');
}

/* ---- Transfer-Encoding and chunked bodies ---- */

static int te_of(const char *v)
{
	return alyx__h1_te(v, strlen(v));
}

TEST(te_lists)
{
	ASSERT_EQ(te_of("chunked"), 1);
	ASSERT_EQ(te_of("Chunked"), 1);
	ASSERT_EQ(te_of("CHUNKED"), 1);
	ASSERT_EQ(te_of(" , chunked ,\t"), 1);	/* empty elements */
	ASSERT_EQ(te_of("gzip, chunked"), -1);	/* a coding alyx lacks */
	ASSERT_EQ(te_of("identity,chunked"), -1);
	ASSERT_EQ(te_of("chunked, gzip"), 0);	/* not the final one */
	ASSERT_EQ(te_of("chunked, chunked"), 0);	/* twice */
	ASSERT_EQ(te_of("gzip"), 0);
	ASSERT_EQ(te_of(""), 0);
	ASSERT_EQ(te_of(" , "), 0);
	ASSERT_EQ(te_of("chunked;x=1"), 0);	/* chunked has no parameters */
	ASSERT_EQ(te_of("chunkedx"), 0);
	ASSERT_EQ(te_of("xchunked"), 0);
}

/*
 * Decodes s[0..n) as a chunked body whose bytes become available at the
 * cumulative points avail[0..na) (the last is n), calling the decoder on
 * what is unused each time, as front.c does.  The data go to out
 * (*outn); *used is how many bytes the body took.  Returns the last
 * status: END, MORE (ran out), or BAD (*why).
 */
static int chunk_feed(const char *s, const size_t *avail, size_t na,
		      char *out, size_t *outn, size_t *used,
		      const char **why)
{
	alyx__h1chunk c;
	size_t at = 0;

	memset(&c, 0, sizeof(c));
	*outn = 0;
	for (size_t i = 0; i < na; i++) {
		for (;;) {
			size_t u = 0, off, len;
			int k = alyx__h1_chunked(&c, s + at, avail[i] - at, &u,
						 &off, &len, why);

			if (k == ALYX_H1_CHUNK_BAD)
				return k;
			if (k == ALYX_H1_CHUNK_DATA) {
				/* A data run lies inside what was used. */
				if (off + len != u || !len)
					TH_FAIL("data run %zu+%zu, used %zu",
						off, len, u);
				memcpy(out + *outn, s + at + off, len);
				*outn += len;
				at += u;
				continue;
			}
			at += u;
			if (k == ALYX_H1_CHUNK_END) {
				*used = at;
				return k;
			}
			if (at != avail[i])
				TH_FAIL("MORE with %zu of %zu used", at,
					avail[i]);
			break;
		}
	}
	*used = at;
	return ALYX_H1_CHUNK_MORE;
}

/*
 * The chunked body at the start of s decodes to `data` and takes `body`
 * bytes (the rest is the next request's), fed whole, in every two-part
 * split and a byte at a time.
 */
static void check_chunked(const char *s, size_t n, const char *data,
			  size_t dn, size_t body)
{
	size_t outn, used, avail[2];
	static char out[16384];
	static size_t steps[16384];
	const char *why = NULL;

	ASSERT(n < sizeof(steps) / sizeof(steps[0]));
	for (size_t k = 0; k <= n; k++) {
		avail[0] = k;
		avail[1] = n;
		ASSERT_EQ(chunk_feed(s, avail, 2, out, &outn, &used, &why),
			  ALYX_H1_CHUNK_END);
		ASSERT_EQ(used, body);
		ASSERT_EQ(outn, dn);
		ASSERT(!memcmp(out, data, outn));
	}
	for (size_t k = 0; k < n; k++)
		steps[k] = k + 1;
	ASSERT_EQ(chunk_feed(s, steps, n, out, &outn, &used, &why),
		  ALYX_H1_CHUNK_END);
	ASSERT_EQ(used, body);
	ASSERT_EQ(outn, dn);
	ASSERT(!memcmp(out, data, outn));
}

#define GOOD_CHUNKED(s, data, body) \
	check_chunked((s), sizeof(s) - 1, (data), sizeof(data) - 1, (body))

/* s is refused, whole and a byte at a time, with a message containing
 * `msg`. */
static void check_chunked_bad(const char *s, size_t n, const char *msg)
{
	size_t outn, used, avail[1] = {n};
	static char out[32768];
	static size_t steps[32768];
	const char *why = NULL;

	if (chunk_feed(s, avail, 1, out, &outn, &used, &why) !=
	    ALYX_H1_CHUNK_BAD)
		TH_FAIL("not refused: \"%.*s\"", (int)(n > 40 ? 40 : n), s);
	ASSERT(why != NULL);
	ASSERT_CONTAINS(why, msg);
	ASSERT(n <= sizeof(steps) / sizeof(steps[0]));
	for (size_t k = 0; k < n; k++)
		steps[k] = k + 1;
	why = NULL;
	ASSERT_EQ(chunk_feed(s, steps, n, out, &outn, &used, &why),
		  ALYX_H1_CHUNK_BAD);
	ASSERT_CONTAINS(why, msg);
}

#define BAD_CHUNKED(s, msg) check_chunked_bad((s), sizeof(s) - 1, (msg))

TEST(chunked_bodies)
{
	const char *two = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

	GOOD_CHUNKED("5\r\nhello\r\n0\r\n\r\n", "hello", 15);
	check_chunked(two, strlen(two), "hello world", 11, strlen(two));
	/* What follows the body is left for the next request. */
	GOOD_CHUNKED("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello",
		     15);
	GOOD_CHUNKED("0\r\n\r\n", "", 5);	/* an empty body */
	GOOD_CHUNKED("5\nhello\n0\n\n", "hello", 11);	/* bare LF */
	GOOD_CHUNKED("5\nhello\r\n0\r\n\n", "hello", 13);
	/* Hex of either case, leading zeros. */
	GOOD_CHUNKED("000A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 23);
	GOOD_CHUNKED("a\r\n0123456789\r\n1F\r\n"
		     "0123456789abcdefghijklmnopqrstu\r\n0\r\n\r\n",
		     "01234567890123456789abcdefghijklmnopqrstu", 57);
	/* Extensions, blanks before them, dropped. */
	GOOD_CHUNKED("5;name=val;x\r\nhello\r\n0;last=\"q \\\" ;\"\r\n\r\n",
		     "hello", 40);
	GOOD_CHUNKED("5 \t;x\r\nhello\r\n0 \r\n\r\n", "hello", 20);
	GOOD_CHUNKED("5\t\r\nhello\r\n0\r\n\r\n", "hello", 16);
	/* Trailer fields, dropped. */
	GOOD_CHUNKED("3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: \t2\r\n\r\nnext",
		     "abc", 34);
	GOOD_CHUNKED("3\nabc\n0\nX: 1\n\n", "abc", 14);
	/* Data bytes are not framing: CR, LF and NUL pass through. */
	GOOD_CHUNKED("4\r\n\r\n\0\n\r\n0\r\n\r\n", "\r\n\0\n", 14);
	/* Fifteen hex digits are the most a size may have. */
	GOOD_CHUNKED("00000000000000a\r\n0123456789\r\n0\r\n\r\n",
		     "0123456789", 34);
}

TEST(chunked_refusals)
{
	BAD_CHUNKED("x\r\n", "hex digits");
	BAD_CHUNKED("\r\n", "hex digits");
	BAD_CHUNKED(";x\r\n", "hex digits");
	BAD_CHUNKED(" 5\r\nhello\r\n0\r\n\r\n", "hex digits");
	BAD_CHUNKED("-1\r\n", "hex digits");
	BAD_CHUNKED("5x\r\nhello\r\n0\r\n\r\n", "hex digits, then");
	BAD_CHUNKED("0x5\r\nhello\r\n0\r\n\r\n", "hex digits, then");
	BAD_CHUNKED("5 5\r\nhello\r\n0\r\n\r\n", "hex digits, then");
	BAD_CHUNKED("0000000000000005\r\nhello\r\n0\r\n\r\n", "too large");
	BAD_CHUNKED("ffffffffffffffffff\r\n", "too large");
	BAD_CHUNKED("5;a\x01\r\nhello\r\n0\r\n\r\n", "control byte");
	BAD_CHUNKED("5\rhello\r\n0\r\n\r\n", "CR without LF");
	BAD_CHUNKED("5\r\nhelloX\r\n0\r\n\r\n", "does not end");
	BAD_CHUNKED("5\r\nhel\r\n0\r\n\r\n", "does not end");
	BAD_CHUNKED("5\r\nhello\rX0\r\n\r\n", "CR without LF");
	BAD_CHUNKED("0\r\nX: 1\rY\r\n\r\n", "CR without LF");
	BAD_CHUNKED("0\r\n\rX", "CR without LF");
	BAD_CHUNKED("0\r\nX: \x7f\r\n\r\n", "control byte");
	BAD_CHUNKED("0\r\nX: a\x00\r\n\r\n", "control byte");

	/* The size line and the trailer section are bounded. */
	static char big[ALYX_H1_MAX_TRAILER + 64];
	size_t n;

	memcpy(big, "5;", 2);
	memset(big + 2, 'e', ALYX_H1_MAX_CHUNK_LINE);
	memcpy(big + 2 + ALYX_H1_MAX_CHUNK_LINE, "\r\n", 2);
	check_chunked_bad(big, ALYX_H1_MAX_CHUNK_LINE + 4, "too long");
	/* Just under the bound is fine. */
	n = ALYX_H1_MAX_CHUNK_LINE - 4;
	memcpy(big, "5;", 2);
	memset(big + 2, 'e', n);
	memcpy(big + 2 + n, "\r\nhello\r\n0\r\n\r\n", 15);
	check_chunked(big, n + 16, "hello", 5, n + 16);

	memcpy(big, "0\r\n", 3);
	for (n = 3; n < ALYX_H1_MAX_TRAILER + 8; n += 8)
		memcpy(big + n, "X: 1234\n", 8);
	check_chunked_bad(big, n, "trailer section is too large");
}

/* A decoder that has reported END reads nothing more. */
TEST(chunked_after_end)
{
	alyx__h1chunk c;
	size_t u = 99, off, len;
	const char *why = NULL;

	memset(&c, 0, sizeof(c));
	ASSERT_EQ(alyx__h1_chunked(&c, "0\r\n\r\nGET", 8, &u, &off, &len,
				   &why), ALYX_H1_CHUNK_END);
	ASSERT_EQ(u, 5);
	ASSERT_EQ(alyx__h1_chunked(&c, "GET", 3, &u, &off, &len, &why),
		  ALYX_H1_CHUNK_END);
	ASSERT_EQ(u, 0);
	ASSERT_EQ(len, 0);
	/* Nothing to read: MORE, nothing used. */
	memset(&c, 0, sizeof(c));
	ASSERT_EQ(alyx__h1_chunked(&c, "", 0, &u, &off, &len, &why),
		  ALYX_H1_CHUNK_MORE);
	ASSERT_EQ(u, 0);
}

TEST_MAIN()
