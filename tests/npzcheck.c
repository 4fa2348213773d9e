/* npzcheck F.npz: walks a zip archive as numpy.load would and checks it for the shell tests
 * (no Python or unzip needed in make check): every local header's signature, method (stored),
 * sizes and CRC-32 against the central directory, the end record's counts and offsets, and
 * each member's NPY magic and header. Prints "NAME<TAB>DESCR<TAB>SHAPE" a member, then with
 * -p NAME prints that member's data bytes instead (config.json's text). Exit 1 with one line
 * on stderr for the first fault. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static unsigned char *buf;
static size_t len;

static int die(const char *what, size_t at)
{
    fprintf(stderr, "npzcheck: byte %zu: %s\n", at, what);
    return 1;
}

static uint32_t rd16(size_t at) { return (uint32_t)buf[at] | (uint32_t)buf[at + 1] << 8; }
static uint32_t rd32(size_t at) { return rd16(at) | rd16(at + 2) << 16; }

int main(int argc, char **argv)
{
    const char *print = NULL;
    if (argc == 4 && strcmp(argv[2], "-p") == 0)
        print = argv[3];
    else if (argc != 2) {
        fprintf(stderr, "usage: npzcheck F.npz [-p MEMBER]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = 1 << 20;
    buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0)
        if ((len += n) == cap)
            buf = realloc(buf, cap *= 2);
    fclose(f);
    if (!buf)
        return die("out of memory", 0);
    if (len < 22 || rd32(len - 22) != 0x06054b50)
        return die("no end-of-central-directory record at the end", len);
    size_t end = len - 22;
    uint32_t count = rd16(end + 10), cd_size = rd32(end + 12), cd_off = rd32(end + 16);
    if (rd16(end + 8) != count || (size_t)cd_off + cd_size != end)
        return die("end record: counts or directory size and offset disagree", end);
    size_t at = cd_off, expect_local = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (at + 46 > end || rd32(at) != 0x02014b50)
            return die("central directory entry signature", at);
        uint32_t method = rd16(at + 10), crc = rd32(at + 16), csize = rd32(at + 20),
                 usize = rd32(at + 24), nlen = rd16(at + 28), xlen = rd16(at + 30),
                 clen = rd16(at + 32), loff = rd32(at + 42);
        char name[300];
        if (nlen >= sizeof name || at + 46 + nlen > end)
            return die("central directory name", at);
        memcpy(name, buf + at + 46, nlen);
        name[nlen] = '\0';
        if (method != 0 || csize != usize)
            return die("member is not stored", at);
        if (loff != expect_local || rd32(loff) != 0x04034b50)
            return die("local header not where the directory says (members must be contiguous)", loff);
        if (rd32(loff + 14) != crc || rd32(loff + 18) != csize || rd32(loff + 22) != usize ||
            rd16(loff + 26) != nlen || memcmp(buf + loff + 30, name, nlen) != 0)
            return die("local header disagrees with the directory", loff);
        size_t data = loff + 30 + nlen + rd16(loff + 28);
        if (data + usize > cd_off)
            return die("member data runs past the directory", data);
        if ((uint32_t)crc32(crc32(0L, Z_NULL, 0), buf + data, usize) != crc)
            return die("CRC-32 mismatch", data);
        expect_local = data + usize;
        if (usize < 10 || memcmp(buf + data, "\x93NUMPY", 6) != 0)
            return die("member is not an NPY array", data);
        size_t hl = rd16(data + 8), body = data + 10 + hl;
        if (body > data + usize || (10 + hl) % 64 != 0)
            return die("NPY header length", data);
        char head[700];
        size_t k = hl < sizeof head ? hl : sizeof head - 1;
        memcpy(head, buf + data + 10, k);
        head[k] = '\0';
        head[strcspn(head, "\n")] = '\0';
        char *d = strstr(head, "'descr': '"), *s = strstr(head, "'shape': ");
        if (!d || !s)
            return die("NPY header dictionary", data);
        d += 10;
        s += 9;
        if (print) {
            if (strcmp(name, print) == 0)
                fwrite(buf + body, 1, data + usize - body, stdout);
        } else {
            printf("%s\t%.*s\t%.*s\n", name, (int)strcspn(d, "'"), d, (int)strcspn(s, ")") + 1, s);
        }
        at += 46 + nlen + xlen + clen;
    }
    if (expect_local != cd_off || at != end)
        return die("bytes between the members and the directory", expect_local);
    free(buf);
    return 0;
}
