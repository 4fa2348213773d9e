/* PNG/JPEG decoding (libpng's simplified API, libjpeg-turbo) and the area resampling to a square
 * centre crop. Integer arithmetic throughout, so a given file decodes to the same bytes on every
 * machine with the same library versions. */
#include "config.h"

#include "lib/data/image_decode.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(HAVE_LIBPNG) && defined(HAVE_LIBJPEG)
#define CX_IMAGES 1
#include <jpeglib.h>
#include <png.h>
#else
#define CX_IMAGES 0
#endif

/* A side beyond this (JPEG's own limit is 65500) would overflow the tap arithmetic below. */
enum { MAX_SIDE = 65535 };
#define MAX_PIXELS (1ull << 28)

int cx_image_decode_available(void) { return CX_IMAGES; }

/* Taps of one axis: output k (of S, after a crop at offset o) of a source of length n0 resized
 * to n1 covers [ (o+k) n0, (o+k+1) n0 ) in units of 1/n1; source pixel j covers
 * [ j n1, (j+1) n1 ). The overlaps are the integer weights; they sum to n0. */
static void axis_taps(uint64_t n0, uint64_t n1, uint64_t o, int S, int maxtaps, int *first,
                      int *count, uint64_t *w)
{
    for (int k = 0; k < S; k++) {
        uint64_t a = (o + (uint64_t)k) * n0, b = a + n0;
        uint64_t j0 = a / n1, j1 = (b + n1 - 1) / n1; /* [j0, j1) */
        if (j1 > n0)
            j1 = n0;
        first[k] = (int)j0;
        count[k] = (int)(j1 - j0);
        for (uint64_t j = j0; j < j1 && (int)(j - j0) < maxtaps; j++) {
            uint64_t lo = j * n1 > a ? j * n1 : a, hi = (j + 1) * n1 < b ? (j + 1) * n1 : b;
            w[(size_t)k * (size_t)maxtaps + (j - j0)] = hi - lo;
        }
    }
}

int cx_image_fit(const uint8_t *src, int w, int h, int c, int size, uint8_t *dst)
{
    const uint64_t W = (uint64_t)w, H = (uint64_t)h, S = (uint64_t)size;
    uint64_t W1, H1;
    if (W <= H) {
        W1 = S;
        H1 = (2 * H * S + W) / (2 * W);
    } else {
        H1 = S;
        W1 = (2 * W * S + H) / (2 * H);
    }
    if (W1 < S)
        W1 = S;
    if (H1 < S)
        H1 = S;
    const uint64_t ox = (W1 - S) / 2, oy = (H1 - S) / 2;
    const int tx = (int)(W / W1) + 2, ty = (int)(H / H1) + 2;
    int *fx = malloc(sizeof(int) * 4 * (size_t)size);
    uint64_t *wx = malloc(sizeof(uint64_t) * (size_t)size * (size_t)tx);
    uint64_t *wy = malloc(sizeof(uint64_t) * (size_t)size * (size_t)ty);
    /* Only the source rows the crop reaches are resampled across. */
    uint64_t *row = NULL;
    if (fx && wx && wy) {
        int *cx = fx + size, *fy = fx + 2 * size, *cy = fx + 3 * size;
        axis_taps(W, W1, ox, size, tx, fx, cx, wx);
        axis_taps(H, H1, oy, size, ty, fy, cy, wy);
        const int y0 = fy[0], y1 = fy[size - 1] + cy[size - 1];
        const size_t rs = (size_t)size * (size_t)c;
        if ((row = malloc(sizeof(uint64_t) * rs * (size_t)(y1 - y0)))) {
            for (int y = y0; y < y1; y++) {
                const uint8_t *s = src + (size_t)y * (size_t)w * (size_t)c;
                uint64_t *r = row + (size_t)(y - y0) * rs;
                for (int k = 0; k < size; k++)
                    for (int ch = 0; ch < c; ch++) {
                        uint64_t acc = 0;
                        for (int t = 0; t < cx[k]; t++)
                            acc += wx[(size_t)k * (size_t)tx + (size_t)t] *
                                   s[(size_t)(fx[k] + t) * (size_t)c + (size_t)ch];
                        r[(size_t)k * (size_t)c + (size_t)ch] = acc;
                    }
            }
            const uint64_t total = W * H;
            for (int k = 0; k < size; k++)
                for (int kx = 0; kx < size; kx++)
                    for (int ch = 0; ch < c; ch++) {
                        uint64_t acc = 0;
                        for (int t = 0; t < cy[k]; t++)
                            acc += wy[(size_t)k * (size_t)ty + (size_t)t] *
                                   row[(size_t)(fy[k] + t - y0) * rs + (size_t)kx * (size_t)c +
                                       (size_t)ch];
                        dst[((size_t)ch * S + (size_t)k) * S + (size_t)kx] =
                            (uint8_t)((acc + total / 2) / total);
                    }
        }
    }
    int ok = row != NULL;
    free(row);
    free(fx);
    free(wx);
    free(wy);
    return ok ? 0 : -1;
}

#if CX_IMAGES

/* libjpeg reports through callbacks: the error manager jumps back with the message, and
 * warnings (corrupt or truncated data that libjpeg would fill with grey) are errors too. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_fail;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_fail *f = (jpeg_fail *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, f->msg);
    longjmp(f->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0)
        jpeg_on_error(cinfo);
}

/* RGB (h, w, 3) of a JPEG into *out (malloc'd). */
static cx_status jpeg_rgb(FILE *fp, const char *path, uint8_t **out, int *w, int *h, cx_err *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_fail jerr;
    uint8_t *volatile buf = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_on_error;
    jerr.pub.emit_message = jpeg_on_message;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(buf);
        return cx_fail(err, CX_EDATA, "%s: broken JPEG: %s", path, jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, fp);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return cx_fail(err, CX_EDATA, "%s: a CMYK JPEG (only grey and colour JPEGs are read)",
                       path);
    }
    if (cinfo.image_width > MAX_SIDE || cinfo.image_height > MAX_SIDE ||
        (uint64_t)cinfo.image_width * cinfo.image_height > MAX_PIXELS) {
        cx_status st = cx_fail(err, CX_EDATA, "%s: a JPEG of %ux%u pixels is too large (at most "
                               "%d a side and 2^28 pixels)", path, (unsigned)cinfo.image_width,
                               (unsigned)cinfo.image_height, MAX_SIDE);
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    cinfo.out_color_space = JCS_RGB;
    cinfo.dct_method = JDCT_ISLOW; /* libjpeg's default, and PIL's: the accurate integer DCT */
    jpeg_start_decompress(&cinfo);
    const size_t stride = (size_t)cinfo.output_width * 3;
    buf = malloc(stride * cinfo.output_height);
    if (!buf) {
        jpeg_destroy_decompress(&cinfo);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for a %ux%u JPEG", path,
                       (unsigned)cinfo.output_width, (unsigned)cinfo.output_height);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW r = buf + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *w = (int)cinfo.output_width;
    *h = (int)cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    *out = buf;
    return CX_OK;
}

static cx_status png_rgb(FILE *fp, const char *path, uint8_t **out, int *w, int *h, cx_err *err)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_stdio(&img, fp))
        return cx_fail(err, CX_EDATA, "%s: broken PNG: %s", path, img.message);
    if (img.width > MAX_SIDE || img.height > MAX_SIDE ||
        (uint64_t)img.width * img.height > MAX_PIXELS) {
        png_image_free(&img);
        return cx_fail(err, CX_EDATA, "%s: a PNG of %ux%u pixels is too large (at most %d a side "
                       "and 2^28 pixels)", path, (unsigned)img.width, (unsigned)img.height,
                       MAX_SIDE);
    }
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf) {
        png_image_free(&img);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for a %ux%u PNG", path,
                       (unsigned)img.width, (unsigned)img.height);
    }
    png_color black = {0, 0, 0};
    if (!png_image_finish_read(&img, &black, buf, 0, NULL)) {
        cx_status st = cx_fail(err, CX_EDATA, "%s: broken PNG: %s", path, img.message);
        png_image_free(&img);
        free(buf);
        return st;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    *out = buf;
    return CX_OK;
}

cx_status cx_image_decode(const char *path, int size, int channels, uint8_t *out, cx_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return cx_fail_errno(err, CX_EDATA, errno, "%s", path);
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, fp);
    rewind(fp);
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    cx_status st;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got == 8 && !memcmp(sig, png_sig, 8))
        st = png_rgb(fp, path, &rgb, &w, &h, err);
    else if (got >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff)
        st = jpeg_rgb(fp, path, &rgb, &w, &h, err);
    else
        st = cx_fail(err, CX_EDATA, "%s: %s", path,
                     got ? "neither a PNG nor a JPEG file (by its first bytes)" : "an empty file");
    fclose(fp);
    if (st)
        return st;
    if (channels == 1) {
        /* In place: pixel i's grey value goes to byte i, which pixel i has been read past. */
        for (size_t i = 0, n = (size_t)w * (size_t)h; i < n; i++) {
            const uint8_t *p = rgb + 3 * i;
            rgb[i] = (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 32768u) >> 16);
        }
    }
    int fit = cx_image_fit(rgb, w, h, channels, size, out);
    free(rgb);
    if (fit)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory resampling %dx%d pixels", path, w, h);
    return CX_OK;
}

#else

cx_status cx_image_decode(const char *path, int size, int channels, uint8_t *out, cx_err *err)
{
    return cx_fail(err, CX_EUSAGE, "%s: clipx was built without libpng and libjpeg", path);
}

#endif
