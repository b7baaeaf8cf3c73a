/*
 * Sets text in an MSI that msitools cannot write: libmsi 0.101 crashes on any non-ASCII string.
 * installer/build-msi.sh runs it under Wine, whose msi.dll is Windows Installer's API, to put the
 * zh-CN package's Chinese names in (stored in the database's code page, 936).
 *
 *   msi-strings.exe PACKAGE.msi CHANGES.tsv
 *
 * CHANGES.tsv is UTF-8, one change per line: TABLE <tab> KEY COLUMN <tab> KEY <tab> COLUMN <tab> TEXT.
 * Every change must hit exactly one row; anything else fails (exit 1) and nothing is committed.
 */
#include <windows.h>
#include <msi.h>
#include <msiquery.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

static wchar_t *wide(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w;
    if (n <= 0) return NULL;
    w = (wchar_t *)calloc((size_t)n, sizeof(wchar_t));
    MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n);
    return w;
}

static int fail(const char *what, UINT r)
{
    fprintf(stderr, "msi-strings: %s (error %u)\n", what, r);
    return 1;
}

int main(int argc, char **argv)
{
    MSIHANDLE db = 0;
    FILE *f;
    char line[4096];
    int n = 0;
    UINT r;
    wchar_t *package;

    if (argc != 3) {
        fprintf(stderr, "usage: msi-strings PACKAGE.msi CHANGES.tsv\n");
        return 2;
    }
    package = wide(argv[1]);
    if ((r = MsiOpenDatabaseW(package, (LPCWSTR)MSIDBOPEN_TRANSACT, &db)) != ERROR_SUCCESS) return fail("open the package", r);
    if (!(f = fopen(argv[2], "rb"))) return fail("open the changes", 0);
    while (fgets(line, sizeof line, f)) {
        char *field[5];
        wchar_t query[1024], *text;
        MSIHANDLE view, rec;
        int i;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        field[0] = strtok(line, "\t");
        for (i = 1; i < 5; i++) field[i] = strtok(NULL, i == 4 ? "" : "\t");
        for (i = 0; i < 5; i++)
            if (!field[i]) return fail("a change line has fewer than 5 fields", 0);
        /* Count first: a change must hit exactly one row. */
        swprintf(query, 1024, L"SELECT `%hs` FROM `%hs` WHERE `%hs` = '%hs'", field[1], field[0], field[1], field[2]);
        if ((r = MsiDatabaseOpenViewW(db, query, &view)) != ERROR_SUCCESS) return fail(field[0], r);
        MsiViewExecute(view, 0);
        {
            int rows = 0;
            MSIHANDLE row;
            while (MsiViewFetch(view, &row) == ERROR_SUCCESS) {
                rows++;
                MsiCloseHandle(row);
            }
            MsiCloseHandle(view);
            if (rows != 1) {
                fprintf(stderr, "msi-strings: %s %s=%s: %d rows\n", field[0], field[1], field[2], rows);
                return 1;
            }
        }
        swprintf(query, 1024, L"UPDATE `%hs` SET `%hs` = ? WHERE `%hs` = '%hs'", field[0], field[3], field[1], field[2]);
        if (!(text = wide(field[4]))) return fail("the text is not UTF-8", 0);
        rec = MsiCreateRecord(1);
        MsiRecordSetStringW(rec, 1, text);
        if ((r = MsiDatabaseOpenViewW(db, query, &view)) != ERROR_SUCCESS) return fail(field[3], r);
        if ((r = MsiViewExecute(view, rec)) != ERROR_SUCCESS) return fail(field[3], r);
        MsiCloseHandle(view);
        MsiCloseHandle(rec);
        free(text);
        n++;
    }
    fclose(f);
    if ((r = MsiDatabaseCommit(db)) != ERROR_SUCCESS) return fail("commit", r);
    MsiCloseHandle(db);
    printf("msi-strings: %d change(s)\n", n);
    return 0;
}
