/* The retrain configuration's schema and which keys each method reads. */
#include "lib/run/retrain_config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/conf/yaml_doc.h"
#include "lib/run/train_config.h"

#define AT(f) offsetof(cx_retrain_config, f)
#define CHOICES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define GE(a) .flags = CX_CONF_MIN, .min = (a)
#define GT(a) .flags = CX_CONF_MIN | CX_CONF_MIN_OPEN, .min = (a)
#define IN(a, b) .flags = CX_CONF_MIN | CX_CONF_MAX, .min = (a), .max = (b)
#define IN_CO(a, b) .flags = CX_CONF_MIN | CX_CONF_MAX | CX_CONF_MAX_OPEN, .min = (a), .max = (b)
#define NULLABLE .flags = CX_CONF_NULLABLE

/* Every method's name, in the enum's order. */
static const char *const method_names[] = {"crt",  "lws",     "tau-norm", "disalign", "marc",
                                           "decoder", "prompt", "dfr", "cfr", NULL};
#define OMIT_IN(a, b) .flags = CX_CONF_OMIT_DEFAULT | CX_CONF_MIN | CX_CONF_MAX, .min = (a), .max = (b)
#define OMIT_GT(a) .flags = CX_CONF_OMIT_DEFAULT | CX_CONF_MIN | CX_CONF_MIN_OPEN, .min = (a)
#define OMIT_GE(a) .flags = CX_CONF_OMIT_DEFAULT | CX_CONF_MIN, .min = (a)

static const cx_conf_key keys[] = {
    {"method", CX_CONF_ENUM, AT(method), "crt", .choices = method_names, .doc = "second stage: crt, lws, tau-norm, disalign, marc, decoder, prompt, dfr or cfr (methods.md sections 5 and 9)"},
    {"from", CX_CONF_PATH, AT(from), "null", NULLABLE, .doc = "the stage-1 run folder whose frozen image features and classifier are used"},
    {"data", CX_CONF_PATH, AT(data), "null", NULLABLE, .doc = "dataset YAML; null: the run's"},
    {"subset", CX_CONF_PATH, AT(subset), "null", NULLABLE, .doc = "SUBSET of training rows; null: the run's"},
    {"seed", CX_CONF_INT, AT(seed), "0", GE(0), .doc = "seed of the sampler, the initialisation, the held-out validation draw and dfr's halves and subsets"},
    {"threads", CX_CONF_INT, AT(threads), "0", IN(0, 4096), .doc = "threads; 0: all cores"},
    {"epochs", CX_CONF_INT, AT(epochs), "10", IN(1, 1000000), .doc = "crt, lws, disalign, marc, decoder, prompt: passes over the training features"},
    {"batch", CX_CONF_INT, AT(batch), "256", IN(1, 16777216), .doc = "crt, lws, disalign, marc, decoder, prompt, cfr: samples per step"},
    {"optim.name", CX_CONF_ENUM, AT(optim.name), "sgd", .choices = CHOICES("sgd", "adamw"), .doc = "crt, lws, disalign, marc, decoder, prompt: optimiser (cosine schedule to 0)"},
    {"optim.lr", CX_CONF_DOUBLE, AT(optim.lr), "0.1", GT(0), .doc = "crt, lws, disalign, marc, decoder, prompt: peak learning rate"},
    {"optim.wd", CX_CONF_DOUBLE, AT(optim.wd), "0.0005", GE(0), .doc = "crt, decoder, prompt: weight decay of the weights and the context (scales, gates and biases have none)"},
    {"optim.momentum", CX_CONF_DOUBLE, AT(optim.momentum), "0.9", IN_CO(0, 1), .doc = "sgd: momentum"},
    {"grw.p", CX_CONF_DOUBLE, AT(grw.p), "1.2", GE(0), .doc = "disalign, marc (and decoder, prompt with loss grw): GRW class weights proportional to pi_c^-p"},
    {"tau_norm.tau", CX_CONF_STRING, AT(tau_norm.tau), "auto", .doc = "tau-norm: W_c / ||W_c||^tau with tau in [0, 2], or auto: the grid's best class-mean accuracy on validation"},
    {"tau_norm.grid", CX_CONF_DOUBLE_LIST, AT(tau_norm.grid), "[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]", IN(0, 2), .min_len = 1, .max_len = 201, .doc = "tau-norm: candidates of tau: auto"},
    {"val.per_class", CX_CONF_INT, AT(val.per_class), "50", IN(1, 1000000), .doc = "tau-norm, dfr, cfr: training rows per class held out of the subset when the dataset names no val split"},
    {"dfr.draws", CX_CONF_INT, AT(dfr.draws), "10", .flags = CX_CONF_OMIT_DEFAULT | CX_CONF_MIN | CX_CONF_MAX, .min = 1, .max = 10000, .doc = "dfr: balanced subsets drawn from the first half of the validation split, one probe fit each, weights and biases averaged"},
    {"cfr.epochs", CX_CONF_INT, AT(cfr.epochs), "10", OMIT_IN(1, 1000000), .doc = "cfr: passes over the calibration set (the training rows the run misclassifies); c(e) = 1 + 0.5 cos(2 pi e / E)"},
    {"cfr.lr", CX_CONF_DOUBLE, AT(cfr.lr), "0.001", OMIT_GT(0), .doc = "cfr: SGD learning rate of the image projection"},
    {"cfr.tau", CX_CONF_DOUBLE, AT(cfr.tau), "1", OMIT_GT(0), .doc = "cfr: temperature of L_con"},
    {"cfr.positives", CX_CONF_INT, AT(cfr.positives), "16", OMIT_IN(1, 4096), .doc = "cfr: positives P per calibration sample, drawn from its class's correctly classified embeddings"},
    {"cfr.negatives", CX_CONF_INT, AT(cfr.negatives), "16", OMIT_IN(0, 4096), .doc = "cfr: hard negatives K per calibration sample, the nearest correctly classified embeddings of other classes"},
    {"cfr.lambda", CX_CONF_DOUBLE, AT(cfr.lambda), "1", OMIT_GE(0), .doc = "cfr: weight of L_con beside CE (both weighted by c(e))"},
    {"cfr.select", CX_CONF_ENUM, AT(cfr.select), "worst-class", .choices = CHOICES("worst-class", "worst-group"), .flags = CX_CONF_OMIT_DEFAULT, .doc = "cfr: the epoch kept is the one with the best worst-class accuracy on validation, or worst-group (the val split must have groups; group labels are read for this choice only, never in training)"},
    {"cfr.tsc", CX_CONF_DOUBLE, AT(cfr.tsc), "0", OMIT_GE(0), .doc = "cfr: weight of L_TSC, the targeted supervised-contrastive term on batches of all training rows (a queue of earlier embeddings, class centroids matched to fixed simplex targets; T 0.07, target weight 0.2); 0: none, epochs pass over the calibration set alone"},
    {"cfr.tsc_queue", CX_CONF_INT, AT(cfr.tsc_queue), "1280", OMIT_IN(1, 1048576), .doc = "cfr (tsc > 0): embeddings of earlier batches L_TSC compares against (emptied every epoch)"},
    {"loss", CX_CONF_ENUM, AT(loss), "ce", .choices = CHOICES("ce", "focal", "balanced-softmax", "logit-adjust", "cbw", "effnum", "grw", "ldam", "lade"), .doc = "decoder, prompt: the stage-1 loss they train with (not ldam)"},
    {"sampler", CX_CONF_ENUM, AT(sampler), "none", .choices = CHOICES("none", "class-balanced", "sqrt"), .doc = "decoder, prompt: shuffle, or draw samples in proportion to 1/n_y or n_y^-1/2"},
    {"decoder.hidden", CX_CONF_INT_LIST, AT(decoder.hidden), "[256]", .flags = CX_CONF_MIN | CX_CONF_MAX, .min = 1, .max = 65536, .max_len = 8, .doc = "decoder: hidden widths of the MLP decoder (ReLU) before its linear head"},
    {"decoder.type", CX_CONF_ENUM, AT(decoder.type), "mlp", .choices = CHOICES("mlp", "transformer"), .flags = CX_CONF_OMIT_DEFAULT, .doc = "decoder: mlp (an MLP on the tower's vectors) or transformer (pre-norm blocks over a ViT's output tokens, mean pooling, linear head)"},
    {"decoder.depth", CX_CONF_INT, AT(decoder.depth), "1", .flags = CX_CONF_OMIT_DEFAULT | CX_CONF_MIN | CX_CONF_MAX, .min = 1, .max = 64, .doc = "decoder (transformer): blocks over the tokens"},
    {"decoder.heads", CX_CONF_INT, AT(decoder.heads), "1", .flags = CX_CONF_OMIT_DEFAULT | CX_CONF_MIN | CX_CONF_MAX, .min = 1, .max = 256, .doc = "decoder (transformer): attention heads (dividing the token width)"},
    {"prompt.n_ctx", CX_CONF_INT, AT(prompt.n_ctx), "4", IN(1, 64), .doc = "prompt: learned context vectors before the class name (SOT ctx... name EOT)"},
    {"prompt.per_class", CX_CONF_BOOL, AT(prompt.per_class), "false", .doc = "prompt: one set of context vectors per class, else one set shared by all classes"},
    {"prompt.init", CX_CONF_STRING, AT(prompt.init), "random", .doc = "prompt: random (N(0, 0.02)), or a phrase of prompt.n_ctx words of the run's vocabulary whose token embeddings start the context (e.g. \"a photo of a\")"},
};

const cx_conf_schema cx_retrain_config_schema = {keys, sizeof keys / sizeof keys[0],
                                                 sizeof(cx_retrain_config)};

const char *cx_retrain_method_name(int m)
{
    return m >= 0 && m < CX_RETRAIN_METHODS ? method_names[m] : NULL;
}

/* Bit m: method m reads the key. */
#define TRAINED ((1u << CX_RETRAIN_CRT) | (1u << CX_RETRAIN_LWS) | (1u << CX_RETRAIN_DISALIGN) | (1u << CX_RETRAIN_MARC) | (1u << CX_RETRAIN_DECODER) | (1u << CX_RETRAIN_PROMPT))
#define DEC_PROMPT ((1u << CX_RETRAIN_DECODER) | (1u << CX_RETRAIN_PROMPT))
static unsigned key_methods(const char *key)
{
    if (!strcmp(key, "batch"))
        return TRAINED | (1u << CX_RETRAIN_CFR);
    if (!strcmp(key, "epochs") || !strcmp(key, "optim.name") ||
        !strcmp(key, "optim.lr") || !strcmp(key, "optim.momentum"))
        return TRAINED;
    if (!strcmp(key, "optim.wd"))
        return (1u << CX_RETRAIN_CRT) | DEC_PROMPT;
    if (!strcmp(key, "grw.p"))
        return (1u << CX_RETRAIN_DISALIGN) | (1u << CX_RETRAIN_MARC) | DEC_PROMPT;
    if (!strcmp(key, "loss") || !strcmp(key, "sampler"))
        return DEC_PROMPT;
    if (!strncmp(key, "decoder.", 8) || !strcmp(key, "decoder"))
        return 1u << CX_RETRAIN_DECODER;
    if (!strncmp(key, "prompt.", 7) || !strcmp(key, "prompt"))
        return 1u << CX_RETRAIN_PROMPT;
    if (!strncmp(key, "tau_norm.", 9) || !strcmp(key, "tau_norm"))
        return 1u << CX_RETRAIN_TAU_NORM;
    if (!strncmp(key, "val.", 4) || !strcmp(key, "val"))
        return (1u << CX_RETRAIN_TAU_NORM) | (1u << CX_RETRAIN_DFR) | (1u << CX_RETRAIN_CFR);
    if (!strncmp(key, "dfr.", 4) || !strcmp(key, "dfr"))
        return 1u << CX_RETRAIN_DFR;
    if (!strncmp(key, "cfr.", 4) || !strcmp(key, "cfr"))
        return 1u << CX_RETRAIN_CFR;
    return ~0u;
}

int cx_retrain_key_applies(int m, const char *key)
{
    return (key_methods(key) >> m) & 1u;
}

static void methods_of(unsigned bits, char *buf, size_t cap)
{
    buf[0] = '\0';
    size_t len = 0;
    for (int m = 0; m < CX_RETRAIN_METHODS; m++)
        if ((bits >> m) & 1u)
            len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s%s", len ? ", " : "",
                                    method_names[m]);
}

cx_status cx_retrain_config_load(cx_retrain_config *cfg, const char *path,
                                 const char *const *sets, size_t nsets, cx_err *err)
{
    cx_status st = cx_conf_load(&cx_retrain_config_schema, cfg, path, sets, nsets, err);
    if (st)
        return st;
    for (size_t i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        size_t n = eq ? (size_t)(eq - sets[i]) : strlen(sets[i]);
        char key[128];
        if (n >= sizeof key)
            n = sizeof key - 1;
        memcpy(key, sets[i], n);
        key[n] = '\0';
        unsigned bits = key_methods(key);
        if (!((bits >> cfg->method) & 1u)) {
            char list[128];
            methods_of(bits, list, sizeof list);
            st = cx_fail(err, CX_EUSAGE, "%s: not a key of method %s (it belongs to %s)", key,
                         method_names[cfg->method], list);
            cx_retrain_config_free(cfg);
            return st;
        }
    }
    return CX_OK;
}

cx_status cx_retrain_config_validate(const cx_retrain_config *cfg, double *tau, cx_err *err)
{
    if (!cfg->from)
        return cx_fail(err, CX_EUSAGE, "from: the stage-1 run folder is required");
    *tau = NAN;
    if (cfg->loss == CX_CFG_LOSS_LDAM)
        return cx_fail(err, CX_EUSAGE,
                       "loss: ldam needs a cosine head with a scale of its own; the decoder's "
                       "head is linear and prompt tuning's scale is the run's (use e.g. "
                       "balanced-softmax or logit-adjust)");
    if (cfg->method == CX_RETRAIN_TAU_NORM && strcmp(cfg->tau_norm.tau, "auto") != 0) {
        char *end = NULL;
        double v = strtod(cfg->tau_norm.tau, &end);
        if (!end || end == cfg->tau_norm.tau || *end || !(v >= 0 && v <= 2))
            return cx_fail(err, CX_EUSAGE,
                           "tau_norm.tau: '%s' is neither auto nor a number in [0, 2]",
                           cfg->tau_norm.tau);
        *tau = v;
    }
    return CX_OK;
}

cx_status cx_retrain_config_write(const cx_retrain_config *cfg, const char *path, cx_err *err)
{
    return cx_conf_write_file(&cx_retrain_config_schema, cfg, path, err);
}

void cx_retrain_config_free(cx_retrain_config *cfg)
{
    cx_conf_free(&cx_retrain_config_schema, cfg);
}

int cx_retrain_is_run(const char *dir)
{
    size_t n = strlen(dir) + 16;
    char *p = malloc(n);
    if (!p)
        return 0;
    snprintf(p, n, "%s/config.yaml", dir);
    cx_yaml_node *root = NULL;
    int is = 0;
    if (cx_yaml_parse_file(p, &root, NULL) == CX_OK && root && root->kind == CX_YAML_MAP)
        for (size_t i = 0; i < root->count; i++)
            if (!strcmp(root->pairs[i].key, "method") || !strcmp(root->pairs[i].key, "from"))
                is = 1;
    cx_yaml_free(root);
    free(p);
    return is;
}
