"""The one error every model loader raises for a name, directory or file it cannot load.

It lives in its own module so that every loader (bert, gpt_io, seq2seq, detr.checkpoint) and the
registry can import it without importing each other. The older names are subclasses of it:
`models.detr.checkpoint.CheckpointError` and `models.seq2seq.Seq2SeqLoadError` (both also ValueErrors);
`models.bert.ModelLoadError` is this class.
"""


class ModelLoadError(Exception):
    """A model that cannot be loaded; the message says what is wrong and how to fix it."""


# What building a model from a malformed config raises (sizes of the wrong type or sign: nn.Linear(-1, 4)
# is a RuntimeError, zero heads a ZeroDivisionError); each loader turns these into its ModelLoadError.
BUILD_ERRORS = (TypeError, ValueError, RuntimeError, ZeroDivisionError)
