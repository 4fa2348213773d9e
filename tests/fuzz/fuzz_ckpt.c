/* Fuzz target: checkpoints and run folders. First byte: bit 0 set rewrites the checkpoint's
 * trailing CRC-32 to match its bytes (else mutations would almost all stop at the CRC); bit 1
 * set makes the rest a run folder, config.yaml's text up to the first NUL and model.ckpt after
 * it, opened by cx_run_open (model built from both, parameters loaded); clear, the rest is a
 * checkpoint read by cx_run_read_ckpt, then every entry is fetched by each typed getter. */
#include "tests/fuzz/fuzz.h"

#include <zlib.h>

#include "lib/run/run.h"

static uint8_t *with_crc(const uint8_t *data, size_t size, int fix)
{
    uint8_t *b = malloc(size ? size : 1);
    FUZZ_ASSERT(b != NULL);
    memcpy(b, data, size);
    if (fix && size >= 4) {
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(size - 4));
        for (int i = 0; i < 4; i++)
            b[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    return b;
}

static void read_ckpt(const char *path)
{
    cx_ckpt ck;
    cx_run_meta meta;
    cx_err err;
    cx_ckpt_init(&ck);
    if (cx_run_read_ckpt(path, &ck, &meta, &err) == CX_OK) {
        FUZZ_ASSERT(meta.shape.num_classes >= 1 && meta.num_eval_classes >= 1);
        for (int i = 0; i < meta.shape.num_classes; i++)
            FUZZ_ASSERT(meta.class_names[i] != NULL);
        for (int i = 0; i < ck.count; i++) {
            const cx_ckpt_entry *e = &ck.entries[i];
            FUZZ_ASSERT(cx_ckpt_find(&ck, e->name) != NULL);
            int64_t v;
            double d;
            char *s = NULL;
            (void)cx_ckpt_get_i64(&ck, path, e->name, &v, &err);
            (void)cx_ckpt_get_f64(&ck, path, e->name, &d, &err);
            if (cx_ckpt_get_string(&ck, path, e->name, &s, &err) == CX_OK)
                FUZZ_ASSERT(strlen(s) <= e->nbytes);
            free(s);
            if (e->dtype == CX_CKPT_F32 && e->nbytes / 4 <= (1u << 24)) {
                float *x = malloc(e->nbytes + 4);
                FUZZ_ASSERT(x != NULL);
                FUZZ_ASSERT(cx_ckpt_get_f32(&ck, path, e->name, x, e->nbytes / 4, &err) == CX_OK);
                free(x);
            }
        }
    } else {
        fuzz_refused(err.msg);
    }
    cx_run_meta_free(&meta);
    cx_ckpt_free(&ck);
}

static void open_run(const uint8_t *data, size_t size, int fix)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul)
        return;
    size_t config_len = (size_t)(nul - data), ckpt_len = size - config_len - 1;
    uint8_t *ckpt = with_crc(nul + 1, ckpt_len, fix);
    const char *config = fuzz_file("config.yaml", data, config_len);
    fuzz_file("model.ckpt", ckpt, ckpt_len);
    free(ckpt);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", config);
    *strrchr(dir, '/') = '\0';
    cx_run run;
    cx_err err;
    if (cx_run_open(dir, 4, &run, &err) == CX_OK) {
        FUZZ_ASSERT(run.meta.shape.num_classes >= 1);
        cx_run_close(&run);
    } else {
        fuzz_refused(err.msg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int fix = data[0] & 1;
    if (data[0] & 2) {
        open_run(data + 1, size - 1, fix);
    } else {
        uint8_t *b = with_crc(data + 1, size - 1, fix);
        read_ckpt(fuzz_file("model.ckpt", b, size - 1));
        free(b);
    }
    return 0;
}
