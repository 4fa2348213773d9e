/* PNG and JPEG files to fixed-size uint8 images: decoded with libpng and libjpeg-turbo, the
 * shorter side resampled to `size` with an area (box) filter in exact integer arithmetic, then
 * centre-cropped to (channels, size, size), channels first as NPY images are. */
#ifndef CX_DATA_IMAGE_DECODE_H
#define CX_DATA_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

enum { CX_IMAGE_MAX_SIZE = 4096 };

/* 1 when clipx was built with libpng and libjpeg (configure found both), else 0. */
int cx_image_decode_available(void);

/* Decode the PNG or JPEG file at path (told apart by their signatures, not by the name) into
 * out (channels, size, size), caller-owned. channels 1 or 3: an RGB image becomes gray by
 * ITU-R 601 luma (19595 R + 38470 G + 7471 B + 2^15) >> 16, a gray image is repeated into
 * three channels, alpha is composited over black. Errors (CX_EDATA) start with path: missing,
 * unreadable, neither PNG nor JPEG, damaged or truncated data, more than 2^28 pixels.
 * Thread-safe: no shared state. Without the libraries: CX_EUSAGE. */
cx_status cx_image_decode(const char *path, int size, int channels, uint8_t *out, cx_err *err);

/* The resampling step on its own: src (h, w, c) interleaved as decoded, c in {1, 3}, to dst
 * (c, size, size). The shorter side becomes size (the longer one round(long * size / short)),
 * each output pixel the exact area-weighted mean of the source pixels it covers, rounded half
 * up; the crop starts at floor((resized - size) / 2). Returns 0, or -1 when out of memory. */
int cx_image_fit(const uint8_t *src, int w, int h, int c, int size, uint8_t *dst);

#endif
