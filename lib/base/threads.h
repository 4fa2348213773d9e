/* One thread count for OpenMP loops and OpenBLAS products. */
#ifndef CX_BASE_THREADS_H
#define CX_BASE_THREADS_H

/* Cores this process may use. */
int cx_threads_available(void);

/* Use n threads from now on (n < 1: all available cores). Returns the count in force. */
int cx_threads_set(int n);

/* The count in force. */
int cx_threads_get(void);

#endif
