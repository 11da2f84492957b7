/*
 * parse.c - CEL lexer, parser, macro expansion and name resolution.
 *
 * A recursive-descent parser for cel-spec's grammar.  Nesting is bounded:
 * the parser's own recursion and the depth of the tree it builds are both
 * checked against max_depth, and chains of && and || are built as
 * balanced trees, so the evaluator's recursion is bounded too.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules-int.h"

typedef enum tok {
	T_EOF, T_INT, T_UINT, T_DOUBLE, T_STRING, T_BYTES, T_IDENT, T_QIDENT,
	T_TRUE, T_FALSE, T_NULL, T_IN,
	T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_DOT,
	T_COMMA, T_COLON, T_QUEST, T_PLUS, T_MINUS, T_STAR, T_SLASH,
	T_PERCENT, T_NOT, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_AND, T_OR,
	T_ERR
} tok;

typedef struct parser {
	alyx__cel_prog *p;
	const char *s;
	size_t len, i;
	int max_depth, depth;
	bool macros;
	/* current token */
	tok t;
	int tpos;
	const char *tstart;
	size_t tlen;
	uint64_t ival;		/* T_INT (magnitude) / T_UINT */
	bool ibig;		/* T_INT magnitude is 2^63 exactly */
	double dval;
	char *sval;		/* T_STRING / T_BYTES / T_QIDENT decoded */
	size_t slen;
	/* first error */
	int err_code;
	int err_pos;
	char err_msg[200];
} parser;

static void perr(parser *ps, int code, int pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void perr(parser *ps, int code, int pos, const char *fmt, ...)
{
	va_list ap;

	if (ps->err_code)
		return;
	ps->err_code = code;
	ps->err_pos = pos;
	va_start(ap, fmt);
	vsnprintf(ps->err_msg, sizeof(ps->err_msg), fmt, ap);
	va_end(ap);
}

/* ---- lexer ---- */

static bool is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static size_t utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Lexes a quoted literal starting at ps->i (at the quote). */
static tok lex_quoted(parser *ps, bool raw, bool bytes)
{
	const char *s = ps->s;
	size_t n = ps->len, i = ps->i;
	char q = s[i];
	bool triple = i + 2 < n && s[i + 1] == q && s[i + 2] == q;
	char *o;
	size_t on = 0;

	i += triple ? 3 : 1;
	/* decoded text is never longer than the source */
	o = alyx__cel_alloc(&ps->p->mem, n - i + 1);
	if (!o) {
		perr(ps, ALYX_E_TOOBIG, ps->tpos, "literal too large");
		return T_ERR;
	}
	for (;;) {
		if (i >= n) {
			perr(ps, ALYX_E_RULE, ps->tpos,
			     "unterminated string literal");
			return T_ERR;
		}
		if (triple) {
			if (s[i] == q && i + 2 < n && s[i + 1] == q &&
			    s[i + 2] == q) {
				i += 3;
				break;
			}
		} else if (s[i] == q) {
			i++;
			break;
		} else if (s[i] == '\n' || s[i] == '\r') {
			perr(ps, ALYX_E_RULE, (int)i,
			     "newline in a single-quoted string literal");
			return T_ERR;
		}
		if (s[i] != '\\' || raw) {
			if (raw && s[i] == '\\' && i + 1 < n &&
			    s[i + 1] == q && !triple) {
				/* r'\'' keeps the backslash and the quote */
				o[on++] = s[i++];
			}
			o[on++] = s[i++];
			continue;
		}
		/* escape */
		int epos = (int)i;
		i++;
		if (i >= n) {
			perr(ps, ALYX_E_RULE, epos, "bad escape sequence");
			return T_ERR;
		}
		char c = s[i++];
		uint32_t cp;
		int digits = 0;
		switch (c) {
		case '\\': o[on++] = '\\'; continue;
		case '?': o[on++] = '?'; continue;
		case '"': o[on++] = '"'; continue;
		case '\'': o[on++] = '\''; continue;
		case '`': o[on++] = '`'; continue;
		case 'a': o[on++] = '\a'; continue;
		case 'b': o[on++] = '\b'; continue;
		case 'f': o[on++] = '\f'; continue;
		case 'n': o[on++] = '\n'; continue;
		case 'r': o[on++] = '\r'; continue;
		case 't': o[on++] = '\t'; continue;
		case 'v': o[on++] = '\v'; continue;
		case 'x': case 'X': digits = 2; break;
		case 'u': digits = 4; break;
		case 'U': digits = 8; break;
		default:
			if (c >= '0' && c <= '3') {
				if (i + 2 > n || s[i] < '0' || s[i] > '7' ||
				    s[i + 1] < '0' || s[i + 1] > '7') {
					perr(ps, ALYX_E_RULE, epos,
					     "bad octal escape");
					return T_ERR;
				}
				cp = (uint32_t)((c - '0') * 64 +
						(s[i] - '0') * 8 +
						(s[i + 1] - '0'));
				i += 2;
				goto emit_byteish;
			}
			perr(ps, ALYX_E_RULE, epos,
			     "unknown escape sequence '\\%c'", c);
			return T_ERR;
		}
		cp = 0;
		for (int k = 0; k < digits; k++) {
			int h = i < n ? alyx__hexval((unsigned char)s[i]) : -1;
			if (h < 0) {
				perr(ps, ALYX_E_RULE, epos,
				     "bad hexadecimal escape");
				return T_ERR;
			}
			cp = cp * 16 + (uint32_t)h;
			i++;
		}
		if (digits == 2)
			goto emit_byteish;
		if (bytes) {
			perr(ps, ALYX_E_RULE, epos,
			     "unicode escape in a bytes literal");
			return T_ERR;
		}
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
			perr(ps, ALYX_E_RULE, epos,
			     "invalid unicode code point");
			return T_ERR;
		}
		on += utf8_put(o + on, cp);
		continue;
emit_byteish:
		if (bytes)
			o[on++] = (char)cp;
		else
			on += utf8_put(o + on, cp);
	}
	if (!bytes && !alyx__utf8_valid(o, on)) {
		perr(ps, ALYX_E_RULE, ps->tpos, "invalid UTF-8 in string");
		return T_ERR;
	}
	o[on] = 0;
	ps->sval = o;
	ps->slen = on;
	ps->i = i;
	return bytes ? T_BYTES : T_STRING;
}

static tok lex_number(parser *ps)
{
	const char *s = ps->s;
	size_t n = ps->len, i = ps->i, st = i;
	bool isdbl = false;

	if (s[i] == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		uint64_t v = 0;
		bool over = false;
		i += 2;
		if (i >= n || alyx__hexval((unsigned char)s[i]) < 0) {
			perr(ps, ALYX_E_RULE, (int)st, "bad hex literal");
			return T_ERR;
		}
		while (i < n && alyx__hexval((unsigned char)s[i]) >= 0) {
			if (v >> 60)
				over = true;
			v = v * 16 + (uint64_t)alyx__hexval((unsigned char)s[i]);
			i++;
		}
		ps->ival = v;
		ps->i = i;
		if (i < n && (s[i] == 'u' || s[i] == 'U')) {
			ps->i++;
			if (over) {
				perr(ps, ALYX_E_RULE, (int)st,
				     "integer literal out of range");
				return T_ERR;
			}
			return T_UINT;
		}
		if (over || v > (uint64_t)INT64_MAX + 1) {
			perr(ps, ALYX_E_RULE, (int)st,
			     "integer literal out of range");
			return T_ERR;
		}
		ps->ibig = v == (uint64_t)INT64_MAX + 1;
		return T_INT;
	}
	while (i < n && is_digit((unsigned char)s[i]))
		i++;
	if (i + 1 < n && s[i] == '.' && is_digit((unsigned char)s[i + 1])) {
		isdbl = true;
		i++;
		while (i < n && is_digit((unsigned char)s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t j = i + 1;
		if (j < n && (s[j] == '+' || s[j] == '-'))
			j++;
		if (j < n && is_digit((unsigned char)s[j])) {
			isdbl = true;
			i = j;
			while (i < n && is_digit((unsigned char)s[i]))
				i++;
		}
	}
	if (isdbl) {
		char tmp[400];
		if (i - st >= sizeof(tmp)) {
			perr(ps, ALYX_E_RULE, (int)st, "number too long");
			return T_ERR;
		}
		memcpy(tmp, s + st, i - st);
		tmp[i - st] = 0;
		ps->dval = strtod(tmp, NULL);
		ps->i = i;
		return T_DOUBLE;
	}
	uint64_t v = 0;
	bool over = false;
	for (size_t k = st; k < i; k++) {
		unsigned d = (unsigned)(s[k] - '0');
		if (v > (UINT64_MAX - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	ps->i = i;
	ps->ival = v;
	if (i < n && (s[i] == 'u' || s[i] == 'U')) {
		ps->i++;
		if (over) {
			perr(ps, ALYX_E_RULE, (int)st,
			     "integer literal out of range");
			return T_ERR;
		}
		return T_UINT;
	}
	if (over || v > (uint64_t)INT64_MAX + 1) {
		perr(ps, ALYX_E_RULE, (int)st, "integer literal out of range");
		return T_ERR;
	}
	ps->ibig = v == (uint64_t)INT64_MAX + 1;
	return T_INT;
}

static void next(parser *ps)
{
	const char *s = ps->s;
	size_t n = ps->len;

	if (ps->err_code) {
		ps->t = T_ERR;
		return;
	}
	for (;;) {
		while (ps->i < n && (s[ps->i] == ' ' || s[ps->i] == '\t' ||
				     s[ps->i] == '\n' || s[ps->i] == '\r' ||
				     s[ps->i] == '\f'))
			ps->i++;
		if (ps->i + 1 < n && s[ps->i] == '/' && s[ps->i + 1] == '/') {
			while (ps->i < n && s[ps->i] != '\n')
				ps->i++;
			continue;
		}
		break;
	}
	ps->tpos = (int)ps->i;
	ps->tstart = s + ps->i;
	if (ps->i >= n) {
		ps->t = T_EOF;
		ps->tlen = 0;
		return;
	}
	size_t i = ps->i;
	unsigned char c = (unsigned char)s[i];
	char c1 = i + 1 < n ? s[i + 1] : 0;
	tok t;

	if (is_digit(c) || (c == '.' && is_digit((unsigned char)c1))) {
		t = lex_number(ps);
		goto done;
	}
	if (c == '"' || c == '\'') {
		t = lex_quoted(ps, false, false);
		goto done;
	}
	if (is_ident_start(c)) {
		/* string prefixes: r, b, br, rb (any case) */
		bool raw = false, bytes = false;
		size_t j = i;
		for (int k = 0; k < 2 && j < n; k++) {
			if ((s[j] == 'r' || s[j] == 'R') && !raw)
				raw = true;
			else if ((s[j] == 'b' || s[j] == 'B') && !bytes)
				bytes = true;
			else
				break;
			j++;
			if (j < n && (s[j] == '"' || s[j] == '\'')) {
				ps->i = j;
				t = lex_quoted(ps, raw, bytes);
				goto done;
			}
		}
		j = i;
		while (j < n && (is_ident_start((unsigned char)s[j]) ||
				 is_digit((unsigned char)s[j])))
			j++;
		ps->i = j;
		ps->tlen = j - i;
#define KW(w) (ps->tlen == sizeof(w) - 1 && !memcmp(s + i, w, ps->tlen))
		if (KW("true"))
			ps->t = T_TRUE;
		else if (KW("false"))
			ps->t = T_FALSE;
		else if (KW("null"))
			ps->t = T_NULL;
		else if (KW("in"))
			ps->t = T_IN;
		else
			ps->t = T_IDENT;
#undef KW
		return;
	}
	if (c == '`') {
		size_t j = i + 1;
		while (j < n && s[j] != '`' && s[j] != '\n')
			j++;
		if (j >= n || s[j] != '`' || j == i + 1) {
			perr(ps, ALYX_E_RULE, (int)i,
			     "unterminated quoted identifier");
			t = T_ERR;
			goto done;
		}
		ps->sval = (char *)s + i + 1;
		ps->slen = j - i - 1;
		ps->i = j + 1;
		t = T_QIDENT;
		goto done;
	}
	ps->i++;
	switch (c) {
	case '(': t = T_LPAREN; break;
	case ')': t = T_RPAREN; break;
	case '[': t = T_LBRACK; break;
	case ']': t = T_RBRACK; break;
	case '{': t = T_LBRACE; break;
	case '}': t = T_RBRACE; break;
	case '.': t = T_DOT; break;
	case ',': t = T_COMMA; break;
	case ':': t = T_COLON; break;
	case '?': t = T_QUEST; break;
	case '+': t = T_PLUS; break;
	case '-': t = T_MINUS; break;
	case '*': t = T_STAR; break;
	case '/': t = T_SLASH; break;
	case '%': t = T_PERCENT; break;
	case '!':
		if (c1 == '=') {
			ps->i++;
			t = T_NE;
		} else {
			t = T_NOT;
		}
		break;
	case '=':
		if (c1 == '=') {
			ps->i++;
			t = T_EQ;
			break;
		}
		goto bad;
	case '<':
		if (c1 == '=') {
			ps->i++;
			t = T_LE;
		} else {
			t = T_LT;
		}
		break;
	case '>':
		if (c1 == '=') {
			ps->i++;
			t = T_GE;
		} else {
			t = T_GT;
		}
		break;
	case '&':
		if (c1 == '&') {
			ps->i++;
			t = T_AND;
			break;
		}
		goto bad;
	case '|':
		if (c1 == '|') {
			ps->i++;
			t = T_OR;
			break;
		}
		goto bad;
	default:
bad:
		if (c >= 0x20 && c < 0x7f)
			perr(ps, ALYX_E_RULE, (int)i,
			     "unexpected character '%c'", c);
		else
			perr(ps, ALYX_E_RULE, (int)i,
			     "unexpected character 0x%02x", c);
		t = T_ERR;
	}
done:
	ps->t = ps->err_code ? T_ERR : t;
	ps->tlen = ps->i - (size_t)ps->tpos;
}

/* ---- AST construction ---- */

static cel_node *mk(parser *ps, cel_nkind k, int pos, size_t nargs)
{
	cel_node *n = alyx__cel_alloc(&ps->p->mem, sizeof(*n));

	if (!n) {
		perr(ps, ALYX_E_TOOBIG, pos, "expression too large");
		return NULL;
	}
	memset(n, 0, sizeof(*n));
	n->kind = (uint8_t)k;
	n->pos = pos;
	n->depth = 1;
	if (nargs) {
		n->a = alyx__cel_alloc(&ps->p->mem, nargs * sizeof(*n->a));
		if (!n->a) {
			perr(ps, ALYX_E_TOOBIG, pos, "expression too large");
			return NULL;
		}
		n->n = nargs;
		memset(n->a, 0, nargs * sizeof(*n->a));
	}
	return n;
}

/* Sets the children's depth into n; false (and an error) if too deep. */
static bool fix_depth(parser *ps, cel_node *n)
{
	int d = 0;

	for (size_t i = 0; i < n->n; i++)
		if (n->a[i] && n->a[i]->depth > d)
			d = n->a[i]->depth;
	if (d + 1 > ps->max_depth) {
		perr(ps, ALYX_E_TOOBIG, n->pos,
		     "expression nesting exceeds %d levels", ps->max_depth);
		return false;
	}
	n->depth = (uint16_t)(d + 1);
	return true;
}

static cel_node *mk2(parser *ps, cel_nkind k, int op, int pos, cel_node *x,
		     cel_node *y)
{
	cel_node *n;

	if (!x || !y)
		return NULL;
	n = mk(ps, k, pos, 2);
	if (!n)
		return NULL;
	n->op = (uint8_t)op;
	n->a[0] = x;
	n->a[1] = y;
	return fix_depth(ps, n) ? n : NULL;
}

static const char *const reserved[] = {
	"as", "break", "const", "continue", "else", "for", "function", "if",
	"import", "let", "loop", "package", "namespace", "return", "var",
	"void", "while"
};

static bool is_reserved(const char *s, size_t n)
{
	for (size_t i = 0; i < ALYX_ARRAY_LEN(reserved); i++)
		if (strlen(reserved[i]) == n && !memcmp(reserved[i], s, n))
			return true;
	return false;
}

static cel_node *parse_expr(parser *ps);

static bool expect(parser *ps, tok t, const char *what)
{
	if (ps->t == t) {
		next(ps);
		return true;
	}
	if (ps->t == T_EOF)
		perr(ps, ALYX_E_RULE, ps->tpos,
		     "unexpected end of expression, expected %s", what);
	else
		perr(ps, ALYX_E_RULE, ps->tpos,
		     "unexpected '%.*s', expected %s",
		     (int)(ps->tlen > 20 ? 20 : ps->tlen), ps->tstart, what);
	return false;
}

/* Parses a comma-separated list up to `close`, into a temporary array. */
static bool parse_args(parser *ps, tok close, cel_node ***out, size_t *nout,
		       bool allow_trailing)
{
	cel_node **v = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	*nout = 0;
	if (ps->t == close) {
		next(ps);
		return true;
	}
	for (;;) {
		cel_node *e = parse_expr(ps);
		if (!e)
			return false;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 4;
			cel_node **nv = alyx__cel_alloc(&ps->p->mem,
							nc * sizeof(*nv));
			if (!nv) {
				perr(ps, ALYX_E_TOOBIG, ps->tpos,
				     "expression too large");
				return false;
			}
			if (n)
				memcpy(nv, v, n * sizeof(*nv));
			v = nv;
			cap = nc;
		}
		v[n++] = e;
		if (ps->t == T_COMMA) {
			next(ps);
			if (allow_trailing && ps->t == close) {
				next(ps);
				break;
			}
			continue;
		}
		if (!expect(ps, close, close == T_RPAREN ? "')'" : "']'"))
			return false;
		break;
	}
	*out = v;
	*nout = n;
	return true;
}

static bool is_simple_ident(const cel_node *n)
{
	return n->kind == N_IDENT && !n->root;
}

/* Builds a call node, expanding macros. */
static cel_node *make_call(parser *ps, int pos, cel_node *target,
			   const char *name, size_t nlen, cel_node **args,
			   size_t nargs)
{
	cel_node *n;
	size_t off = target ? 1 : 0;

	if (ps->macros && !target && nlen == 3 && !memcmp(name, "has", 3) &&
	    nargs == 1) {
		cel_node *sel = args[0];
		if (sel->kind != N_SELECT) {
			perr(ps, ALYX_E_RULE, sel->pos,
			     "invalid argument to has() macro");
			return NULL;
		}
		sel->kind = N_HAS;
		sel->pos = pos;
		return sel;
	}
	if (ps->macros && target) {
		int m = -1;
#define IS(w) (nlen == sizeof(w) - 1 && !memcmp(name, w, nlen))
		if (IS("all") && nargs == 2)
			m = M_ALL;
		else if (IS("exists") && nargs == 2)
			m = M_EXISTS;
		else if (IS("exists_one") && nargs == 2)
			m = M_EXISTS_ONE;
		else if (IS("map") && nargs == 2)
			m = M_MAP;
		else if (IS("map") && nargs == 3)
			m = M_MAP_FILTER;
		else if (IS("filter") && nargs == 2)
			m = M_FILTER;
#undef IS
		if (m >= 0) {
			if (!is_simple_ident(args[0])) {
				perr(ps, ALYX_E_RULE, args[0]->pos,
				     "argument is not an identifier");
				return NULL;
			}
			n = mk(ps, N_COMPR, pos, nargs == 3 ? 3 : 2);
			if (!n)
				return NULL;
			n->op = (uint8_t)m;
			n->name = args[0]->name;
			n->name_len = args[0]->name_len;
			n->a[0] = target;
			n->a[1] = args[1];
			if (nargs == 3)
				n->a[2] = args[2];
			return fix_depth(ps, n) ? n : NULL;
		}
	}
	n = mk(ps, N_CALL, pos, nargs + off);
	if (!n)
		return NULL;
	n->recv = target != NULL;
	n->name = name;
	n->name_len = nlen;
	n->slot = cel_fn_lookup(name, nlen);
	if (target)
		n->a[0] = target;
	for (size_t i = 0; i < nargs; i++)
		n->a[i + off] = args[i];
	return fix_depth(ps, n) ? n : NULL;
}

static cel_node *parse_primary(parser *ps)
{
	int pos = ps->tpos;
	cel_node *n;

	switch (ps->t) {
	case T_INT:
		if (ps->ibig) {
			perr(ps, ALYX_E_RULE, pos,
			     "integer literal out of range");
			return NULL;
		}
		n = mk(ps, N_LIT, pos, 0);
		if (n)
			n->lit = alyx__cel_int((int64_t)ps->ival);
		next(ps);
		return n;
	case T_UINT:
		n = mk(ps, N_LIT, pos, 0);
		if (n)
			n->lit = alyx__cel_uint(ps->ival);
		next(ps);
		return n;
	case T_DOUBLE:
		n = mk(ps, N_LIT, pos, 0);
		if (n)
			n->lit = alyx__cel_double(ps->dval);
		next(ps);
		return n;
	case T_STRING:
	case T_BYTES:
		n = mk(ps, N_LIT, pos, 0);
		if (n)
			n->lit = ps->t == T_STRING ?
					 alyx__cel_str(ps->sval, ps->slen) :
					 alyx__cel_bytes(ps->sval, ps->slen);
		next(ps);
		return n;
	case T_TRUE:
	case T_FALSE:
		n = mk(ps, N_LIT, pos, 0);
		if (n)
			n->lit = alyx__cel_bool(ps->t == T_TRUE);
		next(ps);
		return n;
	case T_NULL:
		n = mk(ps, N_LIT, pos, 0);
		if (n)
			n->lit = alyx__cel_null();
		next(ps);
		return n;
	case T_LPAREN:
		next(ps);
		n = parse_expr(ps);
		if (!n || !expect(ps, T_RPAREN, "')'"))
			return NULL;
		return n;
	case T_LBRACK: {
		cel_node **args;
		size_t na;
		next(ps);
		if (!parse_args(ps, T_RBRACK, &args, &na, true))
			return NULL;
		n = mk(ps, N_LIST, pos, na);
		if (!n)
			return NULL;
		if (na)
			memcpy(n->a, args, na * sizeof(*args));
		return fix_depth(ps, n) ? n : NULL;
	}
	case T_LBRACE: {
		cel_node **v = NULL;
		size_t nv = 0, cap = 0;
		next(ps);
		while (ps->t != T_RBRACE) {
			cel_node *k = parse_expr(ps);
			if (!k || !expect(ps, T_COLON, "':'"))
				return NULL;
			cel_node *val = parse_expr(ps);
			if (!val)
				return NULL;
			if (nv + 2 > cap) {
				size_t nc = cap ? cap * 2 : 8;
				cel_node **nvv = alyx__cel_alloc(
					&ps->p->mem, nc * sizeof(*nvv));
				if (!nvv) {
					perr(ps, ALYX_E_TOOBIG, pos,
					     "expression too large");
					return NULL;
				}
				if (nv)
					memcpy(nvv, v, nv * sizeof(*nvv));
				v = nvv;
				cap = nc;
			}
			v[nv++] = k;
			v[nv++] = val;
			if (ps->t == T_COMMA) {
				next(ps);
				continue;
			}
			if (ps->t != T_RBRACE) {
				expect(ps, T_RBRACE, "'}'");
				return NULL;
			}
		}
		next(ps);
		n = mk(ps, N_MAP, pos, nv);
		if (!n)
			return NULL;
		if (nv)
			memcpy(n->a, v, nv * sizeof(*v));
		return fix_depth(ps, n) ? n : NULL;
	}
	case T_DOT:
	case T_IDENT: {
		bool root = ps->t == T_DOT;
		if (root) {
			next(ps);
			if (ps->t != T_IDENT) {
				expect(ps, T_IDENT, "an identifier");
				return NULL;
			}
		}
		const char *name = ps->tstart;
		size_t nlen = ps->tlen;
		if (is_reserved(name, nlen)) {
			perr(ps, ALYX_E_RULE, ps->tpos,
			     "reserved identifier '%.*s'", (int)nlen, name);
			return NULL;
		}
		next(ps);
		if (ps->t == T_LPAREN) {
			cel_node **args;
			size_t na;
			next(ps);
			if (!parse_args(ps, T_RPAREN, &args, &na, false))
				return NULL;
			return make_call(ps, pos, NULL, name, nlen, args, na);
		}
		if (ps->t == T_LBRACE) {
			perr(ps, ALYX_E_RULE, ps->tpos,
			     "message construction is not supported");
			return NULL;
		}
		n = mk(ps, N_IDENT, pos, 0);
		if (!n)
			return NULL;
		n->root = root;
		n->name = name;
		n->name_len = nlen;
		return n;
	}
	case T_EOF:
		perr(ps, ALYX_E_RULE, pos, "unexpected end of expression");
		return NULL;
	case T_ERR:
		return NULL;
	default:
		perr(ps, ALYX_E_RULE, pos, "unexpected '%.*s'",
		     (int)(ps->tlen > 20 ? 20 : ps->tlen), ps->tstart);
		return NULL;
	}
}

static cel_node *parse_member_tail(parser *ps, cel_node *n)
{
	while (n) {
		int pos = ps->tpos;
		if (ps->t == T_DOT) {
			next(ps);
			const char *name;
			size_t nlen;
			bool quoted = ps->t == T_QIDENT;
			if (ps->t == T_IDENT || ps->t == T_IN ||
			    ps->t == T_TRUE || ps->t == T_FALSE ||
			    ps->t == T_NULL) {
				name = ps->tstart;
				nlen = ps->tlen;
			} else if (quoted) {
				name = ps->sval;
				nlen = ps->slen;
			} else {
				expect(ps, T_IDENT, "a field name");
				return NULL;
			}
			next(ps);
			if (!quoted && ps->t == T_LPAREN) {
				cel_node **args;
				size_t na;
				next(ps);
				if (!parse_args(ps, T_RPAREN, &args, &na,
						false))
					return NULL;
				n = make_call(ps, pos, n, name, nlen, args,
					      na);
				continue;
			}
			cel_node *s = mk(ps, N_SELECT, pos, 1);
			if (!s)
				return NULL;
			s->a[0] = n;
			s->name = name;
			s->name_len = nlen;
			n = fix_depth(ps, s) ? s : NULL;
		} else if (ps->t == T_LBRACK) {
			next(ps);
			cel_node *idx = parse_expr(ps);
			if (!idx || !expect(ps, T_RBRACK, "']'"))
				return NULL;
			n = mk2(ps, N_INDEX, 0, pos, n, idx);
		} else {
			break;
		}
	}
	return n;
}

static cel_node *parse_unary(parser *ps)
{
	int pos = ps->tpos;

	if (ps->t == T_NOT || ps->t == T_MINUS) {
		tok op = ps->t;
		int count = 0;
		while (ps->t == op) {
			count++;
			next(ps);
		}
		cel_node *x;
		if (op == T_MINUS && (ps->t == T_INT || ps->t == T_DOUBLE)) {
			/* a negative literal: -9223372036854775808 */
			int lpos = ps->tpos;
			x = mk(ps, N_LIT, lpos, 0);
			if (!x)
				return NULL;
			if (ps->t == T_INT)
				x->lit = alyx__cel_int(
					(int64_t)(0 - ps->ival));
			else
				x->lit = alyx__cel_double(-ps->dval);
			next(ps);
			x = parse_member_tail(ps, x);
			count--;
		} else {
			x = parse_member_tail(ps, parse_primary(ps));
		}
		while (x && count-- > 0) {
			cel_node *u = mk(ps, op == T_NOT ? N_NOT : N_NEG, pos,
					 1);
			if (!u)
				return NULL;
			u->a[0] = x;
			x = fix_depth(ps, u) ? u : NULL;
		}
		return x;
	}
	return parse_member_tail(ps, parse_primary(ps));
}

static cel_node *parse_mul(parser *ps)
{
	cel_node *x = parse_unary(ps);

	while (x && (ps->t == T_STAR || ps->t == T_SLASH ||
		     ps->t == T_PERCENT)) {
		int op = ps->t == T_STAR ? OP_MUL :
			 ps->t == T_SLASH ? OP_DIV : OP_MOD;
		int pos = ps->tpos;
		next(ps);
		x = mk2(ps, N_BIN, op, pos, x, parse_unary(ps));
	}
	return x;
}

static cel_node *parse_add(parser *ps)
{
	cel_node *x = parse_mul(ps);

	while (x && (ps->t == T_PLUS || ps->t == T_MINUS)) {
		int op = ps->t == T_PLUS ? OP_ADD : OP_SUB;
		int pos = ps->tpos;
		next(ps);
		x = mk2(ps, N_BIN, op, pos, x, parse_mul(ps));
	}
	return x;
}

static cel_node *parse_rel(parser *ps)
{
	cel_node *x = parse_add(ps);

	for (;;) {
		int op;
		switch (ps->t) {
		case T_EQ: op = OP_EQ; break;
		case T_NE: op = OP_NE; break;
		case T_LT: op = OP_LT; break;
		case T_LE: op = OP_LE; break;
		case T_GT: op = OP_GT; break;
		case T_GE: op = OP_GE; break;
		case T_IN: op = OP_IN; break;
		default: return x;
		}
		if (!x)
			return NULL;
		int pos = ps->tpos;
		next(ps);
		x = mk2(ps, N_BIN, op, pos, x, parse_add(ps));
	}
}

/* Builds a balanced tree of && or || over v[lo..hi). */
static cel_node *balance(parser *ps, cel_nkind k, cel_node **v, int *pos,
			 size_t lo, size_t hi)
{
	if (hi - lo == 1)
		return v[lo];
	size_t mid = lo + (hi - lo) / 2;
	cel_node *l = balance(ps, k, v, pos, lo, mid);
	cel_node *r = balance(ps, k, v, pos, mid, hi);
	return mk2(ps, k, 0, pos[mid - 1], l, r);
}

static cel_node *parse_logic(parser *ps, tok optok)
{
	cel_node *first = optok == T_OR ? parse_logic(ps, T_AND) :
					  parse_rel(ps);
	cel_node *stackv[16], **v = stackv;
	int stackp[16], *pv = stackp;
	size_t n = 1, cap = 16;

	if (!first || ps->t != optok)
		return first;
	v[0] = first;
	while (ps->t == optok) {
		int pos = ps->tpos;
		next(ps);
		cel_node *x = optok == T_OR ? parse_logic(ps, T_AND) :
					      parse_rel(ps);
		if (!x)
			return NULL;
		if (n == cap) {
			size_t nc = cap * 2;
			cel_node **nv = alyx__cel_alloc(&ps->p->mem,
							nc * sizeof(*nv));
			int *np = alyx__cel_alloc(&ps->p->mem,
						  nc * sizeof(*np));
			if (!nv || !np) {
				perr(ps, ALYX_E_TOOBIG, pos,
				     "expression too large");
				return NULL;
			}
			memcpy(nv, v, n * sizeof(*nv));
			memcpy(np, pv, n * sizeof(*np));
			v = nv;
			pv = np;
			cap = nc;
		}
		pv[n - 1] = pos;
		v[n++] = x;
	}
	return balance(ps, optok == T_OR ? N_OR : N_AND, v, pv, 0, n);
}

static cel_node *parse_expr(parser *ps)
{
	cel_node *c, *x, *y, *n;
	int pos;

	if (++ps->depth > ps->max_depth) {
		perr(ps, ALYX_E_TOOBIG, ps->tpos,
		     "expression nesting exceeds %d levels", ps->max_depth);
		return NULL;
	}
	c = parse_logic(ps, T_OR);
	if (!c || ps->t != T_QUEST) {
		ps->depth--;
		return c;
	}
	pos = ps->tpos;
	next(ps);
	x = parse_logic(ps, T_OR);
	if (!x || !expect(ps, T_COLON, "':'"))
		return NULL;
	y = parse_expr(ps);
	if (!y)
		return NULL;
	n = mk(ps, N_COND, pos, 3);
	if (!n)
		return NULL;
	n->a[0] = c;
	n->a[1] = x;
	n->a[2] = y;
	ps->depth--;
	return fix_depth(ps, n) ? n : NULL;
}

/* ---- name resolution ---- */

typedef struct resolver {
	parser *ps;
	const alyx__cel_opts *o;
	const char *scope[64];	/* comprehension variables, innermost last */
	size_t scope_len[64];
	int nscope;
	int max_scope;
} resolver;

static int find_var(const alyx__cel_opts *o, const char *s, size_t n)
{
	for (size_t i = 0; i < o->n_vars; i++)
		if (strlen(o->vars[i]) == n && !memcmp(o->vars[i], s, n))
			return (int)i;
	return -1;
}

static const struct {
	const char *name;
	alyx__cel_kind k;
} type_names[] = {
	{"int", ALYX_CEL_INT}, {"uint", ALYX_CEL_UINT},
	{"double", ALYX_CEL_DOUBLE}, {"bool", ALYX_CEL_BOOL},
	{"string", ALYX_CEL_STRING}, {"bytes", ALYX_CEL_BYTES},
	{"list", ALYX_CEL_LIST}, {"map", ALYX_CEL_MAP},
	{"null_type", ALYX_CEL_NULL}, {"type", ALYX_CEL_TYPE},
	{"google.protobuf.Timestamp", ALYX_CEL_TIMESTAMP},
	{"google.protobuf.Duration", ALYX_CEL_DURATION},
};

static int find_type(const char *s, size_t n)
{
	for (size_t i = 0; i < ALYX_ARRAY_LEN(type_names); i++)
		if (strlen(type_names[i].name) == n &&
		    !memcmp(type_names[i].name, s, n))
			return (int)type_names[i].k;
	return -1;
}

static int find_local(resolver *rs, const char *s, size_t n)
{
	for (int i = rs->nscope - 1; i >= 0; i--)
		if (rs->scope_len[i] == n && !memcmp(rs->scope[i], s, n))
			return i;
	return -1;
}

static bool resolve(resolver *rs, cel_node *n);

/*
 * Resolves an identifier chain ident.f1.f2... (chain[0] is the N_IDENT,
 * chain[k] the k-th select above it), longest qualified name first, each
 * tried in the container and its parents.  Rewrites the node that the
 * matched prefix ends at.  Returns that node's replacement depth k.
 */
static bool resolve_chain(resolver *rs, cel_node **chain, size_t nchain)
{
	parser *ps = rs->ps;
	cel_node *id = chain[0];
	const char *cont = (!id->root && rs->o->container) ?
				   rs->o->container : "";
	char buf[512];

	for (size_t k = nchain; k-- > 0;) {
		/* qualified name of chain[0..k] */
		size_t qn = 0;
		bool fits = true;
		for (size_t j = 0; j <= k && fits; j++) {
			const char *nm = chain[j]->name;
			size_t nl = chain[j]->name_len;
			if (qn + nl + 2 >= sizeof(buf)) {
				fits = false;
				break;
			}
			if (j)
				buf[qn++] = '.';
			memcpy(buf + qn, nm, nl);
			qn += nl;
		}
		if (!fits)
			continue;
		/* container prefixes, longest first */
		size_t cl = strlen(cont);
		for (;;) {
			char full[1024];
			size_t fl = 0;
			if (cl) {
				if (cl + 1 + qn >= sizeof(full))
					goto shorter;
				memcpy(full, cont, cl);
				full[cl] = '.';
				fl = cl + 1;
			}
			memcpy(full + fl, buf, qn);
			fl += qn;
			int v = find_var(rs->o, full, fl);
			if (v >= 0) {
				cel_node *t = chain[k];
				t->kind = N_VAR;
				t->slot = v;
				t->n = 0;
				return true;
			}
shorter:
			if (!cl)
				break;
			while (cl > 0 && cont[cl - 1] != '.')
				cl--;
			if (cl)
				cl--;
		}
		int ty = find_type(buf, qn);
		if (ty >= 0) {
			cel_node *t = chain[k];
			t->kind = N_LIT;
			t->lit = alyx__cel_type((alyx__cel_kind)ty);
			t->n = 0;
			return true;
		}
	}
	id->kind = N_UNDECL;
	(void)ps;
	return true;
}

static bool resolve(resolver *rs, cel_node *n)
{
	switch (n->kind) {
	case N_IDENT:
	case N_SELECT: {
		/* collect the chain of selects down to an identifier */
		cel_node **chain;
		size_t nchain = 0, total = 1;
		cel_node *c = n;
		while (c->kind == N_SELECT) {
			total++;
			c = c->a[0];
		}
		if (c->kind != N_IDENT)
			return resolve(rs, c);
		chain = alyx__cel_alloc(&rs->ps->p->mem,
					total * sizeof(*chain));
		if (!chain) {
			perr(rs->ps, ALYX_E_TOOBIG, n->pos,
			     "expression too large");
			return false;
		}
		for (c = n; c->kind == N_SELECT; c = c->a[0])
			chain[nchain++] = c;
		chain[nchain++] = c;
		/* reverse: chain[0] = ident */
		for (size_t i = 0; i < nchain / 2; i++) {
			cel_node *t = chain[i];
			chain[i] = chain[nchain - 1 - i];
			chain[nchain - 1 - i] = t;
		}
		if (!c->root) {
			int l = find_local(rs, c->name, c->name_len);
			if (l >= 0) {
				c->kind = N_LOCAL;
				c->slot = l;
				return true;
			}
		}
		return resolve_chain(rs, chain, nchain);
	}
	case N_HAS:
		/* has(a.b): resolve the operand chain, never the field */
		return resolve(rs, n->a[0]);
	case N_COMPR: {
		if (!resolve(rs, n->a[0]))
			return false;
		if (rs->nscope >= (int)ALYX_ARRAY_LEN(rs->scope)) {
			perr(rs->ps, ALYX_E_TOOBIG, n->pos,
			     "comprehensions nested too deeply");
			return false;
		}
		n->slot = rs->nscope;
		rs->scope[rs->nscope] = n->name;
		rs->scope_len[rs->nscope] = n->name_len;
		rs->nscope++;
		if (rs->nscope > rs->max_scope)
			rs->max_scope = rs->nscope;
		bool ok = resolve(rs, n->a[1]) &&
			  (n->n < 3 || resolve(rs, n->a[2]));
		rs->nscope--;
		return ok;
	}
	default:
		for (size_t i = 0; i < n->n; i++)
			if (n->a[i] && !resolve(rs, n->a[i]))
				return false;
		return true;
	}
}

/* ---- constant regexes ---- */

static bool precompile(parser *ps, cel_node *n)
{
	for (size_t i = 0; i < n->n; i++)
		if (n->a[i] && !precompile(ps, n->a[i]))
			return false;
	if (n->kind == N_CALL && n->slot == F_MATCHES && n->n == 2 &&
	    n->a[1]->kind == N_LIT && n->a[1]->lit.k == ALYX_CEL_STRING) {
		char why[128];
		alyx__cel_prog *p = ps->p;
		void *re = cel_regex_compile(n->a[1]->lit.v.s,
					     n->a[1]->lit.n, why,
					     sizeof(why));
		if (!re)
			return true;	/* reported when evaluated */
		if (p->n_regexes == p->cap_regexes) {
			size_t nc = p->cap_regexes ? p->cap_regexes * 2 : 4;
			void **nv = alyx__realloc(p->regexes,
						  nc * sizeof(*nv));
			if (!nv) {
				cel_regex_free(re);
				perr(ps, ALYX_E_NOMEM, n->pos,
				     "out of memory");
				return false;
			}
			p->regexes = nv;
			p->cap_regexes = nc;
		}
		p->regexes[p->n_regexes++] = re;
		n->re = re;
	}
	return true;
}

void alyx__cel_linecol(const char *src, size_t len, int off, int *line,
		       int *col)
{
	int l = 1, c = 1;

	for (size_t i = 0; i < len && (int)i < off; i++) {
		if (src[i] == '\n') {
			l++;
			c = 1;
		} else {
			c++;
		}
	}
	*line = l;
	*col = c;
}

int alyx__cel_compile(const char *src, size_t len, const alyx__cel_opts *o,
		      alyx__cel_prog **out, alyx__err *err)
{
	static const alyx__cel_opts defaults;
	alyx__cel_prog *p;
	parser ps;
	resolver rs;
	size_t max_src;
	int rc = ALYX_OK;

	*out = NULL;
	if (!o)
		o = &defaults;
	max_src = o->max_src ? o->max_src : ALYX_CEL_MAX_SRC;
	if (len > max_src)
		return alyx__err_set(err, ALYX_E_TOOBIG, NULL,
				     "expression is %zu bytes, over the limit "
				     "of %zu", len, max_src);
	p = alyx__calloc(1, sizeof(*p));
	if (!p)
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	alyx__cel_run_init(&p->mem);
	p->mem.max_bytes = 64 * max_src + 65536;
	p->src = alyx__malloc(len + 1);
	if (!p->src) {
		alyx__free(p);
		return alyx__err_set(err, ALYX_E_NOMEM, NULL,
				     "out of memory");
	}
	memcpy(p->src, src, len);
	p->src[len] = 0;
	p->len = len;

	memset(&ps, 0, sizeof(ps));
	ps.p = p;
	ps.s = p->src;
	ps.len = len;
	ps.max_depth = o->max_depth > 0 ? o->max_depth : ALYX_CEL_MAX_DEPTH;
	if (ps.max_depth > ALYX_CEL_MAX_DEPTH)
		ps.max_depth = ALYX_CEL_MAX_DEPTH;
	ps.macros = !o->disable_macros;
	next(&ps);
	p->root = parse_expr(&ps);
	if (p->root && ps.t != T_EOF)
		expect(&ps, T_EOF, "end of expression");
	if (!ps.err_code) {
		memset(&rs, 0, sizeof(rs));
		rs.ps = &ps;
		rs.o = o;
		resolve(&rs, p->root);
		p->n_locals = rs.max_scope;
	}
	if (!ps.err_code)
		precompile(&ps, p->root);
	if (ps.err_code) {
		int line, col;
		alyx__cel_linecol(src, len, ps.err_pos, &line, &col);
		rc = alyx__err_setd(err, ps.err_code,
				    alyx__asprintf("{\"line\":%d,\"column\":%d,"
						   "\"offset\":%d}",
						   line, col, ps.err_pos),
				    "%d:%d: %s", line, col, ps.err_msg);
		alyx__cel_prog_free(p);
		return rc;
	}
	*out = p;
	return ALYX_OK;
}

void alyx__cel_prog_free(alyx__cel_prog *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_regexes; i++)
		cel_regex_free(p->regexes[i]);
	alyx__free(p->regexes);
	alyx__cel_run_free(&p->mem);
	alyx__free(p->src);
	alyx__free(p);
}

const char *alyx__cel_prog_src(const alyx__cel_prog *p, size_t *len)
{
	if (len)
		*len = p->len;
	return p->src;
}
