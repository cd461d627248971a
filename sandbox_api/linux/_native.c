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
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
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

/* --- the spawner thread -------------------------------------------------------------
 *
 * posix_spawn is vfork + exec: the caller is held until the child has exec'd (~0.5 ms
 * here for /bin/sh), and os.posix_spawn holds the GIL meanwhile, so the event loop stops
 * for every exec. Here a thread of our own, which never touches Python, runs each
 * posix_spawn and writes {id, pid, errno} (16 bytes, one atomic pipe write) to a pipe the
 * loop reads. The job (paths, argv, envp, file actions, attributes) is built with the
 * GIL held by spawn_submit, and freed by the thread.
 */

typedef struct job {
    struct job *next;
    uint64_t id;
    char *path;
    char **argv;
    char **envp;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
} job;

typedef struct {
    uint64_t id;
    int32_t pid;
    int32_t error;
} spawn_result;

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_ready = PTHREAD_COND_INITIALIZER;
static job *jobs_head = NULL, *jobs_tail = NULL;
static int results_fd = -1;

static void free_strings(char **list) {
    if (list == NULL) return;
    for (char **p = list; *p != NULL; p++) free(*p);
    free(list);
}

static void free_job(job *j) {
    posix_spawn_file_actions_destroy(&j->actions);
    posix_spawnattr_destroy(&j->attr);
    free(j->path);
    free_strings(j->argv);
    free_strings(j->envp);
    free(j);
}

static void *spawner_main(void *unused) {
    (void)unused;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main thread's business */
    pthread_setname_np(pthread_self(), "sbx-spawner");  /* as ps and /proc/<pid>/task/<tid>/comm show it */
    for (;;) {
        pthread_mutex_lock(&jobs_lock);
        while (jobs_head == NULL) pthread_cond_wait(&jobs_ready, &jobs_lock);
        job *j = jobs_head;
        jobs_head = j->next;
        if (jobs_head == NULL) jobs_tail = NULL;
        pthread_mutex_unlock(&jobs_lock);
        pid_t pid = -1;
        int error = posix_spawn(&pid, j->path, &j->actions, &j->attr, j->argv, j->envp);
        spawn_result r = {j->id, error ? -1 : (int32_t)pid, error};
        free_job(j);
        ssize_t n;
        do {
            n = write(results_fd, &r, sizeof r);
        } while (n < 0 && errno == EINTR);
    }
    return NULL;
}

static PyObject *native_spawner_start(PyObject *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    if (results_fd >= 0) {
        PyErr_SetString(PyExc_RuntimeError, "the spawner thread is already running");
        return NULL;
    }
    results_fd = fd;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int error = pthread_create(&thread, &attr, spawner_main, NULL);
    pthread_attr_destroy(&attr);
    if (error) {
        results_fd = -1;
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* A NULL-terminated copy of a sequence of str/bytes (file system encoding). */
static char **strings_of(PyObject *seq) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (fast == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    char **out = calloc((size_t)n + 1, sizeof(char *));
    if (out == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *encoded = NULL;
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(fast, i), &encoded)) goto fail;
        out[i] = strdup(PyBytes_AS_STRING(encoded));
        Py_DECREF(encoded);
        if (out[i] == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    Py_DECREF(fast);
    return out;
fail:
    Py_DECREF(fast);
    free_strings(out);
    return NULL;
}

/* spawn_submit(id, path, argv, envp, dup2s, chdir, setsid, setpgroup, sigdef)
 * dup2s: ((fd, newfd), ...); chdir: str|bytes|None; setpgroup: -1 for none;
 * sigdef: signals the child gets at their default. The child's signal mask is empty. */
static PyObject *native_spawn_submit(PyObject *self, PyObject *args) {
    unsigned long long id;
    PyObject *path_obj, *argv_obj, *envp_obj, *dup2s, *chdir_obj, *sigdef;
    int setsid_flag, pgroup;
    if (!PyArg_ParseTuple(args, "KOOOOOpiO", &id, &path_obj, &argv_obj, &envp_obj, &dup2s, &chdir_obj, &setsid_flag,
                          &pgroup, &sigdef))
        return NULL;
    if (results_fd < 0) {
        PyErr_SetString(PyExc_RuntimeError, "the spawner thread is not running");
        return NULL;
    }
    job *j = calloc(1, sizeof(job));
    if (j == NULL) return PyErr_NoMemory();
    j->id = id;
    posix_spawn_file_actions_init(&j->actions);
    posix_spawnattr_init(&j->attr);
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(path_obj, &encoded)) goto fail;
    j->path = strdup(PyBytes_AS_STRING(encoded));
    Py_CLEAR(encoded);
    if (j->path == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if ((j->argv = strings_of(argv_obj)) == NULL) goto fail;
    if ((j->envp = strings_of(envp_obj)) == NULL) goto fail;
    PyObject *pairs = PySequence_Fast(dup2s, "dup2s must be a sequence of (fd, newfd)");
    if (pairs == NULL) goto fail;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(pairs); i++) {
        int fd, newfd;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(pairs, i), "ii", &fd, &newfd)) {
            Py_DECREF(pairs);
            goto fail;
        }
        int error = posix_spawn_file_actions_adddup2(&j->actions, fd, newfd);
        if (error) {
            Py_DECREF(pairs);
            errno = error;
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
    }
    Py_DECREF(pairs);
    if (chdir_obj != Py_None) {
        if (!PyUnicode_FSConverter(chdir_obj, &encoded)) goto fail;
        int error = posix_spawn_file_actions_addchdir_np(&j->actions, PyBytes_AS_STRING(encoded)); /* copies it */
        Py_CLEAR(encoded);
        if (error) {
            errno = error;
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
    }
    sigset_t defaults, empty;
    sigemptyset(&defaults);
    sigemptyset(&empty);
    PyObject *signals = PySequence_Fast(sigdef, "sigdef must be a sequence of signal numbers");
    if (signals == NULL) goto fail;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(signals); i++) {
        int sig = PyLong_AsLong(PySequence_Fast_GET_ITEM(signals, i));
        if (sig == -1 && PyErr_Occurred()) {
            Py_DECREF(signals);
            goto fail;
        }
        sigaddset(&defaults, sig);
    }
    Py_DECREF(signals);
    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    if (setsid_flag) flags |= POSIX_SPAWN_SETSID;
    if (pgroup >= 0) {
        flags |= POSIX_SPAWN_SETPGROUP;
        posix_spawnattr_setpgroup(&j->attr, pgroup);
    }
    posix_spawnattr_setsigdefault(&j->attr, &defaults);
    posix_spawnattr_setsigmask(&j->attr, &empty);
    posix_spawnattr_setflags(&j->attr, flags);
    pthread_mutex_lock(&jobs_lock);
    if (jobs_tail != NULL) jobs_tail->next = j;
    else jobs_head = j;
    jobs_tail = j;
    pthread_cond_signal(&jobs_ready);
    pthread_mutex_unlock(&jobs_lock);
    Py_RETURN_NONE;
fail:
    free_job(j);
    return NULL;
}

/* JSON string escaping of UTF-8 text for the output streams (hundreds of MB/s, where
 * msgspec's escaper, one byte at a time, cost a quarter of the daemon's CPU on short lines).
 * json_escape(head, data, tail) is head + data as the body of a JSON string literal + tail,
 * byte for byte what msgspec.json.encode(data.decode())[1:-1] gives: '"', '\\' and the
 * control characters escaped (\b \t \n \f \r, else \u00xx), every other byte as it is.
 * `data` must be valid UTF-8 (the caller checks); with `ascii_only` true, None is returned
 * as soon as a byte is not ASCII (nearly all output is ASCII: that check costs nothing here,
 * and the caller then validates). With SSE2, 64 bytes are classified at a time and copied
 * in 16-byte moves; elsewhere, a byte at a time. */
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int json_special(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

/* The second character of a two-character escape; 0: \u00xx. */
static const char json_short_escape[256] = {
    ['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
};

static inline Py_ssize_t json_put_escape(char *e, unsigned char c) {
    e[0] = '\\';
    char second = json_short_escape[c];
    if (second) {
        e[1] = second;
        return 2;
    }
    memcpy(e + 1, "u00", 3);
    e[4] = "0123456789abcdef"[c >> 4];
    e[5] = "0123456789abcdef"[c & 15];
    return 6;
}

#if defined(__SSE2__)
/* 64 bytes' flags at once (bit i: byte i), so that each escape in them costs a few
 * instructions, not a new load: short lines have one every few bytes. */
static inline uint64_t json_window(const unsigned char *s, int *high) {
    const __m128i limit = _mm_set1_epi8(0x1f), quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    uint64_t mask = 0;
    __m128i any = _mm_setzero_si128();
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + 16 * i));
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, limit), v),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
        mask |= (uint64_t)(unsigned)_mm_movemask_epi8(hit) << (16 * i);
        any = _mm_or_si128(any, v);
    }
    *high = _mm_movemask_epi8(any); /* a byte >= 0x80: not ASCII */
    return mask;
}

/* Copy `n` bytes in 16-byte stores: up to 15 more are read and written (room is kept for them). */
static inline void json_copy(char *o, const unsigned char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i += 16) _mm_storeu_si128((__m128i *)(o + i), _mm_loadu_si128((const __m128i *)(s + i)));
}
#endif

static PyObject *native_json_escape(PyObject *self, PyObject *args) {
    Py_buffer head, data, tail;
    int ascii_only = 0;
    if (!PyArg_ParseTuple(args, "y*y*y*|p", &head, &data, &tail, &ascii_only)) return NULL;
    const unsigned char *s = data.buf, *end = s + data.len;
    /* Room for one escape in 8 bytes (\n every 16 bytes: the shortest lines), a window's
     * escapes and overshoot; past that, room for the rest at its worst is made at once. */
    Py_ssize_t reserve = 6 * 64 + 32 + tail.len;
    Py_ssize_t cap = head.len + data.len + data.len / 8 + reserve;
    PyObject *out = PyBytes_FromStringAndSize(NULL, cap);
    if (out == NULL) goto done;
    char *o = PyBytes_AS_STRING(out);
    memcpy(o, head.buf, head.len);
    Py_ssize_t used = head.len;
    while (s < end) {
        if (cap - used < reserve) {
            Py_ssize_t need = used + 6 * (end - s) + reserve;
            cap = need > 2 * cap ? need : 2 * cap;
            if (_PyBytes_Resize(&out, cap) < 0) goto done;
            o = PyBytes_AS_STRING(out);
        }
#if defined(__SSE2__)
        if (end - s >= 64 + 16) { /* a window, and the 16 bytes a copy may read past it */
            int high;
            uint64_t mask = json_window(s, &high);
            if (high && ascii_only) goto not_ascii;
            Py_ssize_t pos = 0;
            while (mask) {
                Py_ssize_t k = __builtin_ctzll(mask);
                json_copy(o + used, s + pos, k - pos);
                used += k - pos;
                used += json_put_escape(o + used, s[k]);
                pos = k + 1;
                mask &= mask - 1;
            }
            json_copy(o + used, s + pos, 64 - pos);
            used += 64 - pos;
            s += 64;
            continue;
        }
#endif
        /* At most 64 bytes a turn: the room checked above holds them and an escape. */
        const unsigned char *stop = end - s > 64 ? s + 64 : end;
        while (s < stop && !json_special(*s)) {
            if ((*s & 0x80) && ascii_only) goto not_ascii;
            o[used++] = (char)*s++;
        }
        if (s == stop) continue;
        used += json_put_escape(o + used, *s++);
    }
    memcpy(o + used, tail.buf, tail.len);
    used += tail.len;
    if (used != cap) _PyBytes_Resize(&out, used); /* on failure `out` is NULL: the error stands */
    goto done;
not_ascii:
    Py_DECREF(out);
    Py_INCREF(Py_None);
    out = Py_None;
done:
    PyBuffer_Release(&head);
    PyBuffer_Release(&data);
    PyBuffer_Release(&tail);
    return out;
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
    {"spawner_start", native_spawner_start, METH_VARARGS, NULL},
    {"spawn_submit", native_spawn_submit, METH_VARARGS, NULL},
    {"json_escape", native_json_escape, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sandbox_api.linux._native", NULL, 0, methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
