/* Path helpers: joining, folders, creating folders. Returned strings are malloc'd; the caller frees. */
#ifndef CX_BASE_PATH_H
#define CX_BASE_PATH_H

#include "lib/base/err.h"

/* rel resolved against folder base: rel itself when absolute or when base is NULL/empty. NULL on OOM. */
char *cx_path_join(const char *base, const char *rel);

/* The folder part of path: "." when path has no slash. NULL on OOM. */
char *cx_path_dir(const char *path);

/* The last component of path: what follows its last slash, or path itself. */
const char *cx_path_leaf(const char *path);

/* Create path and its missing parents (like mkdir -p). */
cx_status cx_mkdir_p(const char *path, cx_err *err);

/* 1 when path exists (any kind of file), else 0. */
int cx_path_exists(const char *path);

#endif
