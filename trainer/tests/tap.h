/*
 * tap.h
 *	  A minimal TAP producer for the trainer's C unit tests.  Each test binary
 *	  prints "ok N - name" or "not ok N - name" per check and a final plan;
 *	  the exit status is nonzero when any check failed.
 */
#ifndef QDB_TAP_H
#define QDB_TAP_H

#include <stdio.h>
#include <stdarg.h>

static int	tap_count;
static int	tap_failed;

static inline int
tap_ok(int cond, const char *fmt,...)
{
	va_list		ap;

	tap_count++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

/* Prints a diagnostic line ("# ..."), which TAP consumers ignore. */
static inline void
tap_diag(const char *fmt,...)
{
	va_list		ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif							/* QDB_TAP_H */
