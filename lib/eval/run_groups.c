/* Group metrics of an evaluated run: the test split's groups scored, with the training group
 * counts of the run's own training split (see cx_run_eval_groups in run_eval.h). */
#include <stdlib.h>
#include <string.h>

#include "lib/eval/group_metrics.h"
#include "lib/eval/run_eval.h"

/* Whether a's group names are b's. */
static int same_groups(const cx_dataset *a, const cx_dataset *b)
{
    if (a->num_groups != b->num_groups)
        return 0;
    for (int k = 0; k < a->num_groups; k++)
        if (strcmp(a->group_names[k], b->group_names[k]) != 0)
            return 0;
    return 1;
}

/* counts (ds->num_groups) from the training split of yaml (with subset), when it has groups
 * named as ds's: 1; 0 when it has none or others; < 0 on an error (in err). */
static int train_counts_from(const char *yaml, const char *subset, const cx_dataset *ds,
                             int64_t *counts, cx_err *err)
{
    cx_dataset t;
    cx_load_options lo = {0};
    lo.parts = CX_LOAD_TRAIN; /* labels and groups, no images */
    lo.subset_path = subset;
    if (cx_dataset_load(yaml, &lo, &t, err))
        return -1;
    int ok = t.train.groups && same_groups(&t, ds);
    if (ok)
        cx_group_counts(t.train.groups, t.train.n, t.num_groups, counts);
    cx_dataset_free(&t);
    return ok;
}

cx_status cx_run_eval_groups(const cx_run *run, const cx_dataset *ds, const char *data,
                             const int32_t *pred, cx_eval_report *r, cx_err *err)
{
    const cx_split *test = &ds->test;
    const int G = ds->num_groups;
    int64_t *counts = malloc(sizeof *counts * (size_t)(G > 0 ? G : 1));
    cx_group_report *g = calloc(1, sizeof *g);
    cx_status st = CX_OK;
    if (!counts || !g) {
        st = cx_fail(err, CX_ENOMEM, "groups: out of memory");
        goto fail;
    }
    int known = 0;
    if (run->cfg.data) {
        cx_err local;
        known = train_counts_from(run->cfg.data, run->cfg.subset, ds, counts, data ? &local : err);
        if (known < 0 && !data) {
            /* The run's own dataset was loaded a moment ago: a failure now is real. */
            st = CX_EDATA;
            goto fail;
        }
        if (known < 0)
            known = 0;
    }
    if (!known && data && ds->has_train) {
        cx_err local;
        known = train_counts_from(data, NULL, ds, counts, &local) > 0;
    }
    if ((st = cx_group_report_build(g, pred, test->y, test->groups, (int64_t)test->n, G,
                                    (const char *const *)ds->group_names, known ? counts : NULL,
                                    err)))
        goto fail;
    cx_group_report_free(r->groups);
    free(r->groups);
    r->groups = g;
    g = NULL;
fail:
    free(counts);
    free(g);
    return st;
}
