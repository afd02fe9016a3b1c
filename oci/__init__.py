"""OCI formats and the image side of trioctr.

Modules (none imports trio; all are synchronous and meant to be called from the
daemon through ``trio.to_thread.run_sync``):

- ``oci.digest``    sha256 helpers, digest parsing, short ids, chain ids (stdlib only)
- ``oci.reference`` Docker image reference parsing and normalisation (stdlib only)
- ``oci.units``     Docker size parsing and formatting (stdlib only: the CLI imports it)
- ``oci.errors``    the error classes raised here (stdlib only)
- ``oci.unpack``    safe layer extraction with overlayfs whiteouts
- ``oci.changes``   ``docker import -c`` / ``commit -c`` Dockerfile instructions
- ``oci.store``     the image store: blobs, layers, images, references
- ``oci.spec``      the OCI runtime config.json builder

This ``__init__`` deliberately imports nothing, so that ``import oci.units`` from
the CLI stays cheap and dependency-free.
"""
