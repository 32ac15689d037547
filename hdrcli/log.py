"""The package logger. Library code warns through it; the CLI decides how it is shown."""

import logging

logger = logging.getLogger("hdrcli")


def warn(message: str) -> None:
    """Report something the user should know but that does not stop the job."""
    logger.warning(message)


def info(message: str) -> None:
    logger.info(message)
