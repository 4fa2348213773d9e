/* jsonq: a strict little JSON reader for the shell tests (make check needs neither jq nor
 * Python). Usage: jsonq FILE|- QUERY...; one line per query:
 *   .key.sub[2].name   the value there: numbers as written, strings raw, null, true, false,
 *                      "object" / "array" for containers
 *   PATH#              the length of the array or object at PATH ("#" alone: the root's)
 *   PATH@              the keys of the object at PATH, space-separated
 * Exit status: 0; 1 when a query names nothing; 2 when the input is not one valid JSON value. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jv {
    char type; /* o a s n t f z */
    char *text; /* string (decoded) or number (as written) */
    int n;
    char **keys;
    struct jv *items;
} jv;

static const char *p;

static void ws(void)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
}

static int value(jv *v);

static char *string(void)
{
    if (*p != '"')
        return NULL;
    p++;
    size_t cap = 32, n = 0;
    char *s = malloc(cap);
    while (s && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) {
            free(s);
            return NULL;
        }
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case '"': case '\\': case '/': c = (unsigned char)*p; break;
            case 'u': {
                unsigned u = 0;
                for (int k = 1; k <= 4; k++) {
                    if (!isxdigit((unsigned char)p[k])) {
                        free(s);
                        return NULL;
                    }
                    u = u * 16 + (unsigned)(isdigit((unsigned char)p[k]) ? p[k] - '0'
                                                                          : (tolower((unsigned char)p[k]) - 'a' + 10));
                }
                p += 4;
                c = u < 0x80 ? (unsigned char)u : '?';
                break;
            }
            default:
                free(s);
                return NULL;
            }
        }
        if (n + 2 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) {
                free(s);
                return NULL;
            }
            s = t;
        }
        s[n++] = (char)c;
        p++;
    }
    if (!s)
        return NULL;
    p++;
    s[n] = '\0';
    return s;
}

static int container(jv *v, char close)
{
    v->n = 0;
    p++;
    ws();
    if (*p == close) {
        p++;
        return 0;
    }
    for (;;) {
        ws();
        v->items = realloc(v->items, sizeof *v->items * (size_t)(v->n + 1));
        if (close == '}')
            v->keys = realloc(v->keys, sizeof *v->keys * (size_t)(v->n + 1));
        if (!v->items || (close == '}' && !v->keys))
            return -1;
        memset(&v->items[v->n], 0, sizeof v->items[v->n]);
        if (close == '}') {
            if (!(v->keys[v->n] = string()))
                return -1;
            ws();
            if (*p++ != ':')
                return -1;
            ws();
        }
        if (value(&v->items[v->n++]))
            return -1;
        ws();
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == close) {
            p++;
            return 0;
        }
        return -1;
    }
}

static int value(jv *v)
{
    memset(v, 0, sizeof *v);
    ws();
    if (*p == '{') {
        v->type = 'o';
        return container(v, '}');
    }
    if (*p == '[') {
        v->type = 'a';
        return container(v, ']');
    }
    if (*p == '"') {
        v->type = 's';
        return (v->text = string()) ? 0 : -1;
    }
    if (strncmp(p, "null", 4) == 0 || strncmp(p, "true", 4) == 0) {
        v->type = *p == 'n' ? 'z' : 't';
        p += 4;
        return 0;
    }
    if (strncmp(p, "false", 5) == 0) {
        v->type = 'f';
        p += 5;
        return 0;
    }
    const char *start = p;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    v->type = 'n';
    v->text = malloc((size_t)(p - start) + 1);
    if (!v->text)
        return -1;
    memcpy(v->text, start, (size_t)(p - start));
    v->text[p - start] = '\0';
    return 0;
}

static void release(jv *v)
{
    for (int i = 0; i < v->n; i++) {
        if (v->items)
            release(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->text);
}

static const jv *lookup(const jv *v, const char *q, char *suffix)
{
    *suffix = 0;
    while (*q) {
        if (*q == '#' || *q == '@') {
            *suffix = *q;
            return q[1] ? NULL : v;
        }
        if (*q == '.') {
            q++;
            size_t len = strcspn(q, ".[#@");
            if (v->type != 'o')
                return NULL;
            const jv *found = NULL;
            for (int i = 0; i < v->n && !found; i++)
                if (strlen(v->keys[i]) == len && strncmp(v->keys[i], q, len) == 0)
                    found = &v->items[i];
            if (!found)
                return NULL;
            v = found;
            q += len;
        } else if (*q == '[') {
            char *end;
            long i = strtol(q + 1, &end, 10);
            if (*end != ']' || v->type != 'a' || i < 0 || i >= v->n)
                return NULL;
            v = &v->items[i];
            q = end + 1;
        } else {
            return NULL;
        }
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: jsonq FILE|- QUERY...\n");
        return 2;
    }
    FILE *fp = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
    if (!fp) {
        perror(argv[1]);
        return 2;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n - 1, fp)) > 0) {
        n += k;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    if (!buf)
        return 2;
    buf[n] = '\0';
    p = buf;
    jv root;
    int bad = value(&root);
    ws();
    if (bad || *p) {
        fprintf(stderr, "jsonq: %s: %s at byte %ld\n", argv[1], bad ? "invalid JSON" : "trailing data",
                (long)(p - buf));
        release(&root);
        free(buf);
        return 2;
    }
    int status = 0;
    for (int a = 2; a < argc; a++) {
        char suffix;
        const jv *v = lookup(&root, argv[a], &suffix);
        if (!v || (suffix == '#' && v->type != 'a' && v->type != 'o') ||
            (suffix == '@' && v->type != 'o')) {
            fprintf(stderr, "jsonq: %s: nothing at %s\n", argv[1], argv[a]);
            status = 1;
            continue;
        }
        if (suffix == '#') {
            printf("%d\n", v->n);
        } else if (suffix == '@') {
            for (int i = 0; i < v->n; i++)
                printf("%s%s", i ? " " : "", v->keys[i]);
            printf("\n");
        } else {
            switch (v->type) {
            case 'o': printf("object\n"); break;
            case 'a': printf("array\n"); break;
            case 'z': printf("null\n"); break;
            case 't': printf("true\n"); break;
            case 'f': printf("false\n"); break;
            default: printf("%s\n", v->text); break;
            }
        }
    }
    release(&root);
    free(buf);
    if (fp != stdin)
        fclose(fp);
    return status;
}
