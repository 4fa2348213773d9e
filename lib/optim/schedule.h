/* Learning-rate schedules: linear warm-up, then cosine to zero, step decay, or constant
 * (open_clip's warm-up and cosine formulas). */
#ifndef CX_OPTIM_SCHEDULE_H
#define CX_OPTIM_SCHEDULE_H

#include <stdint.h>

typedef enum { CX_SCHED_COSINE, CX_SCHED_STEP, CX_SCHED_CONSTANT } cx_sched_kind;

typedef struct {
    cx_sched_kind kind;
    double base_lr;
    int64_t warmup;          /* steps of linear warm-up: lr * (step + 1) / warmup */
    int64_t total_steps;     /* cosine reaches 0 here */
    int64_t steps_per_epoch; /* step schedule: epochs are counted in these */
    const int64_t *milestones; /* step schedule: epochs at which lr is multiplied by gamma */
    int nmilestones;
    double gamma;
} cx_schedule;

/* The learning rate for 0-based step `step`. */
double cx_schedule_lr(const cx_schedule *s, int64_t step);

#endif
