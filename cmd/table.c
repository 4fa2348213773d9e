/* Aligned text tables. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

static char *copy(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s ? s : "", n);
    return d;
}

int cli_table_init(cli_table *t, int ncols, const char *const *headers)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->headers = calloc((size_t)ncols, sizeof *t->headers);
    t->right = calloc((size_t)ncols, sizeof *t->right);
    if (!t->headers || !t->right)
        return -1;
    for (int c = 0; c < ncols; c++) {
        const char *h = headers[c];
        if (h[0] == '>') {
            t->right[c] = 1;
            h++;
        }
        if (!(t->headers[c] = copy(h)))
            return -1;
    }
    return 0;
}

int cli_table_add(cli_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        int ncap = t->cap ? 2 * t->cap : 16;
        char **nc = realloc(t->cells, sizeof *nc * (size_t)ncap * (size_t)t->ncols);
        if (!nc)
            return -1;
        t->cells = nc;
        t->cap = ncap;
    }
    char **row = t->cells + (size_t)t->nrows * (size_t)t->ncols;
    for (int c = 0; c < t->ncols; c++)
        if (!(row[c] = copy(cells[c]))) {
            for (int k = 0; k < c; k++)
                free(row[k]);
            return -1;
        }
    t->nrows++;
    return 0;
}

void cli_table_print(const cli_table *t, FILE *fp)
{
    int *width = calloc((size_t)t->ncols, sizeof *width);
    if (!width)
        return;
    for (int c = 0; c < t->ncols; c++)
        width[c] = (int)strlen(t->headers[c]);
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            int w = (int)strlen(t->cells[(size_t)r * (size_t)t->ncols + (size_t)c]);
            if (w > width[c])
                width[c] = w;
        }
    for (int r = -1; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = r < 0 ? t->headers[c] : t->cells[(size_t)r * (size_t)t->ncols + (size_t)c];
            const char *sep = c + 1 < t->ncols ? "  " : "";
            if (t->right[c])
                fprintf(fp, "%*s%s", width[c], s, sep);
            else if (c + 1 < t->ncols)
                fprintf(fp, "%-*s%s", width[c], s, sep);
            else
                fputs(s, fp);
        }
        fputc('\n', fp);
    }
    free(width);
}

void cli_table_free(cli_table *t)
{
    for (int i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    for (int c = 0; c < t->ncols && t->headers; c++)
        free(t->headers[c]);
    free(t->headers);
    free(t->right);
    memset(t, 0, sizeof *t);
}
