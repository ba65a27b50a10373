"""Notifier: tells a clinic's patients, fast and reliably, when the clinic closes."""

__version__ = "0.1.0"
