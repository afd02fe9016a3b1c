"""trioctr: the docker-compatible command line client of trioctrd.

Imports only the Python standard library, lazily, so that a command such as
``trioctr ps`` costs little more than the interpreter's own start-up.
"""

__version__ = "0.1.0"
API_VERSION = "1.41"
