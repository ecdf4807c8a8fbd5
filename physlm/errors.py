"""Errors that mean "your input is wrong": stages print them as one line and exit 1, writing nothing."""


class PhyslmError(Exception):
    """Base class for user-facing errors (bad params, bad data files, unknown names)."""


class ParamsError(PhyslmError):
    """A params.yaml value is missing, unknown or invalid; the message names the key."""


class DataError(PhyslmError):
    """An input data file (Parquet, token shard, checkpoint) is missing, corrupt or inconsistent."""
