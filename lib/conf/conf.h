/* Typed configuration from YAML: a table of key descriptors (dotted path, type, offset into a
 * struct, default, range or choices, doc) drives loading, `--set KEY=VALUE` overrides, checks
 * with file:line:column messages, and writing the resolved configuration back as YAML. */
#ifndef CX_CONF_CONF_H
#define CX_CONF_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/base/err.h"
#include "lib/conf/yaml_doc.h"

typedef enum {
    CX_CONF_BOOL,       /* field: bool */
    CX_CONF_INT,        /* field: int64_t */
    CX_CONF_DOUBLE,     /* field: double, always finite */
    CX_CONF_STRING,     /* field: char *, owned; NULL only when the key is nullable and null */
    CX_CONF_ENUM,       /* field: int (or an enum of int size): index into choices */
    CX_CONF_PATH,       /* field: char *, owned, absolute, lexically normalised; NULL for null */
    CX_CONF_INT_LIST,   /* field: cx_conf_ints */
    CX_CONF_DOUBLE_LIST /* field: cx_conf_doubles */
} cx_conf_type;

typedef struct {
    int64_t *v; /* (n), owned; NULL when n is 0 */
    size_t n;
} cx_conf_ints;

typedef struct {
    double *v; /* (n), owned; NULL when n is 0 */
    size_t n;
} cx_conf_doubles;

/* Descriptor flags. Bounds apply to the value, or to every element of a list. */
enum {
    CX_CONF_NULLABLE = 1 << 0, /* STRING and PATH: null allowed (stored as NULL) */
    CX_CONF_MIN = 1 << 1,      /* value >= min */
    CX_CONF_MAX = 1 << 2,      /* value <= max */
    CX_CONF_MIN_OPEN = 1 << 3, /* with CX_CONF_MIN: value > min */
    CX_CONF_MAX_OPEN = 1 << 4, /* with CX_CONF_MAX: value < max */
    /* Written back only when it differs from its default: a key added after run folders
     * exist leaves their configuration text (which checkpoints record) unchanged, so they
     * still load and resume, and a run that does not set it writes the same bytes as before. */
    CX_CONF_OMIT_DEFAULT = 1 << 5
};

typedef struct {
    const char *key;             /* dotted path, e.g. "model.image.dim" */
    cx_conf_type type;
    size_t offset;               /* offsetof the field in the target struct */
    const char *def;             /* default as YAML text: "10", "true", "[1024, 1024]", "null" */
    unsigned flags;
    double min, max;             /* bounds, as the flags say */
    const char *const *choices;  /* ENUM: names, NULL-terminated; the stored value is the index */
    size_t min_len, max_len;     /* lists: allowed length; max_len 0 means no upper limit */
    const char *doc;             /* one line */
} cx_conf_key;

typedef struct {
    const cx_conf_key *keys; /* in the order the configuration is written and listed */
    size_t count;
    size_t size;             /* sizeof the target struct */
} cx_conf_schema;

/* Check the table itself: unique well-formed keys, no key that is also a group of keys, every
 * default valid for its key. A failure is a programming error in the table (CX_EUSAGE). */
cx_status cx_conf_schema_check(const cx_conf_schema *s, cx_err *err);

/* Zero *obj, then give every key its default. */
cx_status cx_conf_init(const cx_conf_schema *s, void *obj, cx_err *err);

/* Apply the keys of a YAML file to *obj (already initialised). Nested maps and dotted keys
 * both name keys (`model: {image: {dim: 8}}` is `model.image.dim: 8`); a key given twice in one
 * file is an error. Relative paths resolve against the file's folder. Errors: CX_EUSAGE for a
 * bad configuration ("PATH:LINE:COL: ..."), CX_EDATA / CX_EIO when the file cannot be read.
 * On failure *obj holds a mix of old and new values and must still be freed. */
cx_status cx_conf_apply_file(const cx_conf_schema *s, void *obj, const char *path, cx_err *err);

/* The same for a parsed tree; name is used in messages, base_dir (NULL: the current folder)
 * resolves relative paths. */
cx_status cx_conf_apply_yaml(const cx_conf_schema *s, void *obj, const cx_yaml_node *root,
                             const char *name, const char *base_dir, cx_err *err);

/* One override "KEY=VALUE" (clipx's --set). VALUE reads like a YAML scalar of the key's type
 * ("null", quotes, "[1, 2]" or "1,2" for lists, "{a: 1}" for a group of keys); relative paths
 * resolve against the current folder. Messages start with the assignment: "KEY=VALUE: ". */
cx_status cx_conf_set(const cx_conf_schema *s, void *obj, const char *assignment, cx_err *err);

/* The same with the key and value apart; where names the origin in messages (the caller's
 * word for it, e.g. clipx's "--data"). */
cx_status cx_conf_set_value(const cx_conf_schema *s, void *obj, const char *key,
                            const char *value, const char *where, cx_err *err);

/* Defaults, then the file (when path is not NULL), then each assignment in order (later ones
 * win). On failure *obj is freed and zeroed. */
cx_status cx_conf_load(const cx_conf_schema *s, void *obj, const char *path,
                       const char *const *sets, size_t nsets, cx_err *err);

/* Free the strings and lists of *obj and zero it. Safe on a zeroed or half-loaded struct. */
void cx_conf_free(const cx_conf_schema *s, void *obj);

/* 1 when every key holds the same value in a and b (doubles compared bit for bit). */
int cx_conf_equal(const cx_conf_schema *s, const void *a, const void *b);

/* The resolved configuration as YAML: nested maps, keys in schema order, every key present
 * (but CX_CONF_OMIT_DEFAULT keys at their default), doubles with enough digits to read back
 * bit-identical. name labels a write error. */
cx_status cx_conf_write(const cx_conf_schema *s, const void *obj, FILE *fp, const char *name,
                        cx_err *err);

/* cx_conf_write into path, atomically. */
cx_status cx_conf_write_file(const cx_conf_schema *s, const void *obj, const char *path,
                             cx_err *err);

/* The schema as text, one row per key in schema order, for listings and documentation. */
typedef struct {
    const char *key;  /* the schema's */
    char *type;       /* owned: cx_conf_type_desc */
    char *def;        /* owned: the default as cx_conf_write writes it */
    const char *doc;  /* the schema's */
} cx_conf_row;

/* *rows: (s->count), owned by the caller; free with cx_conf_rows_free. */
cx_status cx_conf_list(const cx_conf_schema *s, cx_conf_row **rows, cx_err *err);
void cx_conf_rows_free(cx_conf_row *rows, size_t count);

/* The descriptor of key, or NULL. */
const cx_conf_key *cx_conf_find(const cx_conf_schema *s, const char *key);

/* The choice name of an ENUM key's value, or NULL when key is not an enum or value is out of
 * range. */
const char *cx_conf_enum_name(const cx_conf_schema *s, const char *key, int value);

/* The key's type as shown to users, e.g. "int >= 1", "double in [0, 1)", "enum: clip|sl",
 * "path or null", "double list of 2". Truncated to fit n bytes. */
void cx_conf_type_desc(const cx_conf_key *k, char *buf, size_t n);

#endif
