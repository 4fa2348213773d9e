/* Atomic output files. Linux O_TMPFILE keeps the data nameless until commit, so even SIGKILL
 * leaves nothing behind; elsewhere a hidden mkstemp file in the same folder stands in. */
#define _GNU_SOURCE
#include "lib/base/afile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/path.h"

/* A hidden sibling name: DIR/.NAME.XXXXXX (the suffix chosen by mkstemp, or by the caller). */
static char *sibling_name(const char *path, const char *suffix)
{
    const char *base = cx_path_leaf(path);
    size_t dir_len = (size_t)(base - path);
    size_t n = dir_len + 1 + strlen(base) + 1 + strlen(suffix) + 1;
    char *d = malloc(n);
    if (d)
        snprintf(d, n, "%.*s.%s.%s", (int)dir_len, path, base, suffix);
    return d;
}

cx_status cx_afile_open(cx_afile *f, const char *path, cx_err *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->path = strdup(path);
    if (!f->path)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
#ifdef O_TMPFILE
    char *dir = cx_path_dir(path);
    if (!dir) {
        cx_afile_abort(f);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    f->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    free(dir);
#endif
    if (f->fd < 0) {
        f->tmp_path = sibling_name(path, "XXXXXX");
        if (!f->tmp_path) {
            cx_afile_abort(f);
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        }
        f->fd = mkstemp(f->tmp_path);
        if (f->fd < 0) {
            int e = errno;
            free(f->tmp_path);
            f->tmp_path = NULL;
            cx_afile_abort(f);
            return cx_fail_errno(err, CX_EIO, e, "%s: cannot create", path);
        }
        /* mkstemp creates 0600; give the file the permissions a plain fopen would. */
        mode_t mask = umask(0);
        umask(mask);
        fchmod(f->fd, 0666 & ~mask);
    }
    f->fp = fdopen(f->fd, "wb");
    if (!f->fp) {
        int e = errno;
        cx_afile_abort(f);
        return cx_fail_errno(err, CX_EIO, e, "%s: cannot open", path);
    }
    return CX_OK;
}

static void release(cx_afile *f)
{
    free(f->path);
    free(f->tmp_path);
    f->path = f->tmp_path = NULL;
    f->fp = NULL;
    f->fd = -1;
}

cx_status cx_afile_commit(cx_afile *f, cx_err *err)
{
    int e = 0;
    if (fflush(f->fp) != 0 || ferror(f->fp))
        e = errno ? errno : EIO;
    if (!e && fsync(f->fd) != 0 && errno != EINVAL)
        e = errno;
    if (!e && !f->tmp_path) {
        /* Unnamed file: give it a hidden name while its descriptor is open, then rename over
         * the target (linkat refuses to replace an existing file). */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
        for (unsigned attempt = 0; !f->tmp_path; attempt++) {
            char suffix[32];
            snprintf(suffix, sizeof suffix, "%ld.%u", (long)getpid(), attempt);
            f->tmp_path = sibling_name(f->path, suffix);
            if (!f->tmp_path) {
                e = ENOMEM;
                break;
            }
            if (linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp_path, AT_SYMLINK_FOLLOW) != 0) {
                e = errno;
                free(f->tmp_path);
                f->tmp_path = NULL;
                if (e != EEXIST || attempt > 100)
                    break;
                e = 0;
            }
        }
    }
    if (fclose(f->fp) != 0 && !e)
        e = errno;
    f->fp = NULL;
    if (!e && rename(f->tmp_path, f->path) != 0)
        e = errno;
    if (e) {
        cx_status st = cx_fail_errno(err, CX_EIO, e, "%s: cannot write", f->path);
        if (f->tmp_path)
            unlink(f->tmp_path);
        release(f);
        return st;
    }
    release(f);
    return CX_OK;
}

void cx_afile_abort(cx_afile *f)
{
    if (f->fp)
        fclose(f->fp);
    else if (f->fd >= 0)
        close(f->fd);
    if (f->tmp_path)
        unlink(f->tmp_path);
    release(f);
}

void cx_afile_sweep(const char *path)
{
    const char *base = cx_path_leaf(path);
    size_t dir_len = (size_t)(base - path), base_len = strlen(base);
    char *dir = dir_len ? strndup(path, dir_len) : strdup(".");
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *n = e->d_name;
        /* ".NAME." and a non-empty suffix: both of afile's temporary names */
        if (n[0] != '.' || strncmp(n + 1, base, base_len) != 0 || n[1 + base_len] != '.' ||
            n[2 + base_len] == '\0')
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
            unlinkat(dirfd(d), n, 0);
    }
    if (d)
        closedir(d);
    free(dir);
}

cx_status cx_afile_write_all(const char *path, const void *data, size_t size, cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    if (size && fwrite(data, 1, size, f.fp) != size) {
        int e = errno;
        cx_afile_abort(&f);
        return cx_fail_errno(err, CX_EIO, e, "%s: write failed", path);
    }
    return cx_afile_commit(&f, err);
}
