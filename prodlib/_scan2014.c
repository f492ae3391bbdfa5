/* The record scanner of the Amazon 2014 reader, in C (an optional speed-up of prodlib.catalog).
 *
 * It accepts exactly the language of ``prodlib.catalog._fast_2014_regex`` (a strict subset of Python's
 * literal grammar) and captures the same five values, so a line it takes is read exactly as the regex
 * path reads it, and every other line is handed back, as bytes, to that path (and from there to
 * ``ast.literal_eval``). tests/test_scan2014.py checks the two against each other line by line.
 *
 * scan(buf, final) -> (items, consumed)
 *   buf holds decompressed text; every line ended by "\n" is scanned (and the last one too when final is
 *   true); consumed is the offset just after the last line scanned. items is a flat list, six entries per
 *   line that is not blank (blank: only ASCII whitespace), so that the caller can unpack it with zip and
 *   no tuple per record is made:
 *   - flags, asin, title, description, categories, imUrl for a line taken: asin is the id as it stands;
 *     the others are None when the key is absent, else text. For title, description and imUrl the text is
 *     the string's value when the value is a string literal without escapes, else the literal's source
 *     (flag RAW_x set: the caller decodes it). CLEAN_TITLE / CLEAN_DESC say that the value is absent or
 *     printable ASCII without "&", "<", a double space or a space at either end, so that cleaning would
 *     not change it; PLAIN_IMURL that the URL is printable ASCII, not empty, without a space at either end
 *     and without "no-img" or "no_image" in any case, so that it is kept as it is. categories is, when it
 *     is a list of lists of strings, a tuple with the source of each inner list, else the literal's source
 *     (flag RAW_CATS);
 *   - -1, the raw line as bytes, then four None, for a line not taken: not valid UTF-8, a NUL byte,
 *     Unicode whitespace at an end, outside the subset, or an asin that is not a plain string (missing,
 *     with escapes, a number, blank ends).
 *
 * Notebook 01 explains the reader; this file only makes it fast (benchmarks/bench_parse_2014.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef const unsigned char *P;

enum { F_ASIN, F_TITLE, F_DESC, F_CATS, F_IMURL, N_FIELDS };
#define RAW_TITLE 2
#define RAW_DESC 4
#define RAW_IMURL 16
#define CLEAN_TITLE 32
#define CLEAN_DESC 64
#define PLAIN_IMURL 128
#define RAW_CATS 256

static const char *NAMES[N_FIELDS] = {"asin", "title", "description", "categories", "imUrl"};
static const size_t NAME_LEN[N_FIELDS] = {4, 5, 11, 10, 5};

/* stop[q][c]: byte c ends a run of plain characters inside a string quoted with q (0: ', 1: ") */
static unsigned char STOP[2][256];
static unsigned char HEX[256];
static unsigned char DIGIT[256];
static unsigned char ASCII_WS[256];   /* what str.strip() removes among ASCII bytes */
static unsigned char NOT_PLAIN[256];  /* not printable ASCII, or "&" or "<" */

static void init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        int stop = c == '\\' || c == '\r' || c == '\n' || c == 0;
        STOP[0][c] = stop || c == '\'';
        STOP[1][c] = stop || c == '"';
        HEX[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        DIGIT[c] = c >= '0' && c <= '9';
        ASCII_WS[c] = c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
        NOT_PLAIN[c] = c < 0x20 || c > 0x7e || c == '&' || c == '<';
    }
}

static inline P skip_ws(P p, P e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static inline int hex_run(P p, P e, int n)
{
    if (e - p < n)
        return 0;
    for (int i = 0; i < n; i++)
        if (!HEX[p[i]])
            return 0;
    return 1;
}

/* A string literal: [uU]? then '...' or "..." with the escapes Python accepts (no \N{...}). Returns the end
 * or NULL; *body / *body_end delimit the text between the quotes, *esc says whether it holds escapes. */
static P scan_str(P p, P e, P *body, P *body_end, int *esc)
{
    if (p < e && (*p == 'u' || *p == 'U'))
        p++;
    if (p >= e || (*p != '\'' && *p != '"'))
        return NULL;
    const unsigned char q = *p++;
    const unsigned char *stop = STOP[q == '"'];
    *body = p;
    *esc = 0;
    for (;;) {
        while (p < e && !stop[*p])
            p++;
        if (p >= e)
            return NULL;
        const unsigned char c = *p;
        if (c == q) {
            *body_end = p;
            return p + 1;
        }
        if (c != '\\')
            return NULL; /* raw CR, LF or NUL */
        *esc = 1;
        if (++p >= e)
            return NULL;
        switch (*p) {
        case 'x':
            if (!hex_run(p + 1, e, 2))
                return NULL;
            p += 3;
            break;
        case 'u':
            if (!hex_run(p + 1, e, 4))
                return NULL;
            p += 5;
            break;
        case 'U':
            if (e - p >= 9 && p[1] == '0' && p[2] == '0' && p[3] == '0' && hex_run(p + 4, e, 5))
                p += 9;
            else if (e - p >= 9 && p[1] == '0' && p[2] == '0' && p[3] == '1' && p[4] == '0' && hex_run(p + 5, e, 4))
                p += 9;
            else
                return NULL;
            break;
        case 'N': case '\r': case '\n': case 0:
            return NULL;
        default:
            p++; /* one byte; the rest of a multi-byte character is plain text */
        }
    }
}

/* -?(0|[1-9][0-9]{0,39})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,5})? with possessive runs; what follows is
 * checked by the caller, so a longer run of digits fails there. */
static P scan_num(P p, P e)
{
    if (p < e && *p == '-')
        p++;
    if (p >= e)
        return NULL;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9') {
        p++;
        for (int n = 0; p < e && DIGIT[*p] && n < 39; n++)
            p++;
    } else
        return NULL;
    if (p < e && *p == '.') {
        P s = p + 1;
        int n = 0;
        while (s < e && DIGIT[*s] && n < 40)
            s++, n++;
        if (n)
            p = s;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        P s = p + 1;
        int n = 0;
        if (s < e && (*s == '+' || *s == '-'))
            s++;
        while (s < e && DIGIT[*s] && n < 5)
            s++, n++;
        if (n)
            p = s;
    }
    return p;
}

static inline P scan_word(P p, P e, const char *w, size_t n)
{
    return (size_t)(e - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

/* A scalar: string, number, True, False or None. */
static P scan_v0(P p, P e)
{
    P b, be;
    int esc;
    if (p >= e)
        return NULL;
    switch (*p) {
    case '\'': case '"': case 'u': case 'U':
        return scan_str(p, e, &b, &be, &esc);
    case 'T':
        return scan_word(p, e, "True", 4);
    case 'F':
        return scan_word(p, e, "False", 5);
    case 'N':
        return scan_word(p, e, "None", 4);
    default:
        return scan_num(p, e);
    }
}

static P scan_val(P p, P e, int level);

/* [ v, v, ... ] with an optional trailing comma; items of the given level. */
static P scan_list(P p, P e, int level)
{
    p = skip_ws(p + 1, e);
    for (;;) {
        if (p < e && *p == ']')
            return p + 1;
        if (!(p = scan_val(p, e, level)))
            return NULL;
        p = skip_ws(p, e);
        if (p < e && *p == ',')
            p = skip_ws(p + 1, e);
        else if (!(p < e && *p == ']'))
            return NULL;
    }
}

/* { scalar: v, ... } with an optional trailing comma; values of the given level. */
static P scan_dict(P p, P e, int level)
{
    p = skip_ws(p + 1, e);
    for (;;) {
        if (p < e && *p == '}')
            return p + 1;
        if (!(p = scan_v0(p, e)))
            return NULL;
        p = skip_ws(p, e);
        if (!(p < e && *p == ':'))
            return NULL;
        if (!(p = scan_val(skip_ws(p + 1, e), e, level)))
            return NULL;
        p = skip_ws(p, e);
        if (p < e && *p == ',')
            p = skip_ws(p + 1, e);
        else if (!(p < e && *p == '}'))
            return NULL;
    }
}

/* A value nested at most `level` containers deep. */
static P scan_val(P p, P e, int level)
{
    if (p >= e)
        return NULL;
    if (*p == '[')
        return level ? scan_list(p, e, level - 1) : NULL;
    if (*p == '{')
        return level ? scan_dict(p, e, level - 1) : NULL;
    return scan_v0(p, e);
}

/* Which of the five names a key string (no escapes) is, -1 for another key, -2 for a key the regex
 * refuses: its text starts with a name followed by the other quote (the regex's look-ahead is written
 * with [\'"] on both sides of the name). */
static int key_name(P body, P body_end, unsigned char q)
{
    size_t n = (size_t)(body_end - body);
    for (int i = 0; i < N_FIELDS; i++) {
        size_t k = NAME_LEN[i];
        if (n >= k && memcmp(body, NAMES[i], k) == 0) {
            if (n == k)
                return i;
            if (body[k] == (q == '\'' ? '"' : '\''))
                return -2;
        }
    }
    return -1;
}

typedef struct {
    P start[N_FIELDS];
    P end[N_FIELDS];
} Caps;

/* The whole record (the stripped line is exactly p..e). Returns 1 when it is in the subset. */
static int scan_record(P p, P e, Caps *caps)
{
    for (int i = 0; i < N_FIELDS; i++)
        caps->start[i] = NULL;
    if (p >= e || *p != '{')
        return 0;
    p = skip_ws(p + 1, e);
    for (;;) {
        if (p < e && *p == '}')
            return p + 1 == e;
        if (p >= e)
            return 0;
        int which = -1;
        const unsigned char c = *p;
        if (c == '\'' || c == '"' || c == 'u' || c == 'U') {
            P b, be;
            int esc;
            P after = scan_str(p, e, &b, &be, &esc);
            if (!after || esc)
                return 0; /* a top-level key with escapes goes to the exact path */
            which = key_name(b, be, be[0]);
            if (which == -2)
                return 0;
            p = after;
        } else if (!(p = scan_v0(p, e)))
            return 0;
        p = skip_ws(p, e);
        if (!(p < e && *p == ':'))
            return 0;
        P v = skip_ws(p + 1, e);
        if (!(p = scan_val(v, e, 2)))
            return 0;
        if (which >= 0) {
            caps->start[which] = v;
            caps->end[which] = p;
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',')
            p = skip_ws(p + 1, e);
        else if (!(p < e && *p == '}'))
            return 0;
    }
}

/* Strict UTF-8, as Python's decoder checks it (no overlong forms, no surrogates, nothing above 10FFFF). */
static int valid_utf8(P p, P e)
{
    while (p < e) {
        if (e - p >= 8) { /* skip ASCII eight bytes at a time */
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(w & 0x8080808080808080ULL)) {
                p += 8;
                continue;
            }
        }
        unsigned char c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        int n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            n = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else
            return 0;
        if (e - p <= n)
            return 0;
        if (p[1] < lo || p[1] > hi)
            return 0;
        for (int i = 2; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n + 1;
    }
    return 1;
}

/* 1 when the line has a byte >= 0x80 or a NUL byte (eight bytes at a time). */
static int needs_check(P p, P e, int *has_nul)
{
    int high = 0;
    *has_nul = 0;
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (e - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w & highs)
            high = 1;
        if ((w - ones) & ~w & highs)
            *has_nul = 1;
        if (high && *has_nul)
            return 1;
        p += 8;
    }
    for (; p < e; p++) {
        if (*p >= 0x80)
            high = 1;
        else if (*p == 0)
            *has_nul = 1;
    }
    return high || *has_nul;
}

static int plain_text(P p, P e)
{
    if (p < e && (p[0] == ' ' || e[-1] == ' '))
        return 0;
    for (P s = p; s < e; s++)
        if (NOT_PLAIN[*s] || (*s == ' ' && s + 1 < e && s[1] == ' '))
            return 0;
    return 1;
}

/* The URL as it stands would be kept by the reader: see PLAIN_IMURL. */
static int plain_url(P p, P e)
{
    static const char *const bad[2] = {"no-img", "no_image"};
    if (p >= e || p[0] == ' ' || e[-1] == ' ')
        return 0;
    for (P s = p; s < e; s++) {
        if (*s < 0x20 || *s > 0x7e)
            return 0;
        if (*s == 'n' || *s == 'N')
            for (int k = 0; k < 2; k++) {
                size_t n = strlen(bad[k]), i = 0;
                while (i < n && s + i < e && (s[i] | (bad[k][i] >= 'a' ? 0x20 : 0)) == bad[k][i])
                    i++;
                if (i == n)
                    return 0;
            }
    }
    return 1;
}

/* categories as a tuple of the source of each inner list when it is a list of lists of strings, else
 * NULL without an exception. */
static PyObject *split_paths(P p, P e)
{
    P starts[64], ends[64];
    int n = 0;
    p = skip_ws(p + 1, e); /* after "[" (the value is already validated) */
    while (p < e && *p == '[') {
        if (n == 64)
            return NULL;
        P q = skip_ws(p + 1, e);
        while (q < e && *q != ']') {
            P b, be;
            int esc;
            if (!(q = scan_str(q, e, &b, &be, &esc)))
                return NULL;
            q = skip_ws(q, e);
            if (q < e && *q == ',')
                q = skip_ws(q + 1, e);
        }
        if (q >= e)
            return NULL;
        starts[n] = p;
        ends[n++] = q + 1;
        p = skip_ws(q + 1, e);
        if (p < e && *p == ',')
            p = skip_ws(p + 1, e);
    }
    if (p >= e || *p != ']')
        return NULL;
    PyObject *t = PyTuple_New(n);
    if (!t)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *s = PyUnicode_DecodeUTF8((const char *)starts[i], ends[i] - starts[i], NULL);
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

/* The item for one captured value: None, the string's value, or the literal's source (sets raw_flag). */
static PyObject *capture(const Caps *caps, int i, int raw_flag, int clean_flag, int *flags)
{
    P v = caps->start[i], ve = caps->end[i];
    if (!v) {
        *flags |= clean_flag;
        Py_RETURN_NONE;
    }
    if (i == F_CATS && *v == '[') {
        PyObject *t = split_paths(v, ve);
        if (t || PyErr_Occurred())
            return t;
    } else if (i != F_CATS && (*v == '\'' || *v == '"' || *v == 'u' || *v == 'U')) {
        P b, be;
        int esc;
        scan_str(v, ve, &b, &be, &esc);
        if (!esc) {
            if (clean_flag && plain_text(b, be))
                *flags |= clean_flag;
            if (i == F_IMURL && plain_url(b, be))
                *flags |= PLAIN_IMURL;
            return PyUnicode_DecodeUTF8((const char *)b, be - b, NULL);
        }
    }
    *flags |= raw_flag;
    return PyUnicode_DecodeUTF8((const char *)v, ve - v, NULL);
}

/* The id when asin is a string literal without escapes whose text is not empty and starts and ends with
 * printable ASCII other than a space (so that stripping would not change it); else NULL. */
static int plain_id(const Caps *caps, P *b, P *be)
{
    P v = caps->start[F_ASIN], ve = caps->end[F_ASIN];
    int esc;
    if (!v || !(*v == '\'' || *v == '"' || *v == 'u' || *v == 'U'))
        return 0;
    scan_str(v, ve, b, be, &esc);
    return !esc && *be > *b && (*b)[0] > 0x20 && (*b)[0] < 0x7f && (*be)[-1] > 0x20 && (*be)[-1] < 0x7f;
}

/* Appends the six entries of a line taken (steals nothing; returns -1 on error). */
static int append_record(const Caps *caps, P id, P id_end, PyObject *out)
{
    static const int raw[N_FIELDS] = {0, RAW_TITLE, RAW_DESC, RAW_CATS, RAW_IMURL};
    static const int clean[N_FIELDS] = {0, CLEAN_TITLE, CLEAN_DESC, 0, 0};
    PyObject *vals[N_FIELDS + 1] = {NULL};
    int flags = 0, rc = -1;
    if (!(vals[1] = PyUnicode_DecodeUTF8((const char *)id, id_end - id, NULL)))
        goto done;
    for (int i = 1; i < N_FIELDS; i++)
        if (!(vals[i + 1] = capture(caps, i, raw[i], clean[i], &flags)))
            goto done;
    if (!(vals[0] = PyLong_FromLong(flags)))
        goto done;
    rc = 0;
    for (int i = 0; i <= N_FIELDS && rc == 0; i++)
        rc = PyList_Append(out, vals[i]);
done:
    for (int i = 0; i <= N_FIELDS; i++)
        Py_XDECREF(vals[i]);
    return rc;
}

/* Appends the six entries of a line not taken: -1, the line as bytes, four None. */
static int append_raw(P p, P e, PyObject *out)
{
    static PyObject *minus_one;
    if (!minus_one && !(minus_one = PyLong_FromLong(-1)))
        return -1;
    PyObject *line = PyBytes_FromStringAndSize((const char *)p, e - p);
    if (!line)
        return -1;
    int rc = PyList_Append(out, minus_one) || PyList_Append(out, line);
    Py_DECREF(line);
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = PyList_Append(out, Py_None);
    return rc ? -1 : 0;
}

/* One line (without its "\n"): appends its entries to out, or nothing for a blank line. */
static int scan_line(P p, P e, PyObject *out)
{
    P s = p, t = e;
    while (s < t && ASCII_WS[*s])
        s++;
    while (t > s && ASCII_WS[t[-1]])
        t--;
    if (s == t)
        return 0;
    int has_nul;
    Caps caps;
    P b, be;
    if ((needs_check(s, t, &has_nul) && (has_nul || !valid_utf8(s, t))) || !scan_record(s, t, &caps)
        || !plain_id(&caps, &b, &be))
        return append_raw(p, e, out);
    return append_record(&caps, b, be, out);
}

static PyObject *scan(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf;
    int final = 0;
    if (!PyArg_ParseTuple(args, "y*|p:scan", &buf, &final))
        return NULL;
    PyObject *out = PyList_New(0);
    if (!out) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    P p = buf.buf, e = p + buf.len, start = p;
    int rc = 0;
    while (p < e) {
        P nl = memchr(p, '\n', e - p);
        if (!nl)
            break;
        if ((rc = scan_line(p, nl, out)) < 0)
            break;
        p = nl + 1;
    }
    if (rc == 0 && final && p < e) {
        rc = scan_line(p, e, out);
        p = e;
    }
    Py_ssize_t consumed = p - start;
    PyBuffer_Release(&buf);
    if (rc < 0) {
        Py_DECREF(out);
        return NULL;
    }
    PyObject *res = Py_BuildValue("(Nn)", out, consumed);
    return res;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(buf, final=False) -> (items, consumed): the 2014 records of the complete lines in buf."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scan2014",
    .m_doc = "C record scanner for the Amazon 2014 metadata (optional speed-up of prodlib.catalog).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__scan2014(void)
{
    init_tables();
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "RAW_TITLE", RAW_TITLE)
        || PyModule_AddIntConstant(m, "RAW_DESC", RAW_DESC) || PyModule_AddIntConstant(m, "RAW_IMURL", RAW_IMURL)
        || PyModule_AddIntConstant(m, "CLEAN_TITLE", CLEAN_TITLE)
        || PyModule_AddIntConstant(m, "CLEAN_DESC", CLEAN_DESC)
        || PyModule_AddIntConstant(m, "PLAIN_IMURL", PLAIN_IMURL) || PyModule_AddIntConstant(m, "RAW_CATS", RAW_CATS)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
