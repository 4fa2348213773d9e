/* clipx config: the training configuration resolved from defaults, a YAML file and --set
 * overrides, checked and printed as YAML (what `clipx train` would run); or the list of keys. */
#include <stdio.h>

#include "lib/conf/conf.h"
#include "lib/run/train_config.h"

#include "cli.h"
#include "commands.h"
#include "table.h"

static const char *config_path;
static const char *out_path;
static cli_list sets;
static int list_keys;

static const cli_opt config_opts[] = {
    {"config", CLI_STRING, &config_path, "FILE", "training configuration YAML (default: none, all defaults)", 0, -1, NULL},
    {"set", CLI_LIST, &sets, "KEY=VALUE", "override one key after the file; repeatable, later ones win", 0, -1, NULL},
    {"keys", CLI_FLAG, &list_keys, NULL, "list every key with its type, default and description", 0, -1, NULL},
    {"out", CLI_STRING, &out_path, "FILE", "write the YAML to FILE (atomically) instead of standard output", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_config_spec = {
    "config",
    "print the resolved training configuration, or list its keys",
    "[--config FILE] [--set KEY=VALUE ...] [--keys] [--out FILE]",
    "Reads the defaults, then FILE, then each --set in order, checks every key and the\n"
    "rules across keys as 'clipx train' does, and prints the result as YAML: every key,\n"
    "nested maps, absolute paths. That output is a valid --config and reads back identically.\n"
    "Keys are dotted ('model.image.dim') or nested maps in YAML; relative paths in FILE are\n"
    "relative to FILE's folder, those in --set to the current folder. A --set value reads\n"
    "like a YAML value: null, \"quoted\", [1, 2] or 1,2 for lists. 'clipx config --keys'\n"
    "lists every key.",
    config_opts,
    0,
    0,
    0};

static int print_keys(void)
{
    cx_err err;
    cx_err_clear(&err);
    cx_conf_row *rows = NULL;
    const cx_conf_schema *s = &cx_train_config_schema;
    cx_status st = cx_conf_list(s, &rows, &err);
    if (st)
        return cli_fail("config", st, &err);
    cli_table t;
    static const char *const headers[] = {"KEY", "TYPE", "DEFAULT", "DESCRIPTION"};
    int failed = cli_table_init(&t, 4, headers) != 0;
    for (size_t i = 0; !failed && i < s->count; i++) {
        const char *cells[] = {rows[i].key, rows[i].type, rows[i].def, rows[i].doc};
        failed = cli_table_add(&t, cells) != 0;
    }
    if (!failed)
        cli_table_print(&t, stdout);
    cli_table_free(&t);
    cx_conf_rows_free(rows, s->count);
    if (failed) {
        cli_error("config", "out of memory");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int cmd_config(const cli_result *res)
{
    (void)res;
    if (list_keys) {
        if (config_path || sets.count || out_path) {
            cli_error("config", "--keys lists the schema and takes no --config, --set or --out");
            return EXIT_USAGE;
        }
        return print_keys();
    }
    cx_err err;
    cx_err_clear(&err);
    cx_train_config cfg;
    cx_status st = cx_train_config_load(&cfg, config_path, NULL, 0, &err);
    if (st)
        return cli_fail("config", st, &err);
    for (int i = 0; !st && i < sets.count; i++)
        if ((st = cx_conf_set(&cx_train_config_schema, &cfg, sets.items[i], &err)))
            cli_err_prepend(&err, "--set "); /* the message starts with the assignment */
    if (!st)
        st = cx_train_config_validate(&cfg, &err);
    if (!st && out_path)
        st = cx_train_config_write(&cfg, out_path, &err);
    else if (!st)
        /* A failed write to stdout is reported once, by main's check of stdout. */
        (void)cx_conf_write(&cx_train_config_schema, &cfg, stdout, "standard output", &err);
    cx_train_config_free(&cfg);
    return st ? cli_fail("config", st, &err) : EXIT_OK;
}
