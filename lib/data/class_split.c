/* Head / mid / tail membership of classes. */
#include "lib/data/class_split.h"

#include <stdlib.h>

void cx_class_splits(const int64_t *counts, int C, cx_split_rule rule, int64_t many, int64_t few,
                     cx_class_split *split)
{
    if (rule == CX_SPLIT_RULE_SHOTS) {
        for (int c = 0; c < C; c++)
            split[c] = counts[c] > many ? CX_SPLIT_HEAD
                       : counts[c] < few ? CX_SPLIT_TAIL
                                         : CX_SPLIT_MID;
        return;
    }
    /* Rank of class c = number of classes that come before it (larger count, or equal count
     * and smaller index). O(C^2) is fine for the class counts clipx handles (<= 10,000). */
    int third = C / 3;
    for (int c = 0; c < C; c++) {
        int rank = 0;
        for (int d = 0; d < C; d++)
            rank += counts[d] > counts[c] || (counts[d] == counts[c] && d < c);
        split[c] = rank < third ? CX_SPLIT_HEAD : rank >= C - third ? CX_SPLIT_TAIL : CX_SPLIT_MID;
    }
}

const char *cx_class_split_name(cx_class_split s)
{
    switch (s) {
    case CX_SPLIT_HEAD:
        return "head";
    case CX_SPLIT_MID:
        return "mid";
    case CX_SPLIT_TAIL:
        return "tail";
    }
    return "?";
}
