/* crashpoint.c: see crashpoint.h. */
#include "core/crashpoint.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/str.h"

static atomic_int passes;

void hs_crashpoint(const char *name)
{
    const char *spec = getenv("HOVERSYNC_CRASHPOINT");
    if (!spec || !*spec)
        return;
    size_t n = strlen(name);
    if (strncmp(spec, name, n) != 0 || (spec[n] != '\0' && spec[n] != ':'))
        return;
    int64_t nth = 1;
    if (spec[n] == ':' && hs_parse_i64_range(spec + n + 1, 1, 1000000, &nth) != 0)
        return;
    if (atomic_fetch_add(&passes, 1) + 1 == nth)
        kill(getpid(), SIGKILL);
}
