"""The export package's error type."""


class ExportError(ValueError):
    """The model, its files or the export target cannot be exported as asked."""
