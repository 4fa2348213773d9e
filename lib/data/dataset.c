/* Dataset YAML -> class list, templates and splits in memory (only the kept training rows). */
#include "lib/data/dataset.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/path.h"
#include "lib/base/rng.h"
#include "lib/conf/yaml_doc.h"
#include "lib/data/array.h"
#include "lib/data/groups.h"
#include "lib/data/image_list.h"
#include "lib/data/subset.h"
#include "lib/data/template_sets.h"

enum { TAG_CAPTION = 0x43415054 /* "CAPT" */ };

/* "PATH:LINE:COL: message" for a node of the YAML. */
__attribute__((format(printf, 4, 5))) static cx_status
node_fail(cx_err *err, const char *path, const cx_yaml_node *n, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cx_fail(err, CX_EUSAGE, "%s:%d:%d: %s", path, n->line, n->col, msg);
}

static cx_status want_path(const char *path, const cx_yaml_node *n, const char *key, cx_err *err)
{
    if (n->kind != CX_YAML_SCALAR || cx_yaml_is_null(n) || !n->scalar[0])
        return node_fail(err, path, n, "'%s' must be a file name", key);
    return CX_OK;
}

/* A built-in template set copied into the dataset (which owns its templates). */
static cx_status copy_templates(const char *const *set, cx_dataset *ds, const char *yaml_path,
                                cx_err *err)
{
    int n = 0;
    while (set[n])
        n++;
    if (!(ds->templates = calloc((size_t)n, sizeof *ds->templates)))
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml_path);
    for (; ds->num_templates < n; ds->num_templates++)
        if (!(ds->templates[ds->num_templates] = strdup(set[ds->num_templates])))
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml_path);
    return CX_OK;
}

static cx_status want_int(const char *path, const cx_yaml_node *n, const char *key, long long min,
                          long long max, long long *out, cx_err *err)
{
    if (n->kind != CX_YAML_SCALAR || n->quoted || !n->scalar[0])
        return node_fail(err, path, n, "'%s' must be an integer", key);
    char *end;
    long long v = strtoll(n->scalar, &end, 10);
    if (*end)
        return node_fail(err, path, n, "'%s' must be an integer, not '%.40s'", key, n->scalar);
    if (v < min || v > max)
        return node_fail(err, path, n, "'%s' is %lld, out of range [%lld, %lld]", key, v, min, max);
    *out = v;
    return CX_OK;
}

/* What the YAML says about one split. */
typedef struct {
    const cx_yaml_node *node;
    const char *images, *labels, *captions;
    const cx_yaml_node *n_node, *shape_node;
    const cx_yaml_node *groups; /* `groups:`, or NULL */
    cx_image_spec image;        /* list:, folder: or csv: of image files (lib/data/image_list.h) */
    long long n;
    int shape_rank;
    size_t shape[3];
} split_spec;

static cx_status parse_split(const char *path, const char *which, const cx_yaml_node *node,
                             split_spec *sp, cx_err *err)
{
    memset(sp, 0, sizeof *sp);
    sp->node = node;
    if (node->kind != CX_YAML_MAP)
        return node_fail(err, path, node, "'%s' must be a mapping with images and labels", which);
    cx_status st;
    for (size_t i = 0; i < node->count; i++) {
        const cx_yaml_pair *p = &node->pairs[i];
        const cx_yaml_node *v = p->value;
        if (!strcmp(p->key, "images") || !strcmp(p->key, "labels") || !strcmp(p->key, "captions")) {
            if ((st = want_path(path, v, p->key, err)))
                return st;
            if (p->key[0] == 'i')
                sp->images = v->scalar;
            else if (p->key[0] == 'l')
                sp->labels = v->scalar;
            else
                sp->captions = v->scalar;
        } else if (!strcmp(p->key, "n")) {
            if ((st = want_int(path, v, "n", 1, 4294967295LL, &sp->n, err)))
                return st;
            sp->n_node = v;
        } else if (!strcmp(p->key, "shape")) {
            if (v->kind != CX_YAML_SEQ || v->count < 1 || v->count > 3)
                return node_fail(err, path, v,
                                 "'shape' must be a list of 1 to 3 sizes, e.g. [28, 28]");
            for (size_t k = 0; k < v->count; k++) {
                long long d;
                if ((st = want_int(path, v->items[k], "shape", 1, 1LL << 40, &d, err)))
                    return st;
                sp->shape[k] = (size_t)d;
            }
            sp->shape_rank = (int)v->count;
            sp->shape_node = v;
        } else if (!strcmp(p->key, "groups")) {
            if ((st = want_path(path, v, "groups", err)))
                return st;
            sp->groups = v;
        } else if (cx_image_spec_key(path, p, &sp->image, &st, err)) {
            if (st)
                return st;
        } else {
            return cx_fail(
                err, CX_EUSAGE,
                "%s:%d:%d: unknown key '%s' in '%s' (images, labels, captions, n, shape, groups)",
                path, p->line, p->col, p->key, which);
        }
    }
    if ((st = cx_image_spec_check(path, which, node, &sp->image, err)))
        return st;
    if (sp->image.kind && (sp->images || sp->labels))
        return node_fail(err, path, sp->image.source,
                         "'%s' names image files: it takes no 'images' or 'labels'", which);
    if (sp->image.kind == CX_IMAGES_CSV && sp->captions)
        return node_fail(err, path, sp->image.source,
                         "'%s' takes its captions from the CSV: no 'captions' file", which);
    if (sp->image.kind)
        return CX_OK;
    if (!sp->images)
        return node_fail(err, path, node, "'%s' names no 'images'", which);
    if (!sp->labels)
        return node_fail(err, path, node, "'%s' names no 'labels'", which);
    return CX_OK;
}

static void split_free(cx_split *s)
{
    free(s->x);
    free(s->y);
    free(s->source_index);
    free(s->images_path);
    free(s->labels_path);
    free(s->captions_path);
    free(s->groups);
    free(s->groups_path);
    cx_captions_free(&s->caption_store);
    memset(s, 0, sizeof *s);
}

void cx_dataset_free(cx_dataset *ds)
{
    split_free(&ds->train);
    split_free(&ds->test);
    split_free(&ds->val);
    for (int c = 0; c < ds->num_classes; c++) {
        if (ds->synonyms)
            cx_strings_free(ds->synonyms[c], ds->num_synonyms[c]);
        if (ds->vetoes)
            cx_strings_free(ds->vetoes[c], ds->num_vetoes[c]);
    }
    cx_strings_free(ds->class_names, ds->num_classes);
    free(ds->synonyms);
    free(ds->num_synonyms);
    free(ds->vetoes);
    free(ds->num_vetoes);
    cx_strings_free(ds->templates, ds->num_templates);
    free(ds->name);
    free(ds->path);
    free(ds->classes_path);
    free(ds->class_embeddings_path);
    cx_strings_free(ds->group_names, ds->num_groups);
    free(ds->group_names_path);
    memset(ds, 0, sizeof *ds);
}

/* The split's `groups:` file, aligned with its stored rows, then restricted to the kept ones. */
static cx_status load_groups(const cx_dataset *ds, const char *dir, const split_spec *sp,
                             const uint32_t *keep, cx_split *s, cx_err *err)
{
    if (!sp->groups)
        return CX_OK;
    if (!ds->group_names)
        return node_fail(err, ds->path, sp->groups,
                         "'groups' needs the dataset's 'group_names' file (one name a line)");
    if (!(s->groups_path = cx_path_join(dir, sp->groups->scalar)))
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", ds->path);
    int32_t *g_all = NULL;
    cx_status st = cx_groups_read(s->groups_path, ds->num_groups, ds->group_names_path,
                                  s->stored_n, s->labels_path, &g_all, err);
    if (st)
        return st;
    if (keep) {
        s->groups = malloc((s->n ? s->n : 1) * sizeof *s->groups);
        if (!s->groups) {
            free(g_all);
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", ds->path);
        }
        for (size_t i = 0; i < s->n; i++)
            s->groups[i] = g_all[s->source_index[i]];
        free(g_all);
    } else {
        s->groups = g_all;
    }
    return CX_OK;
}

/* Open a split's images file and check its header against the labels and the YAML: magic, rank,
 * records, a promised shape, and that the file is as long as its header says (cx_array_open;
 * for gzip from the trailer's size). Fills s->rank, dim and shape; a is left open at the records. */
static cx_status open_images(const char *yaml, const split_spec *sp, cx_split *s,
                             const char *array_path, cx_array_file *a, cx_err *err)
{
    cx_status st = cx_array_open(a, array_path ? array_path : s->images_path, CX_FORMAT_ANY, err);
    if (st)
        return st;
    if (a->records != s->stored_n)
        return cx_fail(err, CX_EDATA,
                       "%s: byte %d: header claims %llu images, but %s holds %zu labels",
                       s->images_path, a->format == CX_FORMAT_IDX ? 4 : 10,
                       (unsigned long long)a->records, s->labels_path, s->stored_n);
    if (a->rank > 4)
        return cx_fail(err, CX_EDATA, "%s: byte 10: %d dimensions per sample (at most 3)",
                       s->images_path, a->rank - 1);
    s->rank = a->rank > 1 ? a->rank - 1 : 1;
    s->dim = (size_t)a->record_elems;
    for (int k = 0; k < s->rank; k++)
        s->shape[k] = a->rank > 1 ? (size_t)a->shape[k + 1] : 1;
    if (sp->shape_node) {
        int same = sp->shape_rank == s->rank;
        for (int k = 0; same && k < s->rank; k++)
            same = sp->shape[k] == s->shape[k];
        if (!same) {
            char got[96] = "", want[96] = "";
            for (int k = 0; k < s->rank; k++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", k ? ", " : "",
                         s->shape[k]);
            for (int k = 0; k < sp->shape_rank; k++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%zu", k ? ", " : "",
                         sp->shape[k]);
            return cx_fail(err, CX_EDATA,
                           "%s: samples of shape [%s], but %s:%d:%d promises shape: [%s]",
                           s->images_path, got, yaml, sp->shape_node->line, sp->shape_node->col,
                           want);
        }
    }
    return CX_OK;
}

/* A split of image files: labels from its list, images from the decoded cache (*array_path,
 * owned), messages naming the list; its captions from a CSV's cache or a `captions:` file. */
static cx_status open_image_split(const cx_dataset *ds, const char *dir, const split_spec *sp,
                                  cx_split *s, char **array_path, int32_t **y_all, cx_err *err)
{
    cx_image_classes cls = {ds->num_classes,  ds->class_names, ds->classes_path, ds->synonyms,
                            ds->num_synonyms, ds->vetoes,      ds->num_vetoes};
    cx_image_split im;
    cx_status st = cx_image_split_prepare(ds->path, dir, &sp->image, &cls, &im, err);
    if (!st) {
        s->images_path = im.source_path;
        s->captions_path = im.captions_path;
        *array_path = im.cache_path;
        *y_all = im.labels;
        s->stored_n = im.n;
        memset(&im, 0, sizeof im);
        if (!(s->labels_path = strdup(s->images_path)) ||
            (sp->captions && !(s->captions_path = cx_path_join(dir, sp->captions))))
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", ds->path);
    }
    cx_image_split_free(&im);
    return st;
}

static cx_status load_split(cx_dataset *ds, const char *dir, const split_spec *sp, int is_train,
                            unsigned parts, const cx_load_options *opt, cx_split *s, cx_err *err)
{
    const char *yaml = ds->path;
    int32_t *y_all = NULL;
    char *array_path = NULL; /* an image-file split's cache, read in place of images_path */
    uint32_t *subset = NULL;
    cx_array_file a;
    memset(&a, 0, sizeof a);
    cx_status st;
    if (sp->image.kind) {
        st = open_image_split(ds, dir, sp, s, &array_path, &y_all, err);
    } else {
        s->images_path = cx_path_join(dir, sp->images);
        s->labels_path = cx_path_join(dir, sp->labels);
        s->captions_path = sp->captions ? cx_path_join(dir, sp->captions) : NULL;
        if (!s->images_path || !s->labels_path || (sp->captions && !s->captions_path))
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml);
        st = cx_labels_read(s->labels_path, ds->num_classes, ds->classes_path, &y_all,
                            &s->stored_n, err);
    }
    if (st)
        goto fail;
    if (sp->n_node && (long long)s->stored_n != sp->n) {
        st = cx_fail(err, CX_EDATA, "%s: %zu labels, but %s:%d:%d promises n: %lld", s->labels_path,
                     s->stored_n, yaml, sp->n_node->line, sp->n_node->col, sp->n);
        goto fail;
    }
    if (!is_train)
        for (size_t i = 0; i < s->stored_n; i++)
            if (y_all[i] >= ds->num_eval_classes) {
                st = cx_fail(
                    err, CX_EDATA,
                    "%s: record %zu: label %d is the open-world concept '%s'; a test split holds "
                    "evaluated classes only (eval_classes: %d)",
                    s->labels_path, i, y_all[i], ds->class_names[y_all[i]], ds->num_eval_classes);
                goto fail;
            }

    /* Which stored rows stay. */
    const uint32_t *keep = NULL;
    size_t nkeep = 0;
    if (is_train && opt && opt->subset_path) {
        if ((st = cx_subset_read(opt->subset_path, y_all, s->stored_n, s->labels_path, &subset,
                                 &nkeep, err)))
            goto fail;
        /* An empty SUBSET keeps no rows; keep must stay non-NULL, since NULL means all rows. */
        if (!subset && !(subset = malloc(sizeof *subset))) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", opt->subset_path);
            goto fail;
        }
        keep = subset;
    } else if (is_train && opt && opt->keep) {
        keep = opt->keep;
        nkeep = opt->num_keep;
        for (size_t i = 0; i < nkeep; i++)
            if (keep[i] >= s->stored_n || (i > 0 && keep[i] <= keep[i - 1])) {
                st = cx_fail(
                    err, CX_EUSAGE,
                    "%s: kept index %u (entry %zu) is not ascending or beyond the %zu samples",
                    s->labels_path, keep[i], i, s->stored_n);
                goto fail;
            }
    }
    s->n = keep ? nkeep : s->stored_n;
    size_t nalloc = s->n ? s->n : 1;
    s->y = malloc(nalloc * sizeof *s->y);
    s->source_index = malloc(nalloc * sizeof *s->source_index);
    if (!s->y || !s->source_index) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml);
        goto fail;
    }
    for (size_t i = 0; i < s->n; i++) {
        s->source_index[i] = keep ? keep[i] : i;
        s->y[i] = y_all[s->source_index[i]];
    }
    free(y_all);
    y_all = NULL;
    if ((st = load_groups(ds, dir, sp, keep, s, err)))
        goto fail;

    if (!(parts & CX_LOAD_IMAGES)) {
        /* Labels only: the images file is still checked (header, length, counts), so a command
         * that reads labels never passes a dataset that training would refuse. */
        cx_split probe = *s;
        if ((st = open_images(yaml, sp, &probe, array_path, &a, err)))
            goto fail;
    }
    if (parts & CX_LOAD_IMAGES) {
        if ((st = open_images(yaml, sp, s, array_path, &a, err)))
            goto fail;
        cx_elem out = a.elem == CX_ELEM_U8 ? CX_ELEM_U8 : CX_ELEM_F32;
        s->dtype = out == CX_ELEM_U8 ? CX_DTYPE_U8 : CX_DTYPE_F32;
        s->x = malloc((s->n ? s->n : 1) * s->dim * cx_elem_size(out));
        if (!s->x) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu samples of %zu features",
                         s->images_path, s->n, s->dim);
            goto fail;
        }
        /* With a kept list, the skipped rows stream past without being stored. */
        if ((st = cx_array_read(&a, keep, nkeep, out, s->x, err)))
            goto fail;
    }
    if (!(parts & CX_LOAD_CAPTIONS) && s->captions_path) {
        /* Not read here: at least a readable file (its lines are counted when it is read). */
        cx_gzfile cf;
        st = cx_gzfile_open(&cf, s->captions_path, err);
        cx_gzfile_close(&cf);
        if (st)
            goto fail;
    }
    if ((parts & CX_LOAD_CAPTIONS) && s->captions_path) {
        if ((st = cx_captions_read(s->captions_path, s->stored_n, s->images_path, keep,
                                   keep ? nkeep : 0, &s->caption_store, err)))
            goto fail;
        s->captions = s->caption_store.items;
    }
fail:
    cx_array_close(&a);
    free(y_all);
    free(array_path);
    free(subset);
    return st;
}

cx_status cx_dataset_load(const char *yaml_path, const cx_load_options *opt, cx_dataset *ds,
                          cx_err *err)
{
    memset(ds, 0, sizeof *ds);
    /* No parts named: everything there is (a missing split is only an error when asked for). */
    int everything = !opt || !opt->parts;
    unsigned parts = everything ? CX_LOAD_ALL : opt->parts;
    cx_yaml_node *root = NULL;
    char *dir = NULL;
    cx_classes classes;
    memset(&classes, 0, sizeof classes);
    cx_status st = cx_yaml_parse_file(yaml_path, &root, err);
    if (st)
        goto fail;
    if (!(ds->path = strdup(yaml_path)) || !(dir = cx_path_dir(yaml_path))) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml_path);
        goto fail;
    }
    if (root->kind != CX_YAML_MAP) {
        st = node_fail(err, yaml_path, root,
                       "a dataset is a mapping (name, classes, train, test ...)");
        goto fail;
    }
    const cx_yaml_node *name = NULL, *cls = NULL, *tmpl = NULL, *train = NULL, *test = NULL,
                       *evalc = NULL, *cemb = NULL, *val = NULL, *gnames = NULL;
    for (size_t i = 0; i < root->count; i++) {
        const cx_yaml_pair *p = &root->pairs[i];
        if (!strcmp(p->key, "name"))
            name = p->value;
        else if (!strcmp(p->key, "classes"))
            cls = p->value;
        else if (!strcmp(p->key, "templates"))
            tmpl = p->value;
        else if (!strcmp(p->key, "train"))
            train = p->value;
        else if (!strcmp(p->key, "test"))
            test = p->value;
        else if (!strcmp(p->key, "eval_classes"))
            evalc = p->value;
        else if (!strcmp(p->key, "class_embeddings"))
            cemb = p->value;
        else if (!strcmp(p->key, "val"))
            val = p->value;
        else if (!strcmp(p->key, "group_names"))
            gnames = p->value;
        else {
            st = cx_fail(
                err, CX_EUSAGE,
                "%s:%d:%d: unknown key '%s' (name, classes, templates, eval_classes, "
                "class_embeddings, group_names, train, val, test)",
                yaml_path, p->line, p->col, p->key);
            goto fail;
        }
    }
    if (!cls) {
        st = node_fail(err, yaml_path, root, "the dataset names no 'classes' file");
        goto fail;
    }
    if (!train && !test) {
        st =
            node_fail(err, yaml_path, root, "the dataset has neither a 'train' nor a 'test' split");
        goto fail;
    }
    split_spec train_sp, test_sp, val_sp;
    if ((st = want_path(yaml_path, cls, "classes", err)) ||
        (tmpl && (st = want_path(yaml_path, tmpl, "templates", err))) ||
        (cemb && (st = want_path(yaml_path, cemb, "class_embeddings", err))) ||
        (gnames && (st = want_path(yaml_path, gnames, "group_names", err))) ||
        (train && (st = parse_split(yaml_path, "train", train, &train_sp, err))) ||
        (test && (st = parse_split(yaml_path, "test", test, &test_sp, err))) ||
        (val && (st = parse_split(yaml_path, "val", val, &val_sp, err))))
        goto fail;
    if (name && (name->kind != CX_YAML_SCALAR || !name->scalar[0])) {
        st = node_fail(err, yaml_path, name, "'name' must be a string");
        goto fail;
    }
    if (name) {
        ds->name = strdup(name->scalar);
    } else {
        const char *base = cx_path_leaf(yaml_path);
        size_t n = strlen(base);
        if (n > 5 && !strcmp(base + n - 5, ".yaml"))
            n -= 5;
        else if (n > 4 && !strcmp(base + n - 4, ".yml"))
            n -= 4;
        if ((ds->name = malloc(n + 1))) {
            memcpy(ds->name, base, n);
            ds->name[n] = '\0';
        }
    }
    if (!ds->name || !(ds->classes_path = cx_path_join(dir, cls->scalar))) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml_path);
        goto fail;
    }
    if (cemb && !(ds->class_embeddings_path = cx_path_join(dir, cemb->scalar))) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml_path);
        goto fail;
    }
    if (gnames && (!(ds->group_names_path = cx_path_join(dir, gnames->scalar)) ||
                   (st = cx_group_names_read(ds->group_names_path, &ds->group_names,
                                             &ds->num_groups, err)))) {
        if (!ds->group_names_path)
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml_path);
        goto fail;
    }
    if ((st = cx_classes_read(ds->classes_path, &classes, err)))
        goto fail;
    ds->num_classes = classes.count;
    ds->class_names = classes.names;
    ds->synonyms = classes.synonyms;
    ds->num_synonyms = classes.num_synonyms;
    ds->vetoes = classes.vetoes;
    ds->num_vetoes = classes.num_vetoes;
    memset(&classes, 0, sizeof classes);
    ds->num_eval_classes = ds->num_classes;
    if (evalc) {
        long long v;
        if ((st = want_int(yaml_path, evalc, "eval_classes", 1, ds->num_classes, &v, err)))
            goto fail;
        ds->num_eval_classes = (int)v;
    }
    const char *const *builtin = tmpl ? cx_template_set(tmpl->scalar) : cx_default_templates;
    if (builtin) {
        if ((st = copy_templates(builtin, ds, yaml_path, err)))
            goto fail;
    } else {
        char *tp = cx_path_join(dir, tmpl->scalar);
        if (!tp) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml_path);
            goto fail;
        }
        if (access(tp, F_OK))
            st = cx_fail(err, CX_EDATA,
                         "%s:%d:%d: templates '%s': no such file (%s), nor a built-in set (%s)",
                         yaml_path, tmpl->line, tmpl->col, tmpl->scalar, tp,
                         cx_template_set_names);
        else
            st = cx_templates_read(tp, &ds->templates, &ds->num_templates, err);
        free(tp);
        if (st)
            goto fail;
    }
    ds->has_train = train != NULL;
    ds->has_test = test != NULL;
    ds->has_val = val != NULL;
    if (everything && !train)
        parts &= ~(unsigned)CX_LOAD_TRAIN;
    if (everything && !test)
        parts &= ~(unsigned)CX_LOAD_TEST;
    if ((parts & CX_LOAD_TRAIN) && !train) {
        st = node_fail(err, yaml_path, root, "the dataset has no 'train' split");
        goto fail;
    }
    if ((parts & CX_LOAD_TEST) && !test) {
        st = node_fail(err, yaml_path, root, "the dataset has no 'test' split");
        goto fail;
    }
    if ((parts & CX_LOAD_VAL) && !val) {
        st = node_fail(err, yaml_path, root, "the dataset has no 'val' split");
        goto fail;
    }
    if ((parts & CX_LOAD_TRAIN) &&
        (st = load_split(ds, dir, &train_sp, 1, parts, opt, &ds->train, err)))
        goto fail;
    /* A validation split is held like a test split: evaluated classes only, never a subset. */
    if ((parts & CX_LOAD_VAL) &&
        (st = load_split(ds, dir, &val_sp, 0, parts, opt, &ds->val, err)))
        goto fail;
    if ((parts & CX_LOAD_TEST) &&
        (st = load_split(ds, dir, &test_sp, 0, parts, opt, &ds->test, err)))
        goto fail;
    cx_yaml_free(root);
    free(dir);
    return CX_OK;
fail:
    cx_classes_free(&classes);
    cx_yaml_free(root);
    free(dir);
    cx_dataset_free(ds);
    return st;
}

cx_status cx_dataset_class_embeddings(const cx_dataset *ds, float **out, int *dim, cx_err *err)
{
    *out = NULL;
    *dim = 0;
    const char *path = ds->class_embeddings_path;
    if (!path)
        return cx_fail(err, CX_EUSAGE, "%s names no class_embeddings", ds->path);
    cx_array_file a;
    float *w = NULL;
    cx_status st = cx_array_open(&a, path, CX_FORMAT_ANY, err);
    if (st)
        goto fail;
    if (a.rank != 2 || a.records != (uint64_t)ds->num_classes || a.record_elems < 1 ||
        a.record_elems > (1u << 24)) {
        char shape[160] = "";
        for (int k = 0; k < a.rank && k < CX_ARRAY_MAX_RANK; k++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", k ? ", " : "",
                     (unsigned long long)a.shape[k]);
        st = cx_fail(err, CX_EDATA, "%s: class_embeddings of shape (%s); %s needs (%d, D), one "
                     "row per class of %s", path, shape, ds->path, ds->num_classes,
                     ds->classes_path);
        goto fail;
    }
    size_t n = (size_t)a.records * (size_t)a.record_elems;
    if (!(w = malloc(sizeof *w * n))) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu values", path, n);
        goto fail;
    }
    if ((st = cx_array_read(&a, NULL, 0, CX_ELEM_F32, w, err)))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) {
            st = cx_fail(err, CX_EDATA, "%s: row %zu (class '%s'), column %zu: %g is not finite",
                         path, i / a.record_elems, ds->class_names[i / a.record_elems],
                         (size_t)(i % a.record_elems), (double)w[i]);
            goto fail;
        }
    *out = w;
    *dim = (int)a.record_elems;
    cx_array_close(&a);
    return CX_OK;
fail:
    cx_array_close(&a);
    free(w);
    return st;
}

void cx_split_gather_f32(const cx_split *s, const uint32_t *idx, size_t n, float *out)
{
    const size_t dim = s->dim;
    if (s->dtype == CX_DTYPE_U8) {
        float lut[256];
        for (int v = 0; v < 256; v++)
            lut[v] = (float)v / 255.0f;
        const uint8_t *x = s->x;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            const uint8_t *src = x + (size_t)(idx ? idx[i] : i) * dim;
            float *dst = out + i * dim;
            for (size_t j = 0; j < dim; j++)
                dst[j] = lut[src[j]];
        }
    } else {
        const float *x = s->x;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            memcpy(out + i * dim, x + (size_t)(idx ? idx[i] : i) * dim, dim * sizeof(float));
    }
}

size_t cx_template_fill(const char *t, const char *name, char *buf, size_t cap)
{
    size_t len = 0, nl = strlen(name);
    for (const char *p = t; *p;) {
        const char *piece;
        size_t k;
        if (p[0] == '{' && p[1] == '}') {
            piece = name;
            k = nl;
            p += 2;
        } else {
            piece = p;
            k = 1;
            p++;
        }
        for (size_t i = 0; i < k; i++, len++)
            if (len + 1 < cap)
                buf[len] = piece[i];
    }
    if (cap)
        buf[len < cap ? len : cap - 1] = '\0';
    return len;
}

void cx_caption_choice(const cx_dataset *ds, int32_t label, uint64_t seed, uint64_t index,
                       unsigned flags, int *template_index, int *synonym_index)
{
    cx_rng r;
    cx_rng_seed(&r, seed, cx_rng_stream(TAG_CAPTION, index, 0));
    *template_index = ds->num_templates > 1 ? (int)cx_rng_below(&r, (uint32_t)ds->num_templates) : 0;
    *synonym_index = (flags & CX_COMPOSE_SYNONYMS) && ds->num_synonyms[label] > 1
                         ? (int)cx_rng_below(&r, (uint32_t)ds->num_synonyms[label])
                         : 0;
}

size_t cx_caption_compose(const cx_dataset *ds, int32_t label, uint64_t seed, uint64_t index,
                          unsigned flags, char *buf, size_t cap)
{
    int t, k;
    cx_caption_choice(ds, label, seed, index, flags, &t, &k);
    return cx_template_fill(ds->templates[t], ds->synonyms[label][k], buf, cap);
}

const char *cx_split_caption(const cx_dataset *ds, const cx_split *s, size_t row, uint64_t seed,
                             unsigned flags, char *buf, size_t cap)
{
    if (s->captions)
        return s->captions[row];
    cx_caption_compose(ds, s->y[row], seed, s->source_index[row], flags, buf, cap);
    return buf;
}
