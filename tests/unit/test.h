/* test.h - Herald's tiny unit-test harness (no external framework).
 *
 * Each tests/unit/test_<module>.c is one executable that ctest runs. A test is
 * a `static void name(void)` function; the file ends with
 *
 *     TEST_MAIN(TEST_CASE(test_a), TEST_CASE(test_b))
 *
 * which defines main(): it runs every case (or only those named on the
 * command line), prints one line per case and a summary, and returns nonzero
 * when any check failed. Checks never abort the test: a failed CHECK prints
 * file:line and, for the _EQ_ forms, both values, then the test goes on, so
 * one run shows every failure. Strings are printed with C escapes so that a
 * stray control byte or a missing NUL is visible. */
#ifndef HERALD_TEST_H
#define HERALD_TEST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

/* Every helper is static in each test file; not all files use all of them. */
#define TEST_UNUSED_ __attribute__((unused))

struct test_case {
    const char *name;
    void (*fn)(void);
};

static unsigned test_failures_; /* failed checks in the whole run */
static unsigned test_checks_;   /* checks evaluated in the whole run */

/* Prints n bytes of s quoted, with non-printable bytes as \xNN. */
static TEST_UNUSED_ void test_print_bytes_(const char *s, size_t n)
{
    if (s == NULL) {
        fputs("NULL", stderr);
        return;
    }
    fputc('"', stderr);
    size_t shown = n > 400 ? 400 : n;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c < 0x20 || c == 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputc('"', stderr);
    if (shown < n)
        fprintf(stderr, "...(%zu bytes)", n);
}

static TEST_UNUSED_ void test_fail_at_(const char *file, int line)
{
    test_failures_++;
    fprintf(stderr, "%s:%d: check failed: ", file, line);
}

static TEST_UNUSED_ void test_check_(bool ok, const char *file, int line, const char *expr)
{
    test_checks_++;
    if (!ok) {
        test_fail_at_(file, line);
        fprintf(stderr, "%s\n", expr);
    }
}

/* A fresh directory under $TMPDIR (or /tmp) named prefix-XXXXXX, malloc'd;
 * NULL (and a failed check) if it cannot be made. */
static TEST_UNUSED_ char *test_make_dir(const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof(tmpl), "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    char *d = mkdtemp(tmpl);
    test_check_(d != NULL, __FILE__, __LINE__, "mkdtemp");
    return d ? strdup(d) : NULL;
}

/* Removes a flat directory made by test_make_dir and frees its name. */
static TEST_UNUSED_ void test_remove_dir(char *dir)
{
    if (dir == NULL)
        return;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char path[8192];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static TEST_UNUSED_ void test_check_int_(long long a, long long b, const char *file, int line,
                                         const char *ea, const char *eb)
{
    test_checks_++;
    if (a != b) {
        test_fail_at_(file, line);
        fprintf(stderr, "%s == %s\n    left:  %lld\n    right: %lld\n", ea, eb, a, b);
    }
}

static TEST_UNUSED_ void test_check_mem_(const char *a, size_t alen, const char *b, size_t blen,
                                         const char *file, int line, const char *ea, const char *eb)
{
    test_checks_++;
    bool ok = (a == NULL && b == NULL) ||
              (a != NULL && b != NULL && alen == blen && memcmp(a, b, alen) == 0);
    if (!ok) {
        test_fail_at_(file, line);
        fprintf(stderr, "%s == %s\n    left:  ", ea, eb);
        test_print_bytes_(a, alen);
        fputs("\n    right: ", stderr);
        test_print_bytes_(b, blen);
        fputc('\n', stderr);
    }
}

static TEST_UNUSED_ void test_check_str_(const char *a, const char *b, const char *file, int line,
                                         const char *ea, const char *eb)
{
    test_check_mem_(a, a ? strlen(a) : 0, b, b ? strlen(b) : 0, file, line, ea, eb);
}

#define CHECK(cond) test_check_(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ_INT(a, b) \
    test_check_int_((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
/* Either side may be NULL; two NULLs are equal. */
#define CHECK_EQ_STR(a, b) test_check_str_((a), (b), __FILE__, __LINE__, #a, #b)
/* Byte strings with explicit lengths (text that may hold NUL). */
#define CHECK_EQ_MEM(a, alen, b, blen) \
    test_check_mem_((a), (alen), (b), (blen), __FILE__, __LINE__, #a, #b)

#define TEST_CASE(fn) {#fn, fn}

static TEST_UNUSED_ bool test_selected_(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

/* Runs the selected cases; returns the process exit status. */
static TEST_UNUSED_ int test_run_all_(const struct test_case *cases, size_t n, int argc,
                                      char **argv)
{
    unsigned failed_cases = 0, ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (!test_selected_(cases[i].name, argc, argv))
            continue;
        unsigned before = test_failures_;
        cases[i].fn();
        ran++;
        unsigned f = test_failures_ - before;
        if (f) {
            failed_cases++;
            fprintf(stderr, "FAIL %s (%u failed checks)\n", cases[i].name, f);
        } else {
            printf("ok   %s\n", cases[i].name);
        }
        fflush(stdout);
    }
    printf("%s: %u tests, %u checks, %u failed checks, %u failed tests\n",
           argc > 0 ? argv[0] : "test", ran, test_checks_, test_failures_, failed_cases);
    if (ran == 0) {
        fprintf(stderr, "no test matched\n");
        return 2;
    }
    return test_failures_ ? 1 : 0;
}

#define TEST_MAIN(...)                                                               \
    int main(int argc, char **argv)                                                  \
    {                                                                                \
        static const struct test_case cases_[] = {__VA_ARGS__};                      \
        return test_run_all_(cases_, sizeof(cases_) / sizeof(cases_[0]), argc, argv); \
    }

#endif
