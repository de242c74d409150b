"""Declares the compiled extensions; all metadata lives in pyproject.toml.

Every ``cython_src/bytepiece/_core/NAME.pyx`` becomes the private module
``bytepiece._core.NAME`` (the folders under cython_src/ mirror the module names, so
that the modules can cimport each other's .pxd declarations). ``.pxd`` files without a
``.pyx`` (``common/``, ``chunks.pxd``) are header-only: compiled into every module
that cimports them.
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
SOURCES = HERE / "cython_src"

extensions = [
    Extension(
        f"bytepiece._core.{source.stem}",
        [str(source.relative_to(HERE))],
        extra_compile_args=["-O3"],
    )
    for source in sorted((SOURCES / "bytepiece" / "_core").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[str(SOURCES)],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
