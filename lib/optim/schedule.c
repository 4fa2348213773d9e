/* Learning-rate schedules. */
#include "lib/optim/schedule.h"

#include <math.h>

static const double pi = 3.14159265358979323846;

double cx_schedule_lr(const cx_schedule *s, int64_t step)
{
    if (step < s->warmup)
        return s->base_lr * (double)(step + 1) / (double)s->warmup;
    switch (s->kind) {
    case CX_SCHED_COSINE: {
        int64_t span = s->total_steps - s->warmup;
        if (span <= 0)
            return s->base_lr;
        double e = (double)(step - s->warmup);
        return 0.5 * (1.0 + cos(pi * e / (double)span)) * s->base_lr;
    }
    case CX_SCHED_STEP: {
        int64_t epoch = s->steps_per_epoch > 0 ? step / s->steps_per_epoch : 0;
        double lr = s->base_lr;
        for (int i = 0; i < s->nmilestones; i++)
            if (epoch >= s->milestones[i])
                lr *= s->gamma;
        return lr;
    }
    case CX_SCHED_CONSTANT:
        break;
    }
    return s->base_lr;
}
