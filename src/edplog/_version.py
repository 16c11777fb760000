"""The one place edplog's version is written.

The build reads it with a regular expression (scikit-build-core's regex metadata provider, see
pyproject.toml), so the wheel's metadata, ``edplog.__version__`` and ``edplog --version``
cannot disagree. It imports nothing: the build parses it without running the package.
"""

__version__ = "0.1.0"
