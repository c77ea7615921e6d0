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
