"""Typed errors. Each message is one line that names the problem and what to do."""

from __future__ import annotations


class RaysurrError(Exception):
    """Base of every error raysurr raises on purpose; commands print it as one line.

    Attributes:
        exit_code: the command's exit status (2: the user's input is wrong).
        detail: more than the one line (a remote traceback), printed with --debug.
    """

    exit_code = 2
    detail = ""


class ConfigError(RaysurrError, ValueError):
    """A configuration key is unknown, mistyped or out of range."""


class RegistryError(RaysurrError, KeyError):
    """A name is not registered; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ParameterError(RaysurrError, ValueError):
    """A simulator was given parameters it does not accept."""


class SimulationError(RaysurrError):
    """A simulator failed or produced an invalid output for some samples.

    Attributes:
        sample_ids: the ids of the offending samples (empty if unknown).
    """

    def __init__(self, message: str, sample_ids: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.sample_ids = tuple(int(i) for i in sample_ids)


class DatasetError(RaysurrError):
    """A dataset on disk is missing, incomplete, or not what the caller expects."""


class ResourceError(ConfigError):
    """The config asks for more of a resource per actor or worker than any node of the cluster has."""


class FolderBusyError(ConfigError):
    """Another command holds the lock of a run, sweep or experiment folder."""


class StoreError(DatasetError):
    """What a label store, dataset or run folder holds on disk is damaged or inconsistent."""


class RunFailed(RaysurrError):
    """The job failed inside Ray for a reason that is not a user error; the traceback went to a log file."""

    exit_code = 1
