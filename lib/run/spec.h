/* From a training configuration (and what the data says: input shape, classes, vocabulary) to
 * the typed settings of the model, loss, optimiser, schedule and samplers. One place maps the
 * config's enums to the library's, so the trainer and the run loader build the same model. */
#ifndef CX_RUN_SPEC_H
#define CX_RUN_SPEC_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/augment.h"
#include "lib/model/model.h"
#include "lib/objective/loss.h"
#include "lib/objective/sampler.h"
#include "lib/objective/vocab_sampler.h"
#include "lib/optim/optim.h"
#include "lib/optim/schedule.h"
#include "lib/run/train_config.h"

/* What the data contributes to a model's shape. */
typedef struct {
    int in_rank;          /* per-sample rank of the inputs (1..3) */
    int64_t in_shape[3];  /* per-sample shape */
    int num_classes;      /* classes of the class list (the SL head's outputs) */
    int vocab_size;       /* CLIP: tokenizer vocabulary size, else 0 */
    int64_t train_samples; /* training samples (the sum of the class counts); 0: unknown */
} cx_data_shape;

/* CX_EUSAGE (exit 2) with a message that says what to change when the configuration cannot
 * build a model for this data (e.g. a CNN on vector inputs, LDAM without a cosine head). */
cx_status cx_spec_model(const cx_train_config *cfg, const cx_data_shape *shape, int max_batch,
                        cx_model_spec *spec, cx_err *err);
void cx_spec_loss(const cx_train_config *cfg, cx_loss_config *out);
void cx_spec_optim(const cx_train_config *cfg, cx_optim_config *out);
/* milestones (cfg->optim.milestones.n) are converted in place into caller storage. */
void cx_spec_schedule(const cx_train_config *cfg, int64_t steps_per_epoch, int64_t *milestones,
                      cx_schedule *out);
cx_sampler_kind cx_spec_sampler(const cx_train_config *cfg);
cx_vocab_weight cx_spec_vocab_weight(const cx_train_config *cfg);
/* The aug.* keys as the augmentations' settings. */
void cx_spec_aug(const cx_train_config *cfg, cx_aug_config *out);

#endif
