/* crashpoint.h: named points where a test can have the process killed (SIGKILL, no cleanup),
 * to prove that the store survives a crash anywhere. HOVERSYNC_CRASHPOINT=name[:N] kills the
 * process the Nth time (default 1st) the point `name` is passed. Unset: a getenv per call. */
#ifndef HS_CORE_CRASHPOINT_H
#define HS_CORE_CRASHPOINT_H

void hs_crashpoint(const char *name);

#endif
