/*
 * json.h
 *	  A small strict JSON reader (RFC 8259) for the safetensors header.
 *
 * The text is parsed once into a flat array of nodes that point back into
 * it; nothing is copied.  The parser is iterative with an explicit depth
 * limit, caps the number of nodes, checks every length, and rejects
 * anything RFC 8259 does not allow: invalid UTF-8, control characters in
 * strings, bad escapes or lone surrogates, leading zeros, trailing commas,
 * and anything but whitespace after the value.  Duplicate object keys are
 * not rejected here; the caller knows which keys it expects.
 */
#ifndef QDB_JSON_H
#define QDB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "qdb_trainer.h"

typedef enum QdbJsonType
{
	QDB_JSON_NULL = 1,
	QDB_JSON_FALSE,
	QDB_JSON_TRUE,
	QDB_JSON_NUMBER,
	QDB_JSON_STRING,
	QDB_JSON_ARRAY,
	QDB_JSON_OBJECT
} QdbJsonType;

typedef struct QdbJsonNode
{
	QdbJsonType type;
	size_t		start;			/* offset in text: a string's first byte after
								 * the quote, a number's first character, a
								 * container's bracket */
	size_t		len;			/* raw bytes: a string's without the quotes */
	int			child;			/* first child or -1; an object's children
								 * alternate key, value */
	int			next;			/* next sibling or -1 */
	int			count;			/* children: elements, or 2 per member */
} QdbJsonNode;

typedef struct QdbJsonDoc
{
	const char *text;
	size_t		len;
	size_t		end;			/* offset just past the root value */
	QdbJsonNode *nodes;			/* nodes[0] is the root */
	int			nnodes;
	const QdbAlloc *alloc;
} QdbJsonDoc;

/*
 * Parses text[0..len).  On success doc holds the nodes (free them with
 * qdb_json_free); on failure returns QDB_ERR_FORMAT (or QDB_ERR_NOMEM) with
 * a message in err, and doc needs no freeing.
 */
int			qdb_json_parse(const char *text, size_t len, int max_nodes, int max_depth,
						   const QdbAlloc *a, QdbJsonDoc *doc, char *err, size_t errlen);
void		qdb_json_free(QdbJsonDoc *doc);

/* The value of the first member named key, or -1. */
int			qdb_json_object_get(const QdbJsonDoc *doc, int obj, const char *key);

/*
 * Decodes string node i into buf with a NUL after it; *outlen gets the
 * decoded length, which is less than strlen(buf) when the string holds
 * \u0000.  Returns 0, or -1 when it is not a string or does not fit.
 */
int			qdb_json_string(const QdbJsonDoc *doc, int i, char *buf, size_t bufsize,
							size_t *outlen);

/* Whether string node i decodes to exactly s. */
int			qdb_json_string_equals(const QdbJsonDoc *doc, int i, const char *s);

/*
 * Reads number node i as a non-negative integer written without fraction or
 * exponent.  Returns 0, or -1 when it is anything else or exceeds UINT64_MAX.
 */
int			qdb_json_uint64(const QdbJsonDoc *doc, int i, uint64_t *out);

/*
 * Reads decimal digits s[0..len) ("0" or no leading zero) as uint64.
 * Returns 0, or -1 on anything else or overflow.
 */
int			qdb_parse_uint64(const char *s, size_t len, uint64_t *out);

#endif							/* QDB_JSON_H */
