"""initwise: neural-network weight initialization, exactly right, with the reasons."""

__version__ = "0.1.0"
