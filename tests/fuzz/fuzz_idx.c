/* Fuzz target: the IDX reader (plain or gzip), through cx_array_open / cx_array_read. */
#include "tests/fuzz/fuzz.h"

#include "lib/data/array.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_read_array(fuzz_file("input-idx3-ubyte", data, size), CX_FORMAT_IDX);
    return 0;
}
