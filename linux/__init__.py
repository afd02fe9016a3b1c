"""The kernel boundary: the one package that calls libc (through ctypes).

Modules: ``syscalls`` (mount, namespaces, pivot_root, prctl, capabilities),
``cgroups`` (v1 and v2 file writes), ``bpf`` (cgroup v2 device rules as an
eBPF program), ``caps`` (capability names and numbers), ``seccomp``
(libseccomp), ``mounts`` (the container's mounts), ``net`` (bring ``lo`` up).
Never imports trio: the OCI runtime that uses it runs once per container and
must start fast.
"""
