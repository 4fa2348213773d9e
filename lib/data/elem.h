/* Element types of stored arrays, shared by the IDX and NPY readers and the NPY writer. */
#ifndef CX_DATA_ELEM_H
#define CX_DATA_ELEM_H

#include <stddef.h>

/* Element types of stored arrays, all little-endian in memory and in NPY files. */
typedef enum { CX_ELEM_U8, CX_ELEM_I32, CX_ELEM_I64, CX_ELEM_F32, CX_ELEM_F64 } cx_elem;

size_t cx_elem_size(cx_elem e);
/* numpy's name: "uint8", "int32", "int64", "float32", "float64". */
const char *cx_elem_name(cx_elem e);

/* The largest rank a stored array may have. */
enum { CX_ARRAY_MAX_RANK = 8 };

#endif
