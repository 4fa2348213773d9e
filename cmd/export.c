/* clipx export: a run's weights, shape and class names as one NPZ archive for numpy and
 * PyTorch (scripts/clipx_torch.py rebuilds the towers from it). */
#include <stdio.h>

#include "lib/eval/export.h"

#include "cli.h"
#include "commands.h"

static const char *out_path;

static const cli_opt export_opts[] = {
    {"out", CLI_STRING, &out_path, "F.npz", "write the archive here (required)", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_export_spec = {
    "export",
    "a run's weights as an NPZ archive (numpy, PyTorch)",
    "RUN --out F.npz",
    "Writes numpy's NPZ (a zip of .npy members, stored uncompressed): one float32 array per\n"
    "tensor of RUN/model.ckpt under its parameter name (image.fc0.weight, text.blocks0.ln1.bias,\n"
    "head.weight, logit_scale, ...) in the shape the model uses (linear weights (out, in),\n"
    "convolutions (out, in, 3, 3)); config.json, a uint8 array of UTF-8 JSON with the towers'\n"
    "shapes, the class names and counts and the run's config.yaml (read it with\n"
    "json.loads(bytes(np.load(F)['config.json']))); for CLIP runs vocab.txt (uint8 text) and\n"
    "zeroshot.tokens, int32 (classes, templates, tokens): the zero-shot prompts of the run's\n"
    "dataset as `clipx eval` tokenizes them. np.load reads it without allow_pickle;\n"
    "scripts/clipx_torch.py rebuilds the model in PyTorch and reproduces `clipx eval --logits`.\n"
    "A retrained run (clipx retrain) brings its stage-1 run's tensors and its classifier as\n"
    "retrain.weight (classes, D) and retrain.bias; one with layers of its own (DisAlign's gate,\n"
    "a decoder) is refused: export its stage-1 run.\n"
    "The file appears whole or not at all. A missing or corrupt run is status 1; a refused\n"
    "retrained run or a missing --out is status 2.",
    export_opts,
    1,
    1,
    0};

int cmd_export(const cli_result *res)
{
    if (!out_path) {
        cli_error("export", "--out F.npz is required");
        return EXIT_USAGE;
    }
    cx_err err;
    cx_err_clear(&err);
    cx_status st = cx_run_export(res->args[0], out_path, &err);
    if (st)
        return cli_fail("export", st, &err);
    if (res->progress)
        fprintf(stderr, "export: %s to %s\n", res->args[0], out_path);
    return EXIT_OK;
}
