/* Heap size from glibc, the machine's available memory from /proc. */
#include "config.h"

#include "lib/base/memory.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_MALLINFO2
#include <malloc.h>
#endif

uint64_t cx_heap_allocated(void)
{
#ifdef HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#else
    return 0;
#endif
}

/* The value of "KEY: N kB" in a /proc file, in bytes. */
static cx_status proc_kb(const char *path, const char *key, uint64_t *bytes, cx_err *err)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return cx_fail_errno(err, CX_EIO, errno, "%s: cannot read the memory figures", path);
    char line[256];
    size_t klen = strlen(key);
    cx_status st = cx_fail(err, CX_EIO, "%s: no %s line", path, key);
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            unsigned long long kb;
            if (sscanf(line + klen + 1, "%llu", &kb) == 1) {
                *bytes = (uint64_t)kb * 1024u;
                st = CX_OK;
            }
            break;
        }
    fclose(fp);
    return st;
}

cx_status cx_memory_available(uint64_t *bytes, cx_err *err)
{
    uint64_t avail = 0, rss = 0;
    cx_status st = proc_kb("/proc/meminfo", "MemAvailable", &avail, err);
    if (!st)
        st = proc_kb("/proc/self/status", "VmRSS", &rss, err);
    if (!st)
        *bytes = avail + rss;
    return st;
}

const char *cx_bytes_human(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, cap, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

int cx_bytes_parse(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || v < 0)
        return -1;
    double mul = 1;
    const char *u = end;
    if (*u) {
        char c = (char)toupper((unsigned char)*u);
        const char *rest = u + 1;
        switch (c) {
        case 'B': mul = 1; break;
        case 'K': mul = 1024.0; break;
        case 'M': mul = 1024.0 * 1024; break;
        case 'G': mul = 1024.0 * 1024 * 1024; break;
        case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
        default: return -1;
        }
        if (c != 'B') {
            if (toupper((unsigned char)rest[0]) == 'I' && toupper((unsigned char)rest[1]) == 'B')
                rest += 2;
            else if (toupper((unsigned char)rest[0]) == 'B')
                rest += 1;
        }
        if (*rest)
            return -1;
    }
    double b = v * mul;
    if (!(b >= 1) || b > 1.8e19)
        return -1;
    *out = (uint64_t)b;
    return 0;
}
