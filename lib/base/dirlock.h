/* An exclusive lock on a folder, so two processes never write into it at once. The lock is a
 * flock(2) on a dot-file in the folder: the kernel drops it when the process exits, however it
 * ends (kill -9 too), so a lock is never left stale. */
#ifndef CX_BASE_DIRLOCK_H
#define CX_BASE_DIRLOCK_H

#include "lib/base/err.h"

#define CX_DIRLOCK_FILE ".lock"

/* Take the lock on the existing folder dir; *fd (>= 0) holds it until cx_dirlock_release.
 * Another process holding it: CX_EDATA "DIR: another clipx is <doing> this folder". */
cx_status cx_dirlock_take(const char *dir, const char *doing, int *fd, cx_err *err);

/* The same refusal as cx_dirlock_take when another process holds dir's lock, else CX_OK; writes
 * nothing (no lock file: nobody holds it). For refusing before slower checks that would give a
 * less telling reason. */
cx_status cx_dirlock_check(const char *dir, const char *doing, cx_err *err);

/* Release a lock taken by cx_dirlock_take (fd < 0: nothing to do); *fd becomes -1. */
void cx_dirlock_release(int *fd);

#endif
