"""Observation buffers in shared memory: workers write each step's frames and state in place,
the parent reads them without pickling anything.

Every array of an observation (camera images, proprio, each privileged-state entry) has one
block of shape (2, N, *shape): two buffers per environment. A worker writes a new observation
into the buffer the parent is not reading (the parent names it with each command), and the
parent switches to it when it collects the reply, so the observation the parent sees for an
environment stays put while that environment's worker is stepping; pipelined rollouts read the
other workers' rows meanwhile.

The parent creates the segment and unlinks its name as soon as every worker has attached:
from then on nothing is left in /dev/shm, whatever happens to any process; the memory goes
with the last mapping. ``close`` unlinks too, for a start that failed half way.
"""
from __future__ import annotations

import os
import secrets
import sys
from multiprocessing import resource_tracker, shared_memory

import numpy as np

NAME_PREFIX = "tgrpo_obs"
"""Segments are named ``{NAME_PREFIX}_{parent pid}_{random}``: tests look for leaks by it."""
_ALIGN = 64  # every block starts on a cache line


def _fields(spec: dict):
    """(path, shape, dtype) of every array of a spec as ``LiberoEnv.observation_spec`` returns it."""
    for key, value in spec.items():
        if key == "state":
            for name, (shape, dtype) in value.items():
                yield ("state", name), tuple(shape), np.dtype(dtype)
        else:
            shape, dtype = value
            yield (key,), tuple(shape), np.dtype(dtype)


def _block_bytes(n_envs: int, shape: tuple, dtype: np.dtype) -> int:
    size = 2 * n_envs * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return -(-size // _ALIGN) * _ALIGN


class SharedObservations:
    """Two observation buffers per environment in one shared-memory segment."""

    def __init__(self, shm: shared_memory.SharedMemory, spec: dict, n_envs: int, owner: bool):
        self._shm, self.spec, self.n = shm, spec, int(n_envs)
        self._linked = owner  # only the creating process unlinks
        self._top: dict[str, np.ndarray] = {}  # key -> (2, N, *shape) view of the segment
        self._state: dict[str, np.ndarray] = {}
        offset = 0
        for path, shape, dtype in _fields(spec):
            block = np.ndarray((2, self.n, *shape), dtype, buffer=shm.buf, offset=offset)
            offset += _block_bytes(self.n, shape, dtype)
            (self._state if path[0] == "state" else self._top)[path[-1]] = block

    @staticmethod
    def nbytes(spec: dict, n_envs: int) -> int:
        return sum(_block_bytes(n_envs, shape, dtype) for _, shape, dtype in _fields(spec))

    @classmethod
    def create(cls, spec: dict, n_envs: int) -> SharedObservations:
        """A new zeroed segment (parent side)."""
        name = f"{NAME_PREFIX}_{os.getpid()}_{secrets.token_hex(6)}"
        shm = shared_memory.SharedMemory(name=name, create=True, size=max(1, cls.nbytes(spec, n_envs)))
        return cls(shm, spec, n_envs, owner=True)

    @classmethod
    def attach(cls, name: str, spec: dict, n_envs: int) -> SharedObservations:
        """Map the parent's segment (worker side); the parent alone owns and unlinks it."""
        if sys.version_info >= (3, 13):
            shm = shared_memory.SharedMemory(name=name, track=False)
        else:
            shm = shared_memory.SharedMemory(name=name)
            # Python < 3.13 registers an attached segment with this process's resource tracker,
            # which would unlink the parent's segment, and warn of a leak, when the worker exits
            resource_tracker.unregister(f"/{shm.name}", "shared_memory")
        return cls(shm, spec, n_envs, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def write(self, buffer: int, env: int, obs: dict) -> None:
        """Copy one observation (as ``LiberoEnv.reset`` / ``step`` return it) into
        ``buffer`` (0 or 1) of environment ``env``."""
        for key, block in self._top.items():
            block[buffer, env] = obs[key]
        state = obs["state"]
        for key, block in self._state.items():
            block[buffer, env] = state[key]

    def read(self, buffers, envs) -> dict:
        """Copies of the observations of environments ``envs``, each from its buffer in
        ``buffers``, as a batch: ``{"agentview": (B, H, W, 3), "proprio": (B, 8), "state": {key: (B, ...)}}``."""
        b, e = np.asarray(buffers, dtype=np.intp), np.asarray(envs, dtype=np.intp)
        batch = {key: block[b, e] for key, block in self._top.items()}  # fancy indexing copies
        batch["state"] = {key: block[b, e] for key, block in self._state.items()}
        return batch

    def unlink(self) -> None:
        """Remove the segment's name (creator only; mappings stay valid). Idempotent."""
        if self._linked:
            self._linked = False
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Unmap the segment (after unlinking it, in the creator). Idempotent."""
        self.unlink()
        self._top, self._state = {}, {}  # the views hold the buffer: drop them first
        if self._shm is not None:
            try:
                self._shm.close()
            except BufferError:  # a view is still referenced somewhere: the mapping goes with it
                pass
            self._shm = None
