"""Typed errors. The library raises these; only ``cli.py`` turns them into exit codes."""


class BgcleanError(Exception):
    """Base of every error bgclean raises on purpose."""

    exit_code = 1


class InputError(BgcleanError):
    """The input, output path, masks or options are unusable. The message says what to fix."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


class ShapeError(BgcleanError, ValueError):
    """A tensor reached a function with the wrong shape, dtype or range."""


class WeightsError(BgcleanError):
    """Model weights could not be found, fetched, verified or converted."""

    exit_code = 3


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM: ``kill``, systemd, ``docker stop``, schedulers).
    A BaseException, like KeyboardInterrupt, so it unwinds through every ``except Exception``
    and each writer discards its staged output on the way."""


def stop_on_sigterm():
    """Turn SIGTERM into ``Terminated`` in this process; returns the handler it replaced (None off
    the main thread, where signals cannot be handled). For programs that own their process (the
    command line, batch workers), never called on import."""
    import signal
    import threading

    def _raise(signum, frame):
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise)
