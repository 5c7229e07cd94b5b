"""Build the flinq C extension.

Environment switches for development builds:
  FLINQ_DEBUG=1     -O0 -g, C asserts on, Cython line tracing off.
  FLINQ_SANITIZE=address,undefined (or thread)
                    compile and link the extension with those sanitizers
                    (run Python with the matching runtime in LD_PRELOAD).
  FLINQ_METRICS=0   compile the queue metrics out (include/flinq/metrics.h),
                    to measure what they cost; stats() then reads zeros.
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FLINQ_DEBUG", "") not in ("", "0")
sanitize = os.environ.get("FLINQ_SANITIZE", "")
metrics = os.environ.get("FLINQ_METRICS", "1") not in ("0", "")

if sys.platform == "win32":
    compile_args = ["/O2", "/W4", "/std:c11", "/experimental:c11atomics"]
    link_args: list[str] = []
    macros: list[tuple[str, str]] = []
else:
    compile_args = ["-std=c11", "-Wall", "-Wextra", "-fno-strict-aliasing"]
    compile_args += ["-O0", "-g"] if debug else ["-O3"]
    link_args = []
    macros = [] if debug else [("NDEBUG", "1")]
    if sanitize:
        flag = f"-fsanitize={sanitize}"
        compile_args += [flag, "-fno-omit-frame-pointer", "-g"]
        link_args += [flag]

# flinq's C structures allocate through the Python allocator, so that
# tracemalloc accounts for a queue's memory (include/flinq/alloc.h).
macros += [
    ("FLQ_MALLOC", "PyMem_RawMalloc"),
    ("FLQ_REALLOC", "PyMem_RawRealloc"),
    ("FLQ_FREE", "PyMem_RawFree"),
]

if not metrics:
    macros += [("FLQ_METRICS_OFF", "1")]

# shm_open lives in librt before glibc 2.34 (manylinux_2_28 wheels build
# against 2.28): the extensions that map shared memory link it.
shm_libraries = ["rt"] if sys.platform.startswith("linux") else []



def extension(name, libraries=()):
    """The extension flinq.<name> built from src/flinq/<name>.pyx."""
    return Extension(
        f"flinq.{name}",
        [f"src/flinq/{name}.pyx"],
        include_dirs=["include"],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        libraries=list(libraries),
    )


extensions = [
    extension("_core"),
    # ArrayQueue: numpy records over include/flinq/records.h (numpy is
    # imported at run time; the build needs no numpy).
    extension("_array", shm_libraries),
    # Named shared-memory segments (include/flinq/shmseg.h) and sleeping on
    # their wait words, cimported by flinq._array and flinq._process.
    extension("_segment", shm_libraries),
    # ProcessQueue: shared memory between processes.
    extension("_process", shm_libraries),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "embedsignature": True},
        annotate=False,
    ),
)
