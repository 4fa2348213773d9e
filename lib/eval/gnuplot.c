/* Figures by gnuplot: the format from the file name, the gnuplot to run, and rendering a
 * script in a temporary folder (gnuplot started with posix_spawn, its output kept in a log for
 * the error message), the figure copied to its path atomically, the folder removed. */
#include "config.h"

#include "lib/eval/gnuplot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/afile.h"
#include "lib/base/path.h"

extern char **environ;

const char *const cx_plot_colours[10] = {"1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd",
                                         "8c564b", "e377c2", "7f7f7f", "bcbd22", "17becf"};

int cx_plot_format_of(const char *path)
{
    size_t n = strlen(path);
    if (n < 5 || path[n - 5] == '/')
        return -1;
    const char *ext = path + n - 4;
    if (strcasecmp(ext, ".svg") == 0)
        return CX_PLOT_SVG;
    if (strcasecmp(ext, ".png") == 0)
        return CX_PLOT_PNG;
    return -1;
}

static int executable(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0;
}

char *cx_plot_find_gnuplot(void)
{
#ifdef GNUPLOT_PATH
    if (executable(GNUPLOT_PATH))
        return cx_path_join(NULL, GNUPLOT_PATH);
#endif
    const char *path = getenv("PATH");
    if (!path)
        return NULL;
    for (const char *p = path;;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        char *cand = malloc(len + sizeof "/gnuplot" + 2);
        if (!cand)
            return NULL;
        /* An empty PATH entry is the current folder. */
        snprintf(cand, len + sizeof "/gnuplot" + 2, "%.*s/gnuplot", (int)(len ? len : 1),
                 len ? p : ".");
        if (executable(cand))
            return cand;
        free(cand);
        if (!colon)
            return NULL;
        p = colon + 1;
    }
}

/* A gnuplot single-quoted string: '' stands for a quote; control characters become spaces. */
void cx_gnuplot_string(FILE *fp, const char *s)
{
    fputc('\'', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\'')
            fputs("''", fp);
        else if (*p < 0x20 || *p == 0x7f)
            fputc(' ', fp);
        else
            fputc(*p, fp);
    }
    fputc('\'', fp);
}

/* Remove the files of folder dir, then the folder (it holds only what this module wrote). */
static void remove_folder(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = cx_path_join(dir, e->d_name);
            if (p)
                unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* The first non-empty line of gnuplot's log, for the error message. */
static void first_log_line(const char *log, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *fp = fopen(log, "r");
    if (!fp)
        return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        size_t k = strlen(line);
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' '))
            line[--k] = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '^')
            p++;
        if (*p) {
            snprintf(buf, cap, "%s", p);
            break;
        }
    }
    fclose(fp);
}

/* gnuplot changes into dir (-e "cd 'dir'") and runs dir/plot.gp there. */
static cx_status run_gnuplot(const char *gnuplot, const char *dir, cx_err *err)
{
    char *log = cx_path_join(dir, "gnuplot.log");
    char *cd = NULL;
    size_t cd_len = 0;
    FILE *mem = open_memstream(&cd, &cd_len);
    if (mem) {
        fputs("cd ", mem);
        cx_gnuplot_string(mem, dir);
        if (fclose(mem) != 0) {
            free(cd);
            cd = NULL;
        }
    }
    if (!log || !cd) {
        free(log);
        free(cd);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    posix_spawn_file_actions_t fa;
    cx_status st = CX_OK;
    int rc = posix_spawn_file_actions_init(&fa);
    if (!rc)
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!rc)
        rc = posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = 0;
    char *argv[] = {(char *)"gnuplot", (char *)"-e", cd, (char *)"plot.gp", NULL};
    if (!rc)
        rc = posix_spawn(&pid, gnuplot, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        st = cx_fail_errno(err, CX_EIO, rc, "%s: cannot start gnuplot", gnuplot);
        goto fail;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            st = cx_fail_errno(err, CX_EIO, errno, "%s: waiting for gnuplot", gnuplot);
            goto fail;
        }
    }
    char line[400];
    if (WIFSIGNALED(status)) {
        st = cx_fail(err, CX_EIO, "%s: gnuplot was killed by signal %d", gnuplot, WTERMSIG(status));
    } else if (WEXITSTATUS(status) != 0) {
        first_log_line(log, line, sizeof line);
        st = cx_fail(err, CX_EIO, "%s: gnuplot failed (exit status %d)%s%s", gnuplot,
                     WEXITSTATUS(status), line[0] ? ": " : "", line);
    }
fail:
    free(log);
    free(cd);
    return st;
}

/* The whole file at path into a new buffer. */
static cx_status read_all(const char *path, char **data, size_t *size, cx_err *err)
{
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return cx_fail_errno(err, CX_EIO, errno, "%s: gnuplot wrote no figure", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    cx_status st = CX_OK;
    while (buf) {
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
        }
        size_t k = fread(buf + n, 1, cap - n, fp);
        n += k;
        if (k == 0)
            break;
    }
    if (!buf)
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    else if (ferror(fp))
        st = cx_fail_errno(err, CX_EIO, errno ? errno : EIO, "%s: read failed", path);
    else if (n == 0)
        st = cx_fail(err, CX_EIO, "%s: gnuplot wrote an empty figure", path);
    fclose(fp);
    if (st) {
        free(buf);
        return st;
    }
    *data = buf;
    *size = n;
    return CX_OK;
}


char *cx_gnuplot_file(const char *dir, const char *fmt, int i)
{
    char name[64];
    snprintf(name, sizeof name, fmt, i);
    return cx_path_join(dir, name);
}

cx_status cx_gnuplot_render(const char *gnuplot, cx_gnuplot_writer write, void *ctx,
                            const char *path, cx_err *err)
{
    int fmt = cx_plot_format_of(path);
    if (fmt < 0)
        return cx_fail(err, CX_EUSAGE, "%s: the figure's name must end in .svg or .png",
                       path);
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char *templ = cx_path_join(tmp, "clipx-plot-XXXXXX");
    if (!templ)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    if (!mkdtemp(templ)) {
        cx_status st = cx_fail_errno(err, CX_EIO, errno, "%s: cannot make a temporary folder",
                                     templ);
        free(templ);
        return st;
    }
    const char *out_name = fmt == CX_PLOT_SVG ? "figure.svg" : "figure.png";
    char *figure = cx_path_join(templ, out_name);
    char *data = NULL;
    size_t size = 0;
    cx_status st = !figure ? cx_fail(err, CX_ENOMEM, "out of memory") : CX_OK;
    if (!st)
        st = write(templ, (cx_plot_format)fmt, out_name, ctx, err);
    if (!st)
        st = run_gnuplot(gnuplot, templ, err);
    if (!st)
        st = read_all(figure, &data, &size, err);
    if (!st)
        st = cx_afile_write_all(path, data, size, err);
    free(data);
    free(figure);
    remove_folder(templ);
    free(templ);
    return st;
}
