/* Folder locks by flock(2): released by the kernel with the last descriptor, on any exit. */
#include "lib/base/dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/base/path.h"

cx_status cx_dirlock_take(const char *dir, const char *doing, int *fd, cx_err *err)
{
    *fd = -1;
    char *path = cx_path_join(dir, CX_DIRLOCK_FILE);
    if (!path)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", dir);
    /* The file stays after the run: removing it would let a process that opened the old file
     * and one that creates a new one both hold "the" lock. */
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) {
        cx_status st = cx_fail(err, CX_EIO, "%s: %s", path, strerror(errno));
        free(path);
        return st;
    }
    free(path);
    int r;
    while ((r = flock(f, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
        ;
    if (r != 0) {
        int e = errno;
        close(f);
        if (e == EWOULDBLOCK)
            return cx_fail(err, CX_EDATA, "%s: another clipx is %s this folder", dir, doing);
        return cx_fail(err, CX_EIO, "%s/%s: cannot lock: %s", dir, CX_DIRLOCK_FILE, strerror(e));
    }
    *fd = f;
    return CX_OK;
}

cx_status cx_dirlock_check(const char *dir, const char *doing, cx_err *err)
{
    char *path = cx_path_join(dir, CX_DIRLOCK_FILE);
    if (!path)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", dir);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (f < 0)
        return CX_OK;
    /* A shared probe: probes never block each other, and it fails only against a holder. */
    int r;
    while ((r = flock(f, LOCK_SH | LOCK_NB)) != 0 && errno == EINTR)
        ;
    int busy = r != 0 && errno == EWOULDBLOCK;
    close(f);
    if (busy)
        return cx_fail(err, CX_EDATA, "%s: another clipx is %s this folder", dir, doing);
    return CX_OK;
}

void cx_dirlock_release(int *fd)
{
    if (*fd >= 0)
        close(*fd); /* closing the descriptor drops the flock */
    *fd = -1;
}
