"""Builds the optional native Mahalanobis kernel; everything else is in pyproject.toml.

The kernel is plain C with no Python headers: edge/padim/kernel.py loads it with ctypes. So it
needs only a C compiler, is the same file for every Python version, and is written as
``edge/padim/libedge_mahal.so.1`` (a library name, which Python will not take for a module). ``optional=True``: without a
compiler the install still succeeds and scoring uses numpy (``edge-inspect info`` says which).
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL = "edge.padim._mahal"


class BuildKernel(build_ext):
    def get_ext_filename(self, fullname):
        # called with the full dotted name, and with its last part only (distutils' get_ext_fullpath)
        parts = fullname.split(".")
        if parts[-1] == KERNEL.split(".")[-1]:
            return os.path.join(*parts[:-1], "libedge_mahal.so.1")
        return super().get_ext_filename(fullname)


setup(ext_modules=[Extension(KERNEL, ["edge/padim/_mahal.c"], optional=True,
                             extra_compile_args=["-O3", "-std=c99", "-Wall"])],
      cmdclass={"build_ext": BuildKernel})
