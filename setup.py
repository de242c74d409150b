"""Declares the compiled extensions; all metadata lives in pyproject.toml.

Every ``cython_src/NAME.pyx`` becomes the private module ``bytepiece.NAME``.
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent

extensions = [
    Extension(
        f"bytepiece.{source.stem}",
        [str(source.relative_to(HERE))],
        extra_compile_args=["-O3"],
    )
    for source in sorted((HERE / "cython_src").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[str(HERE / "cython_src")],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
