/* clipx: the command table and main, which runs the commands (parse, threads, run, free, exit
 * status). Only this file exits; every command returns its status. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/base/threads.h"

#include "blas_core.h"
#include "cli.h"
#include "commands.h"

static int cmd_help(const cli_result *res);
static int cmd_version(const cli_result *res);
static const cli_spec cmd_help_spec;
static const cli_spec cmd_version_spec;

typedef struct {
    const char *name;
    int (*run)(const cli_result *res); /* returns the exit status */
    const cli_spec *spec;              /* options, arguments and help of the command */
} command;

/* Sorted by name; `clipx --help` lists them in this order. */
static const command commands[] = {
    {"compare", cmd_compare, &cmd_compare_spec},
    {"config", cmd_config, &cmd_config_spec},
    {"count", cmd_count, &cmd_count_spec},
    {"embed", cmd_embed, &cmd_embed_spec},
    {"eval", cmd_eval, &cmd_eval_spec},
    {"export", cmd_export, &cmd_export_spec},
    {"help", cmd_help, &cmd_help_spec},
    {"plot", cmd_plot, &cmd_plot_spec},
    {"retrain", cmd_retrain, &cmd_retrain_spec},
    {"stats", cmd_stats, &cmd_stats_spec},
    {"subsample", cmd_subsample, &cmd_subsample_spec},
    {"synth", cmd_synth, &cmd_synth_spec},
    {"train", cmd_train, &cmd_train_spec},
    {"version", cmd_version, &cmd_version_spec},
};
static const size_t command_count = sizeof commands / sizeof commands[0];

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < command_count; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_overview(FILE *fp)
{
    fprintf(fp,
            "Usage: clipx COMMAND [options]\n"
            "\n"
            "Controlled experiments on data imbalance: long-tailed subsets, CLIP-style and\n"
            "supervised training on CPU, per-class evaluation.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < command_count; i++)
        fprintf(fp, "  %-12s %s\n", commands[i].name, commands[i].spec->summary);
    fprintf(fp,
            "\n"
            "'clipx help COMMAND' or 'clipx COMMAND --help' describes a command.\n"
            "Exit status: 0 success, 1 run-time failure, 2 usage error.\n");
}

static const cli_opt help_opts[] = {{NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};
static const cli_spec cmd_help_spec = {
    "help", "describe clipx or one of its commands", "[COMMAND]", NULL, help_opts, 0, 1, 0};

static int cmd_help(const cli_result *res)
{
    if (res->nargs == 0) {
        print_overview(stdout);
        return EXIT_OK;
    }
    const command *c = find_command(res->args[0]);
    if (!c) {
        cli_error("help", "unknown command '%s' (see 'clipx --help')", res->args[0]);
        return EXIT_USAGE;
    }
    cli_print_help(c->spec, stdout);
    return EXIT_OK;
}

static const cli_spec cmd_version_spec = {
    "version", "print the version of clipx and its build options", "", NULL, help_opts, 0, 0, 0};

static int cmd_version(const cli_result *res)
{
    (void)res;
    printf("clipx %s\n", PACKAGE_VERSION);
    clipx_blas_core_print(stdout);
#ifdef _OPENMP
    printf("openmp: yes\n");
#else
    printf("openmp: no\n");
#endif
#ifdef HAVE_MPI
    printf("mpi: yes\n");
#else
    printf("mpi: no\n");
#endif
    return EXIT_OK;
}

/* git's run_builtin: the options by the command's spec, the thread count when the command
 * computes, the command, and -h/--help (printed by cli_parse) as success. */
static int run_command(const command *c, int argc, char **argv)
{
    cli_result res;
    int status = cli_parse(c->spec, argc, argv, &res);
    if (status == CLI_OK) {
        if (c->spec->computes == CLI_COMPUTES)
            cx_threads_set((int)res.threads);
        status = c->run(&res);
    }
    cli_free(c->spec, &res);
    return status == CLI_HELP ? EXIT_OK : status;
}

/* A full disk or closed pipe on stdout must not end in exit 0. */
static int close_stdout(const char *cmd, int status)
{
    int failed = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    if (failed) {
        fprintf(stderr, "clipx: %s: writing standard output: %s\n", cmd, strerror(e));
        return status ? status : EXIT_RUNTIME;
    }
    return status;
}

int main(int argc, char **argv)
{
    clipx_blas_core_choose(argv);
    if (argc < 2) {
        print_overview(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    int status;
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_overview(stdout);
        status = EXIT_OK;
    } else if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("clipx %s\n", PACKAGE_VERSION);
        status = EXIT_OK;
    } else {
        const command *c = find_command(name);
        if (!c) {
            fprintf(stderr, "clipx: '%s' is not a clipx command (see 'clipx --help')\n", name);
            return EXIT_USAGE;
        }
        status = run_command(c, argc - 1, argv + 1);
    }
    return close_stdout(name, status);
}
