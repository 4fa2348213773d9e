/* A YAML document as a small tree whose every node and key knows its line and column, so the
 * typed readers (training configuration, dataset files) can name the exact position of a bad
 * value. Built on libyaml's event parser; anchors, aliases and tags are refused. */
#ifndef CX_CONF_YAML_DOC_H
#define CX_CONF_YAML_DOC_H

#include <stddef.h>

#include "lib/base/err.h"

typedef enum { CX_YAML_SCALAR, CX_YAML_MAP, CX_YAML_SEQ } cx_yaml_kind;

typedef struct cx_yaml_node cx_yaml_node;

typedef struct {
    char *key;           /* owned */
    int line, col;       /* 1-based position of the key */
    cx_yaml_node *value; /* owned */
} cx_yaml_pair;

struct cx_yaml_node {
    cx_yaml_kind kind;
    int line, col;       /* 1-based position of the node's start */
    char *scalar;        /* SCALAR: owned text, as written */
    int quoted;          /* SCALAR: written in quotes (a string, never a number or null) */
    cx_yaml_pair *pairs; /* MAP: owned, in document order; keys are unique */
    cx_yaml_node **items;/* SEQ: owned */
    size_t count;        /* MAP: pairs; SEQ: items */
};

/* Parse a file with exactly one document (an empty file gives an empty map). Errors name
 * "PATH:LINE:COL". Duplicate keys and non-scalar keys are errors. */
cx_status cx_yaml_parse_file(const char *path, cx_yaml_node **root, cx_err *err);

/* Same for text in memory; name is used in messages in place of a path. */
cx_status cx_yaml_parse_string(const char *text, size_t len, const char *name,
                               cx_yaml_node **root, cx_err *err);

void cx_yaml_free(cx_yaml_node *node);

/* The value of key in a MAP node, or NULL (also NULL when node is not a map). */
const cx_yaml_node *cx_yaml_get(const cx_yaml_node *map, const char *key);
const cx_yaml_pair *cx_yaml_get_pair(const cx_yaml_node *map, const char *key);

/* 1 when a SCALAR is YAML null: unquoted "", "~", "null", "Null" or "NULL". */
int cx_yaml_is_null(const cx_yaml_node *node);

const char *cx_yaml_kind_name(cx_yaml_kind kind);

#endif
