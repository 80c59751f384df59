/* SIGBUS guard for mappings of client shared-memory segments.
 *
 * Why: the agent lets ONNX Runtime read a client's frame in place (no copy), from a read-only
 * MAP_SHARED mapping of the client's segment. If the client truncates the segment meanwhile, the
 * next read of a page past the new end raises SIGBUS in whatever thread touches it, and the default
 * action kills the agent. Python cannot catch it. This handler, for faults inside a registered
 * range, maps anonymous zero pages over the rest of that range, records the fault and returns: the
 * read resumes on zeros, and the agent rejects the calls whose frames reach the faulted page. Faults
 * anywhere else get the previous disposition, as if this module were not loaded. (The technique of libwayland's
 * wl_shm buffer access.)
 *
 * The handler only reads the range table and calls mmap and sigaction, which are system calls;
 * map() and unmap() take a mutex and publish a range only after its fields are set. The
 * mappings are made here rather than with Python's mmap module, which would dup every descriptor.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_RANGES 256
#ifndef GUARD_SOURCE_SHA256
#define GUARD_SOURCE_SHA256 "unknown"
#endif

typedef struct {
    _Atomic uintptr_t start; /* 0: free */
    _Atomic uintptr_t end;
    _Atomic uintptr_t first_fault; /* lowest faulted page, UINTPTR_MAX: none */
} range_t;

static range_t ranges[MAX_RANGES];
/* What a SIGBUS that is not ours gets: the disposition before the first install, or a plain
   SIG_DFL/SIG_IGN that someone set since. A foreign handler that replaced ours never becomes it,
   so two handlers never hand a signal back and forth (faulthandler saves the handler it replaces). */
static struct sigaction previous;
static int saved_previous = 0;
static uintptr_t page_mask = 0;

static void fall_back(int sig, siginfo_t *info, void *context) {
    int sent = info == NULL || info->si_code <= 0; /* kill(), not a fault */
    if (previous.sa_handler == SIG_IGN && sent) {
        return; /* ignored before us: still ignored */
    }
    if (previous.sa_handler != SIG_IGN && previous.sa_handler != SIG_DFL) {
        struct sigaction handler = previous;
        if (handler.sa_flags & SA_RESETHAND) { /* one-shot: next time, the default action */
            memset(&previous, 0, sizeof previous);
            previous.sa_handler = SIG_DFL;
        }
        if (handler.sa_flags & SA_SIGINFO) {
            handler.sa_sigaction(sig, info, context);
        } else {
            handler.sa_handler(sig);
        }
        return; /* a fault it did not resolve comes back, exactly as without us */
    }
    /* The default action (a fault cannot be ignored): terminate, as if this module were not loaded. */
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(sig, &fallback, NULL);
    if (sent) {
        raise(sig);
    } /* else: returning repeats the fault under SIG_DFL */
}

static void on_sigbus(int sig, siginfo_t *info, void *context) {
    int saved_errno = errno;
    if (info != NULL && info->si_code > 0) {
        uintptr_t address = (uintptr_t)info->si_addr;
        for (int i = 0; i < MAX_RANGES; i++) {
            uintptr_t start = atomic_load(&ranges[i].start);
            uintptr_t end = atomic_load(&ranges[i].end);
            if (start != 0 && address >= start && address < end) {
                /* Record first: a thread that reads the zero pages without faulting itself must
                   already see the fault when its call ends. */
                uintptr_t page = address & page_mask;
                uintptr_t seen = atomic_load(&ranges[i].first_fault);
                while (page < seen && !atomic_compare_exchange_weak(&ranges[i].first_fault, &seen, page)) {
                }
                void *done = mmap((void *)page, end - page, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
                                  -1, 0);
                if (done != MAP_FAILED) {
                    errno = saved_errno;
                    return;
                }
                break;
            }
        }
    }
    fall_back(sig, info, context);
    errno = saved_errno;
}

static PyObject *install(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    /* Checked on every call, not remembered: faulthandler.enable() or a library may have replaced
       the handler since; then ours goes back in front. */
    struct sigaction current;
    if (sigaction(SIGBUS, NULL, &current) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_sigbus) {
        Py_RETURN_NONE;
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_RESTART; /* a sent SIGBUS under SIG_IGN must not cause EINTR */
    sigemptyset(&action.sa_mask);
    /* A plain disposition is what a foreign SIGBUS should get now; a foreign handler that replaced
       ours is not kept (it may hand the signal back to us: faulthandler does), the one before stays. */
    if (!saved_previous || current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN) {
        previous = current; /* before our handler is back, so it never sees a half-written copy */
        saved_previous = 1;
    }
    if (sigaction(SIGBUS, &action, NULL) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

typedef struct {
    uintptr_t start;
    size_t length;
} mapping_t;

static mapping_t mappings[MAX_RANGES]; /* what map() mapped, for unmap() */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER; /* map()/unmap(), not the handler */

static PyObject *map_range(PyObject *self, PyObject *args) {
    (void)self;
    int fd;
    unsigned long long offset, length;
    if (!PyArg_ParseTuple(args, "iKK", &fd, &offset, &length)) {
        return NULL;
    }
    if (length == 0 || (offset & ~page_mask) != 0) {
        PyErr_SetString(PyExc_ValueError, "offset must be page-aligned and length non-zero");
        return NULL;
    }
    void *address = mmap(NULL, (size_t)length, PROT_READ, MAP_SHARED, fd, (off_t)offset);
    if (address == MAP_FAILED) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int slot = -1;
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < MAX_RANGES; i++) {
        if (mappings[i].start == 0) {
            slot = i;
            mappings[i].start = (uintptr_t)address;
            mappings[i].length = (size_t)length;
            break;
        }
    }
    pthread_mutex_unlock(&table_lock);
    if (slot < 0) {
        munmap(address, (size_t)length);
        PyErr_SetString(PyExc_OSError, "the SIGBUS guard's table of mappings is full");
        return NULL;
    }
    atomic_store(&ranges[slot].first_fault, UINTPTR_MAX);
    /* Guard up to the end of the last page: the kernel maps whole pages, and a read past the frame
       but inside its last page faults the same way. */
    atomic_store(&ranges[slot].end, ((uintptr_t)address + (uintptr_t)length + ~page_mask) & page_mask);
    atomic_store(&ranges[slot].start, (uintptr_t)address); /* published last */
    PyObject *view = PyMemoryView_FromMemory((char *)address, (Py_ssize_t)length, PyBUF_READ);
    if (view == NULL) {
        atomic_store(&ranges[slot].start, 0);
        atomic_store(&ranges[slot].end, 0);
        munmap(address, (size_t)length);
        pthread_mutex_lock(&table_lock);
        mappings[slot].start = 0;
        mappings[slot].length = 0;
        pthread_mutex_unlock(&table_lock);
        return NULL;
    }
    return Py_BuildValue("(iN)", slot, view);
}

static int slot_of(PyObject *args) {
    int slot;
    if (!PyArg_ParseTuple(args, "i", &slot)) {
        return -1;
    }
    if (slot < 0 || slot >= MAX_RANGES || mappings[slot].start == 0) {
        PyErr_SetString(PyExc_ValueError, "no such mapping");
        return -1;
    }
    return slot;
}

static PyObject *unmap_range(PyObject *self, PyObject *args) {
    (void)self;
    int slot = slot_of(args);
    if (slot < 0) {
        return NULL;
    }
    /* Unguard, then unmap: the caller guarantees nothing reads the range any more. */
    atomic_store(&ranges[slot].start, 0);
    atomic_store(&ranges[slot].end, 0);
    pthread_mutex_lock(&table_lock);
    munmap((void *)mappings[slot].start, mappings[slot].length);
    mappings[slot].start = 0;
    mappings[slot].length = 0;
    pthread_mutex_unlock(&table_lock);
    Py_RETURN_NONE;
}

static PyObject *first_fault(PyObject *self, PyObject *args) {
    (void)self;
    int slot = slot_of(args);
    if (slot < 0) {
        return NULL;
    }
    uintptr_t page = atomic_load(&ranges[slot].first_fault);
    if (page == UINTPTR_MAX) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLongLong((unsigned long long)(page - mappings[slot].start));
}

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS, "Put the SIGBUS handler in place unless it is (cheap: one sigaction query)."},
    {"map", map_range, METH_VARARGS, "map(fd, offset, length) -> (slot, read-only memoryview): a guarded mapping."},
    {"unmap", unmap_range, METH_VARARGS, "unmap(slot): unguard and unmap; no view of it may be read after."},
    {"first_fault", first_fault, METH_VARARGS,
     "first_fault(slot) -> offset in the mapping of the lowest page read past the segment's end, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mapguard", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__mapguard(void) {
    page_mask = ~((uintptr_t)sysconf(_SC_PAGESIZE) - 1);
    PyObject *created = PyModule_Create(&module);
    /* Which _mapguard.c this was built from (edge_agent/imaging/build_guard.py passes its SHA-256):
       a build left over from another version of the package is not used. */
    if (created != NULL && PyModule_AddStringConstant(created, "SOURCE_SHA256", GUARD_SOURCE_SHA256) != 0) {
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
