/* Fuzz target: the configuration loader (lib/conf through the training and retraining
 * schemas): a YAML file plus --set overrides. Input: one byte picks the schema, then the file's
 * text up to the first NUL, then each NUL-separated piece is one KEY=VALUE override. A
 * configuration that loads must write out and load back equal to itself, bit for bit. */
#include "tests/fuzz/fuzz.h"

#include "lib/run/retrain_config.h"
#include "lib/run/train_config.h"

enum { MAX_SETS = 8 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const cx_conf_schema *schema =
        data[0] & 1 ? &cx_retrain_config_schema : &cx_train_config_schema;
    data++, size--;
    const uint8_t *nul = memchr(data, 0, size);
    size_t yaml_len = nul ? (size_t)(nul - data) : size;
    const char *path = fuzz_file("config.yaml", data, yaml_len);

    /* The overrides as strings (each NUL-terminated in a copy of the rest). */
    char *rest = NULL;
    const char *sets[MAX_SETS];
    size_t nsets = 0;
    if (nul) {
        size_t rest_len = size - yaml_len - 1;
        rest = malloc(rest_len + 1);
        FUZZ_ASSERT(rest != NULL);
        memcpy(rest, nul + 1, rest_len);
        rest[rest_len] = '\0';
        for (char *p = rest; nsets < MAX_SETS && p <= rest + rest_len; p += strlen(p) + 1)
            sets[nsets++] = p;
    }

    void *cfg = calloc(1, schema->size), *again = calloc(1, schema->size);
    FUZZ_ASSERT(cfg && again);
    cx_err err;
    if (cx_conf_load(schema, cfg, path, sets, nsets, &err) == CX_OK) {
        if (schema == &cx_train_config_schema)
            (void)cx_train_config_validate(cfg, &err);
        char copy[4200];
        snprintf(copy, sizeof copy, "%s/written.yaml", fuzz_dir());
        FUZZ_ASSERT(cx_conf_write_file(schema, cfg, copy, &err) == CX_OK);
        if (cx_conf_load(schema, again, copy, NULL, 0, &err) != CX_OK) {
            fprintf(stderr, "written configuration does not load back: %s\n", err.msg);
            abort();
        }
        FUZZ_ASSERT(cx_conf_equal(schema, cfg, again));
        cx_conf_free(schema, again);
    } else {
        fuzz_refused(err.msg);
    }
    cx_conf_free(schema, cfg);
    free(cfg);
    free(again);
    free(rest);
    return 0;
}
