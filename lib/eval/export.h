/* A run's weights for tools outside clipx (`clipx export`): one NPZ archive (numpy.savez's
 * format) holding every tensor of model.ckpt under its parameter name as float32 in the shape
 * the model uses, and, as uint8 arrays of UTF-8 text, config.json (the model's shape, the
 * class names and counts, the resolved configuration) and, for CLIP runs, vocab.txt. A CLIP
 * run also gets zeroshot.tokens, int32 (E, T, L): the prompts of its dataset's templates for
 * each evaluated class, tokenized as `clipx eval` does, so the zero-shot classifier can be
 * rebuilt from the text tower alone. scripts/clipx_torch.py reads the archive. A retrained
 * run's linear classifier comes with its stage-1 run's tensors. */
#ifndef CX_EVAL_EXPORT_H
#define CX_EVAL_EXPORT_H

#include "lib/base/err.h"

/* The archive's format, config.json's "format". */
#define CX_EXPORT_FORMAT "clipx-npz 1"

/* Export run folder dir to out (written atomically). A missing or corrupt run is CX_EDATA
 * naming the file. A retrained run (clipx retrain) exports its stage-1 run's tensors with its
 * classifier as retrain.weight (C, D) and retrain.bias (C), config.json's "retrain" saying how
 * it scores (eval mode "retrained"); one whose classifier has layers of its own (DisAlign's
 * gate, a decoder) is CX_EUSAGE: export its stage-1 run instead. */
cx_status cx_run_export(const char *dir, const char *out, cx_err *err);

#endif
