/* Path helpers shared by the readers (relative to a dataset's YAML) and the run folders. */
#include "lib/base/path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *cx_path_join(const char *base, const char *rel)
{
    size_t nr = strlen(rel);
    if (rel[0] == '/' || !base || !base[0] || (base[0] == '.' && base[1] == '\0')) {
        char *d = malloc(nr + 1);
        if (d)
            memcpy(d, rel, nr + 1);
        return d;
    }
    size_t nb = strlen(base);
    int slash = base[nb - 1] != '/';
    char *d = malloc(nb + (size_t)slash + nr + 1);
    if (!d)
        return NULL;
    memcpy(d, base, nb);
    if (slash)
        d[nb] = '/';
    memcpy(d + nb + slash, rel, nr + 1);
    return d;
}

char *cx_path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n;
    if (!slash) {
        path = ".";
        n = 1;
    } else {
        n = slash == path ? 1 : (size_t)(slash - path);
    }
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

const char *cx_path_leaf(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

cx_status cx_mkdir_p(const char *path, cx_err *err)
{
    size_t n = strlen(path);
    char *buf = malloc(n + 1);
    if (!buf)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            cx_status st = cx_fail_errno(err, CX_EIO, e, "%s: cannot create folder", buf);
            free(buf);
            return st;
        }
        buf[i] = saved;
    }
    free(buf);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cx_fail(err, CX_EIO, "%s: exists and is not a folder", path);
    return CX_OK;
}

int cx_path_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}
