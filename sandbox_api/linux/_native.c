/* The few Linux calls the standard library lacks, as a tiny extension module.
 *
 * Hand-written C rather than ctypes: the one-file binary is a static executable, where
 * ctypes cannot look symbols up (no dynamic libc to dlopen), and a direct call is
 * also ~20x cheaper than a ctypes one. Each function raises OSError on failure.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <unistd.h>

static PyObject *native_inotify_init1(PyObject *self, PyObject *args) {
    int flags;
    if (!PyArg_ParseTuple(args, "i", &flags)) return NULL;
    int fd = inotify_init1(flags);
    if (fd < 0) return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

static PyObject *native_inotify_add_watch(PyObject *self, PyObject *args) {
    int fd;
    PyObject *path;
    unsigned int mask;
    if (!PyArg_ParseTuple(args, "iO&I", &fd, PyUnicode_FSConverter, &path, &mask)) return NULL;
    int wd;
    Py_BEGIN_ALLOW_THREADS
    wd = inotify_add_watch(fd, PyBytes_AS_STRING(path), mask);
    Py_END_ALLOW_THREADS
    if (wd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        Py_DECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    return PyLong_FromLong(wd);
}

static PyObject *native_inotify_rm_watch(PyObject *self, PyObject *args) {
    int fd, wd;
    if (!PyArg_ParseTuple(args, "ii", &fd, &wd)) return NULL;
    if (inotify_rm_watch(fd, wd) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *native_fallocate(PyObject *self, PyObject *args) {
    int fd, mode;
    long long offset, length;
    if (!PyArg_ParseTuple(args, "iiLL", &fd, &mode, &offset, &length)) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fallocate(fd, mode, (off_t)offset, (off_t)length);
    Py_END_ALLOW_THREADS
    if (rc < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* setfsuid/setfsgid return the previous id and never fail loudly: callers check by
 * asking again, as the man page says. */
static PyObject *native_setfsuid(PyObject *self, PyObject *args) {
    unsigned int id;
    if (!PyArg_ParseTuple(args, "I", &id)) return NULL;
    return PyLong_FromLong(setfsuid((uid_t)id));
}

static PyObject *native_setfsgid(PyObject *self, PyObject *args) {
    unsigned int id;
    if (!PyArg_ParseTuple(args, "I", &id)) return NULL;
    return PyLong_FromLong(setfsgid((gid_t)id));
}

static PyObject *native_set_child_subreaper(PyObject *self, PyObject *unused) {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *native_malloc_trim(PyObject *self, PyObject *unused) {
#ifdef __GLIBC__
    return PyBool_FromLong(malloc_trim(0));
#else
    Py_RETURN_FALSE;
#endif
}

/* Overwrite `length` bytes at `offset` of our own argument (kind 0) or environment (kind 1)
 * strings with '*', within the area the kernel shows in /proc/self/cmdline or environ:
 * a secret passed there is readable by other users (cmdline) until it is overwritten.
 * The bounds come from /proc/self/stat (arg_start..env_end, fields 48-51), checked here. */
static PyObject *native_scrub_proc_area(PyObject *self, PyObject *args) {
    int kind;
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "inn", &kind, &offset, &length)) return NULL;
    if (kind != 0 && kind != 1) {
        PyErr_SetString(PyExc_ValueError, "kind must be 0 (arguments) or 1 (environment)");
        return NULL;
    }
    char buf[4096];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PyErr_SetFromErrno(PyExc_OSError);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int saved = errno;
    close(fd);
    if (n <= 0) {
        errno = n < 0 ? saved : EIO;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (p == NULL) {
        errno = EIO;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    unsigned long long bounds[4] = {0, 0, 0, 0};
    int field = 2; /* the ')' ends field 2 */
    for (p++; *p && field < 51;) {
        while (*p == ' ') p++;
        if (!*p) break;
        field++;
        char *end;
        unsigned long long value = strtoull(p, &end, 10);
        if (field >= 48) bounds[field - 48] = value;
        p = end;
        while (*p && *p != ' ') p++;
    }
    if (field < 51) {
        errno = ENOSYS; /* a kernel before 3.5 does not show these */
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    unsigned long long start = bounds[kind * 2], stop = bounds[kind * 2 + 1];
    if (start == 0 || offset < 0 || length < 0
        || (unsigned long long)offset + (unsigned long long)length > stop - start) {
        PyErr_SetString(PyExc_ValueError, "range outside the area");
        return NULL;
    }
    memset((char *)(uintptr_t)start + offset, '*', (size_t)length);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"inotify_init1", native_inotify_init1, METH_VARARGS, NULL},
    {"inotify_add_watch", native_inotify_add_watch, METH_VARARGS, NULL},
    {"inotify_rm_watch", native_inotify_rm_watch, METH_VARARGS, NULL},
    {"fallocate", native_fallocate, METH_VARARGS, NULL},
    {"setfsuid", native_setfsuid, METH_VARARGS, NULL},
    {"setfsgid", native_setfsgid, METH_VARARGS, NULL},
    {"set_child_subreaper", native_set_child_subreaper, METH_NOARGS, NULL},
    {"malloc_trim", native_malloc_trim, METH_NOARGS, NULL},
    {"scrub_proc_area", native_scrub_proc_area, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sandbox_api.linux._native", NULL, 0, methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
