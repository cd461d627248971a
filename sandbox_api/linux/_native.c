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
#include <sys/fsuid.h>
#include <sys/inotify.h>
#include <sys/prctl.h>

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

static PyMethodDef methods[] = {
    {"inotify_init1", native_inotify_init1, METH_VARARGS, NULL},
    {"inotify_add_watch", native_inotify_add_watch, METH_VARARGS, NULL},
    {"inotify_rm_watch", native_inotify_rm_watch, METH_VARARGS, NULL},
    {"fallocate", native_fallocate, METH_VARARGS, NULL},
    {"setfsuid", native_setfsuid, METH_VARARGS, NULL},
    {"setfsgid", native_setfsgid, METH_VARARGS, NULL},
    {"set_child_subreaper", native_set_child_subreaper, METH_NOARGS, NULL},
    {"malloc_trim", native_malloc_trim, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sandbox_api.linux._native", NULL, 0, methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
