"""Build the one-file daemon: a static CPython with everything built in, code appended.

    python3 packaging/static/build.py OUT

Steps, each cached under build/static/ (delete a step's directory to redo it):
1. CPython from Debian's pristine upstream tarball (`apt-get source`), configured with
   every standard module we keep *static* and linked as `libpython3.11.a`; built
   profile-guided: once instrumented, run as the whole daemon through train.py, then
   again from the counts (delete build/static/cpython-*/.built-with-profile to redo it).
2. The pinned source archives of our native dependencies (lock.txt), their Cython
   sources turned into C, each extension compiled and partially linked into one object
   whose only global symbol is its renamed `PyInit_`: many modules share one binary
   without clashing symbols.
3. `main.c` (the launcher) linked statically with all of it (glibc, OpenSSL, libstdc++).
4. A zip of compiled bytecode (the standard library we use, the pure-Python packages,
   `sandbox_api` and its data files, a compressed `rg`) appended to the executable,
   with a trailer main.c checks before it starts Python.

Why this route and not PyInstaller, Nuitka or staticx: each of those unpacks the
interpreter or its libraries into a temp dir at every start (59 MiB, ~0.4 s here).
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import marshal
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "build" / "static"
CPYTHON_VERSION = "3.11.2"
CYTHON = "Cython==3.2.5"
JOBS = os.cpu_count() or 2
COMPILE_FLAGS_VERSION = b"2"  # bump when compile_one's flags change: objects are rebuilt

sys.path.insert(0, str(HERE))
import fetch  # noqa: E402
from boot import PRECOMPILED as PRECOMPILED_ARCNAME  # noqa: E402 (importing it does not boot)
from boot import RECORD_COMPILES  # noqa: E402

# Standard modules the daemon never needs (and their native parts): left out of both
# the interpreter and the zip. (_decimal is needed, but built among EXTENSIONS below.)
DISABLED_MODULES = """_tkinter _curses _curses_panel readline _dbm _gdbm nis _sqlite3 _uuid _crypt
ossaudiodev spwd audioop _decimal _ctypes _ctypes_test _testcapi _testinternalcapi _testbuffer
_testimportmultiple _testmultiphase _xxtestfuzz xxlimited xxlimited_35 _xxsubinterpreters
_codecs_cn _codecs_hk _codecs_jp _codecs_kr _codecs_tw _codecs_iso2022 _multibytecodec _lzma _bz2
pyexpat _elementtree _multiprocessing _posixshmem _lsprof xxsubtype _testclinic cmath _statistics
syslog _zoneinfo _csv _pickle""".split()
SKIPPED_STDLIB = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "distutils",
    "pydoc_data",
    "sqlite3",
    "dbm",
    "curses",
    "msilib",
    "venv",
    "wsgiref",
    "xmlrpc",
    "ctypes",
    "unittest",
    "multiprocessing",
    "site-packages",
    "xml",
    "zoneinfo",
    "tomllib",
    "turtle.py",
    "pydoc.py",
    "doctest.py",
    "pdb.py",
    "cProfile.py",
    "profile.py",
    "pstats.py",
    "tabnanny.py",
    "trace.py",
    "mailbox.py",
    "imaplib.py",
    "nntplib.py",
    "smtplib.py",
    "poplib.py",
    "ftplib.py",
    "telnetlib.py",
    "_pydecimal.py",
    "pickletools.py",
    "__phello__",
    "antigravity.py",
    "this.py",
    "lzma.py",
    "bz2.py",
    "sndhdr.py",
    "imghdr.py",
    "aifc.py",
    "sunau.py",
    "wave.py",
    "chunk.py",
    "cgi.py",
    "cgitb.py",
    "smtpd.py",
    "asynchat.py",
    "asyncore.py",
    "nturl2path.py",
    "_osx_support.py",
    "_aix_support.py",
    "_bootsubprocess.py",
    "crypt.py",
    "pty.py",
    "xdrlib.py",
    "mailcap.py",
    "pipes.py",
    "uu.py",
    "statistics.py",
    "fractions.py",
    "csv.py",
    "shelve.py",
    "getpass.py",
    "webbrowser.py",
    "_pyio.py",
    "ossaudiodev.py",
    "imp.py",
}


def main() -> None:
    if "no_debug_ranges" not in sys._xoptions:  # smaller bytecode: no column tables
        os.execv(sys.executable, [sys.executable, "-X", "no_debug_ranges", *sys.argv])
    out = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "dist" / "sandbox-api"
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    lock = read_lock()
    cpython = step("interpreter: configure", configure_cpython)
    sources = step("sources", lambda: fetch_sources(lock))
    cython = step("cython", cython_tool)
    objects = step("extensions", lambda: build_extensions(cpython, sources, cython))
    if not interpreter_ready(cpython):
        profile_interpreter(cpython, sources, objects)
    executable = step("link", lambda: link(cpython, objects))
    package(cpython, sources, executable, out)
    print(f"built {out} ({out.stat().st_size / 2**20:.1f} MiB) in {time.monotonic() - started:.0f} s", flush=True)


def package(cpython: Path, sources: dict[str, Path], executable: Path, out: Path) -> None:
    """`executable` with its code archive appended, as `out`. What a start imports is stored
    uncompressed (inflating it costs start time) and what it compiles from source is
    precompiled: both learnt by starting the result, then the archive is made again if
    that changed."""
    archive = step("code", lambda: build_archive(cpython, sources, executable))
    step("assemble", lambda: assemble(executable, archive, out))
    if step("start-up imports", lambda: learn_startup_imports(out)):
        archive = step("code", lambda: build_archive(cpython, sources, executable))
        step("assemble", lambda: assemble(executable, archive, out))


def profile_interpreter(cpython: Path, sources: dict[str, Path], objects: list[Path]) -> None:
    """The interpreter built instrumented, run through train.py as the whole daemon, then
    built again optimized by what it counted."""
    step("interpreter: instrumented build", lambda: make_libpython(cpython, PROFILE_GENERATE))
    executable = step("link, instrumented", lambda: link(cpython, objects, instrumented=True))
    trainee = WORK / "instrumented" / "sandbox-api"
    package(cpython, sources, executable, trainee)
    step("interpreter: profile run", lambda: run([sys.executable, str(HERE / "train.py"), str(trainee)],
                                                 log=WORK / "train.log"))  # fmt: skip
    step("interpreter: build from the profile", lambda: make_libpython(cpython, PROFILE_USE))
    shutil.rmtree(trainee.parent)
    for leftover in executable.parent.glob(executable.name + "*"):  # it and its own counts
        leftover.unlink()


def step(name: str, action):  # type: ignore[no-untyped-def]
    """One line per step: its name as it starts, its time when it ends."""
    began = time.monotonic()
    print(f"[{name}] ...", end=" ", flush=True)
    result = action()
    print(f"done in {time.monotonic() - began:.1f} s", flush=True)
    return result


def run(argv: list[str], cwd: Path | None = None, log: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run a build command; its output goes to `log` and is shown only if it fails."""
    log = log or WORK / "last-command.log"
    with open(log, "wb") as f:
        f.write(("$ " + shlex.join(argv) + "\n").encode())
        f.flush()
        done = subprocess.run(argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        sys.stderr.write(Path(log).read_text(errors="replace")[-6000:])
        raise SystemExit(f"build: {argv[0]} failed ({done.returncode}); full log: {log}")


def read_lock() -> list[tuple[str, str, str]]:
    entries = []
    for line in (HERE / "lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, filename, sha256 = line.split()
            entries.append((name, filename, sha256))
    return entries


# -- 1. the interpreter -------------------------------------------------------------


# Profile-guided: the interpreter is built once instrumented, runs train.py (the daemon's
# start and its hot paths), and is built again from those counts: ~4% faster starts.
PROFILE_GENERATE = "-fprofile-generate -fprofile-update=prefer-atomic"
PROFILE_USE = "-fprofile-use -fprofile-correction -Wno-missing-profile"


def configure_cpython() -> Path:
    """The source tree, unpacked and configured (once)."""
    src = WORK / f"cpython-{CPYTHON_VERSION}"
    if (src / ".configured").exists():
        return src
    shutil.rmtree(src, ignore_errors=True)
    tarball = debian_source_tarball()
    with tarfile.open(tarball) as tar:
        tar.extractall(WORK, filter="data")
    (WORK / f"Python-{CPYTHON_VERSION}").rename(src)
    env = dict(os.environ, MODULE_BUILDTYPE="static")
    env.update({f"py_cv_module_{name}": "n/a" for name in DISABLED_MODULES})
    run(
        ["./configure", "--disable-shared", "--without-ensurepip", "--disable-test-modules",
         "--without-doc-strings", "--prefix=/nonexistent",
         # No unwind tables: C code never unwinds (~1 MB less); sections for --gc-sections.
         "CFLAGS=-ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables"],
        cwd=src, log=WORK / "cpython-configure.log", env=env,
    )  # fmt: skip
    # configure leaves stdlib modules to setup.py unless they are in Setup.local.
    setup = (src / "Modules" / "Setup.stdlib").read_text()
    (src / "Modules" / "Setup.local").write_text(setup.split("\n*shared*\n")[0] + "\n")
    # (-W: Setup.local may carry configure's own timestamp; regenerate regardless.)
    run(["make", "-W", "Modules/Setup.local", "Makefile"], cwd=src, log=WORK / "cpython-make.log")
    (src / ".configured").touch()
    return src


def interpreter_ready(src: Path) -> bool:
    return (src / ".built-with-profile").exists()


def make_libpython(src: Path, flags: str) -> None:
    """`libpython3.11.a` compiled with `flags` (the objects of an earlier build removed,
    the profile counts kept)."""
    run(["make", "clean-retain-profile"], cwd=src, log=WORK / "cpython-make.log")
    run(["make", f"-j{JOBS}", "libpython3.11.a", f"CFLAGS_NODIST={flags}", f"LDFLAGS_NODIST={flags}"],
        cwd=src, log=WORK / "cpython-make.log")  # fmt: skip
    if flags == PROFILE_GENERATE:  # earlier counts, and the build's own runs of its tools: not our workload
        for counts in src.rglob("*.gcda"):
            counts.unlink()
    else:
        (src / ".built-with-profile").touch()


def debian_source_tarball() -> Path:
    """CPython's upstream tarball as Debian mirrors it (no Debian patches applied)."""
    dest = WORK / "downloads"
    dest.mkdir(parents=True, exist_ok=True)
    existing = sorted(dest.glob(f"python3.11_{CPYTHON_VERSION}.orig.tar.*"))
    if existing:
        return existing[0]
    sources = Path("/etc/apt/sources.list.d/sandbox-api-src.sources")
    if not sources.exists():
        sources.write_text(
            "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
        run(["apt-get", "update", "-qq"], log=WORK / "apt.log")
    # The .dsc of a newer security upload may be gone from the mirror; the orig
    # tarball is what we need, so a partial failure is checked by its result.
    subprocess.run(["apt-get", "source", "--download-only", "-qq", "python3.11"], cwd=dest,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    existing = sorted(dest.glob(f"python3.11_{CPYTHON_VERSION}.orig.tar.*"))
    if not existing:
        raise SystemExit(f"build: could not download python3.11_{CPYTHON_VERSION}.orig.tar.* with apt-get source")
    return existing[0]


# -- 2. native extensions -------------------------------------------------------------


def fetch_sources(lock: list[tuple[str, str, str]]) -> dict[str, Path]:
    """Each locked archive, unpacked (sdists) or as the wheel file; by project name."""
    downloads = WORK / "downloads"
    unpacked = WORK / "sources"
    unpacked.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, filename, sha256 in lock:
        if name == "ripgrep":  # a program, not Python code: see ripgrep()
            continue
        path = Path(fetch.fetch(name, filename, sha256, str(downloads)))
        if filename.endswith(".whl"):
            result[name] = path
            continue
        target = unpacked / filename.removesuffix(".tar.gz")
        if not target.exists():
            with tarfile.open(path) as tar:
                tar.extractall(unpacked, filter="data")
        result[name] = target
    return result


def cython_tool() -> Path:
    venv = WORK / "cython-venv"
    cython = venv / "bin" / "cython"
    if not cython.exists():
        run([sys.executable, "-m", "venv", str(venv)], log=WORK / "cython.log")
        run([str(venv / "bin" / "pip"), "install", "-q", "--only-binary=:all:", CYTHON], log=WORK / "cython.log")
    return cython


class Extension:
    """One native module: its dotted name, sources (relative to its project's root)."""

    def __init__(self, project: str, name: str, sources: list[str], *, cpp: bool = False,
                 include: tuple[str, ...] = (), defines: tuple[str, ...] = (), flags: tuple[str, ...] = (),
                 cythonize: str | None = None, trim: Callable[[Path], None] | None = None) -> None:  # fmt: skip
        self.project, self.name, self.sources, self.cpp = project, name, sources, cpp
        self.include, self.defines, self.flags, self.cythonize = include, defines, flags, cythonize
        self.trim = trim  # edits the .pyx before Cython runs

    @property
    def symbol(self) -> str:
        return "PyInit_" + self.name.rsplit(".", 1)[-1]

    @property
    def unique_symbol(self) -> str:
        return "PyInit_sbx_" + self.name.replace(".", "__")


RF_INCLUDE = ("src/rapidfuzz", "extern/rapidfuzz-cpp", "extern/taskflow", "src/rapidfuzz/distance")
# -Os: the scorers are template instantiations for every character width (2.4 MB at -O2).
# Only what fuzzy search uses is built: `rapidfuzz.fuzz` (unused) runs as Python.
RF_FLAGS = ("-std=c++17", "-Os")


def lcs_seq_only(pyx: Path) -> None:
    """rapidfuzz's metrics_cpp holds every metric (1.7 MiB linked); fuzzy search scores
    with LCSseq alone. Each rapidfuzz.distance module imports its functions by name
    from metrics_cpp and falls back to the pure-Python ones on ImportError, so the
    others still work, in Python."""
    text = pyx.read_text()
    first = text.find("\ndef levenshtein_distance(")
    lcs_seq = text.find("\ndef lcs_seq_distance(")
    after = text.find("\ndef indel_distance(")
    if first < 0 and after < 0 and lcs_seq > 0:
        return  # already trimmed
    if not 0 < first < lcs_seq < after:
        raise SystemExit(f"build: {pyx} is not laid out as expected (levenshtein, ..., lcs_seq, indel, ...)")
    pyx.write_text(text[:first] + text[lcs_seq:after])


# libmpdec as CPython's Makefile lists it (LIBMPDEC_OBJS; not its bench*.c programs).
MPDEC_SOURCES = """basearith constants context convolute crt difradix2 fnt fourstep io mpalloc mpdecimal
mpsignal numbertheory sixstep transpose""".split()

EXTENSIONS = [
    Extension("multidict", "multidict._multidict", ["multidict/_multidict.c"]),
    Extension("yarl", "yarl._quoting_c", ["yarl/_quoting_c.c"], cythonize="yarl/_quoting_c.pyx"),
    Extension("propcache", "propcache._helpers_c", ["src/propcache/_helpers_c.c"],
              cythonize="src/propcache/_helpers_c.pyx"),
    Extension("frozenlist", "frozenlist._frozenlist", ["frozenlist/_frozenlist.cpp"], cpp=True,
              cythonize="frozenlist/_frozenlist.pyx"),
    Extension("aiohttp", "aiohttp._websocket.mask", ["aiohttp/_websocket/mask.c"]),
    Extension("aiohttp", "aiohttp._websocket.reader_c", ["aiohttp/_websocket/reader_c.c"]),
    Extension("aiohttp", "aiohttp._http_writer", ["aiohttp/_http_writer.c"]),
    Extension("aiohttp", "aiohttp._http_parser",
              ["aiohttp/_http_parser.c", "aiohttp/_find_header.c", "vendor/llhttp/build/c/llhttp.c",
               "vendor/llhttp/src/native/api.c", "vendor/llhttp/src/native/http.c"],
              include=("vendor/llhttp/build",), defines=("LLHTTP_STRICT_MODE=0",)),
    Extension("psutil", "psutil._psutil_linux",
              ["psutil/_psutil_linux.c", "psutil/arch/linux/*.c", "psutil/arch/all/*.c", "psutil/arch/posix/*.c"],
              defines=("PSUTIL_POSIX=1", "PSUTIL_LINUX=1", "PSUTIL_SIZEOF_PID_T=4", "PSUTIL_VERSION={psutil_version}")),
    Extension("rapidfuzz", "rapidfuzz._feature_detector_cpp",
              ["src/rapidfuzz/_feature_detector_cpp.cxx", "src/rapidfuzz/FeatureDetector/CpuInfo.cpp"],
              cpp=True, include=(*RF_INCLUDE, "src/rapidfuzz/FeatureDetector"), flags=RF_FLAGS),
    Extension("rapidfuzz", "rapidfuzz.utils_cpp", ["src/rapidfuzz/utils_cpp.cxx", "src/rapidfuzz/utils.cpp"],
              cpp=True, include=RF_INCLUDE, flags=RF_FLAGS),
    Extension("rapidfuzz", "rapidfuzz.process_cpp_impl", ["src/rapidfuzz/process_cpp_impl.cxx"], cpp=True,
              include=RF_INCLUDE, flags=RF_FLAGS),
    Extension("rapidfuzz", "rapidfuzz.distance._initialize_cpp", ["src/rapidfuzz/distance/_initialize_cpp.cxx"],
              cpp=True, include=RF_INCLUDE, flags=RF_FLAGS),
    Extension("rapidfuzz", "rapidfuzz.distance.metrics_cpp", ["src/rapidfuzz/distance/metrics_cpp_lcs_seq.cxx"],
              cpp=True, include=RF_INCLUDE, flags=RF_FLAGS, cythonize="src/rapidfuzz/distance/metrics_cpp.pyx",
              trim=lcs_seq_only),
    # One C file; its setup.py passes no defines (only -g0 and libm, which the link has).
    Extension("msgspec", "msgspec._core", ["src/msgspec/_core.c"]),
    # The standard `decimal`, in C: msgspec._core imports it as it starts (its Decimal
    # type). Compiled here from the interpreter's own tree rather than by its configure,
    # so that adding it rebuilds this object, not the cached interpreter.
    Extension("cpython", "_decimal",
              ["Modules/_decimal/_decimal.c", *[f"Modules/_decimal/libmpdec/{name}.c" for name in MPDEC_SOURCES]],
              include=("Include/internal", "Modules/_decimal/libmpdec"),
              # As CPython's configure picks them for x86-64 with gcc (its `uint128` case).
              defines=("Py_BUILD_CORE_BUILTIN=1", "CONFIG_64=1", "ANSI=1", "HAVE_UINT128_T=1"),
              flags=("-Os",)),  # the daemon does no decimal arithmetic: 70 KB less than -O2
    # Our own: the Linux calls the standard library lacks (the venv builds it via setup.py).
    Extension("sandbox-api", "sandbox_api.linux._native", ["sandbox_api/linux/_native.c"]),
]  # fmt: skip


def build_extensions(cpython: Path, sources: dict[str, Path], cython: Path) -> list[Path]:
    objdir = WORK / "objects"
    objdir.mkdir(parents=True, exist_ok=True)
    sources = dict(sources, **{"sandbox-api": ROOT, "cpython": cpython})
    for ext in EXTENSIONS:  # Cython first (cheap, sequential: it shares its cache)
        if ext.cythonize:
            root = sources[ext.project]
            target = root / ext.sources[0]
            if not target.exists():
                if ext.trim is not None:
                    ext.trim(root / ext.cythonize)
                includes = [f"-I{root / d}" for d in ext.include]
                args = [str(cython), "-3", *includes, "-o", str(target), str(root / ext.cythonize)]
                if ext.cpp:
                    args.insert(1, "--cplus")
                run(args, cwd=root, log=WORK / "cython.log")

    def compile_one(ext: Extension) -> Path:
        root = sources[ext.project]
        out = objdir / f"{ext.name}.o"
        files = [f for pattern in ext.sources for f in sorted(glob.glob(str(root / pattern)))]
        # The sources decide (third-party headers come from pinned archives).
        described = {k: getattr(v, "__name__", v) for k, v in vars(ext).items()}  # a function by its name
        digest = hashlib.sha256(repr(described).encode() + CPYTHON_VERSION.encode() + COMPILE_FLAGS_VERSION)
        for f in files:
            digest.update(Path(f).read_bytes())
        stamp = objdir / f"{ext.name}.sha256"
        if out.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
            return out
        parts = []
        defines = [d.format(psutil_version=psutil_version(root)) if "{" in d else d for d in ext.defines]
        for i, source in enumerate(files):
            part = objdir / f"{ext.name}.{i}.part.o"
            cpp = source.endswith((".cpp", ".cxx", ".cc"))
            compiler = "g++" if cpp else "gcc"
            unwind = [] if cpp else ["-fno-asynchronous-unwind-tables", "-fno-unwind-tables"]
            run(
                [compiler, "-c", "-O2", "-DNDEBUG", "-fno-semantic-interposition", "-ffunction-sections",
                 "-fdata-sections", "-fno-plt", *unwind, *ext.flags,
                 f"-I{cpython / 'Include'}", f"-I{cpython}", *[f"-I{root / d}" for d in ext.include],
                 f"-I{Path(source).parent}", *[f"-D{d}" for d in defines], "-o", str(part), source],
                log=objdir / f"{ext.name}.{i}.log",
            )  # fmt: skip
            parts.append(part)
        merged = objdir / f"{ext.name}.merged.o"
        run(["ld", "-r", "-o", str(merged), *map(str, parts)], log=objdir / f"{ext.name}.ld.log")
        # Its init function renamed to be unique, and every other strong global symbol
        # made local, so that modules cannot clash. Weak ones (C++ inline and template
        # code, the same in every module by the one-definition rule) stay: the linker
        # keeps one copy, and localizing them would break their COMDAT groups.
        listing = subprocess.run(
            ["nm", "--defined-only", "-g", str(merged)], capture_output=True, text=True, check=True
        )
        strong = [line.split()[-1] for line in listing.stdout.splitlines()
                  if len(line.split()) == 3 and line.split()[1] in "TDBRCG" and line.split()[-1] != ext.symbol]  # fmt: skip
        local = objdir / f"{ext.name}.localize"
        local.write_text("\n".join(strong) + "\n")
        run(["objcopy", f"--redefine-sym={ext.symbol}={ext.unique_symbol}", f"--localize-symbols={local}",
             str(merged), str(out)], log=objdir / f"{ext.name}.objcopy.log")  # fmt: skip
        for part in [*parts, merged, local]:
            part.unlink()
        stamp.write_text(digest.hexdigest())
        return out

    # Biggest first, so the long C++ files do not end up last on one core.
    ordered = sorted(EXTENSIONS, key=lambda e: -sum(os.path.getsize(f) for p in e.sources
                                                     for f in glob.glob(str(sources[e.project] / p))))  # fmt: skip
    with ThreadPoolExecutor(JOBS) as pool:
        objects = list(pool.map(compile_one, ordered))
    return objects


def psutil_version(root: Path) -> str:
    """psutil's C code wants its version as a number (7.2.2 -> 722), as its setup.py gives it."""
    match = re.search(r'__version__ = "([\d.]+)"', (root / "psutil" / "__init__.py").read_text())
    if match is None:
        raise SystemExit("build: no __version__ in psutil/__init__.py")
    return match.group(1).replace(".", "")


# -- 3. link --------------------------------------------------------------------------


def link(cpython: Path, objects: list[Path], instrumented: bool = False) -> Path:
    gen = WORK / "launcher"
    gen.mkdir(parents=True, exist_ok=True)
    lines = [f"extern PyObject *{e.unique_symbol}(void);" for e in EXTENSIONS]
    lines.append("static struct _inittab sbx_inittab[] = {")
    lines += [f'    {{"{e.name}", {e.unique_symbol}}},' for e in EXTENSIONS]
    lines += ["    {NULL, NULL}", "};"]
    (gen / "inittab.h").write_text("\n".join(lines) + "\n")
    makefile = (cpython / "Makefile").read_text()
    libs = []
    for var in re.findall(r"^MODULE_\w+_LDFLAGS=(.*)$", makefile, re.M):
        libs += [flag for flag in var.split() if flag not in libs]
    executable = gen / ("sandbox-api-instrumented.elf" if instrumented else "sandbox-api.elf")
    run(
        ["g++", "-static", "-O2", "-Wl,--gc-sections", "-s",
         f"-I{cpython / 'Include'}", f"-I{cpython}", f"-I{gen}", "-x", "c", str(HERE / "main.c"), "-x", "none",
         *map(str, objects), str(cpython / "libpython3.11.a"), *libs, "-lm", "-lpthread", "-ldl", "-lutil",
         *(PROFILE_GENERATE.split() if instrumented else ()), "-o", str(executable)],
        log=WORK / "link.log",
    )  # fmt: skip
    return executable


# -- 4. the code archive --------------------------------------------------------------


def pyc(source: bytes, name: str) -> bytes:
    """Bytecode with an unchecked-hash header: zipimport loads it without a source.

    Ours keeps docstrings and asserts (as the tests run it); the standard library and
    the dependencies lose them (-OO), which makes them ~15% smaller.
    """
    optimize = 0 if name.startswith(("sandbox_api/", "_sandbox_boot")) else 2
    code = compile(source, name, "exec", dont_inherit=True, optimize=optimize)
    flags = 0b01  # hash-based, unchecked
    return importlib.util.MAGIC_NUMBER + struct.pack("<I", flags) + b"\0" * 8 + marshal.dumps(code)


STARTUP_IMPORTS = WORK / "startup-imports.txt"
# Code compiled from source text during a start (dataclasses, attrs...), recorded by the
# same learning run: boot.py answers those compiles from it (see PrecompiledSources there).
PRECOMPILED = WORK / "precompiled.marshal"


# The file's size limit (issue: every image carries it): start-up modules are stored
# while the whole fits, the biggest deflated first when it would not.
MAX_FILE_BYTES = int(float(os.environ.get("SANDBOX_BINARY_MAX_MIB", "20")) * 2**20)


class Archive:
    def __init__(self, path: Path, frozen: Collection[str], room: int) -> None:
        """`frozen`: modules the interpreter holds itself (never looked up in the zip);
        `room`: bytes the zip may take."""
        self.path, self.frozen, self.room = path, frozen, room
        self.entries: dict[str, tuple[bytes, bool]] = {}  # name -> (data, stored)
        known = STARTUP_IMPORTS.read_text().split() if STARTUP_IMPORTS.exists() else []
        # SANDBOX_BINARY_SMALL=1: everything deflated, ~3 MB smaller, slower to start.
        small = os.environ.get("SANDBOX_BINARY_SMALL") == "1"
        self.stored = {"_sandbox_boot"} if small else {"_sandbox_boot", *known}

    def add_module(self, arcname: str, source: bytes) -> None:
        """`arcname` like "pkg/mod.py"; stored as "pkg/mod.pyc"."""
        name = arcname[:-3] + ".pyc"
        module = name[:-4].removesuffix("/__init__").replace("/", ".")
        if name not in self.entries and module not in self.frozen:
            # Deflated, but for what a start imports (see main).
            self.entries[name] = (pyc(source, arcname), module in self.stored)

    def add_data(self, arcname: str, data: bytes, compress: bool = True) -> None:
        if arcname not in self.entries:
            self.entries[arcname] = (data, not compress)

    def close(self) -> None:
        deflated = {name: zlib.compress(data, 9)[2:-4] for name, (data, stored) in self.entries.items() if not stored}
        stored = {name: data for name, (data, keep) in self.entries.items() if keep}
        # Exact: each entry's local header (30 bytes) and central record (46) carry its name;
        # then the end record (22) and main.c's trailer (16). (An estimate let it pass the limit.)
        overhead = sum(76 + 2 * len(name.encode()) for name in self.entries) + 22 + 16
        size = sum(map(len, deflated.values())) + sum(map(len, stored.values())) + overhead
        for name in sorted(stored, key=lambda n: -len(stored[n])):  # the biggest first: fewest inflated
            if size <= self.room:
                break
            deflated[name] = zlib.compress(stored.pop(name), 9)[2:-4]
            size -= len(self.entries[name][0]) - len(deflated[name])
        with zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED) as archive:
            for name, (data, _) in self.entries.items():
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
                archive.writestr(info, data, compresslevel=9 if name in deflated else None)

    def add_tree(self, root: Path, package: str, skip: Collection[str] = (), data: bool = False) -> None:
        base = root / package
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in skip and d != "__pycache__" and not d.startswith("."))
            rel = Path(dirpath).relative_to(root)
            for filename in sorted(filenames):
                if filename in skip:
                    continue
                path = Path(dirpath) / filename
                arcname = (rel / filename).as_posix()
                if filename.endswith(".py"):
                    self.add_module(arcname, path.read_bytes())
                elif data and not filename.endswith(
                    (".pyc", ".pyx", ".pxd", ".pyi", ".c", ".cpp", ".cxx", ".h", ".hpp", ".so", ".o")
                ):
                    self.add_data(arcname, path.read_bytes())


def build_archive(cpython: Path, sources: dict[str, Path], executable: Path) -> Path:
    path = WORK / "code.zip"
    archive = Archive(path, frozen_modules(cpython), MAX_FILE_BYTES - executable.stat().st_size)
    archive.add_module("_sandbox_boot.py", (HERE / "boot.py").read_bytes())
    lib = cpython / "Lib"
    for entry in sorted(lib.iterdir()):
        if entry.name in SKIPPED_STDLIB or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            archive.add_tree(lib, entry.name, skip={"test", "tests", "idle_test"})
        elif entry.suffix == ".py":
            archive.add_module(entry.name, entry.read_bytes())
    for location in sources.values():  # pure-Python dependencies: their wheels' modules
        if location.suffix == ".whl":
            with zipfile.ZipFile(location) as wheel:
                for member in sorted(wheel.namelist()):
                    if member.endswith(".py") and not member.split("/", 1)[0].endswith((".dist-info", ".data")):
                        archive.add_module(member, wheel.read(member))
    packages = {"aiohttp": "aiohttp", "yarl": "yarl", "multidict": "multidict", "frozenlist": "frozenlist",
                "propcache": "src/propcache", "psutil": "psutil", "rapidfuzz": "src/rapidfuzz",
                "msgspec": "src/msgspec"}  # fmt: skip
    for project, package in packages.items():
        root = sources[project] / Path(package).parent
        archive.add_tree(root, Path(package).name, skip={"tests", "__pyinstaller", "_pyinstaller"})
    archive.add_tree(ROOT, "sandbox_api", data=True)
    archive.add_module("sandbox_api/_build.py", build_stamp())
    archive.add_data("sandbox_api/_bundled/rg", ripgrep(), compress=True)
    if PRECOMPILED.exists():
        archive.add_data(PRECOMPILED_ARCNAME, PRECOMPILED.read_bytes(), compress=False)
    archive.close()
    return path


def frozen_modules(cpython: Path) -> set[str]:
    """The modules compiled into the interpreter (Python/frozen.c), which it imports
    from there: their copies in the zip would never be read."""
    table = (cpython / "Python" / "frozen.c").read_text()
    names = set(re.findall(r'^\s*\{"([\w.]+)", NULL, 0, false, GET_CODE', table, re.M))
    if not {"os", "codecs", "_frozen_importlib", "zipimport"} <= names:
        raise SystemExit("build: Python/frozen.c does not list the frozen modules as expected")
    aliases = {
        "_frozen_importlib": "importlib._bootstrap",
        "_frozen_importlib_external": "importlib._bootstrap_external",
    }
    return {aliases.get(n, n) for n in names} - {"os.path"}


def build_stamp() -> bytes:
    """`sandbox_api/_build.py`: the commit and time /health reports."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if commit and subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0:
        commit += "-dirty"
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    return f"GIT_COMMIT = {commit or 'unknown'!r}\nBUILD_TIME = {when!r}\n".encode()


def ripgrep() -> bytes:
    """The static-pie `rg` of the ripgrep wheel for musl: runs with or without a libc."""
    lock = {name: (filename, sha) for name, filename, sha in read_lock()}
    filename, sha256 = lock["ripgrep"]
    wheel = fetch.fetch("ripgrep", filename, sha256, str(WORK / "downloads"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith("/scripts/rg"))
        data = z.read(member)
    stripped = WORK / "rg"
    stripped.write_bytes(data)
    run(["strip", str(stripped)], log=WORK / "strip.log")
    return stripped.read_bytes()


def learn_startup_imports(binary: Path) -> bool:
    """Start the binary until /health answers, twice; record the modules it imported and
    the code it compiled from source text that both starts compiled alike (attrs puts a
    hash salt in the text it generates: that text differs at every start). True when
    either record changed."""
    first_names, first_compiled = start_and_record(binary)
    names, compiled = start_and_record(binary)
    names = sorted(set(names) | set(first_names))
    table = {key: code for key, code in compiled.items() if key in first_compiled}
    previous = STARTUP_IMPORTS.read_text().split() if STARTUP_IMPORTS.exists() else []
    STARTUP_IMPORTS.write_text("\n".join(names) + "\n")
    previous_table = marshal.loads(PRECOMPILED.read_bytes()) if PRECOMPILED.exists() else {}
    PRECOMPILED.write_bytes(marshal.dumps(table))
    return names != previous or set(table) != set(previous_table)


def start_and_record(binary: Path) -> tuple[list[str], dict[tuple[str, str, str, int], object]]:
    import socket
    import tempfile
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="sandbox-api-build-") as state:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SANDBOX_STATE_DIR": state, "WORKDIR": state,
               "SANDBOX_IMPORTTIME": "1", "DISABLE_REQUEST_LOGGING": "true",
               RECORD_COMPILES: str(Path(state) / "precompiled")}  # fmt: skip
        with open(Path(state) / "imports", "w+") as err:
            proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "-p", str(port)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
            try:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                        break
                    except OSError:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise SystemExit(
                                f"build: {binary} did not start:\n{Path(err.name).read_text()[-3000:]}"
                            ) from None
                        time.sleep(0.01)
            finally:
                proc.terminate()
                proc.wait(20)
            err.seek(0)
            names = sorted(
                {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", err.read(), re.M)}
            )
        compiled = marshal.loads((Path(state) / "precompiled").read_bytes())
    return names, compiled


# -- 5. assemble ----------------------------------------------------------------------


def assemble(executable: Path, archive: Path, out: Path) -> None:
    """ELF + zip (+ trailer as the zip's comment: magic and the whole file's size)."""
    elf = executable.read_bytes()
    code = archive.read_bytes()
    total = len(elf) + len(code) + 16  # the comment is 16 bytes; its length field is in `code`
    # Set the comment length (last 2 bytes of the end record) and append the comment.
    if code[-22:-18] != b"PK\x05\x06" or code[-2:] != b"\0\0":
        raise SystemExit("build: unexpected zip end record")
    body = elf + code[:-2] + struct.pack("<H", 16) + b"SBXAPI01" + struct.pack("<Q", total)
    assert len(body) == total
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(body)
    tmp.chmod(0o755)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
