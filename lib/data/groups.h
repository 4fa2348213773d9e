/* Groups of a dataset (issue 15): a group is a (class, attribute) cell such as Waterbirds'
 * (landbird, water background). The YAML names `group_names: FILE` (one name a line) and, per
 * split, `groups: FILE` aligned with the split's rows (one integer a line, IDX idx1 or NPY of
 * integers), each in [0, number of group names). Evaluation reports worst-group, average-group
 * and adjusted accuracy from them (lib/eval/group_metrics.h). */
#ifndef CX_DATA_GROUPS_H
#define CX_DATA_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

/* Group names, one a line, trimmed; blank lines are skipped; names are unique, hold no tab,
 * and there are 1 .. CX_GROUPS_MAX of them. *names is an owned array of owned strings. */
enum { CX_GROUPS_MAX = 1 << 20 };
cx_status cx_group_names_read(const char *path, char ***names, int *count, cx_err *err);

/* The groups of a split from path, which must hold exactly expect_n values (the rows of
 * labels_path, named in the message) in [0, num_groups) (the names of names_path). A wrong
 * count names the first record missing or in excess. *groups is owned (expect_n). */
cx_status cx_groups_read(const char *path, int num_groups, const char *names_path,
                         size_t expect_n, const char *labels_path, int32_t **groups,
                         cx_err *err);

#endif
