/* The training configuration's schema (one line per key) and its checks across keys. */
#include "lib/run/train_config.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* The loader stores enum keys as int; the enum fields must be exactly that wide. */
_Static_assert(sizeof(cx_cfg_objective) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_loss) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_sampler) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_vocab_weight) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_head) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_image_tower) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_text_tower) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_act) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_pool) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_norm) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_optim_name) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(cx_cfg_schedule) == sizeof(int), "enum fields are stored as int");

#define AT(f) offsetof(cx_train_config, f)
#define CHOICES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define GE(a) .flags = CX_CONF_MIN, .min = (a)
#define GT(a) .flags = CX_CONF_MIN | CX_CONF_MIN_OPEN, .min = (a)
#define IN(a, b) .flags = CX_CONF_MIN | CX_CONF_MAX, .min = (a), .max = (b)
#define IN_CO(a, b) .flags = CX_CONF_MIN | CX_CONF_MAX | CX_CONF_MAX_OPEN, .min = (a), .max = (b)
#define NULLABLE .flags = CX_CONF_NULLABLE
/* Keys added after run folders existed are written back only when set (CX_CONF_OMIT_DEFAULT):
 * older runs' config.yaml, and the checkpoints that record it, stay byte-identical. */
#define Q CX_CONF_OMIT_DEFAULT
#define Q_GE(a) .flags = Q | CX_CONF_MIN, .min = (a)
#define Q_GT(a) .flags = Q | CX_CONF_MIN | CX_CONF_MIN_OPEN, .min = (a)
#define Q_IN(a, b) .flags = Q | CX_CONF_MIN | CX_CONF_MAX, .min = (a), .max = (b)
#define Q_IN_CO(a, b) .flags = Q | CX_CONF_MIN | CX_CONF_MAX | CX_CONF_MAX_OPEN, .min = (a), .max = (b)
#define Q_IN_OC(a, b) .flags = Q | CX_CONF_MIN | CX_CONF_MIN_OPEN | CX_CONF_MAX, .min = (a), .max = (b)
#define Q_NULLABLE .flags = Q | CX_CONF_NULLABLE

/* Sizes are capped so that products of them stay far from overflow in the trainer. */
#define WIDTH IN(1, 65536)

/* Keys in the order `clipx config` writes and lists them. Enum choices are in the order of the
 * enum constants in train_config.h. */
static const cx_conf_key keys[] = {
    {"data", CX_CONF_PATH, AT(data), "null", NULLABLE, .doc = "dataset YAML (required by clipx train)"},
    {"subset", CX_CONF_PATH, AT(subset), "null", NULLABLE, .doc = "SUBSET file of kept training indices; null: the whole training set"},
    {"seed", CX_CONF_INT, AT(seed), "0", GE(0), .doc = "seed of every random stream (initialisation, shuffling, sampling)"},
    {"threads", CX_CONF_INT, AT(threads), "0", IN(0, 4096), .doc = "threads for OpenMP loops and OpenBLAS; 0: all cores"},
    {"epochs", CX_CONF_INT, AT(epochs), "10", IN(1, 1000000), .doc = "passes over the training set"},
    {"batch", CX_CONF_INT, AT(batch), "256", IN(1, 16777216), .doc = "samples per optimisation step"},
    {"drop_last", CX_CONF_BOOL, AT(drop_last), "true", .doc = "drop the last partial batch of each epoch"},
    {"objective", CX_CONF_ENUM, AT(objective), "sl", .choices = CHOICES("clip", "sl", "dino", "declip"), .doc = "clip: contrastive image-text (symmetric InfoNCE); sl: supervised classification; dino: self-supervised student and EMA teacher on prototypes (the dino.* keys); declip: clip with DeCLIP's extra supervision (the declip.* keys)"},
    {"loss", CX_CONF_ENUM, AT(loss), "ce", .choices = CHOICES("ce", "focal", "balanced-softmax", "logit-adjust", "cbw", "effnum", "grw", "ldam", "lade"), .doc = "loss of objective sl: cross-entropy or an imbalance-aware variant"},
    {"focal.gamma", CX_CONF_DOUBLE, AT(focal.gamma), "2", GE(0), .doc = "focal loss: exponent of (1 - p_y)"},
    {"logit_adjust.tau", CX_CONF_DOUBLE, AT(logit_adjust.tau), "1", .doc = "logit adjustment: CE(z + tau log pi)"},
    {"effnum.beta", CX_CONF_DOUBLE, AT(effnum.beta), "0.999", IN_CO(0, 1), .doc = "effective-number weights (loss effnum, drw): (1 - beta) / (1 - beta^n_c)"},
    {"grw.p", CX_CONF_DOUBLE, AT(grw.p), "1.2", GE(0), .doc = "generalised re-weighting: w_c proportional to pi_c^-p"},
    {"ldam.max_margin", CX_CONF_DOUBLE, AT(ldam.max_margin), "0.5", GT(0), .doc = "LDAM: margin of the rarest class"},
    {"ldam.scale", CX_CONF_DOUBLE, AT(ldam.scale), "30", GT(0), .doc = "LDAM: logit scale s"},
    {"drw.epoch", CX_CONF_INT, AT(drw.epoch), "0", GE(0), .doc = "deferred re-weighting: first epoch (1-based) with effective-number class weights; 0: never"},
    {"lade.lambda", CX_CONF_DOUBLE, AT(lade.lambda), "0.1", GE(0), .doc = "LADE: weight of the LADE regulariser"},
    {"sampler", CX_CONF_ENUM, AT(sampler), "none", .choices = CHOICES("none", "class-balanced", "sqrt"), .doc = "draw samples with probability proportional to 1/n_y (class-balanced) or n_y^-1/2 (sqrt)"},
    {"vocab.k", CX_CONF_INT, AT(vocab.k), "0", IN(0, 16777216), .doc = "sl: classes per step (the batch's labels plus sampled others); 0: all classes"},
    {"vocab.weight", CX_CONF_ENUM, AT(vocab.weight), "linear", .choices = CHOICES("uniform", "linear", "sqrt"), .doc = "weight of a class drawn into the step's vocabulary: 1, n_c or sqrt(n_c)"},
    {"vocab.freqs", CX_CONF_PATH, AT(vocab.freqs), "null", Q_NULLABLE, .doc = "frequency file (name<TAB>count for every class, as clipx count writes) whose counts are the n_c of vocab.weight instead of the training counts: a class with caption mentions and no sample can be drawn"},
    {"head", CX_CONF_ENUM, AT(head), "linear", .choices = CHOICES("linear", "cosine", "text"), .doc = "sl classifier: linear, cosine (learnable scale) or text (frozen class-prompt embeddings of head_from, or the dataset's class_embeddings)"},
    {"head_from", CX_CONF_PATH, AT(head_from), "null", NULLABLE, .doc = "head text: CLIP run folder whose text tower embeds the class prompts; null: the dataset's class_embeddings"},
    {"logit_scale.init", CX_CONF_DOUBLE, AT(logit_scale.init), "14.285714285714286", GT(0), .doc = "initial logit scale s (1/0.07)"},
    {"logit_scale.max", CX_CONF_DOUBLE, AT(logit_scale.max), "100", GT(0), .doc = "the logit scale is clamped to at most this"},
    {"logit_scale.learn", CX_CONF_BOOL, AT(logit_scale.learn), "true", .doc = "learn the logit scale (false: keep it at init)"},
    {"model.image.type", CX_CONF_ENUM, AT(model.image.type), "mlp", .choices = CHOICES("linear", "mlp", "cnn", "vit", "identity"), .doc = "image tower; identity: none, the (flattened) inputs are the features, e.g. an external CLIP's"},
    {"model.image.hidden", CX_CONF_INT_LIST, AT(model.image.hidden), "[1024, 1024]", WIDTH, .max_len = 64, .doc = "MLP hidden layer widths"},
    {"model.image.dim", CX_CONF_INT, AT(model.image.dim), "256", WIDTH, .doc = "embedding size: the image tower's output"},
    {"model.image.act", CX_CONF_ENUM, AT(model.image.act), "relu", .choices = CHOICES("relu", "gelu"), .doc = "activation after each hidden layer"},
    {"model.image.norm", CX_CONF_ENUM, AT(model.image.norm), "none", .choices = CHOICES("none", "layernorm"), .doc = "normalisation after each hidden layer"},
    {"model.image.channels", CX_CONF_INT_LIST, AT(model.image.channels), "[32, 64]", IN(1, 4096), .min_len = 1, .max_len = 16, .doc = "CNN convolution channels, one per conv layer"},
    {"model.image.patch", CX_CONF_INT, AT(model.image.patch), "7", IN(1, 4096), .doc = "ViT: side of the square patches; must divide the image height and width"},
    {"model.image.width", CX_CONF_INT, AT(model.image.width), "0", IN(0, 65536), .doc = "ViT: token width; 0: model.image.dim"},
    {"model.image.layers", CX_CONF_INT, AT(model.image.layers), "4", IN(1, 48), .doc = "ViT: pre-norm transformer blocks"},
    {"model.image.heads", CX_CONF_INT, AT(model.image.heads), "4", IN(1, 4096), .doc = "ViT: attention heads; must divide the width"},
    {"model.image.mlp_ratio", CX_CONF_DOUBLE, AT(model.image.mlp_ratio), "4", GT(0), .doc = "ViT: MLP hidden width over the token width"},
    {"model.image.pool", CX_CONF_ENUM, AT(model.image.pool), "cls", .choices = CHOICES("cls", "mean"), .doc = "ViT: the feature is the CLS token's, or the mean of the patch tokens"},
    {"model.image.init", CX_CONF_STRING, AT(model.image.init), "random", .doc = "random, or a run folder to copy the image tower from (same type and shapes)"},
    {"model.image.freeze", CX_CONF_BOOL, AT(model.image.freeze), "false", .doc = "keep the image tower fixed: no gradient, no optimiser state; its features are computed once (linear probing, a head on a frozen tower)"},
    {"model.text.type", CX_CONF_ENUM, AT(model.text.type), "linear", .choices = CHOICES("linear", "mlp", "transformer"), .doc = "text tower: linear or mlp on the mean of the token embeddings, or a transformer over the token sequence"},
    {"model.text.dim", CX_CONF_INT, AT(model.text.dim), "256", WIDTH, .doc = "token embedding size (the transformer's width)"},
    {"model.text.hidden", CX_CONF_INT_LIST, AT(model.text.hidden), "[]", WIDTH, .max_len = 64, .doc = "text MLP hidden layer widths"},
    {"model.text.init", CX_CONF_STRING, AT(model.text.init), "random", .doc = "random, or a run folder to copy the text tower from"},
    {"model.text.freeze", CX_CONF_BOOL, AT(model.text.freeze), "false", .doc = "keep the text tower fixed"},
    {"model.text.max_tokens", CX_CONF_INT, AT(model.text.max_tokens), "32", IN(1, 4096), .doc = "tokens kept per caption"},
    {"model.text.min_count", CX_CONF_INT, AT(model.text.min_count), "1", GE(1), .doc = "tokens seen fewer times in the training captions are out of vocabulary"},
    {"model.text.layers", CX_CONF_INT, AT(model.text.layers), "2", IN(1, 48), .doc = "transformer: pre-norm blocks"},
    {"model.text.heads", CX_CONF_INT, AT(model.text.heads), "4", IN(1, 4096), .doc = "transformer: attention heads; must divide model.text.dim"},
    {"model.text.mlp_ratio", CX_CONF_DOUBLE, AT(model.text.mlp_ratio), "4", GT(0), .doc = "transformer: MLP hidden width over model.text.dim"},
    {"model.text.causal", CX_CONF_BOOL, AT(model.text.causal), "true", .doc = "transformer: each token attends only to itself and earlier tokens (CLIP)"},
    {"model.text.pool", CX_CONF_ENUM, AT(model.text.pool), "eot", .choices = CHOICES("eot", "mean"), .doc = "transformer: the feature is the EOT token's, or the mean over SOT..EOT"},
    {"optim.name", CX_CONF_ENUM, AT(optim.name), "adamw", .choices = CHOICES("adamw", "sgd"), .doc = "optimiser"},
    {"optim.lr", CX_CONF_DOUBLE, AT(optim.lr), "0.001", GT(0), .doc = "peak learning rate"},
    {"optim.wd", CX_CONF_DOUBLE, AT(optim.wd), "0.0001", GE(0), .doc = "weight decay (decoupled for adamw, L2 for sgd)"},
    {"optim.momentum", CX_CONF_DOUBLE, AT(optim.momentum), "0.9", IN_CO(0, 1), .doc = "sgd: momentum"},
    {"optim.nesterov", CX_CONF_BOOL, AT(optim.nesterov), "false", .doc = "sgd: Nesterov momentum"},
    {"optim.betas", CX_CONF_DOUBLE_LIST, AT(optim.betas), "[0.9, 0.999]", IN_CO(0, 1), .min_len = 2, .max_len = 2, .doc = "adamw: beta1, beta2"},
    {"optim.eps", CX_CONF_DOUBLE, AT(optim.eps), "1e-8", GT(0), .doc = "adamw: epsilon"},
    {"optim.warmup", CX_CONF_INT, AT(optim.warmup), "0", GE(0), .doc = "steps of linear learning-rate warm-up from 0"},
    {"optim.schedule", CX_CONF_ENUM, AT(optim.schedule), "cosine", .choices = CHOICES("cosine", "step", "constant"), .doc = "learning-rate schedule after warm-up"},
    {"optim.milestones", CX_CONF_INT_LIST, AT(optim.milestones), "[]", GE(1), .doc = "schedule step: epochs after which lr is multiplied by optim.gamma"},
    {"optim.gamma", CX_CONF_DOUBLE, AT(optim.gamma), "0.1", GT(0), .doc = "schedule step: factor applied at each milestone"},
    {"optim.clip_grad", CX_CONF_DOUBLE, AT(optim.clip_grad), "0", GE(0), .doc = "clip the gradient to this global L2 norm; 0: off"},
    {"ckpt.every", CX_CONF_INT, AT(ckpt.every), "0", GE(0), .doc = "also checkpoint every N steps; 0: at epoch ends only"},
    {"eval.every", CX_CONF_INT, AT(eval.every), "0", Q_GE(0), .doc = "evaluate the checkpoint every N epochs (and at the last) on the val split, or the test split when there is none, into log.jsonl (top1, head, mid, tail, corr_acc, corr_pred); 0: never"},
    {"aug.crop_scale", CX_CONF_DOUBLE_LIST, AT(aug.crop_scale), "[]", Q_IN_OC(0, 1), .max_len = 2, .doc = "images: random resized crop with an area fraction in [min, max] (torchvision's default [0.08, 1]), resized back bilinearly; []: no crop"},
    {"aug.crop_ratio", CX_CONF_DOUBLE_LIST, AT(aug.crop_ratio), "[0.75, 1.3333333333333333]", Q_GT(0), .min_len = 2, .max_len = 2, .doc = "images: the crop's aspect (width / height) range, drawn log-uniformly"},
    {"aug.flip", CX_CONF_BOOL, AT(aug.flip), "false", .flags = Q, .doc = "images: horizontal flip with probability 1/2"},
    {"aug.noise", CX_CONF_DOUBLE, AT(aug.noise), "0", Q_GE(0), .doc = "images and vectors: sd of additive Gaussian noise; 0: none"},
    {"aug.erase", CX_CONF_DOUBLE, AT(aug.erase), "0", Q_IN(0, 1), .doc = "images: probability of random erasing (a box set to 0, as torchvision's RandomErasing)"},
    {"aug.erase_scale", CX_CONF_DOUBLE_LIST, AT(aug.erase_scale), "[0.02, 0.33]", Q_IN_OC(0, 1), .min_len = 2, .max_len = 2, .doc = "images: the erased area fraction range"},
    {"aug.erase_ratio", CX_CONF_DOUBLE_LIST, AT(aug.erase_ratio), "[0.3, 3.3]", Q_GT(0), .min_len = 2, .max_len = 2, .doc = "images: the erased box's aspect range, drawn log-uniformly"},
    {"aug.dropout", CX_CONF_DOUBLE, AT(aug.dropout), "0", Q_IN_CO(0, 1), .doc = "vectors: each feature zeroed with this probability, the others scaled by 1 / (1 - p)"},
    {"aug.eda.sr", CX_CONF_DOUBLE, AT(aug.eda.sr), "0", Q_IN(0, 1), .doc = "captions (EDA): probability that a word with a synonym (class synonyms, aug.synonyms) is replaced by one"},
    {"aug.eda.rs", CX_CONF_DOUBLE, AT(aug.eda.rs), "0", Q_IN(0, 1), .doc = "captions (EDA): probability that a word is swapped with another"},
    {"aug.eda.rd", CX_CONF_DOUBLE, AT(aug.eda.rd), "0", Q_IN(0, 1), .doc = "captions (EDA): probability that a word is deleted (one word always stays)"},
    {"aug.synonyms", CX_CONF_PATH, AT(aug.synonyms), "null", Q_NULLABLE, .doc = "captions (EDA): a synonyms file, one group a line, phrases separated by '|'"},
    {"dino.prototypes", CX_CONF_INT, AT(dino.prototypes), "4096", Q_IN(1, 1048576), .doc = "dino: prototypes P of the cosine prototype layer"},
    {"dino.sample_k", CX_CONF_INT, AT(dino.sample_k), "0", Q_IN(0, 1048576), .doc = "dino: prototypes per step, a random K of the P shared by student and teacher; 0: all"},
    {"dino.sinkhorn_iters", CX_CONF_INT, AT(dino.sinkhorn_iters), "3", Q_IN(1, 1000), .doc = "dino: Sinkhorn-Knopp normalisations of the teacher's targets"},
    {"dino.student_temp", CX_CONF_DOUBLE, AT(dino.student_temp), "0.1", Q_GT(0), .doc = "dino: temperature of the student's softmax over the prototypes"},
    {"dino.teacher_temp", CX_CONF_DOUBLE, AT(dino.teacher_temp), "0.04", Q_GT(0), .doc = "dino: temperature (Sinkhorn epsilon) of the teacher's targets"},
    {"dino.momentum", CX_CONF_DOUBLE, AT(dino.momentum), "0.996", Q_IN(0, 1), .doc = "dino: first EMA momentum of the teacher, rising to 1 by a cosine schedule"},
    {"dino.hidden", CX_CONF_INT, AT(dino.hidden), "2048", Q_IN(1, 65536), .doc = "dino: hidden width of the 3-layer projection head"},
    {"dino.bottleneck", CX_CONF_INT, AT(dino.bottleneck), "256", Q_IN(1, 65536), .doc = "dino: the head's output width, the prototypes' dimension"},
    {"declip.mv", CX_CONF_DOUBLE, AT(declip.mv), "0.4", Q_GE(0), .doc = "declip: weight of multi-view supervision (2 image views x 2 caption views, original and EDA: the mean of the four CLIP losses)"},
    {"declip.iss", CX_CONF_DOUBLE, AT(declip.iss), "0.2", Q_GE(0), .doc = "declip: weight of image self-supervision (SimSiam on the two image views: a projector of 3 linear + batch norm layers and a bottleneck predictor on the image tower's output)"},
    {"declip.mlm", CX_CONF_DOUBLE, AT(declip.mlm), "0.2", Q_GE(0), .doc = "declip: weight of masked language modelling (transformer text tower); not built yet: set 0"},
    {"declip.nns", CX_CONF_DOUBLE, AT(declip.nns), "0.2", Q_GE(0), .doc = "declip: weight of nearest-neighbour supervision (image to the caption queue's nearest neighbour of its caption)"},
    {"declip.queue", CX_CONF_INT, AT(declip.queue), "65536", Q_IN(1, 16777216), .doc = "declip: entries of the FIFO queue of caption embeddings, at most the training samples"},
};

const cx_conf_schema cx_train_config_schema = {keys, sizeof keys / sizeof keys[0],
                                               sizeof(cx_train_config)};

cx_status cx_train_config_load(cx_train_config *cfg, const char *path, const char *const *sets,
                               size_t nsets, cx_err *err)
{
    return cx_conf_load(&cx_train_config_schema, cfg, path, sets, nsets, err);
}

cx_status cx_train_config_write(const cx_train_config *cfg, const char *path, cx_err *err)
{
    return cx_conf_write_file(&cx_train_config_schema, cfg, path, err);
}

void cx_train_config_free(cx_train_config *cfg)
{
    cx_conf_free(&cx_train_config_schema, cfg);
}

static const char *name_of(const char *key, int v)
{
    const char *n = cx_conf_enum_name(&cx_train_config_schema, key, v);
    return n ? n : "?";
}

/* A key of an objective's own group and whether it is away from its default. */
typedef struct {
    const char *key;
    int set;
} owned_key;

/* The first of owned set away from its default, refused: it applies to objective owner only. */
static cx_status refuse_owned_keys(const owned_key *owned, size_t n, const char *owner,
                                   const char *objective, cx_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (owned[i].set)
            return cx_fail(err, CX_EUSAGE,
                           "%s applies to objective: %s (objective is %s); set objective: "
                           "%s or remove %s",
                           owned[i].key, owner, objective, owner, owned[i].key);
    return CX_OK;
}

/* The dino.* and declip.* keys apply only to their objective: one away from its default is
 * refused on the other objectives. */
static cx_status check_objective_keys(const cx_train_config *cfg, const char *objective,
                                      cx_err *err)
{
    cx_train_config def;
    cx_status st = cx_conf_init(&cx_train_config_schema, &def, err);
    if (st != CX_OK)
        return st;
    const owned_key dino[] = {
        {"dino.prototypes", cfg->dino.prototypes != def.dino.prototypes},
        {"dino.sample_k", cfg->dino.sample_k != def.dino.sample_k},
        {"dino.sinkhorn_iters", cfg->dino.sinkhorn_iters != def.dino.sinkhorn_iters},
        {"dino.student_temp", cfg->dino.student_temp != def.dino.student_temp},
        {"dino.teacher_temp", cfg->dino.teacher_temp != def.dino.teacher_temp},
        {"dino.momentum", cfg->dino.momentum != def.dino.momentum},
        {"dino.hidden", cfg->dino.hidden != def.dino.hidden},
        {"dino.bottleneck", cfg->dino.bottleneck != def.dino.bottleneck},
    };
    const owned_key declip[] = {
        {"declip.mv", cfg->declip.mv != def.declip.mv},
        {"declip.iss", cfg->declip.iss != def.declip.iss},
        {"declip.mlm", cfg->declip.mlm != def.declip.mlm},
        {"declip.nns", cfg->declip.nns != def.declip.nns},
        {"declip.queue", cfg->declip.queue != def.declip.queue},
    };
    cx_train_config_free(&def);
    if (cfg->objective != CX_CFG_OBJECTIVE_DINO &&
        (st = refuse_owned_keys(dino, sizeof dino / sizeof dino[0], "dino", objective, err)))
        return st;
    if (cfg->objective != CX_CFG_OBJECTIVE_DECLIP)
        st = refuse_owned_keys(declip, sizeof declip / sizeof declip[0], "declip", objective, err);
    return st;
}

/* DeCLIP's weights: at least one term; the terms not built yet are refused when weighed. */
static cx_status check_declip_objective(const cx_train_config *cfg, cx_err *err)
{
    const double *w[] = {&cfg->declip.mv, &cfg->declip.iss, &cfg->declip.mlm, &cfg->declip.nns};
    const char *names[] = {"declip.mv", "declip.iss", "declip.mlm", "declip.nns"};
    for (int i = 0; i < 4; i++)
        if (!isfinite(*w[i]))
            return cx_fail(err, CX_EUSAGE, "%s: %g is not a finite weight", names[i], *w[i]);
    if (cfg->declip.mlm > 0 && cfg->model.text.type != CX_CFG_TEXT_TRANSFORMER)
        return cx_fail(err, CX_EUSAGE, "declip.mlm: masked language modelling needs "
                       "model.text.type: transformer; set it or declip.mlm: 0");
    if (cfg->declip.mlm > 0)
        return cx_fail(err, CX_EUSAGE, "declip.mlm: masked language modelling is not built yet; "
                       "set declip.mlm: 0");
    if (!(cfg->declip.mv + cfg->declip.iss + cfg->declip.mlm + cfg->declip.nns > 0))
        return cx_fail(err, CX_EUSAGE, "declip.*: every weight is 0; give declip.mv, "
                       "declip.iss or declip.nns a positive weight");
    return CX_OK;
}

/* Objective dino learns from images alone: no classifier, no labels in the loss, no captions. */
static cx_status check_dino_objective(const cx_train_config *cfg, cx_err *err)
{
    if (cfg->loss != CX_CFG_LOSS_CE)
        return cx_fail(err, CX_EUSAGE, "loss: %s applies to objective: sl (objective dino trains "
                       "with its own cross-view loss); set objective: sl or loss: ce",
                       name_of("loss", (int)cfg->loss));
    if (cfg->head != CX_CFG_HEAD_LINEAR)
        return cx_fail(err, CX_EUSAGE, "head: %s applies to objective: sl (objective dino has no "
                       "classifier head); set objective: sl or head: linear",
                       name_of("head", (int)cfg->head));
    if (cfg->aug.eda.sr > 0 || cfg->aug.eda.rs > 0 || cfg->aug.eda.rd > 0)
        return cx_fail(err, CX_EUSAGE, "aug.eda.*: EDA augments captions, and objective dino reads "
                       "none; set the aug.eda keys to 0");
    if (cfg->dino.sample_k > cfg->dino.prototypes)
        return cx_fail(err, CX_EUSAGE, "dino.sample_k: %lld is above dino.prototypes (%lld); set "
                       "dino.sample_k to at most %lld, or 0 for all prototypes",
                       (long long)cfg->dino.sample_k, (long long)cfg->dino.prototypes,
                       (long long)cfg->dino.prototypes);
    return CX_OK;
}

cx_status cx_train_config_validate(const cx_train_config *cfg, cx_err *err)
{
    const char *objective = name_of("objective", (int)cfg->objective);
    int sl = cfg->objective == CX_CFG_OBJECTIVE_SL;

    if (cfg->optim.betas.n != 2)
        return cx_fail(err, CX_EUSAGE, "optim.betas: give two values, e.g. [0.9, 0.999]");
    for (size_t i = 0; i < 2; i++)
        if (!(cfg->optim.betas.v[i] >= 0 && cfg->optim.betas.v[i] < 1))
            return cx_fail(err, CX_EUSAGE, "optim.betas: %g is not in [0, 1); use e.g. [0.9, 0.999]",
                           cfg->optim.betas.v[i]);
    if (cfg->objective == CX_CFG_OBJECTIVE_DINO) {
        cx_status st = check_dino_objective(cfg, err);
        if (st != CX_OK)
            return st;
    }
    if (cfg->objective == CX_CFG_OBJECTIVE_DECLIP) {
        cx_status st = check_declip_objective(cfg, err);
        if (st != CX_OK)
            return st;
    }
    if (!sl && cfg->loss != CX_CFG_LOSS_CE)
        return cx_fail(err, CX_EUSAGE,
                       "loss: %s applies to objective: sl (objective clip trains with the "
                       "contrastive loss); set objective: sl or loss: ce",
                       name_of("loss", (int)cfg->loss));
    if (!sl && cfg->head != CX_CFG_HEAD_LINEAR)
        return cx_fail(err, CX_EUSAGE,
                       "head: %s applies to objective: sl (objective clip has no classifier "
                       "head); set objective: sl or head: linear",
                       name_of("head", (int)cfg->head));
    if (cfg->head != CX_CFG_HEAD_TEXT && cfg->head_from)
        return cx_fail(err, CX_EUSAGE,
                       "head_from is used only with head: text (head is %s); set head: text or "
                       "head_from: null",
                       name_of("head", (int)cfg->head));
    if (cfg->vocab.k > 0 && !sl)
        return cx_fail(err, CX_EUSAGE,
                       "vocab.k subsamples the classes of objective: sl (objective is %s); set "
                       "objective: sl or vocab.k: 0",
                       objective);
    if (cfg->vocab.freqs && cfg->vocab.k == 0)
        return cx_fail(err, CX_EUSAGE,
                       "vocab.freqs weighs the classes vocab.k draws (vocab.k is 0); set vocab.k "
                       "or vocab.freqs: null");
    if (cfg->drw.epoch > 0) {
        if (!sl)
            return cx_fail(err, CX_EUSAGE,
                           "drw.epoch re-weights the loss of objective: sl (objective is %s); "
                           "set objective: sl or drw.epoch: 0",
                           objective);
        if (cfg->loss == CX_CFG_LOSS_CBW || cfg->loss == CX_CFG_LOSS_EFFNUM || cfg->loss == CX_CFG_LOSS_GRW)
            return cx_fail(err, CX_EUSAGE,
                           "drw.epoch: loss %s is already class-weighted; use drw with loss ce, "
                           "focal or ldam, or set drw.epoch: 0",
                           name_of("loss", (int)cfg->loss));
        if (cfg->drw.epoch > cfg->epochs)
            return cx_fail(err, CX_EUSAGE,
                           "drw.epoch: %lld is after the last epoch (epochs: %lld); set drw.epoch "
                           "to at most %lld, or 0 for no re-weighting",
                           (long long)cfg->drw.epoch, (long long)cfg->epochs,
                           (long long)cfg->epochs);
    }
    if (cfg->optim.schedule == CX_CFG_SCHEDULE_STEP && cfg->optim.milestones.n == 0)
        return cx_fail(err, CX_EUSAGE,
                       "optim.schedule: step needs optim.milestones, the epochs after which the "
                       "learning rate drops, e.g. [30, 60]");
    if (cfg->optim.schedule != CX_CFG_SCHEDULE_STEP && cfg->optim.milestones.n > 0)
        return cx_fail(err, CX_EUSAGE,
                       "optim.milestones is used only with optim.schedule: step (schedule is %s); "
                       "set optim.schedule: step or optim.milestones: []",
                       name_of("optim.schedule", (int)cfg->optim.schedule));
    for (size_t i = 0; i < cfg->optim.milestones.n; i++) {
        int64_t m = cfg->optim.milestones.v[i];
        if (m < 1 || m > cfg->epochs)
            return cx_fail(err, CX_EUSAGE,
                           "optim.milestones: %lld is not an epoch in 1..%lld (epochs)",
                           (long long)m, (long long)cfg->epochs);
        if (i > 0 && m <= cfg->optim.milestones.v[i - 1])
            return cx_fail(err, CX_EUSAGE,
                           "optim.milestones: must increase (%lld follows %lld)", (long long)m,
                           (long long)cfg->optim.milestones.v[i - 1]);
    }
    if (cfg->optim.nesterov && (cfg->optim.name != CX_CFG_OPTIM_SGD || cfg->optim.momentum <= 0))
        return cx_fail(err, CX_EUSAGE,
                       "optim.nesterov needs optim.name: sgd and optim.momentum > 0; set them or "
                       "optim.nesterov: false");
    if (cfg->logit_scale.init > cfg->logit_scale.max)
        return cx_fail(err, CX_EUSAGE,
                       "logit_scale.init: %g is above logit_scale.max (%g); lower the one "
                       "or raise the other",
                       cfg->logit_scale.init, cfg->logit_scale.max);
    if (!cfg->model.text.init || !cfg->model.text.init[0])
        return cx_fail(err, CX_EUSAGE,
                       "model.text.init: give random or the folder of a run to copy the text "
                       "tower from");
    if (!cfg->model.image.init || !cfg->model.image.init[0])
        return cx_fail(err, CX_EUSAGE,
                       "model.image.init: give random or the folder of a run to copy the image "
                       "tower from");
    if (cfg->aug.crop_scale.n == 1)
        return cx_fail(err, CX_EUSAGE, "aug.crop_scale: give [min, max], e.g. [0.08, 1], or [] for "
                       "no crop");
    const struct {
        const char *key;
        const cx_conf_doubles *v;
    } ranges[] = {{"aug.crop_scale", &cfg->aug.crop_scale},
                  {"aug.crop_ratio", &cfg->aug.crop_ratio},
                  {"aug.erase_scale", &cfg->aug.erase_scale},
                  {"aug.erase_ratio", &cfg->aug.erase_ratio}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (ranges[i].v->n == 2 && !(ranges[i].v->v[0] <= ranges[i].v->v[1]))
            return cx_fail(err, CX_EUSAGE, "%s: the minimum %g is above the maximum %g",
                           ranges[i].key, ranges[i].v->v[0], ranges[i].v->v[1]);
    if (sl && (cfg->aug.eda.sr > 0 || cfg->aug.eda.rs > 0 || cfg->aug.eda.rd > 0))
        return cx_fail(err, CX_EUSAGE, "aug.eda.*: EDA augments captions, and objective sl reads "
                       "none; set objective: clip or the aug.eda keys to 0");
    if (cfg->aug.synonyms && !(cfg->aug.eda.sr > 0))
        return cx_fail(err, CX_EUSAGE, "aug.synonyms is read only by synonym replacement; set "
                       "aug.eda.sr above 0 or aug.synonyms: null");
    cx_status st = check_objective_keys(cfg, objective, err);
    if (st != CX_OK)
        return st;
    if (cfg->model.image.type == CX_CFG_IMAGE_IDENTITY &&
        strcmp(cfg->model.image.init, "random") != 0)
        return cx_fail(err, CX_EUSAGE,
                       "model.image.init: an identity image tower has no parameters to copy from "
                       "%s; set model.image.init: random or another model.image.type",
                       cfg->model.image.init);
    return CX_OK;
}
