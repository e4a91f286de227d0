/*
 * cli_vecs.c
 *	  TEXMEX vector files: per row an int32 dimension, then that many 4-byte
 *	  elements.  Every row must have the first row's dimension.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_vecs.h"
#include "qdb_trainer.h"

void *
cli_read_vecs(const char *path, size_t max_rows, size_t *n, int *dim,
			  char *err, size_t errlen)
{
	FILE	   *f = fopen(path, "rb");
	int32_t		d;
	long		size;
	size_t		rows,
				row_bytes;
	char	   *out;

	if (!f)
	{
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fread(&d, 4, 1, f) != 1 || d <= 0 || d > QDB_MAX_DIM)
	{
		snprintf(err, errlen, "%s: bad or missing dimension in the first row", path);
		fclose(f);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	row_bytes = 4 + 4 * (size_t) d;
	if (size < 0 || (size_t) size % row_bytes != 0)
	{
		snprintf(err, errlen, "%s: size %ld is not a multiple of the row size %zu",
				 path, size, row_bytes);
		fclose(f);
		return NULL;
	}
	rows = (size_t) size / row_bytes;
	if (max_rows > 0 && rows > max_rows)
		rows = max_rows;
	out = malloc(rows * 4 * (size_t) d + 1);
	if (!out)
	{
		snprintf(err, errlen, "out of memory reading %s", path);
		fclose(f);
		return NULL;
	}
	for (size_t i = 0; i < rows; i++)
	{
		int32_t		di;

		if (fread(&di, 4, 1, f) != 1 || di != d ||
			fread(out + i * 4 * (size_t) d, 4, d, f) != (size_t) d)
		{
			snprintf(err, errlen, "%s: row %zu is truncated or has another dimension", path, i);
			free(out);
			fclose(f);
			return NULL;
		}
	}
	fclose(f);
	*n = rows;
	*dim = d;
	return out;
}
