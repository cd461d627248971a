/* The one-file daemon's entry point: a statically linked CPython whose standard
 * library and our Python code are a zip appended to this very executable, and
 * whose native extensions (aiohttp, yarl, multidict, ... rapidfuzz) are compiled
 * in as built-in modules. Nothing is unpacked: zipimport reads the code straight
 * from the file, the kernel maps the machine code.
 *
 * Hand-written because no tool does this for a static interpreter without an
 * extraction step: PyInstaller and Nuitka one-file unpack to a temp dir, staticx
 * unpacks its loader and libc too.
 *
 * The file ends with a trailer (magic + expected file size); a truncated or
 * half-copied binary is reported in one line before Python starts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inittab.h" /* generated: the built-in third-party extensions */

#define TRAILER_MAGIC "SBXAPI01"
#define TRAILER_SIZE 16

static int self_path(char *argv0, char *out, size_t size) {
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n > 0) {
        out[n] = '\0';
        return 0;
    }
    /* No /proc (yet): argv[0] as given, or found on PATH. */
    if (argv0 != NULL && strchr(argv0, '/') != NULL) {
        if (realpath(argv0, out) != NULL) return 0;
        return -1;
    }
    const char *path = getenv("PATH");
    if (argv0 == NULL || path == NULL) return -1;
    while (*path) {
        const char *end = strchrnul(path, ':');
        char candidate[4096];
        int len = snprintf(candidate, sizeof candidate, "%.*s/%s", (int)(end - path), path, argv0);
        if (len > 0 && (size_t)len < sizeof candidate && access(candidate, X_OK) == 0 &&
            realpath(candidate, out) != NULL)
            return 0;
        path = *end ? end + 1 : end;
    }
    return -1;
}

/* 0 when the file is whole; otherwise prints why and returns -1. */
static int check_trailer(const char *exe) {
    int fd = open(exe, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "sandbox-api: cannot open %s: %s\n", exe, strerror(errno));
        return -1;
    }
    struct stat st;
    unsigned char trailer[TRAILER_SIZE];
    int ok = fstat(fd, &st) == 0 && st.st_size >= TRAILER_SIZE &&
             pread(fd, trailer, TRAILER_SIZE, st.st_size - TRAILER_SIZE) == TRAILER_SIZE;
    close(fd);
    if (!ok || memcmp(trailer, TRAILER_MAGIC, 8) != 0) {
        fprintf(stderr, "sandbox-api: %s is truncated or damaged (no code archive at its end); copy it again\n", exe);
        return -1;
    }
    uint64_t expected = 0;
    for (int i = 0; i < 8; i++) expected |= (uint64_t)trailer[8 + i] << (8 * i);
    if ((uint64_t)st.st_size != expected) {
        fprintf(stderr, "sandbox-api: %s is damaged: %lld bytes, expected %llu; copy it again\n", exe,
                (long long)st.st_size, (unsigned long long)expected);
        return -1;
    }
    return 0;
}

static int fail(PyStatus status, PyConfig *config) {
    PyConfig_Clear(config);
    if (PyStatus_IsExit(status)) return status.exitcode;
    Py_ExitStatusException(status); /* prints the reason, exits 1 */
}

int main(int argc, char **argv) {
    char exe[4096];
    if (self_path(argc > 0 ? argv[0] : NULL, exe, sizeof exe) != 0) {
        fprintf(stderr, "sandbox-api: cannot find my own executable (mount /proc or run me by path)\n");
        return 1;
    }
    if (check_trailer(exe) != 0) return 1;
    if (PyImport_ExtendInittab(sbx_inittab) != 0) {
        fprintf(stderr, "sandbox-api: cannot register built-in modules\n");
        return 1;
    }

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config); /* no PYTHON* variables, no user site, no cwd on sys.path */
    config.parse_argv = 0;                /* every argument is ours, not the interpreter's */
    config.site_import = 0;
    config.write_bytecode = 0;
    config.pathconfig_warnings = 0;
    config.install_signal_handlers = 1;
    config.optimization_level = 0;
    /* -X importtime for the binary, which reads no PYTHON* variable: where start-up goes. */
    const char *importtime = getenv("SANDBOX_IMPORTTIME");
    config.import_time = importtime != NULL && importtime[0] == '1';

    PyStatus status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (PyStatus_Exception(status)) return fail(status, &config);
    status = PyConfig_SetBytesString(&config, &config.executable, exe);
    if (PyStatus_Exception(status)) return fail(status, &config);
    wchar_t *wexe = Py_DecodeLocale(exe, NULL);
    if (wexe == NULL) return fail(PyStatus_NoMemory(), &config);
    config.module_search_paths_set = 1;
    status = PyWideStringList_Append(&config.module_search_paths, wexe);
    PyMem_RawFree(wexe);
    if (PyStatus_Exception(status)) return fail(status, &config);
    /* The boot module installs the finder for dotted built-in names, then runs the CLI
     * (a command, not run_module: runpy and its imports would cost start-up time). */
    status = PyConfig_SetString(&config, &config.run_command, L"import _sandbox_boot\n");
    if (PyStatus_Exception(status)) return fail(status, &config);

    /* A failing start dumps the whole path configuration to stderr; we say it in one
     * line instead, so stderr is parked on /dev/null while the interpreter starts. */
    int saved_stderr = dup(STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved_stderr >= 0 && devnull >= 0) dup2(devnull, STDERR_FILENO);
    if (devnull >= 0) close(devnull);
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
    }
    if (PyStatus_Exception(status)) {
        if (PyStatus_IsExit(status)) return status.exitcode;
        fprintf(stderr, "sandbox-api: %s cannot start its interpreter (%s); copy it again\n", exe,
                status.err_msg ? status.err_msg : "unknown error");
        return 1;
    }
    return Py_RunMain();
}
