"""Parsing of one AT command line (pure: no I/O, no modem state)."""

from __future__ import annotations

from dataclasses import dataclass, field

EXEC, READ, TEST, SET = "exec", "read", "test", "set"


class AtSyntaxError(ValueError):
    """The line is not a well-formed AT command: the modem answers ERROR."""


@dataclass(frozen=True)
class Arg:
    text: str
    quoted: bool

    @property
    def empty(self) -> bool:
        return not self.quoted and self.text == ""


@dataclass(frozen=True)
class Command:
    name: str  # "" for a bare AT, "E", "D", "H", "A" for basic ones, "+CSQ" for extended
    kind: str  # EXEC, READ, TEST, SET
    args: list[Arg] = field(default_factory=list)
    raw: str = ""  # the text after the name (ATD's dial string)

    def arg_int(self, index: int, low: int, high: int, default: int | None = None) -> int:
        """Integer argument in [low, high]; missing -> default (or a syntax error)."""
        if index >= len(self.args) or self.args[index].empty:
            if default is None:
                raise AtSyntaxError(f"{self.name}: argument {index} missing")
            return default
        arg = self.args[index]
        if arg.quoted or not arg.text.isdigit():
            raise AtSyntaxError(f"{self.name}: argument {index} not a number: {arg.text!r}")
        value = int(arg.text)
        if not low <= value <= high:
            raise AtSyntaxError(f"{self.name}: argument {index} out of range: {value}")
        return value

    def arg_str(self, index: int, quoted_required: bool = True) -> str:
        if index >= len(self.args):
            raise AtSyntaxError(f"{self.name}: argument {index} missing")
        arg = self.args[index]
        if quoted_required and not arg.quoted:
            raise AtSyntaxError(f"{self.name}: argument {index} must be quoted")
        return arg.text

    def nargs(self, low: int, high: int) -> None:
        if not low <= len(self.args) <= high:
            raise AtSyntaxError(f"{self.name}: {len(self.args)} arguments, want {low}..{high}")


def split_args(text: str) -> list[Arg]:
    """`2,"a,b",,x` -> [2, "a,b" (quoted), empty, x]."""
    args: list[Arg] = []
    current: list[str] = []
    quoted = False
    in_quotes = False
    after_quote = False
    for ch in text:
        if in_quotes:
            if ch == '"':
                in_quotes = False
                after_quote = True
            else:
                current.append(ch)
        elif ch == '"':
            if current or quoted:
                raise AtSyntaxError(f"stray quote in {text!r}")
            in_quotes = True
            quoted = True
        elif ch == ",":
            args.append(Arg("".join(current) if quoted else "".join(current).strip(), quoted))
            current, quoted, after_quote = [], False, False
        elif after_quote:
            if not ch.isspace():
                raise AtSyntaxError(f"text after a closing quote in {text!r}")
        else:
            current.append(ch)
    if in_quotes:
        raise AtSyntaxError(f"unterminated string in {text!r}")
    args.append(Arg("".join(current) if quoted else "".join(current).strip(), quoted))
    return args


def parse_line(line: str) -> Command:
    """Parse the text of a command line (without its terminating CR)."""
    if len(line) < 2 or line[:2].upper() != "AT":
        raise AtSyntaxError(f"not an AT command: {line!r}")
    body = line[2:]
    if body == "":
        return Command("", EXEC)
    first = body[0]
    if first in "+$^":
        end = 1
        while end < len(body) and (body[end].isalnum() or body[end] == "_"):
            end += 1
        name = body[:end].upper()
        if len(name) < 2:
            raise AtSyntaxError(f"empty command name in {line!r}")
        rest = body[end:]
        if rest == "":
            return Command(name, EXEC)
        if rest == "?":
            return Command(name, READ)
        if rest == "=?":
            return Command(name, TEST)
        if rest.startswith("="):
            return Command(name, SET, split_args(rest[1:]), raw=rest[1:])
        raise AtSyntaxError(f"unexpected {rest!r} after {name}")
    letter = first.upper()
    rest = body[1:]
    if letter == "D":
        return Command("D", SET, raw=rest)
    if letter in "EHAVQZ":
        if rest == "":
            return Command(letter, EXEC)
        if rest.isdigit():
            return Command(letter, SET, [Arg(rest, False)], raw=rest)
    raise AtSyntaxError(f"unknown basic command in {line!r}")
