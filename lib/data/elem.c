/* Element types of stored arrays: sizes and numpy names. */
#include "lib/data/elem.h"

size_t cx_elem_size(cx_elem e)
{
    switch (e) {
    case CX_ELEM_U8:
        return 1;
    case CX_ELEM_I32:
        return 4;
    case CX_ELEM_I64:
        return 8;
    case CX_ELEM_F32:
        return 4;
    case CX_ELEM_F64:
        return 8;
    }
    return 1;
}

const char *cx_elem_name(cx_elem e)
{
    switch (e) {
    case CX_ELEM_U8:
        return "uint8";
    case CX_ELEM_I32:
        return "int32";
    case CX_ELEM_I64:
        return "int64";
    case CX_ELEM_F32:
        return "float32";
    case CX_ELEM_F64:
        return "float64";
    }
    return "?";
}
