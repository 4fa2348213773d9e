/* Helpers shared by the data tests: a scratch folder per test, fixture paths, small file
 * writers, and an assertion on error messages. Header-only: each test program includes it once. */
#ifndef CLIPX_TESTS_DATA_UTIL_H
#define CLIPX_TESTS_DATA_UTIL_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/base/err.h"

/* Not every test program uses every helper. */
#define DU_FN static __attribute__((unused))

static char tmpdir[256];

DU_FN void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_tree(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

DU_FN void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/clipx-data-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

DU_FN void remove_tmpdir(void)
{
    rm_tree(tmpdir);
}

/* Paths in rotating static buffers, so a few can be alive in one expression. */
DU_FN const char *path_in(const char *dir, const char *name)
{
    static char bufs[8][2048];
    static int next;
    char d[1024];
    snprintf(d, sizeof d, "%s", dir); /* dir may be an earlier result */
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", d, name);
    return b;
}

DU_FN const char *fixture(const char *name)
{
    const char *top = getenv("TOP_SRCDIR");
    static char dir[900];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/data", top ? top : ".");
    return path_in(dir, name);
}

DU_FN const char *tmp(const char *name)
{
    return path_in(tmpdir, name);
}

DU_FN void write_bytes(const char *path, const void *data, size_t n)
{
    /* A fresh file, not a truncated one: ext4 flushes files rewritten after truncation to
     * disk on close, which would make the fuzz test wait on the disk. */
    unlink(path);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

DU_FN void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

DU_FN void write_gz(const char *path, const void *data, size_t n)
{
    gzFile g = gzopen(path, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, data, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

/* Whole file into a malloc'd buffer. */
DU_FN unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

DU_FN int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The call failed with code and its message is exactly want. */
#define ck_assert_fail_msg(call, err, code, want)                                                  \
    do {                                                                                           \
        cx_err_clear(&(err));                                                                      \
        cx_status st_ = (call);                                                                    \
        ck_assert_msg(st_ == (code), "status %d, wanted %d (%s)", (int)st_, (int)(code),           \
                      (err).msg);                                                                  \
        ck_assert_str_eq((err).msg, (want));                                                       \
    } while (0)

/* The call failed with code and its message contains every one of the given pieces. */
#define ck_assert_fail_has(call, err, code, ...)                                                   \
    do {                                                                                           \
        cx_err_clear(&(err));                                                                      \
        cx_status st_ = (call);                                                                    \
        ck_assert_msg(st_ == (code), "status %d, wanted %d (%s)", (int)st_, (int)(code),           \
                      (err).msg);                                                                  \
        const char *pieces_[] = {__VA_ARGS__, NULL};                                               \
        for (int k_ = 0; pieces_[k_]; k_++)                                                        \
            ck_assert_msg(strstr((err).msg, pieces_[k_]), "message '%s' lacks '%s'", (err).msg,    \
                          pieces_[k_]);                                                            \
    } while (0)

#endif
