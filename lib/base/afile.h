/* Atomic output files: write into an unnamed or hidden temporary file in the target's folder,
 * then rename over the target, so a failed or killed writer never leaves a partial file and
 * never truncates an earlier good one. */
#ifndef CX_BASE_AFILE_H
#define CX_BASE_AFILE_H

#include <stdio.h>

#include "lib/base/err.h"

typedef struct {
    FILE *fp;        /* write through this between open and commit/abort */
    char *path;      /* owned: the final path */
    char *tmp_path;  /* owned: named temporary (NULL while the file is still unnamed) */
    int fd;
} cx_afile;

/* Open a temporary file beside path. On failure nothing is created. */
cx_status cx_afile_open(cx_afile *f, const char *path, cx_err *err);

/* Flush, sync and rename into place. On failure the temporary file is removed and the target
 * is untouched. Frees f's resources either way. */
cx_status cx_afile_commit(cx_afile *f, cx_err *err);

/* Discard what was written; the target is untouched. Safe on a zeroed or already-finished f. */
void cx_afile_abort(cx_afile *f);

/* Remove what writers of path killed between naming their temporary file and renaming it left
 * behind: the regular files DIR/.NAME.* beside path. Only for a caller that alone writes the
 * folder (it holds the folder's lock, lib/base/dirlock.h), since a live writer's temporary file
 * has such a name too. Best effort: a file that cannot be removed is left. */
void cx_afile_sweep(const char *path);

/* Write a whole buffer atomically to path. */
cx_status cx_afile_write_all(const char *path, const void *data, size_t size, cx_err *err);

#endif
