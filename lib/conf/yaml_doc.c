/* YAML documents into position-annotated trees, via libyaml's event API. */
#include "lib/conf/yaml_doc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lib/base/strmap.h"

static cx_yaml_node *new_node(cx_yaml_kind kind, const yaml_mark_t *mark)
{
    cx_yaml_node *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->line = (int)mark->line + 1;
        n->col = (int)mark->column + 1;
    }
    return n;
}

void cx_yaml_free(cx_yaml_node *node)
{
    if (!node)
        return;
    free(node->scalar);
    for (size_t i = 0; node->kind == CX_YAML_MAP && i < node->count; i++) {
        free(node->pairs[i].key);
        cx_yaml_free(node->pairs[i].value);
    }
    for (size_t i = 0; node->kind == CX_YAML_SEQ && i < node->count; i++)
        cx_yaml_free(node->items[i]);
    free(node->pairs);
    free(node->items);
    free(node);
}

typedef struct {
    yaml_parser_t parser;
    const char *name;
    cx_err *err;
    int depth;
} doc_parser;

enum { MAX_DEPTH = 64 };

static cx_status parser_error(doc_parser *p)
{
    const yaml_parser_t *y = &p->parser;
    const yaml_mark_t *m = &y->problem_mark;
    return cx_fail(p->err, CX_EUSAGE, "%s:%zu:%zu: invalid YAML: %s%s%s", p->name, m->line + 1,
                   m->column + 1, y->problem ? y->problem : "syntax error",
                   y->context ? " " : "", y->context ? y->context : "");
}

static cx_status next_event(doc_parser *p, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&p->parser, ev))
        return parser_error(p);
    return CX_OK;
}

static cx_status parse_node(doc_parser *p, yaml_event_t *ev, cx_yaml_node **out);

static cx_status oom(doc_parser *p)
{
    return cx_fail(p->err, CX_ENOMEM, "%s: out of memory", p->name);
}

/* seen maps each key read so far to its pair, so the duplicate check stays linear in the keys. */
static cx_status parse_mapping_pairs(doc_parser *p, cx_yaml_node *map, cx_strmap *seen)
{
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        cx_status st = next_event(p, &ev);
        if (st)
            return st;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return CX_OK;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            st = cx_fail(p->err, CX_EUSAGE, "%s:%zu:%zu: a key must be a plain value", p->name,
                         ev.start_mark.line + 1, ev.start_mark.column + 1);
            yaml_event_delete(&ev);
            return st;
        }
        const char *key = (const char *)ev.data.scalar.value;
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        int first = cx_strmap_get(seen, key, strlen(key));
        if (first >= 0) {
            st = cx_fail(p->err, CX_EUSAGE, "%s:%d:%d: duplicate key '%s' (first at line %d)",
                         p->name, line, col, key, map->pairs[first].line);
            yaml_event_delete(&ev);
            return st;
        }
        if (map->count == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            cx_yaml_pair *np = realloc(map->pairs, ncap * sizeof *np);
            if (!np) {
                yaml_event_delete(&ev);
                return oom(p);
            }
            map->pairs = np;
            cap = ncap;
        }
        cx_yaml_pair *pair = &map->pairs[map->count];
        pair->key = strndup(key, ev.data.scalar.length);
        pair->line = line;
        pair->col = col;
        pair->value = NULL;
        yaml_event_delete(&ev);
        if (!pair->key || cx_strmap_put(seen, pair->key, strlen(pair->key), (int)map->count) == -2)
            return oom(p);
        map->count++;
        st = next_event(p, &ev);
        if (st)
            return st;
        st = parse_node(p, &ev, &pair->value);
        if (st)
            return st;
    }
}

static cx_status parse_mapping(doc_parser *p, cx_yaml_node *map)
{
    cx_strmap seen;
    if (cx_strmap_init(&seen, 8))
        return oom(p);
    cx_status st = parse_mapping_pairs(p, map, &seen);
    cx_strmap_free(&seen);
    return st;
}

static cx_status parse_sequence(doc_parser *p, cx_yaml_node *seq)
{
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        cx_status st = next_event(p, &ev);
        if (st)
            return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return CX_OK;
        }
        if (seq->count == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            cx_yaml_node **ni = realloc(seq->items, ncap * sizeof *ni);
            if (!ni) {
                yaml_event_delete(&ev);
                return oom(p);
            }
            seq->items = ni;
            cap = ncap;
        }
        seq->items[seq->count] = NULL;
        st = parse_node(p, &ev, &seq->items[seq->count]);
        seq->count++;
        if (st)
            return st;
    }
}

/* Consumes ev (always deleted) and builds the node it starts. */
static cx_status parse_node(doc_parser *p, yaml_event_t *ev, cx_yaml_node **out)
{
    cx_status st = CX_OK;
    yaml_mark_t mark = ev->start_mark;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    if (ev->type == YAML_SCALAR_EVENT) {
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    }
    if (ev->type == YAML_ALIAS_EVENT || anchor || tag) {
        st = cx_fail(p->err, CX_EUSAGE, "%s:%zu:%zu: anchors, aliases and tags are not supported",
                     p->name, mark.line + 1, mark.column + 1);
        yaml_event_delete(ev);
        return st;
    }
    if (++p->depth > MAX_DEPTH) {
        yaml_event_delete(ev);
        return cx_fail(p->err, CX_EUSAGE, "%s:%zu:%zu: nested deeper than %d levels", p->name,
                       mark.line + 1, mark.column + 1, MAX_DEPTH);
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        *out = new_node(CX_YAML_SCALAR, &mark);
        if (!*out) {
            st = oom(p);
            break;
        }
        (*out)->scalar = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        (*out)->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                         ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                         ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                         ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
        if (!(*out)->scalar)
            st = oom(p);
        else if (strlen((*out)->scalar) != ev->data.scalar.length)
            st = cx_fail(p->err, CX_EUSAGE, "%s:%zu:%zu: a value contains a NUL character",
                         p->name, mark.line + 1, mark.column + 1);
        yaml_event_delete(ev);
        break;
    case YAML_MAPPING_START_EVENT:
        yaml_event_delete(ev);
        *out = new_node(CX_YAML_MAP, &mark);
        st = *out ? parse_mapping(p, *out) : oom(p);
        break;
    case YAML_SEQUENCE_START_EVENT:
        yaml_event_delete(ev);
        *out = new_node(CX_YAML_SEQ, &mark);
        st = *out ? parse_sequence(p, *out) : oom(p);
        break;
    default:
        st = cx_fail(p->err, CX_EUSAGE, "%s:%zu:%zu: unexpected YAML structure", p->name,
                     mark.line + 1, mark.column + 1);
        yaml_event_delete(ev);
        break;
    }
    p->depth--;
    return st;
}

static cx_status parse_document(doc_parser *p, cx_yaml_node **root)
{
    yaml_event_t ev;
    cx_status st;
    *root = NULL;
    /* STREAM-START, then DOCUMENT-START or (empty input) STREAM-END. */
    if ((st = next_event(p, &ev)))
        return st;
    yaml_event_delete(&ev);
    if ((st = next_event(p, &ev)))
        return st;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_mark_t mark = ev.start_mark;
        yaml_event_delete(&ev);
        *root = new_node(CX_YAML_MAP, &mark);
        return *root ? CX_OK : oom(p);
    }
    yaml_event_delete(&ev);
    if ((st = next_event(p, &ev)))
        return st;
    if ((st = parse_node(p, &ev, root)))
        return st;
    /* DOCUMENT-END, then STREAM-END: a second document is an error. */
    if ((st = next_event(p, &ev)))
        return st;
    yaml_event_delete(&ev);
    if ((st = next_event(p, &ev)))
        return st;
    if (ev.type != YAML_STREAM_END_EVENT) {
        st = cx_fail(p->err, CX_EUSAGE, "%s:%zu:%zu: only one YAML document is allowed", p->name,
                     ev.start_mark.line + 1, ev.start_mark.column + 1);
        yaml_event_delete(&ev);
        return st;
    }
    yaml_event_delete(&ev);
    return CX_OK;
}

static cx_status parse_with(doc_parser *p, cx_yaml_node **root)
{
    cx_status st = parse_document(p, root);
    yaml_parser_delete(&p->parser);
    if (st) {
        cx_yaml_free(*root);
        *root = NULL;
    }
    return st;
}

cx_status cx_yaml_parse_string(const char *text, size_t len, const char *name,
                               cx_yaml_node **root, cx_err *err)
{
    doc_parser p = {.name = name, .err = err};
    *root = NULL;
    if (!yaml_parser_initialize(&p.parser))
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", name);
    yaml_parser_set_input_string(&p.parser, (const unsigned char *)text, len);
    return parse_with(&p, root);
}

cx_status cx_yaml_parse_file(const char *path, cx_yaml_node **root, cx_err *err)
{
    *root = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return cx_fail_errno(err, errno == ENOENT ? CX_EDATA : CX_EIO, errno, "%s", path);
    doc_parser p = {.name = path, .err = err};
    if (!yaml_parser_initialize(&p.parser)) {
        fclose(fp);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    yaml_parser_set_input_file(&p.parser, fp);
    cx_status st = parse_with(&p, root);
    if (!st && ferror(fp))
        st = cx_fail(err, CX_EIO, "%s: read error", path);
    fclose(fp);
    if (st) {
        cx_yaml_free(*root);
        *root = NULL;
    }
    return st;
}

const cx_yaml_pair *cx_yaml_get_pair(const cx_yaml_node *map, const char *key)
{
    if (!map || map->kind != CX_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->count; i++)
        if (strcmp(map->pairs[i].key, key) == 0)
            return &map->pairs[i];
    return NULL;
}

const cx_yaml_node *cx_yaml_get(const cx_yaml_node *map, const char *key)
{
    const cx_yaml_pair *p = cx_yaml_get_pair(map, key);
    return p ? p->value : NULL;
}

int cx_yaml_is_null(const cx_yaml_node *node)
{
    if (!node || node->kind != CX_YAML_SCALAR || node->quoted)
        return 0;
    const char *s = node->scalar;
    return !s[0] || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

const char *cx_yaml_kind_name(cx_yaml_kind kind)
{
    switch (kind) {
    case CX_YAML_SCALAR:
        return "a value";
    case CX_YAML_MAP:
        return "a mapping";
    case CX_YAML_SEQ:
        return "a list";
    }
    return "?";
}
