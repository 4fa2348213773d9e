/* The scratch folder and input files of the fuzz harnesses (see fuzz.h). */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <unistd.h>

#include "lib/data/array.h"

static char scratch[4096];

struct named_path {
    char name[64];
    char path[4096 + 64];
};
static struct named_path paths[16];

static void remove_scratch(void)
{
    DIR *d = opendir(scratch);
    if (d) {
        struct dirent *e;
        char p[sizeof scratch + 256];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", scratch, e->d_name);
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(scratch);
}

const char *fuzz_dir(void)
{
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/clipx-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch)) {
            perror(scratch);
            abort();
        }
        atexit(remove_scratch);
    }
    return scratch;
}

const char *fuzz_file(const char *name, const void *data, size_t size)
{
    struct named_path *slot = NULL;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0] && !slot; i++)
        if (!paths[i].name[0] || !strcmp(paths[i].name, name))
            slot = &paths[i];
    if (!slot || strlen(name) >= sizeof slot->name)
        abort();
    if (!slot->name[0]) {
        snprintf(slot->name, sizeof slot->name, "%s", name);
        snprintf(slot->path, sizeof slot->path, "%s/%s", fuzz_dir(), name);
    }
    FILE *fp = fopen(slot->path, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp)) {
        perror(slot->path);
        abort();
    }
    return slot->path;
}


void fuzz_refused(const char *msg)
{
    FUZZ_ASSERT(msg[0] != '\0' && strchr(msg, '\n') == NULL);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "refused: %s\n", msg);
}

static float *read_rows(const char *path, int format, const uint32_t *keep, size_t nkeep,
                        uint64_t *records, uint64_t *elems)
{
    cx_array_file a;
    cx_err err;
    float *x = NULL;
    if (cx_array_open(&a, path, (cx_array_format)format, &err) == CX_OK) {
        *records = a.records;
        *elems = a.record_elems;
        uint64_t rows = keep ? nkeep : a.records;
        /* The open already checked the header against the file, so this is bounded by the
         * input; the limit only keeps a huge gzip expansion from counting as a finding. */
        if (a.record_elems <= (1u << 26) && rows * a.record_elems <= (1u << 26)) {
            x = malloc(rows * a.record_elems * sizeof(float) + 1);
            FUZZ_ASSERT(x != NULL);
            if (cx_array_read(&a, keep, nkeep, CX_ELEM_F32, x, &err) != CX_OK) {
                fuzz_refused(err.msg);
                free(x);
                x = NULL;
            }
        }
    } else {
        fuzz_refused(err.msg);
    }
    cx_array_close(&a);
    return x;
}

void fuzz_read_array(const char *path, int format)
{
    uint64_t records = 0, elems = 0;
    float *all = read_rows(path, format, NULL, 0, &records, &elems);
    if (!all || records == 0) {
        free(all);
        return;
    }
    uint32_t keep[2] = {0, (uint32_t)(records - 1)};
    size_t nkeep = records > 1 ? 2 : 1;
    uint64_t r2 = 0, e2 = 0;
    float *some = records <= UINT32_MAX ? read_rows(path, format, keep, nkeep, &r2, &e2) : NULL;
    FUZZ_ASSERT(some != NULL || records > UINT32_MAX);
    if (some) {
        for (size_t k = 0; k < nkeep; k++)
            FUZZ_ASSERT(memcmp(some + k * elems, all + (size_t)keep[k] * elems,
                               elems * sizeof(float)) == 0);
    }
    free(some);
    free(all);
}
