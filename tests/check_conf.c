/* Typed configuration: every key type, nesting, positions in messages, --set, paths, the YAML
 * write-back round trip (on a small schema and on the training schema as a large one; the
 * training schema's own defaults and rules are tested in check_train_config). */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/err.h"
#include "lib/conf/conf.h"
#include "lib/conf/yaml_doc.h"
#include "lib/run/train_config.h"

/* ---- a small schema with every type ------------------------------------------------------- */

typedef struct {
    bool flag;
    int64_t n;
    double x;
    char *name;
    int color;
    char *file;
    char *req;
    cx_conf_ints ints;
    cx_conf_doubles pair;
    int64_t big;
    struct {
        struct {
            int64_t depth;
        } b;
        double c;
    } a;
} toy;

#define AT(f) offsetof(toy, f)
static const cx_conf_key toy_keys[] = {
    {"flag", CX_CONF_BOOL, AT(flag), "false", .doc = "a bool"},
    {"n", CX_CONF_INT, AT(n), "5", .flags = CX_CONF_MIN | CX_CONF_MAX, .min = 1, .max = 100, .doc = "an int in [1, 100]"},
    {"x", CX_CONF_DOUBLE, AT(x), "0.5", .flags = CX_CONF_MIN | CX_CONF_MIN_OPEN, .min = 0, .doc = "a double > 0"},
    {"name", CX_CONF_STRING, AT(name), "abc", .doc = "a string"},
    {"color", CX_CONF_ENUM, AT(color), "green", .choices = (const char *const[]){"red", "green", "blue", NULL}, .doc = "an enum"},
    {"file", CX_CONF_PATH, AT(file), "null", .flags = CX_CONF_NULLABLE, .doc = "a path or null"},
    {"req", CX_CONF_PATH, AT(req), "/r/./s", .doc = "a path, never null"},
    {"ints", CX_CONF_INT_LIST, AT(ints), "[1, 2]", .flags = CX_CONF_MIN, .min = 0, .min_len = 1, .max_len = 3, .doc = "1 to 3 ints >= 0"},
    {"pair", CX_CONF_DOUBLE_LIST, AT(pair), "[0.25, 0.5]", .flags = CX_CONF_MIN | CX_CONF_MAX | CX_CONF_MAX_OPEN, .min = 0, .max = 1, .min_len = 2, .max_len = 2, .doc = "two doubles in [0, 1)"},
    {"big", CX_CONF_INT, AT(big), "0", .doc = "an int without bounds"},
    {"a.b.depth", CX_CONF_INT, AT(a.b.depth), "7", .flags = CX_CONF_MIN, .min = 0, .doc = "nested int"},
    {"a.c", CX_CONF_DOUBLE, AT(a.c), "-1.5", .doc = "nested double"},
};
static const cx_conf_schema toy_schema = {toy_keys, sizeof toy_keys / sizeof toy_keys[0], sizeof(toy)};

static const cx_conf_schema *T = &toy_schema;

/* Defaults, then yaml (named "t.yaml", paths relative to /base). */
static cx_status toy_yaml(toy *t, const char *yaml, cx_err *err)
{
    cx_status st = cx_conf_init(T, t, err);
    ck_assert_int_eq(st, CX_OK);
    cx_yaml_node *root = NULL;
    st = cx_yaml_parse_string(yaml, strlen(yaml), "t.yaml", &root, err);
    if (!st)
        st = cx_conf_apply_yaml(T, t, root, "t.yaml", "/base", err);
    cx_yaml_free(root);
    return st;
}

/* The message of a YAML text that must fail with CX_EUSAGE. */
static const char *toy_error(const char *yaml)
{
    static cx_err err;
    toy t;
    cx_err_clear(&err);
    cx_status st = toy_yaml(&t, yaml, &err);
    cx_conf_free(T, &t);
    ck_assert_msg(st == CX_EUSAGE, "'%s' gave status %d (%s)", yaml, st, err.msg);
    return err.msg;
}

static const char *toy_set_error(const char *assignment)
{
    static cx_err err;
    toy t;
    cx_err_clear(&err);
    ck_assert_int_eq(cx_conf_init(T, &t, &err), CX_OK);
    cx_status st = cx_conf_set(T, &t, assignment, &err);
    cx_conf_free(T, &t);
    ck_assert_msg(st == CX_EUSAGE, "'%s' gave status %d (%s)", assignment, st, err.msg);
    return err.msg;
}

static char *write_string(const cx_conf_schema *s, const void *obj)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(mem);
    cx_err err;
    ck_assert_int_eq(cx_conf_write(s, obj, mem, "memory", &err), CX_OK);
    fclose(mem);
    return buf;
}

/* ---- temporary folder --------------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clipx-conf-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                struct stat sb;
                if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                    remove_tree(p);
                else
                    unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

static void remove_tmpdir(void)
{
    remove_tree(tmpdir);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    ck_assert_int_eq(fclose(fp), 0);
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* ---- schema --------------------------------------------------------------------------------- */

START_TEST(schemas_pass_their_own_check)
{
    cx_err err;
    cx_err_clear(&err);
    ck_assert_int_eq(cx_conf_schema_check(T, &err), CX_OK);
    ck_assert_int_eq(cx_conf_schema_check(&cx_train_config_schema, &err), CX_OK);
    ck_assert_uint_eq(cx_train_config_schema.count, 91);
}
END_TEST

typedef struct {
    int64_t a, b;
    char *s;
} mini;

START_TEST(schema_check_catches_table_mistakes)
{
    cx_err err;
    mini obj;
#define OBJ_AT(f) offsetof(mini, f)
    const cx_conf_key dup[] = {{"a", CX_CONF_INT, OBJ_AT(a), "1", .doc = "x"},
                               {"a", CX_CONF_INT, OBJ_AT(b), "1", .doc = "x"}};
    const cx_conf_key group[] = {{"a", CX_CONF_INT, OBJ_AT(a), "1", .doc = "x"},
                                 {"a.b", CX_CONF_INT, OBJ_AT(b), "1", .doc = "x"}};
    const cx_conf_key bad_default[] = {{"a", CX_CONF_INT, OBJ_AT(a), "1.5", .doc = "x"}};
    const cx_conf_key out_of_range[] = {{"a", CX_CONF_INT, OBJ_AT(a), "0", .flags = CX_CONF_MIN, .min = 1, .doc = "x"}};
    const cx_conf_key nullable_int[] = {{"a", CX_CONF_INT, OBJ_AT(a), "1", .flags = CX_CONF_NULLABLE, .doc = "x"}};
    const cx_conf_key overlap[] = {{"a", CX_CONF_INT, OBJ_AT(a), "1", .doc = "x"},
                                   {"b", CX_CONF_INT, OBJ_AT(a), "1", .doc = "x"}};
    const cx_conf_key outside[] = {{"a", CX_CONF_INT, sizeof obj, "1", .doc = "x"}};
    const cx_conf_key bad_name[] = {{"a..b", CX_CONF_INT, OBJ_AT(a), "1", .doc = "x"}};
    const cx_conf_key no_doc[] = {{"a", CX_CONF_INT, OBJ_AT(a), "1", .doc = NULL}};
    const cx_conf_key frac_bound[] = {{"a", CX_CONF_INT, OBJ_AT(a), "1", .flags = CX_CONF_MIN, .min = 0.5, .doc = "x"}};
    const cx_conf_key ok[] = {{"a", CX_CONF_INT, OBJ_AT(a), "1", .doc = "x"},
                              {"s", CX_CONF_STRING, OBJ_AT(s), "t", .doc = "x"}};
    struct {
        const cx_conf_key *keys;
        size_t n;
        const char *want;
    } cases[] = {
        {dup, 2, "schema: a appears twice"},
        {group, 2, "schema: a and a.b: a key cannot also be a group"},
        {bad_default, 1, "schema: default of a: a: '1.5' is not an integer"},
        {out_of_range, 1, "schema: default of a: a: 0 is out of range (must be >= 1)"},
        {nullable_int, 1, "schema: a: only strings and paths can be null"},
        {overlap, 2, "schema: a and b share struct bytes"},
        {outside, 1, "schema: a: field outside the struct"},
        {bad_name, 1, "schema: entry 0: bad key name 'a..b'"},
        {no_doc, 1, "schema: a: no doc line"},
        {frac_bound, 1, "schema: a: integer keys need integer bounds"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cx_conf_schema s = {cases[i].keys, cases[i].n, sizeof obj};
        cx_err_clear(&err);
        ck_assert_int_eq(cx_conf_schema_check(&s, &err), CX_EUSAGE);
        ck_assert_str_eq(err.msg, cases[i].want);
    }
    cx_conf_schema s = {ok, 2, sizeof obj};
    ck_assert_int_eq(cx_conf_schema_check(&s, &err), CX_OK);
#undef OBJ_AT
}
END_TEST

START_TEST(defaults_fill_every_field)
{
    cx_err err;
    toy t;
    memset(&t, 0xab, sizeof t); /* init must zero first: no garbage pointer is freed */
    ck_assert_int_eq(cx_conf_init(T, &t, &err), CX_OK);
    ck_assert(!t.flag);
    ck_assert_int_eq(t.n, 5);
    ck_assert(t.x == 0.5);
    ck_assert_str_eq(t.name, "abc");
    ck_assert_int_eq(t.color, 1);
    ck_assert_ptr_null(t.file);
    ck_assert_str_eq(t.req, "/r/s");
    ck_assert_uint_eq(t.ints.n, 2);
    ck_assert_int_eq(t.ints.v[0], 1);
    ck_assert_int_eq(t.ints.v[1], 2);
    ck_assert_uint_eq(t.pair.n, 2);
    ck_assert(t.pair.v[0] == 0.25 && t.pair.v[1] == 0.5);
    ck_assert_int_eq(t.a.b.depth, 7);
    ck_assert(t.a.c == -1.5);
    cx_conf_free(T, &t);
    ck_assert_ptr_null(t.name);
    ck_assert_uint_eq(t.ints.n, 0);
    cx_conf_free(T, &t); /* twice is safe */
}
END_TEST

/* ---- reading YAML ------------------------------------------------------------------------- */

START_TEST(every_type_from_yaml)
{
    cx_err err;
    toy t;
    ck_assert_int_eq(toy_yaml(&t,
                              "flag: true\n"
                              "n: 100\n"
                              "x: 1e-3\n"
                              "name: 'it''s: #1'\n"
                              "color: blue\n"
                              "file: data/../x.txt\n"
                              "req: /abs\n"
                              "ints: [0, 9, 3]\n"
                              "pair: [0, 0.999]\n"
                              "big: -9223372036854775808\n"
                              "a.b.depth: 0\n"
                              "a.c: -2\n",
                              &err),
                     CX_OK);
    ck_assert(t.flag);
    ck_assert_int_eq(t.n, 100);
    ck_assert(t.x == 1e-3);
    ck_assert_str_eq(t.name, "it's: #1");
    ck_assert_int_eq(t.color, 2);
    ck_assert_str_eq(t.file, "/base/x.txt");
    ck_assert_str_eq(t.req, "/abs");
    ck_assert_uint_eq(t.ints.n, 3);
    ck_assert_int_eq(t.ints.v[0], 0);
    ck_assert_int_eq(t.ints.v[1], 9);
    ck_assert_int_eq(t.ints.v[2], 3);
    ck_assert(t.pair.v[0] == 0 && t.pair.v[1] == 0.999);
    ck_assert_int_eq(t.big, INT64_MIN);
    ck_assert_int_eq(t.a.b.depth, 0);
    ck_assert(t.a.c == -2);
    cx_conf_free(T, &t);

    /* Other spellings YAML allows. */
    ck_assert_int_eq(toy_yaml(&t, "flag: True\nbig: +9223372036854775807\nx: .5\nname: 12\n", &err), CX_OK);
    ck_assert(t.flag);
    ck_assert_int_eq(t.big, INT64_MAX);
    ck_assert(t.x == 0.5);
    ck_assert_str_eq(t.name, "12"); /* a string key keeps the text as written */
    cx_conf_free(T, &t);
}
END_TEST

START_TEST(nesting_both_ways_gives_the_same_struct)
{
    cx_err err;
    toy flat, nested, mixed, flow;
    ck_assert_int_eq(toy_yaml(&flat, "a.b.depth: 3\na.c: 4.5\n", &err), CX_OK);
    ck_assert_int_eq(toy_yaml(&nested, "a:\n  b:\n    depth: 3\n  c: 4.5\n", &err), CX_OK);
    ck_assert_int_eq(toy_yaml(&mixed, "a:\n  b.depth: 3\na.c: 4.5\n", &err), CX_OK);
    ck_assert_int_eq(toy_yaml(&flow, "a: {b: {depth: 3}, c: 4.5}\n", &err), CX_OK);
    ck_assert_int_eq(flat.a.b.depth, 3);
    ck_assert(flat.a.c == 4.5);
    ck_assert(cx_conf_equal(T, &flat, &nested));
    ck_assert(cx_conf_equal(T, &flat, &mixed));
    ck_assert(cx_conf_equal(T, &flat, &flow));
    /* A group left empty (every line below it commented out) sets nothing. */
    toy empty;
    ck_assert_int_eq(toy_yaml(&empty, "a:\n  # b: {depth: 1}\n", &err), CX_OK);
    ck_assert_int_eq(empty.a.b.depth, 7);
    ck_assert(!cx_conf_equal(T, &flat, &empty));
    cx_conf_free(T, &flat);
    cx_conf_free(T, &nested);
    cx_conf_free(T, &mixed);
    cx_conf_free(T, &flow);
    cx_conf_free(T, &empty);
}
END_TEST

START_TEST(unknown_keys_name_line_column_and_a_suggestion)
{
    ck_assert_str_eq(toy_error("n: 3\na:\n  b:\n    dpeth: 1\n"),
                     "t.yaml:4:5: unknown key 'a.b.dpeth' (did you mean 'a.b.depth'?)");
    ck_assert_str_eq(toy_error("a.b.depht: 1\n"),
                     "t.yaml:1:1: unknown key 'a.b.depht' (did you mean 'a.b.depth'?)");
    ck_assert_str_eq(toy_error("colour: red\n"),
                     "t.yaml:1:1: unknown key 'colour' (did you mean 'color'?)");
    ck_assert_str_eq(toy_error("a: {x: 1}\n"), "t.yaml:1:5: unknown key 'a.x' (did you mean 'a.b'?)");
    ck_assert_str_eq(toy_error("a: {xyz_w: 1}\n"), "t.yaml:1:5: unknown key 'a.xyz_w'");
    /* The last part matching a key's last part. */
    ck_assert_str_eq(toy_error("depth: 1\n"),
                     "t.yaml:1:1: unknown key 'depth' (did you mean 'a.b.depth'?)");
    ck_assert_str_eq(toy_error("zzz_qqq_www: 1\n"), "t.yaml:1:1: unknown key 'zzz_qqq_www'");
    ck_assert_str_eq(toy_error("a..c: 1\n"), "t.yaml:1:1: unknown key 'a..c' (did you mean 'a.c'?)");
    ck_assert_str_eq(toy_error("a.b.depth.x: 1\n"),
                     "t.yaml:1:1: unknown key 'a.b.depth.x' (did you mean 'a.b.depth'?)");

    /* The training schema, as in the contract's example. */
    cx_err err;
    cx_train_config c;
    ck_assert_int_eq(cx_train_config_load(&c, NULL, (const char *const[]){"model.image.hiden=3"}, 1, &err),
                     CX_EUSAGE);
    ck_assert_str_eq(err.msg, "model.image.hiden=3: unknown key 'model.image.hiden' (did you "
                              "mean 'model.image.hidden'?)");
    ck_assert_int_eq(cx_train_config_load(&c, NULL, (const char *const[]){"lr=0.1"}, 1, &err), CX_EUSAGE);
    ck_assert_str_eq(err.msg, "lr=0.1: unknown key 'lr' (did you mean 'optim.lr'?)");
    ck_assert_int_eq(cx_train_config_load(&c, NULL, (const char *const[]){"gamma=0.1"}, 1, &err), CX_EUSAGE);
    ck_assert_str_eq(err.msg, "gamma=0.1: unknown key 'gamma' (did you mean 'focal.gamma' or "
                              "'optim.gamma'?)");
}
END_TEST

START_TEST(wrong_types_name_the_key_and_position)
{
    ck_assert_str_eq(toy_error("n: abc\n"), "t.yaml:1:4: n: 'abc' is not an integer");
    ck_assert_str_eq(toy_error("n: 1.0\n"), "t.yaml:1:4: n: '1.0' is not an integer");
    ck_assert_str_eq(toy_error("n: \"3\"\n"), "t.yaml:1:4: n: \"3\" is a quoted string, not an integer");
    ck_assert_str_eq(toy_error("x: fast\n"), "t.yaml:1:4: x: 'fast' is not a number");
    ck_assert_str_eq(toy_error("x: .inf\n"), "t.yaml:1:4: x: '.inf' is not a finite number");
    ck_assert_str_eq(toy_error("x: nan\n"), "t.yaml:1:4: x: 'nan' is not a finite number");
    ck_assert_str_eq(toy_error("x: 1e400\n"), "t.yaml:1:4: x: '1e400' is not a finite number");
    ck_assert_str_eq(toy_error("flag: yes\n"), "t.yaml:1:7: flag: 'yes' is not true or false");
    ck_assert_str_eq(toy_error("flag: 'true'\n"), "t.yaml:1:7: flag: \"true\" is a quoted string, not true or false");
    ck_assert_str_eq(toy_error("color: bleu\n"),
                     "t.yaml:1:8: color: 'bleu' is not one of red|green|blue (did you mean 'blue'?)");
    ck_assert_str_eq(toy_error("color: purple\n"), "t.yaml:1:8: color: 'purple' is not one of red|green|blue");
    ck_assert_str_eq(toy_error("big: 9223372036854775808\n"),
                     "t.yaml:1:6: big: 9223372036854775808 does not fit a 64-bit integer");
    ck_assert_str_eq(toy_error("ints: [1, x]\n"), "t.yaml:1:11: ints[1]: 'x' is not an integer");
    ck_assert_str_eq(toy_error("ints: [1, [2]]\n"), "t.yaml:1:11: ints[1]: expected an integer, got a list");
}
END_TEST

START_TEST(ranges_and_list_lengths)
{
    ck_assert_str_eq(toy_error("n: 0\n"), "t.yaml:1:4: n: 0 is out of range (must be in [1, 100])");
    ck_assert_str_eq(toy_error("n: 101\n"), "t.yaml:1:4: n: 101 is out of range (must be in [1, 100])");
    ck_assert_str_eq(toy_error("x: 0\n"), "t.yaml:1:4: x: 0 is out of range (must be > 0)");
    ck_assert_str_eq(toy_error("x: -0.0\n"), "t.yaml:1:4: x: -0.0 is out of range (must be > 0)");
    ck_assert_str_eq(toy_error("a.b.depth: -1\n"), "t.yaml:1:12: a.b.depth: -1 is out of range (must be >= 0)");
    ck_assert_str_eq(toy_error("pair: [0.5, 1]\n"), "t.yaml:1:13: pair[1]: 1 is out of range (must be in [0, 1))");
    ck_assert_str_eq(toy_error("pair: [0.5]\n"), "t.yaml:1:7: pair: 1 value given, exactly 2 allowed");
    ck_assert_str_eq(toy_error("ints: []\n"), "t.yaml:1:7: ints: 0 values given, at least 1 allowed");
    ck_assert_str_eq(toy_error("ints: [1, 2, 3, 4]\n"), "t.yaml:1:7: ints: 4 values given, at most 3 allowed");
    ck_assert_str_eq(toy_error("ints: [-1]\n"), "t.yaml:1:8: ints[0]: -1 is out of range (must be >= 0)");

    cx_err err;
    toy t;
    ck_assert_int_eq(toy_yaml(&t, "n: 1\nx: 4.9e-324\npair: [0, 0.9999999999999999]\n", &err), CX_OK);
    ck_assert_int_eq(t.n, 1);
    ck_assert(t.x == 4.9e-324);
    ck_assert(t.pair.v[1] == 0.9999999999999999);
    cx_conf_free(T, &t);
}
END_TEST

START_TEST(maps_lists_and_values_in_the_wrong_place)
{
    ck_assert_str_eq(toy_error("n: {a: 1}\n"), "t.yaml:1:4: n: expected an integer, got a mapping");
    ck_assert_str_eq(toy_error("n: [1]\n"), "t.yaml:1:4: n: expected an integer, got a list");
    ck_assert_str_eq(toy_error("name:\n  x: 1\n"), "t.yaml:2:3: name: expected a string, got a mapping");
    ck_assert_str_eq(toy_error("ints: 3\n"), "t.yaml:1:7: ints: expected a list of integers like [1, 2], got a value");
    ck_assert_str_eq(toy_error("pair: {a: 1}\n"), "t.yaml:1:7: pair: expected a list of numbers like [1, 2], got a mapping");
    ck_assert_str_eq(toy_error("a: 3\n"),
                     "t.yaml:1:4: 'a' is a group of keys (such as 'a.b.depth'), so it takes a mapping, not a value");
    ck_assert_str_eq(toy_error("a:\n  b: [1]\n"),
                     "t.yaml:2:6: 'a.b' is a group of keys (such as 'a.b.depth'), so it takes a mapping, not a value");
    ck_assert_str_eq(toy_error("- n\n"), "t.yaml:1:1: expected a mapping of configuration keys, got a list");
    ck_assert_str_eq(toy_error("n: 2\nn: 3\n"), "t.yaml:2:1: duplicate key 'n' (first at line 1)");
    ck_assert_str_eq(toy_error("a.c: 1\na:\n  c: 2\n"), "t.yaml:3:3: a.c is set twice (first at line 1)");
}
END_TEST

START_TEST(null_only_where_the_key_allows_it)
{
    cx_err err;
    toy t;
    ck_assert_int_eq(toy_yaml(&t, "file: x\n", &err), CX_OK);
    ck_assert_str_eq(t.file, "/base/x");
    cx_conf_free(T, &t);
    const char *nulls[] = {"file: null\n", "file: ~\n", "file:\n", "file: NULL\n"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(toy_yaml(&t, nulls[i], &err), CX_OK);
        ck_assert_ptr_null(t.file);
        cx_conf_free(T, &t);
    }
    /* Quoted, "null" is a name. */
    ck_assert_int_eq(toy_yaml(&t, "file: 'null'\nname: \"~\"\n", &err), CX_OK);
    ck_assert_str_eq(t.file, "/base/null");
    ck_assert_str_eq(t.name, "~");
    cx_conf_free(T, &t);
    ck_assert_str_eq(toy_error("req: null\n"), "t.yaml:1:6: req: null is not allowed (expected a path)");
    ck_assert_str_eq(toy_error("name: ~\n"), "t.yaml:1:7: name: null is not allowed (expected a string)");
    ck_assert_str_eq(toy_error("n:\n"), "t.yaml:1:3: n: null is not allowed (expected an integer)");
    ck_assert_str_eq(toy_error("color: null\n"), "t.yaml:1:8: color: null is not allowed (expected one of red|green|blue)");
    ck_assert_str_eq(toy_error("ints: null\n"), "t.yaml:1:7: ints: null is not allowed (use [] for an empty list)");
    ck_assert_str_eq(toy_error("ints: [1, null]\n"), "t.yaml:1:11: ints[1]: null is not allowed (expected an integer)");
    ck_assert_str_eq(toy_error("file: ''\n"), "t.yaml:1:7: file: the path is empty (write null for none)");
}
END_TEST

/* ---- --set -------------------------------------------------------------------------------- */

START_TEST(set_values_read_like_yaml_scalars)
{
    cx_err err;
    toy t;
    ck_assert_int_eq(cx_conf_init(T, &t, &err), CX_OK);
    const char *sets[] = {"flag=true",        "n = 42",          "x=2.5e-3",        "name=a: b #c",
                          "color=red",        "ints=[4, 5]",     "pair=0.125,0.75", "a.b.depth=9",
                          "a={c: 3.25}",      "file=/f//g/./h/", "big=-12"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        ck_assert_msg(cx_conf_set(T, &t, sets[i], &err) == CX_OK, "%s: %s", sets[i], err.msg);
    ck_assert(t.flag);
    ck_assert_int_eq(t.n, 42);
    ck_assert(t.x == 2.5e-3);
    ck_assert_str_eq(t.name, "a: b #c"); /* plain text stays as written */
    ck_assert_int_eq(t.color, 0);
    ck_assert_uint_eq(t.ints.n, 2);
    ck_assert_int_eq(t.ints.v[0], 4);
    ck_assert_int_eq(t.ints.v[1], 5);
    ck_assert(t.pair.v[0] == 0.125 && t.pair.v[1] == 0.75);
    ck_assert_int_eq(t.a.b.depth, 9);
    ck_assert(t.a.c == 3.25);
    ck_assert_str_eq(t.file, "/f/g/h");
    ck_assert_int_eq(t.big, -12);

    /* Quotes, null, single-item lists. */
    ck_assert_int_eq(cx_conf_set(T, &t, "name=\"x\\ty\"", &err), CX_OK);
    ck_assert_str_eq(t.name, "x\ty");
    ck_assert_int_eq(cx_conf_set(T, &t, "name='null'", &err), CX_OK);
    ck_assert_str_eq(t.name, "null");
    ck_assert_int_eq(cx_conf_set(T, &t, "name=", &err), CX_EUSAGE);
    ck_assert_int_eq(cx_conf_set(T, &t, "file=null", &err), CX_OK);
    ck_assert_ptr_null(t.file);
    ck_assert_int_eq(cx_conf_set(T, &t, "ints=7", &err), CX_OK);
    ck_assert_uint_eq(t.ints.n, 1);
    ck_assert_int_eq(t.ints.v[0], 7);
    ck_assert_int_eq(cx_conf_set(T, &t, "pair=[0.5, 0.25]", &err), CX_OK);
    ck_assert(t.pair.v[0] == 0.5 && t.pair.v[1] == 0.25);
    cx_conf_free(T, &t);

    /* Empty lists, in both spellings. */
    cx_train_config c;
    ck_assert_int_eq(cx_train_config_load(&c, NULL, (const char *const[]){"model.image.hidden=[]"}, 1, &err), CX_OK);
    ck_assert_uint_eq(c.model.image.hidden.n, 0);
    ck_assert_ptr_null(c.model.image.hidden.v);
    cx_train_config_free(&c);
    ck_assert_int_eq(cx_train_config_load(&c, NULL, (const char *const[]){"model.image.hidden="}, 1, &err), CX_OK);
    ck_assert_uint_eq(c.model.image.hidden.n, 0);
    cx_train_config_free(&c);
}
END_TEST

START_TEST(set_errors_name_the_assignment)
{
    ck_assert_str_eq(toy_set_error("n=abc"), "n=abc: n: 'abc' is not an integer");
    ck_assert_str_eq(toy_set_error("n"), "n: expected KEY=VALUE");
    ck_assert_str_eq(toy_set_error("=3"), "=3: the key is empty");
    ck_assert_str_eq(toy_set_error("colr=red"), "colr=red: unknown key 'colr' (did you mean 'color'?)");
    ck_assert_str_eq(toy_set_error("a=3"),
                     "a=3: 'a' is a group of keys (such as 'a.b.depth'): set one key, or give a mapping like {b.depth: ...}");
    ck_assert_str_eq(toy_set_error("a={b: {depth: x}}"), "a={b: {depth: x}}: a.b.depth: 'x' is not an integer");
    ck_assert_str_eq(toy_set_error("a={qqqq: 1}"), "a={qqqq: 1}: unknown key 'a.qqqq'");
    ck_assert_str_eq(toy_set_error("ints=1,,2"), "ints=1,,2: ints: an empty item in the list");
    ck_assert_str_eq(toy_set_error("ints=1,2,3,4"), "ints=1,2,3,4: ints: 4 values given, at most 3 allowed");
    ck_assert_str_eq(toy_set_error("pair=0.5,1"), "pair=0.5,1: pair[1]: 1 is out of range (must be in [0, 1))");
    ck_assert_str_eq(toy_set_error("n=\"3\""), "n=\"3\": n: \"3\" is a quoted string, not an integer");
    ck_assert_str_eq(toy_set_error("name=\xff\xfe"), "name=\xff\xfe: name: '\xff\xfe' is not valid UTF-8");
    ck_assert_str_eq(toy_set_error("req="), "req=: req: null is not allowed (expected a path)");
    /* Broken YAML inside quotes or brackets is reported by the YAML reader, still one line. */
    const char *m = toy_set_error("ints=[1, 2");
    ck_assert_msg(strncmp(m, "ints=[1, 2:", 11) == 0 && strstr(m, "invalid YAML"), "%s", m);
}
END_TEST

START_TEST(set_overrides_the_file_and_later_sets_win)
{
    char path[512];
    snprintf(path, sizeof path, "%s/c.yaml", tmpdir);
    write_text(path, "epochs: 3\nmodel:\n  image:\n    dim: 64\n    hidden: [8]\noptim: {lr: 0.5}\n");
    cx_err err;
    cx_train_config c;
    ck_assert_int_eq(cx_train_config_load(&c, path, NULL, 0, &err), CX_OK);
    ck_assert_int_eq(c.epochs, 3);
    ck_assert_int_eq(c.model.image.dim, 64);
    ck_assert(c.optim.lr == 0.5);
    cx_train_config_free(&c);
    const char *sets[] = {"model.image.dim=32", "epochs=5", "model.image.dim=16", "optim={wd: 0.25}"};
    ck_assert_int_eq(cx_train_config_load(&c, path, sets, 4, &err), CX_OK);
    ck_assert_int_eq(c.epochs, 5);
    ck_assert_int_eq(c.model.image.dim, 16);
    ck_assert_uint_eq(c.model.image.hidden.n, 1); /* untouched keys keep the file's value */
    ck_assert_int_eq(c.model.image.hidden.v[0], 8);
    ck_assert(c.optim.lr == 0.5 && c.optim.wd == 0.25);
    cx_train_config_free(&c);
    /* The same key in two --set is not "set twice": the later one wins. */
    ck_assert_int_eq(cx_train_config_load(&c, NULL, (const char *const[]){"seed=1", "seed=2"}, 2, &err), CX_OK);
    ck_assert_int_eq(c.seed, 2);
    cx_train_config_free(&c);
}
END_TEST

START_TEST(failed_load_unwinds_to_a_zeroed_struct)
{
    char path[512];
    snprintf(path, sizeof path, "%s/c.yaml", tmpdir);
    write_text(path, "data: d.yaml\nmodel.text.init: runs/a\noptim.milestones: [1, 2]\n");
    cx_err err;
    cx_train_config c, zero;
    memset(&zero, 0, sizeof zero);
    /* The file's strings and lists are allocated before the bad --set fails. */
    ck_assert_int_eq(cx_train_config_load(&c, path, (const char *const[]){"subset=s.txt", "batch=0"}, 2, &err),
                     CX_EUSAGE);
    ck_assert_str_eq(err.msg, "batch=0: batch: 0 is out of range (must be in [1, 16777216])");
    ck_assert_int_eq(memcmp(&c, &zero, sizeof c), 0);
    write_text(path, "data: d.yaml\nmodel: {text: {init: runs/a}, image: {dim: -4}}\n");
    ck_assert_int_eq(cx_train_config_load(&c, path, NULL, 0, &err), CX_EUSAGE);
    ck_assert_int_eq(memcmp(&c, &zero, sizeof c), 0);
    /* A missing file is a data error (exit 1), not a usage error. */
    snprintf(path, sizeof path, "%s/missing.yaml", tmpdir);
    ck_assert_int_eq(cx_train_config_load(&c, path, NULL, 0, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing.yaml"));
    ck_assert_int_eq(memcmp(&c, &zero, sizeof c), 0);
    /* An empty file is all defaults. */
    snprintf(path, sizeof path, "%s/empty.yaml", tmpdir);
    write_text(path, "# nothing\n");
    ck_assert_int_eq(cx_train_config_load(&c, path, NULL, 0, &err), CX_OK);
    ck_assert_int_eq(c.epochs, 10);
    cx_train_config_free(&c);
}
END_TEST

/* ---- paths ---------------------------------------------------------------------------------- */

START_TEST(paths_resolve_against_the_file_or_the_current_folder)
{
    char dir[512], path[600], cwd[1024], want[1200];
    snprintf(dir, sizeof dir, "%s/cfg", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/train.yaml", dir);
    write_text(path, "data: ../data/./fm.yaml\nsubset: subsets//rho100.txt\nhead_from: /runs/clip/../clip2/\n");
    cx_err err;
    cx_train_config c;
    ck_assert_int_eq(cx_train_config_load(&c, path, NULL, 0, &err), CX_OK);
    snprintf(want, sizeof want, "%s/data/fm.yaml", tmpdir);
    ck_assert_str_eq(c.data, want);
    snprintf(want, sizeof want, "%s/cfg/subsets/rho100.txt", tmpdir);
    ck_assert_str_eq(c.subset, want);
    ck_assert_str_eq(c.head_from, "/runs/clip2");
    cx_train_config_free(&c);

    /* A relative config path: the file's folder is relative to the current folder. */
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tmpdir), 0);
    ck_assert_int_eq(cx_train_config_load(&c, "cfg/train.yaml", (const char *const[]){"head_from=run/../r2"}, 1, &err),
                     CX_OK);
    snprintf(want, sizeof want, "%s/data/fm.yaml", tmpdir);
    ck_assert_str_eq(c.data, want);
    snprintf(want, sizeof want, "%s/r2", tmpdir); /* --set: against the current folder */
    ck_assert_str_eq(c.head_from, want);
    cx_train_config_free(&c);
    ck_assert_int_eq(cx_train_config_load(&c, NULL, (const char *const[]){"data=../../../../../../../x"}, 1, &err),
                     CX_OK);
    ck_assert_str_eq(c.data, "/x"); /* ".." stops at the root */
    cx_train_config_free(&c);
    ck_assert_int_eq(chdir(cwd), 0);
}
END_TEST

/* ---- writing back --------------------------------------------------------------------------- */

START_TEST(written_yaml_is_nested_complete_and_in_schema_order)
{
    cx_err err;
    toy t;
    ck_assert_int_eq(cx_conf_init(T, &t, &err), CX_OK);
    char *text = write_string(T, &t);
    ck_assert_str_eq(text,
                     "flag: false\n"
                     "n: 5\n"
                     "x: 0.5\n"
                     "name: \"abc\"\n"
                     "color: green\n"
                     "file: null\n"
                     "req: \"/r/s\"\n"
                     "ints: [1, 2]\n"
                     "pair: [0.25, 0.5]\n"
                     "big: 0\n"
                     "a:\n"
                     "  b:\n"
                     "    depth: 7\n"
                     "  c: -1.5\n");
    free(text);
    cx_conf_free(T, &t);

    cx_train_config c;
    ck_assert_int_eq(cx_train_config_load(&c, NULL, NULL, 0, &err), CX_OK);
    text = write_string(&cx_train_config_schema, &c);
    ck_assert_ptr_nonnull(strstr(text, "\nmodel:\n  image:\n    type: mlp\n    hidden: [1024, 1024]\n    dim: 256\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nlogit_scale:\n  init: 14.285714285714286\n  max: 100.0\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n  betas: [0.9, 0.999]\n  eps: 1.0e-08\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n    init: \"random\"\n"));
    ck_assert(strncmp(text, "data: null\nsubset: null\nseed: 0\n", 32) == 0);
    /* Every key appears, as "leaf:" at its depth. */
    char *nl = malloc(strlen(text) + 2);
    nl[0] = '\n';
    strcpy(nl + 1, text);
    for (size_t i = 0; i < cx_train_config_schema.count; i++) {
        const char *key = cx_train_config_schema.keys[i].key;
        const char *leaf = strrchr(key, '.');
        int depth = 0;
        for (const char *p = key; *p; p++)
            depth += *p == '.';
        char line[160];
        snprintf(line, sizeof line, "\n%*s%s: ", 2 * depth, "", leaf ? leaf + 1 : key);
        /* CX_CONF_OMIT_DEFAULT keys (aug.*, dino.*, eval.every, vocab.freqs) are left out at
         * their defaults, and so is their group when its every key is one (a leaf alone may be
         * another group's, e.g. dino.momentum and optim.momentum); in a group with other keys
         * (vocab) the group is written and the leaf is not. */
        if (cx_train_config_schema.keys[i].flags & CX_CONF_OMIT_DEFAULT) {
            char group[160];
            int glen = (int)strcspn(key, ".");
            snprintf(group, sizeof group, "\n%.*s:\n", glen, key);
            const char *g = strstr(nl, group);
            if (g) { /* the group's lines run to the next line at depth 0 */
                const char *end = g + strlen(group);
                while (*end && !(end[0] == '\n' && end[1] != ' ' && end[1] != '\0'))
                    end++;
                const char *hit = strstr(g, line);
                ck_assert_msg(depth == 1 && (!hit || hit >= end), "%s written at its default",
                              key);
            }
        } else
            ck_assert_msg(strstr(nl, line) != NULL, "%s missing", key);
    }
    ck_assert_ptr_null(strstr(nl, "\naug:"));
    free(nl);
    free(text);
    /* Set, they are written in their group, and read back to an equal struct. */
    const char *sets[] = {"objective=clip", "aug.noise=0.25", "aug.eda.rd=0.5"};
    cx_train_config c2, c3;
    cx_train_config_free(&c);
    ck_assert_int_eq(cx_train_config_load(&c2, NULL, sets, 3, &err), CX_OK);
    text = write_string(&cx_train_config_schema, &c2);
    ck_assert_ptr_nonnull(strstr(text, "\naug:\n  noise: 0.25\n  eda:\n    rd: 0.5\n"));
    char path[] = "/tmp/check_conf_augXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(cx_train_config_load(&c3, path, NULL, 0, &err), CX_OK);
    ck_assert(cx_conf_equal(&cx_train_config_schema, &c2, &c3));
    unlink(path);
    free(text);
    cx_train_config_free(&c2);
    cx_train_config_free(&c3);
}
END_TEST

START_TEST(doubles_are_written_short_and_exact)
{
    struct {
        double v;
        const char *text;
    } cases[] = {
        {0.5, "0.5"},       {1, "1.0"},          {-2, "-2.0"},        {100, "100.0"},
        {0.001, "0.001"},   {1e-8, "1.0e-08"},   {1.0 / 0.07, "14.285714285714285"}, {14.285714285714286, "14.285714285714286"},
        {0.1 + 0.2, "0.30000000000000004"},      {1e20, "1.0e+20"},   {123456789012345.0, "123456789012345.0"},
        {1.0 / 3, "0.3333333333333333"},         {4.9e-324, "5.0e-324"}, {-0.0, "-0.0"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cx_err err;
        toy t, back;
        ck_assert_int_eq(cx_conf_init(T, &t, &err), CX_OK);
        t.a.c = cases[i].v;
        char *text = write_string(T, &t);
        char want[80];
        snprintf(want, sizeof want, "\n  c: %s\n", cases[i].text);
        ck_assert_msg(strstr(text, want), "%.17g: wanted %s in\n%s", cases[i].v, cases[i].text, text);
        ck_assert_int_eq(toy_yaml(&back, text, &err), CX_OK);
        ck_assert_int_eq(memcmp(&back.a.c, &cases[i].v, sizeof(double)), 0);
        free(text);
        cx_conf_free(T, &t);
        cx_conf_free(T, &back);
    }
}
END_TEST

START_TEST(write_read_round_trip_is_byte_and_struct_identical)
{
    char path[512], path2[512];
    snprintf(path, sizeof path, "%s/config.yaml", tmpdir);
    snprintf(path2, sizeof path2, "%s/again.yaml", tmpdir);
    const char *sets[] = {
        "data=/d/fm.yaml", "subset=/s/sub set.txt", "seed=18446744073709551", "epochs=7",
        "drop_last=false", "loss=ldam", "focal.gamma=0.3", "logit_adjust.tau=-0.7",
        "effnum.beta=0.9999", "drw.epoch=5", "lade.lambda=0.01", "sampler=sqrt",
        "head=cosine", "logit_scale.init=0.1", "logit_scale.max=1e300", "logit_scale.learn=false",
        "model.image.type=cnn", "model.image.hidden=[3,5,7]", "model.image.dim=9",
        "model.image.act=gelu", "model.image.norm=layernorm", "model.image.channels=4",
        "model.text.type=mlp", "model.text.hidden=1,2",
        "model.text.init=\"we\\\"ird\\\\ \\t\\n\\x01 \\u00e9 \\u2028 \\u0085 \\ufeff: #x\"",
        "model.text.freeze=true", "optim.name=sgd", "optim.lr=0.030000000000000002",
        "optim.nesterov=true", "optim.betas=[0, 0.5]", "optim.eps=5e-324",
        "optim.schedule=step", "optim.milestones=2,4", "optim.gamma=0.31622776601683794",
        "optim.clip_grad=1.5", "ckpt.every=100", "vocab.weight=uniform", "optim.warmup=12",
    };
    cx_err err;
    cx_train_config c, back, back2;
    ck_assert_int_eq(cx_train_config_load(&c, NULL, sets, sizeof sets / sizeof sets[0], &err), CX_OK);
    ck_assert_str_eq(c.model.text.init, "we\"ird\\ \t\n\x01 \xc3\xa9 \xe2\x80\xa8 \xc2\x85 \xef\xbb\xbf: #x");
    ck_assert_int_eq(cx_train_config_validate(&c, &err), CX_OK);
    ck_assert_int_eq(cx_train_config_write(&c, path, &err), CX_OK);
    ck_assert_int_eq(cx_train_config_load(&back, path, NULL, 0, &err), CX_OK);
    ck_assert(cx_conf_equal(&cx_train_config_schema, &c, &back));
    ck_assert_int_eq(cx_train_config_write(&back, path2, &err), CX_OK);
    char *a = read_text(path), *b = read_text(path2);
    ck_assert_str_eq(a, b);
    ck_assert_ptr_nonnull(strstr(a, "  init: \"we\\\"ird\\\\ \\t\\n\\x01 \xc3\xa9 \\u2028 \\x85 \\ufeff: #x\"\n"));
    ck_assert_ptr_nonnull(strstr(a, "  eps: 5.0e-324\n"));
    ck_assert_ptr_nonnull(strstr(a, "  lr: 0.030000000000000002\n"));
    /* Reading the file once more, with a --set on top, changes only that key. */
    ck_assert_int_eq(cx_train_config_load(&back2, path, (const char *const[]){"seed=1"}, 1, &err), CX_OK);
    ck_assert(!cx_conf_equal(&cx_train_config_schema, &c, &back2));
    back2.seed = c.seed;
    ck_assert(cx_conf_equal(&cx_train_config_schema, &c, &back2));
    free(a);
    free(b);
    cx_train_config_free(&c);
    cx_train_config_free(&back);
    cx_train_config_free(&back2);

    /* Defaults round-trip too. */
    ck_assert_int_eq(cx_train_config_load(&c, NULL, NULL, 0, &err), CX_OK);
    ck_assert_int_eq(cx_train_config_write(&c, path, &err), CX_OK);
    ck_assert_int_eq(cx_train_config_load(&back, path, NULL, 0, &err), CX_OK);
    ck_assert(cx_conf_equal(&cx_train_config_schema, &c, &back));
    /* A string filled by code with bytes that are not UTF-8 (a stray byte, an overlong '/')
     * writes U+FFFD for each, so the file still reads back. */
    free(c.model.text.init);
    c.model.text.init = strdup("a\xff" "b\xc0\xaf" "c\xc3\xa9");
    ck_assert_int_eq(cx_train_config_write(&c, path, &err), CX_OK);
    a = read_text(path);
    ck_assert_ptr_nonnull(strstr(a, "  init: \"a\\ufffdb\\ufffd\\ufffdc\xc3\xa9\"\n"));
    free(a);
    cx_train_config_free(&c);
    cx_train_config_free(&back);
}
END_TEST

START_TEST(write_file_is_atomic)
{
    char path[512];
    snprintf(path, sizeof path, "%s/out.yaml", tmpdir);
    write_text(path, "old\n");
    cx_err err;
    cx_train_config c;
    ck_assert_int_eq(cx_train_config_load(&c, NULL, NULL, 0, &err), CX_OK);
    ck_assert_int_eq(cx_train_config_write(&c, path, &err), CX_OK);
    char *text = read_text(path);
    ck_assert(strncmp(text, "data: null\n", 11) == 0);
    free(text);
    /* A folder that does not exist: an I/O error, nothing created. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/out.yaml", tmpdir);
    ck_assert_int_eq(cx_train_config_write(&c, bad, &err), CX_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "out.yaml"));
    /* Only the one file exists in the folder: no temporary files left behind. */
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    ck_assert_int_eq(n, 1);
    /* A full disk fails the write and says so. */
    if (access("/dev/full", W_OK) == 0) {
        FILE *full = fopen("/dev/full", "w");
        ck_assert_ptr_nonnull(full);
        ck_assert_int_eq(cx_conf_write(&cx_train_config_schema, &c, full, "/dev/full", &err), CX_EIO);
        ck_assert_ptr_nonnull(strstr(err.msg, "/dev/full: write error"));
        fclose(full);
    }
    cx_train_config_free(&c);
}
END_TEST

START_TEST(key_list_shows_types_defaults_and_docs)
{
    cx_err err;
    cx_conf_row *rows;
    const cx_conf_schema *s = &cx_train_config_schema;
    ck_assert_int_eq(cx_conf_list(s, &rows, &err), CX_OK);
    struct {
        const char *key, *type, *def;
    } want[] = {
        {"data", "path or null", "null"},
        {"seed", "int >= 0", "0"},
        {"epochs", "int in [1, 1000000]", "10"},
        {"drop_last", "bool", "true"},
        {"objective", "enum: clip|sl|dino|declip", "sl"},
        {"effnum.beta", "double in [0, 1)", "0.999"},
        {"ldam.scale", "double > 0", "30.0"},
        {"logit_adjust.tau", "double", "1.0"},
        {"model.image.hidden", "int list of at most 64, each in [1, 65536]", "[1024, 1024]"},
        {"model.image.channels", "int list of 1 to 16, each in [1, 4096]", "[32, 64]"},
        {"model.text.init", "string", "\"random\""},
        {"optim.betas", "double list of 2, each in [0, 1)", "[0.9, 0.999]"},
        {"optim.milestones", "int list, each >= 1", "[]"},
        {"optim.eps", "double > 0", "1.0e-08"},
    };
    for (size_t j = 0; j < sizeof want / sizeof want[0]; j++) {
        size_t i = 0;
        while (i < s->count && strcmp(rows[i].key, want[j].key) != 0)
            i++;
        ck_assert_uint_lt(i, s->count);
        ck_assert_str_eq(rows[i].type, want[j].type);
        ck_assert_str_eq(rows[i].def, want[j].def);
        ck_assert(rows[i].doc && rows[i].doc[0]);
    }
    for (size_t i = 0; i < s->count; i++)
        ck_assert_str_eq(rows[i].key, s->keys[i].key);
    cx_conf_rows_free(rows, s->count);
}
END_TEST

/* ---- checks across keys --------------------------------------------------------------------- */

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("schema");
    tcase_add_test(tc, schemas_pass_their_own_check);
    tcase_add_test(tc, schema_check_catches_table_mistakes);
    tcase_add_test(tc, defaults_fill_every_field);
    tcase_add_test(tc, key_list_shows_types_defaults_and_docs);
    suite_add_tcase(s, tc);

    tc = tcase_create("read");
    tcase_add_test(tc, every_type_from_yaml);
    tcase_add_test(tc, nesting_both_ways_gives_the_same_struct);
    tcase_add_test(tc, unknown_keys_name_line_column_and_a_suggestion);
    tcase_add_test(tc, wrong_types_name_the_key_and_position);
    tcase_add_test(tc, ranges_and_list_lengths);
    tcase_add_test(tc, maps_lists_and_values_in_the_wrong_place);
    tcase_add_test(tc, null_only_where_the_key_allows_it);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, set_values_read_like_yaml_scalars);
    tcase_add_test(tc, set_errors_name_the_assignment);
    tcase_add_test(tc, set_overrides_the_file_and_later_sets_win);
    tcase_add_test(tc, failed_load_unwinds_to_a_zeroed_struct);
    tcase_add_test(tc, paths_resolve_against_the_file_or_the_current_folder);
    suite_add_tcase(s, tc);

    tc = tcase_create("write");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, written_yaml_is_nested_complete_and_in_schema_order);
    tcase_add_test(tc, doubles_are_written_short_and_exact);
    tcase_add_test(tc, write_read_round_trip_is_byte_and_struct_identical);
    tcase_add_test(tc, write_file_is_atomic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
