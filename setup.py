"""Builds the Cython extensions in rt_ext/; all metadata lives in pyproject.toml.

RT_DEBUG=1 at build time turns on bounds checks, wraparound, line tracing and annotated HTML.
"""

import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RT_DEBUG", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "linetrace": DEBUG,
}
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

extensions = [
    Extension(
        f"rt_ext.{name}",
        [f"rt_ext/{name}.pyx"],
        include_dirs=["rt_ext", np.get_include()],
        define_macros=macros,
        extra_compile_args=["-O3"] if os.name != "nt" else [],
    )
    for name in ("decode", "ring", "merge", "recv", "rawpack", "wire")
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG))
