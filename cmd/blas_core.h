/* The BLAS kernels for this CPU: chosen before any work, reported by `clipx version`. */
#ifndef CLIPX_BLAS_CORE_H
#define CLIPX_BLAS_CORE_H

#include <stdio.h>

/* First thing in main. OpenBLAS picked its core when it was loaded; when that core is weaker
 * than this CPU allows and OPENBLAS_CORETYPE is unset, this re-executes the binary once
 * (same argv, environment plus OPENBLAS_CORETYPE, same open files) and does not return.
 * Otherwise, or when the re-execution fails, it returns and the process goes on as it is. */
void clipx_blas_core_choose(char **argv);

/* `clipx version`'s lines on the BLAS: library, threading build, core and how it was chosen,
 * and the CPU. */
void clipx_blas_core_print(FILE *fp);

#endif
