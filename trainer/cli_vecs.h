/*
 * cli_vecs.h
 *	  Reading TEXMEX .fvecs / .ivecs files for the standalone CLI.
 */
#ifndef QDB_CLI_VECS_H
#define QDB_CLI_VECS_H

#include <stddef.h>

/*
 * Reads up to max_rows rows (0: all) of an .fvecs or .ivecs file (4-byte
 * elements either way).  Returns a malloc'd row-major array and sets *n and
 * *dim, or returns NULL and writes the reason to err.
 */
void	   *cli_read_vecs(const char *path, size_t max_rows, size_t *n, int *dim,
						  char *err, size_t errlen);

#endif
