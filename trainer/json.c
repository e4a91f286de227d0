/*
 * json.c
 *	  A small strict JSON reader: one pass over the text, no recursion, no
 *	  copies.  Every read is bounds-checked because the text is hostile.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "qdb_internal.h"

/* A hard ceiling for max_depth: the sizes of the parser's stacks. */
#define JSON_DEPTH_CEILING 64

typedef enum ParseState
{
	PS_VALUE,					/* a value must come next */
	PS_KEY,						/* an object key must come next */
	PS_AFTER					/* a value just ended */
} ParseState;

typedef struct JsonParser
{
	const char *s;
	size_t		len;
	size_t		pos;
	QdbJsonNode *nodes;
	int			nnodes;
	int			max_nodes;
	int			max_depth;		/* at most JSON_DEPTH_CEILING */
	int			depth;
	int			stack[JSON_DEPTH_CEILING];	/* open containers */
	int			last[JSON_DEPTH_CEILING];	/* their last child, or -1 */
	char	   *err;
	size_t		errlen;
} JsonParser;

static void json_error(JsonParser *p, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
json_error(JsonParser *p, const char *fmt,...)
{
	va_list		ap;

	if (p->err == NULL || p->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
}

static void
skip_ws(JsonParser *p)
{
	while (p->pos < p->len)
	{
		char		c = p->s[p->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

/* Adds a node as the next child of the innermost open container. */
static int
add_node(JsonParser *p, QdbJsonType type, size_t start, size_t len)
{
	int			i;

	if (p->nnodes >= p->max_nodes)
	{
		json_error(p, "more than %d values", p->max_nodes);
		return -1;
	}
	i = p->nnodes++;
	p->nodes[i].type = type;
	p->nodes[i].start = start;
	p->nodes[i].len = len;
	p->nodes[i].child = -1;
	p->nodes[i].next = -1;
	p->nodes[i].count = 0;
	if (p->depth > 0)
	{
		int			parent = p->stack[p->depth - 1];
		int			prev = p->last[p->depth - 1];

		if (prev < 0)
			p->nodes[parent].child = i;
		else
			p->nodes[prev].next = i;
		p->last[p->depth - 1] = i;
		p->nodes[parent].count++;
	}
	return i;
}

/* Four hex digits at s[i..i+4) as a code unit, or -1. */
static long
hex4(const char *s, size_t len, size_t i)
{
	long		v = 0;

	if (i > len || len - i < 4)
		return -1;
	for (size_t k = i; k < i + 4; k++)
	{
		char		c = s[k];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * Length of the well-formed UTF-8 sequence at s[0..n) whose first byte is
 * not ASCII, or 0: no overlong forms, no surrogates, nothing past U+10FFFF.
 */
static int
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80,
				hi = 0xbf;
	int			need;

	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef)
	{
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;			/* overlong */
		else if (c == 0xed)
			hi = 0x9f;			/* surrogates */
	}
	else if (c >= 0xf0 && c <= 0xf4)
	{
		need = 4;
		if (c == 0xf0)
			lo = 0x90;			/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;			/* past U+10FFFF */
	}
	else
		return 0;
	if (n < (size_t) need)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (int k = 2; k < need; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return need;
}

/* Validates the string whose opening quote is at p->pos and adds its node. */
static int
scan_string(JsonParser *p)
{
	size_t		start = p->pos + 1;
	size_t		i = start;

	for (;;)
	{
		unsigned char c;

		if (i >= p->len)
		{
			json_error(p, "unterminated string at offset %zu", p->pos);
			return -1;
		}
		c = (unsigned char) p->s[i];
		if (c == '"')
			break;
		if (c < 0x20)
		{
			json_error(p, "control character in string at offset %zu", i);
			return -1;
		}
		if (c == '\\')
		{
			char		e = (i + 1 < p->len) ? p->s[i + 1] : '\0';

			if (e == '"' || e == '\\' || e == '/' || e == 'b' ||
				e == 'f' || e == 'n' || e == 'r' || e == 't')
				i += 2;
			else if (e == 'u')
			{
				long		u = hex4(p->s, p->len, i + 2);

				if (u < 0)
				{
					json_error(p, "bad \\u escape at offset %zu", i);
					return -1;
				}
				i += 6;
				if (u >= 0xdc00 && u <= 0xdfff)
				{
					json_error(p, "lone low surrogate at offset %zu", i - 6);
					return -1;
				}
				if (u >= 0xd800 && u <= 0xdbff)
				{
					long		lo = -1;

					if (i + 1 < p->len && p->s[i] == '\\' && p->s[i + 1] == 'u')
						lo = hex4(p->s, p->len, i + 2);
					if (lo < 0xdc00 || lo > 0xdfff)
					{
						json_error(p, "lone high surrogate at offset %zu", i - 6);
						return -1;
					}
					i += 6;
				}
			}
			else
			{
				json_error(p, "invalid escape at offset %zu", i);
				return -1;
			}
		}
		else if (c < 0x80)
			i++;
		else
		{
			int			n = utf8_len((const unsigned char *) p->s + i, p->len - i);

			if (n == 0)
			{
				json_error(p, "invalid UTF-8 at offset %zu", i);
				return -1;
			}
			i += n;
		}
	}
	p->pos = i + 1;
	return add_node(p, QDB_JSON_STRING, start, i - start);
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
scan_number(JsonParser *p)
{
	size_t		start = p->pos;
	size_t		i = start;

	if (i < p->len && p->s[i] == '-')
		i++;
	if (i < p->len && p->s[i] == '0')
		i++;
	else if (i < p->len && is_digit(p->s[i]))
	{
		while (i < p->len && is_digit(p->s[i]))
			i++;
	}
	else
		goto bad;
	if (i < p->len && p->s[i] == '.')
	{
		i++;
		if (i >= p->len || !is_digit(p->s[i]))
			goto bad;
		while (i < p->len && is_digit(p->s[i]))
			i++;
	}
	if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E'))
	{
		i++;
		if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
			i++;
		if (i >= p->len || !is_digit(p->s[i]))
			goto bad;
		while (i < p->len && is_digit(p->s[i]))
			i++;
	}
	p->pos = i;
	return add_node(p, QDB_JSON_NUMBER, start, i - start);

bad:
	json_error(p, "malformed number at offset %zu", start);
	return -1;
}

static int
scan_literal(JsonParser *p, const char *word, QdbJsonType type)
{
	size_t		n = strlen(word);

	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
	{
		json_error(p, "unexpected character at offset %zu", p->pos);
		return -1;
	}
	p->pos += n;
	return add_node(p, type, p->pos - n, n);
}

/* Scans one value; containers are opened here and closed by the caller. */
static int
scan_value(JsonParser *p, ParseState *state)
{
	char		c;

	if (p->pos >= p->len)
	{
		json_error(p, "unexpected end at offset %zu", p->pos);
		return -1;
	}
	c = p->s[p->pos];
	*state = PS_AFTER;
	if (c == '{' || c == '[')
	{
		int			i;

		if (p->depth >= p->max_depth)
		{
			json_error(p, "nested deeper than %d at offset %zu", p->max_depth, p->pos);
			return -1;
		}
		i = add_node(p, c == '{' ? QDB_JSON_OBJECT : QDB_JSON_ARRAY, p->pos, 1);
		if (i < 0)
			return -1;
		p->stack[p->depth] = i;
		p->last[p->depth] = -1;
		p->depth++;
		p->pos++;
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == (c == '{' ? '}' : ']'))
		{
			p->nodes[i].len = p->pos - p->nodes[i].start + 1;
			p->depth--;
			p->pos++;
		}
		else
			*state = (c == '{') ? PS_KEY : PS_VALUE;
		return 0;
	}
	if (c == '"')
		return scan_string(p) < 0 ? -1 : 0;
	if (c == '-' || is_digit(c))
		return scan_number(p) < 0 ? -1 : 0;
	if (c == 't')
		return scan_literal(p, "true", QDB_JSON_TRUE) < 0 ? -1 : 0;
	if (c == 'f')
		return scan_literal(p, "false", QDB_JSON_FALSE) < 0 ? -1 : 0;
	if (c == 'n')
		return scan_literal(p, "null", QDB_JSON_NULL) < 0 ? -1 : 0;
	json_error(p, "unexpected character at offset %zu", p->pos);
	return -1;
}

/* After a value inside a container: a comma, or the container's end. */
static int
scan_after(JsonParser *p, ParseState *state)
{
	int			top = p->stack[p->depth - 1];
	int			is_obj = p->nodes[top].type == QDB_JSON_OBJECT;
	char		c;

	if (p->pos >= p->len)
	{
		json_error(p, "unterminated %s at offset %zu",
				   is_obj ? "object" : "array", p->nodes[top].start);
		return -1;
	}
	c = p->s[p->pos];
	if (c == ',')
	{
		p->pos++;
		*state = is_obj ? PS_KEY : PS_VALUE;
		return 0;
	}
	if (c == (is_obj ? '}' : ']'))
	{
		p->nodes[top].len = p->pos - p->nodes[top].start + 1;
		p->depth--;
		p->pos++;
		*state = PS_AFTER;
		return 0;
	}
	json_error(p, "expected ',' or '%c' at offset %zu", is_obj ? '}' : ']', p->pos);
	return -1;
}

static int
run_parser(JsonParser *p, size_t *end)
{
	ParseState	state = PS_VALUE;

	for (;;)
	{
		if (state == PS_AFTER && p->depth == 0)
		{
			*end = p->pos;
			skip_ws(p);
			if (p->pos != p->len)
			{
				json_error(p, "unexpected data after the value at offset %zu", p->pos);
				return -1;
			}
			return 0;
		}
		skip_ws(p);
		if (state == PS_VALUE)
		{
			if (scan_value(p, &state) < 0)
				return -1;
		}
		else if (state == PS_KEY)
		{
			if (p->pos >= p->len || p->s[p->pos] != '"')
			{
				json_error(p, "expected a string key at offset %zu", p->pos);
				return -1;
			}
			if (scan_string(p) < 0)
				return -1;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
			{
				json_error(p, "expected ':' at offset %zu", p->pos);
				return -1;
			}
			p->pos++;
			state = PS_VALUE;
		}
		else if (scan_after(p, &state) < 0)
			return -1;
	}
}

int
qdb_json_parse(const char *text, size_t len, int max_nodes, int max_depth,
			   const QdbAlloc *a, QdbJsonDoc *doc, char *err, size_t errlen)
{
	JsonParser *p;
	size_t		cap;
	int			rc;

	memset(doc, 0, sizeof(*doc));
	if (err && errlen > 0)
		err[0] = '\0';
	if (text == NULL || len == 0 || max_nodes < 1 || max_depth < 1)
	{
		if (err && errlen > 0)
			snprintf(err, errlen, "empty text");
		return QDB_ERR_FORMAT;
	}
	/* Every value takes at least one byte of text. */
	cap = (size_t) max_nodes < len ? (size_t) max_nodes : len;
	p = qdb_calloc(a, 1, sizeof(JsonParser));
	if (p == NULL)
		return QDB_ERR_NOMEM;
	p->nodes = qdb_malloc(a, cap, sizeof(QdbJsonNode));
	if (p->nodes == NULL)
	{
		qdb_free(a, p);
		return QDB_ERR_NOMEM;
	}
	p->s = text;
	p->len = len;
	p->max_nodes = (int) cap;
	p->max_depth = max_depth < JSON_DEPTH_CEILING ? max_depth : JSON_DEPTH_CEILING;
	p->err = err;
	p->errlen = errlen;

	rc = run_parser(p, &doc->end);
	if (rc < 0)
	{
		qdb_free(a, p->nodes);
		qdb_free(a, p);
		memset(doc, 0, sizeof(*doc));
		return QDB_ERR_FORMAT;
	}
	doc->text = text;
	doc->len = len;
	doc->nodes = p->nodes;
	doc->nnodes = p->nnodes;
	doc->alloc = a;
	qdb_free(a, p);
	return QDB_OK;
}

void
qdb_json_free(QdbJsonDoc *doc)
{
	if (doc == NULL)
		return;
	qdb_free(doc->alloc, doc->nodes);
	memset(doc, 0, sizeof(*doc));
}

/*
 * Decodes the next character of a validated raw string at raw[*i..n) into
 * out (up to 4 bytes) and returns how many bytes it wrote, 0 at the end.
 */
static int
decode_next(const char *raw, size_t n, size_t *i, char out[4])
{
	long		cp;
	char		e;

	if (*i >= n)
		return 0;
	if (raw[*i] != '\\')
	{
		out[0] = raw[(*i)++];
		return 1;
	}
	e = (*i + 1 < n) ? raw[*i + 1] : '\0';
	*i += 2;
	switch (e)
	{
		case 'b':
			out[0] = '\b';
			return 1;
		case 'f':
			out[0] = '\f';
			return 1;
		case 'n':
			out[0] = '\n';
			return 1;
		case 'r':
			out[0] = '\r';
			return 1;
		case 't':
			out[0] = '\t';
			return 1;
		case 'u':
			break;
		default:
			out[0] = e;			/* '"', '\\' or '/' */
			return 1;
	}
	cp = hex4(raw, n, *i);
	if (cp < 0)
		return -1;
	*i += 4;
	if (cp >= 0xd800 && cp <= 0xdbff)
	{
		long		lo = hex4(raw, n, *i + 2);

		if (lo < 0xdc00 || lo > 0xdfff)
			return -1;
		*i += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xc0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xe0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char) (0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char) (0xf0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char) (0x80 | (cp & 0x3f));
	return 4;
}

static int
valid_node(const QdbJsonDoc *doc, int i, QdbJsonType type)
{
	return doc != NULL && i >= 0 && i < doc->nnodes && doc->nodes[i].type == type;
}

int
qdb_json_string(const QdbJsonDoc *doc, int i, char *buf, size_t bufsize, size_t *outlen)
{
	const char *raw;
	size_t		n,
				k = 0,
				w = 0;
	char		ch[4];
	int			got;

	if (!valid_node(doc, i, QDB_JSON_STRING) || buf == NULL || bufsize == 0)
		return -1;
	raw = doc->text + doc->nodes[i].start;
	n = doc->nodes[i].len;
	while ((got = decode_next(raw, n, &k, ch)) > 0)
	{
		if (bufsize - 1 - w < (size_t) got)
		{
			buf[0] = '\0';
			return -1;
		}
		memcpy(buf + w, ch, got);
		w += got;
	}
	buf[w] = '\0';
	if (got < 0)
		return -1;
	if (outlen)
		*outlen = w;
	return 0;
}

int
qdb_json_string_equals(const QdbJsonDoc *doc, int i, const char *s)
{
	const char *raw;
	size_t		n,
				k = 0,
				w = 0,
				slen;
	char		ch[4];
	int			got;

	if (!valid_node(doc, i, QDB_JSON_STRING) || s == NULL)
		return 0;
	raw = doc->text + doc->nodes[i].start;
	n = doc->nodes[i].len;
	slen = strlen(s);
	while ((got = decode_next(raw, n, &k, ch)) > 0)
	{
		if (slen - w < (size_t) got || memcmp(s + w, ch, got) != 0)
			return 0;
		w += got;
	}
	return got == 0 && w == slen;
}

int
qdb_json_object_get(const QdbJsonDoc *doc, int obj, const char *key)
{
	int			k;

	if (!valid_node(doc, obj, QDB_JSON_OBJECT))
		return -1;
	for (k = doc->nodes[obj].child; k >= 0; k = doc->nodes[doc->nodes[k].next].next)
	{
		/* Objects always hold key, value pairs. */
		if (qdb_json_string_equals(doc, k, key))
			return doc->nodes[k].next;
	}
	return -1;
}

int
qdb_parse_uint64(const char *s, size_t len, uint64_t *out)
{
	uint64_t	v = 0;

	if (s == NULL || len == 0 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t k = 0; k < len; k++)
	{
		unsigned	d;

		if (!is_digit(s[k]))
			return -1;
		d = (unsigned) (s[k] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int
qdb_json_uint64(const QdbJsonDoc *doc, int i, uint64_t *out)
{
	if (!valid_node(doc, i, QDB_JSON_NUMBER))
		return -1;
	return qdb_parse_uint64(doc->text + doc->nodes[i].start, doc->nodes[i].len, out);
}
