/* clipx: the command table and main. Only this file exits; every command returns its status. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"

#include "blas_core.h"
#include "cli.h"
#include "commands.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);
static const cli_spec cmd_help_spec;
static const cli_spec cmd_version_spec;

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const cli_spec *spec;
} command;

/* Sorted by name; `clipx --help` lists them in this order. */
static const command commands[] = {
    {"compare", cmd_compare, &cmd_compare_spec},
    {"config", cmd_config, &cmd_config_spec},
    {"count", cmd_count, &cmd_count_spec},
    {"embed", cmd_embed, &cmd_embed_spec},
    {"eval", cmd_eval, &cmd_eval_spec},
    {"help", cmd_help, &cmd_help_spec},
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

static int cmd_help(int argc, char **argv)
{
    cli_result res;
    int rc = cli_parse(&cmd_help_spec, argc, argv, &res);
    if (rc == CLI_OK) {
        if (res.nargs == 0) {
            print_overview(stdout);
        } else {
            const command *c = find_command(res.args[0]);
            if (c) {
                cli_print_help(c->spec, stdout);
            } else {
                cli_error("help", "unknown command '%s' (see 'clipx --help')", res.args[0]);
                rc = EXIT_USAGE;
            }
        }
    }
    cli_free(&cmd_help_spec, &res);
    return rc == CLI_HELP ? EXIT_OK : rc;
}

static const cli_spec cmd_version_spec = {
    "version", "print the version of clipx and its build options", "", NULL, help_opts, 0, 0, 0};

static int cmd_version(int argc, char **argv)
{
    cli_result res;
    int rc = cli_parse(&cmd_version_spec, argc, argv, &res);
    if (rc == CLI_OK) {
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
    }
    cli_free(&cmd_version_spec, &res);
    return rc == CLI_HELP ? EXIT_OK : rc;
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
        status = c->run(argc - 1, argv + 1);
    }
    return close_stdout(name, status);
}
