"""Typed errors of the technicians' tool, each with its own exit code.

The CLI prints ``error: <message>`` and exits with ``exit_code``; the message
always says what to do next. Codes are documented in docs/technician.md.
"""

from __future__ import annotations


class FlashToolError(Exception):
    """Base class: something the technician must act on."""

    exit_code = 1


class NoBoard(FlashToolError):
    exit_code = 3


class SeveralBoards(FlashToolError):
    exit_code = 4


class WrongChip(FlashToolError):
    exit_code = 5


class ImageMissing(FlashToolError):
    exit_code = 6


class BadImage(FlashToolError):
    exit_code = 6


class TokenRefused(FlashToolError):
    exit_code = 7


class AlreadyRegistered(FlashToolError):
    exit_code = 8


class ModemNotAnswering(FlashToolError):
    exit_code = 9


class ServerUnreachable(FlashToolError):
    exit_code = 10


class ServerError(FlashToolError):
    exit_code = 10


class BoardError(FlashToolError):
    """The board's REPL did not answer, or a command on it failed."""

    exit_code = 11


class VerificationFailed(FlashToolError):
    exit_code = 11


class FirmwareMissing(FlashToolError):
    """The board has no TGD firmware (run `flash` first)."""

    exit_code = 11


class AlreadyProvisioned(FlashToolError):
    exit_code = 8


class InvalidConfig(FlashToolError):
    exit_code = 13


class SelftestFailed(FlashToolError):
    exit_code = 12


class EsptoolFailed(FlashToolError):
    exit_code = 14


class UsageError(FlashToolError):
    exit_code = 2


class NotProvisioned(FlashToolError):
    exit_code = 13
