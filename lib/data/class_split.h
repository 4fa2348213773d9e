/* Head / mid / tail membership of classes by their training counts (methods.md section 7). */
#ifndef CX_DATA_CLASS_SPLIT_H
#define CX_DATA_CLASS_SPLIT_H

#include <stdint.h>

typedef enum { CX_SPLIT_HEAD = 0, CX_SPLIT_MID = 1, CX_SPLIT_TAIL = 2 } cx_class_split;

typedef enum {
    CX_SPLIT_RULE_SHOTS,  /* head: count > many; mid: few <= count <= many; tail: count < few */
    CX_SPLIT_RULE_TERTILE /* thirds by count rank: floor(C/3) head, floor(C/3) tail, rest mid */
} cx_split_rule;

/* Defaults of the shots rule (ImageNet-LT convention). */
#define CX_SPLIT_MANY_DEFAULT 100
#define CX_SPLIT_FEW_DEFAULT 20

/* split[c] for each of C classes. Tertile ranks by count, larger first; equal counts keep class
 * order, so the result is deterministic. */
void cx_class_splits(const int64_t *counts, int C, cx_split_rule rule, int64_t many, int64_t few,
                     cx_class_split *split);

/* "head", "mid" or "tail". */
const char *cx_class_split_name(cx_class_split s);

#endif
