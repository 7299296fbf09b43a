"""novic_ros's Python logging (model loading, image decoding) in the node's ROS log, under the node's
own logger name."""
from __future__ import annotations

import logging


class RosLogHandler(logging.Handler):
    """Python logging of novic_ros (model loading, image decoding) into the node's ROS log."""

    def __init__(self, logger):
        super().__init__()
        self.ros_logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(text)
        elif record.levelno >= logging.INFO:
            self.ros_logger.info(text)
        else:
            self.ros_logger.debug(text)

    @staticmethod
    def log_as(ros_logger) -> None:
        """Send novic_ros's Python logging to `ros_logger` (the node's own, named namespace.node), so
        that every line of the node's start carries one logger name."""
        for handler in logging.getLogger('novic_ros').handlers:
            if isinstance(handler, RosLogHandler):
                handler.ros_logger = ros_logger
