"""The one place the env layer imports LIBERO (and, through it, robosuite), with their chatter
silenced where it is made, not by filtering stdout:

- robosuite warns three lines on import when it finds no ``robosuite/macros_private.py``
  (``[robosuite WARNING] No private macro file found!`` ...), a file its setup script copies
  into site-packages; the private file changes nothing here (robosuite 1.4 imports it into its
  package namespace, not into ``robosuite.macros``). A filter on robosuite's own logger drops
  exactly those three records (and the DeprecationWarning of the ``Logger.warn`` that logs them);
  its other warnings pass.
- LIBERO's benchmark module ``print``s ``[info] Applying task order index 0 ...`` each time a
  suite is built; its ``print`` is routed to the ``libero`` logger: ``[info]`` lines at DEBUG,
  anything else (``[warning]``, ``[error]``) at WARNING, so those stay visible.

The logger filter is installed when the env layer is imported (before anything can import
robosuite); the imports themselves stay deferred (~1.5 s).
"""
from __future__ import annotations

import logging
import warnings

ROBOSUITE_LOGGER = "robosuite_logs"
"""The logger robosuite's DefaultLogger writes to (robosuite.utils.log_utils)."""
ROBOSUITE_MACRO_HINTS = ("No private macro file found!", "It is recommended to use a private macro file",
                         "To setup, run: python ")
libero_log = logging.getLogger("libero")


def _not_a_macro_hint(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(ROBOSUITE_MACRO_HINTS)


def quiet_robosuite() -> None:
    """Drop robosuite's 'no private macro file' hints (idempotent; before robosuite is imported)."""
    logger = logging.getLogger(ROBOSUITE_LOGGER)
    if _not_a_macro_hint not in logger.filters:
        logger.addFilter(_not_a_macro_hint)


def _log_print(*values, sep: str = " ", **_ignored) -> None:
    message = sep.join(map(str, values))
    libero_log.log(logging.DEBUG if message.startswith("[info]") else logging.WARNING, message)


def libero_benchmark():
    """``libero.libero.benchmark``, its ``print`` routed to the ``libero`` logger."""
    from libero.libero import benchmark

    benchmark.print = _log_print  # a module global shadows the builtin for that module's code only
    return benchmark


def libero_path(name: str) -> str:
    """``libero.libero.get_libero_path(name)``: where LIBERO keeps its bddl files, init states, assets."""
    from libero.libero import get_libero_path

    return get_libero_path(name)


def libero_envs():
    """``libero.libero.envs`` (imports robosuite and mujoco), without robosuite's macro hints."""
    quiet_robosuite()
    with warnings.catch_warnings():  # robosuite logs those hints with Logger.warn, itself deprecated
        warnings.filterwarnings("ignore", "The 'warn' method is deprecated", DeprecationWarning)
        from libero.libero import envs

    return envs


quiet_robosuite()
