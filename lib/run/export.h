/* A run's weights for tools outside clipx (`clipx export`): one NPZ archive (numpy.savez's
 * format) holding every tensor of model.ckpt under its parameter name as float32 in the shape
 * the model uses, and, as uint8 arrays of UTF-8 text, config.json (the model's shape, the
 * class names and counts, the resolved configuration) and, for CLIP runs, vocab.txt. A CLIP
 * run also gets zeroshot.tokens, int32 (E, T, L): the prompts of its dataset's templates for
 * each evaluated class, tokenized as `clipx eval` does, so the zero-shot classifier can be
 * rebuilt from the text tower alone. scripts/clipx_torch.py reads the archive. */
#ifndef CX_RUN_EXPORT_H
#define CX_RUN_EXPORT_H

#include "lib/base/err.h"

/* The archive's format, config.json's "format". */
#define CX_EXPORT_FORMAT "clipx-npz 1"

/* Export run folder dir to out (written atomically). A missing or corrupt run is CX_EDATA
 * naming the file; a retrained run (clipx retrain) is CX_EUSAGE: its classifier sits on the
 * features of its stage-1 run, which is the one to export. */
cx_status cx_run_export(const char *dir, const char *out, cx_err *err);

#endif
