/* The monotonic clock that timings (progress, training throughput, evaluation phases) read. */
#ifndef CX_BASE_CLOCK_H
#define CX_BASE_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double cx_clock_seconds(void);

#endif
