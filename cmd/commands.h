/* The subcommands: each lives in cmd/NAME.c and exports its spec (options, help) and entry point.
 * main parses the command line by the spec (the options land in the spec's destinations) before
 * calling cmd_NAME with the result; the return value is the process exit status. */
#ifndef CLIPX_COMMANDS_H
#define CLIPX_COMMANDS_H

#include "cli.h"

#define CLIPX_COMMAND(name)                                                                       \
    extern const cli_spec cmd_##name##_spec;                                                      \
    int cmd_##name(const cli_result *res)

CLIPX_COMMAND(config);

CLIPX_COMMAND(count);
CLIPX_COMMAND(stats);
CLIPX_COMMAND(subsample);
CLIPX_COMMAND(synth);
CLIPX_COMMAND(train);

CLIPX_COMMAND(compare);
CLIPX_COMMAND(embed);
CLIPX_COMMAND(export);
CLIPX_COMMAND(retrain);
CLIPX_COMMAND(eval);
CLIPX_COMMAND(plot);

#endif
