/* Aligned text tables for the terminal: columns sized to their widest cell, numbers
 * right-aligned, text left-aligned. */
#ifndef CLIPX_TABLE_H
#define CLIPX_TABLE_H

#include <stdio.h>

typedef struct {
    int ncols;
    char **headers;   /* owned copies */
    int *right;       /* per column: 1 right-aligns */
    char **cells;     /* owned, nrows * ncols, row-major */
    int nrows, cap;
} cli_table;

/* headers: ncols strings; a header starting with '>' marks a right-aligned column (the '>'
 * is not printed). Returns 0, or -1 when out of memory. */
int cli_table_init(cli_table *t, int ncols, const char *const *headers);
/* Append a row of ncols strings (copied). Returns 0 or -1. */
int cli_table_add(cli_table *t, const char *const *cells);
void cli_table_print(const cli_table *t, FILE *fp);
void cli_table_free(cli_table *t);

#endif
