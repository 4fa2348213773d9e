/* clipx embed: a run's image-tower features of a split (or its zero-shot class embeddings) as
 * an NPY array, for tools outside clipx (numpy, scikit-learn) to work on the same vectors. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/data/npy.h"
#include "lib/eval/run_eval.h"

#include "cli.h"
#include "commands.h"

static const char *data, *split_name, *out_path, *labels_path;
static int text;

static const cli_opt embed_opts[] = {
    {"data", CLI_STRING, &data, "DATASET",
     "embed this dataset's split (default: the run's, training rows from its subset); its class "
     "list must be the run's", 0, -1, NULL},
    {"split", CLI_STRING, &split_name, "SPLIT", "the split to embed (default test)", 0, -1,
     "train|test"},
    {"text", CLI_FLAG, &text, NULL,
     "the zero-shot class embeddings (C, D) instead (runs with a text tower)", 0, -1, NULL},
    {"out", CLI_STRING, &out_path, "F.npy", "write the float32 array here (required)", 0, -1,
     NULL},
    {"labels", CLI_STRING, &labels_path, "L.npy",
     "also write the split's labels (N) as int32 (not with --text)", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_embed_spec = {
    "embed",
    "a run's image features of a split, or its class embeddings, as an NPY file",
    "RUN [--data DATASET] [--split train|test] [--text] --out F.npy [--labels L.npy]",
    "Writes the image tower's embeddings (N, D) float32, before L2 normalisation, of every row\n"
    "of the split in its order: for train, the rows of the run's SUBSET (as it trained on),\n"
    "or every training row of --data. With --text, the class embeddings (C, D) of the zero-shot\n"
    "classifier of `clipx eval` (per class: its prompts' embeddings normalised, averaged and\n"
    "normalised again). --labels also writes the split's labels.\n"
    "Files appear whole or not at all. A missing run or corrupt checkpoint is status 1; --text\n"
    "on a run without a text tower, or a missing --out, is status 2.",
    embed_opts,
    1,
    1,
    CLI_COMPUTES};

int cmd_embed(const cli_result *res)
{
    if (!out_path) {
        cli_error("embed", "--out F.npy is required");
        return EXIT_USAGE;
    }
    if (text && labels_path) {
        cli_error("embed", "--labels: class embeddings have no labels (drop --text or --labels)");
        return EXIT_USAGE;
    }
    cx_run_embed_opts o = {0};
    o.data = data;
    o.split = split_name && strcmp(split_name, "train") == 0 ? CX_EMBED_TRAIN : CX_EMBED_TEST;
    o.text = text;
    cx_err err;
    cx_err_clear(&err);
    cx_run_embedding e;
    if (res->progress)
        fprintf(stderr, "embed: %s ...\n", res->args[0]);
    cx_status st = cx_run_embed(res->args[0], &o, &e, &err);
    if (st == CX_EUSAGE && text && strstr(err.msg, "text tower"))
        cli_err_prepend(&err, "--text: ");
    if (st)
        return cli_fail("embed", st, &err);
    uint64_t shape[2] = {(uint64_t)e.n, (uint64_t)e.dim};
    cx_npy_writer fw, lw;
    int rc = EXIT_OK, lopen = 0;
    /* Both files are written before either is committed: a failure leaves neither. */
    if ((st = cx_npy_writer_open(&fw, out_path, CX_ELEM_F32, 2, shape, &err))) {
        rc = cli_fail("embed", st, &err);
        goto fail;
    }
    if (labels_path) {
        if ((st = cx_npy_writer_open(&lw, labels_path, CX_ELEM_I32, 1, shape, &err))) {
            rc = cli_fail("embed", st, &err);
            cx_npy_writer_abort(&fw);
            goto fail;
        }
        lopen = 1;
    }
    if ((st = cx_npy_writer_write(&fw, e.x, sizeof *e.x * (size_t)e.n * (size_t)e.dim, &err)) ||
        (lopen && (st = cx_npy_writer_write(&lw, e.y, sizeof *e.y * (size_t)e.n, &err)))) {
        rc = cli_fail("embed", st, &err);
        cx_npy_writer_abort(&fw);
        if (lopen)
            cx_npy_writer_abort(&lw);
        goto fail;
    }
    /* A failed commit has cleaned up after itself. */
    if ((st = cx_npy_writer_commit(&fw, &err))) {
        rc = cli_fail("embed", st, &err);
        if (lopen)
            cx_npy_writer_abort(&lw);
        goto fail;
    }
    if (lopen && (st = cx_npy_writer_commit(&lw, &err)))
        rc = cli_fail("embed", st, &err);
    if (!rc && res->progress)
        fprintf(stderr, "embed: %lld x %d to %s\n", (long long)e.n, e.dim, out_path);
fail:
    cx_run_embedding_free(&e);
    return rc;
}
