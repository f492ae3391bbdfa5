"""Build hook for the one optional C extension (metadata lives in pyproject.toml).

``prodlib._scan2014`` speeds up the Amazon 2014 reader; when no C compiler is available the build goes on
without it and ``prodlib.catalog`` uses its pure-Python scanner (same results, about half as fast).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("prodlib._scan2014", ["prodlib/_scan2014.c"], optional=True)])
