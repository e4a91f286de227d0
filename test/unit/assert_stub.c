/*
 * assert_stub.c
 *	  Assert()'s failure report for the unit tests, which run outside the
 *	  server: against headers of a server built with --enable-cassert (make
 *	  check-cassert) an Assert calls ExceptionalCondition, which only the
 *	  backend defines.  Elsewhere this file is empty.
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef USE_ASSERT_CHECKING
#if PG_VERSION_NUM >= 160000
void
ExceptionalCondition(const char *conditionName, const char *fileName,
					 int lineNumber)
{
	fprintf(stderr, "TRAP: failed Assert(\"%s\"), File: \"%s\", Line: %d\n",
			conditionName, fileName, lineNumber);
	abort();
}
#else
void
ExceptionalCondition(const char *conditionName, const char *errorType,
					 const char *fileName, int lineNumber)
{
	fprintf(stderr, "TRAP: %s(\"%s\", File: \"%s\", Line: %d)\n",
			errorType, conditionName, fileName, lineNumber);
	abort();
}
#endif
#endif
