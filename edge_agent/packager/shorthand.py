"""AWS CLI shorthand syntax, so an old `start-model-packaging-job --configuration ...` value replays.

Grammar (the subset the AWS CLI documents for structure parameters):

    struct  := pair ("," pair)*
    pair    := KEY "=" value
    value   := "{" struct? "}" | "[" (value ("," value)*)? "]" | quoted | bare
    quoted  := "'" ... "'" | '"' ... '"'      (a backslash escapes the quote or a backslash)
    bare    := characters up to the next "," "}" or "]" (surrounding spaces trimmed)

Values that start with "{" or "[" after optional spaces parse as JSON when the whole text is JSON,
so `parse_configuration` accepts both forms. Every error names the position and what was expected.
"""

from __future__ import annotations

import json
from typing import Any

from edge_agent.errors import InvalidInputError

_BARE_STOP = {",", "}", "]"}


class ShorthandError(InvalidInputError):
    """The shorthand text is malformed; the message points at the offending character."""


def parse_shorthand(text: str) -> dict[str, Any]:
    """Parse `Key=Value,Key2={...}` into nested dicts, lists and strings."""
    parser = _Parser(text)
    result = parser.struct(closing=None)
    parser.skip_spaces()
    if not parser.at_end():
        parser.fail("a ',' between key=value pairs")
    return result


def parse_configuration(text: str) -> dict[str, Any]:
    """Parse a --configuration value: JSON object or AWS CLI shorthand."""
    stripped = text.strip()
    if not stripped:
        raise ShorthandError("--configuration is empty; expected Greengrass={...} or a JSON object")
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ShorthandError(f"--configuration looks like JSON but is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ShorthandError("--configuration JSON must be an object")
        return value
    return parse_shorthand(stripped)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def fail(self, expected: str) -> None:
        seen = repr(self.peek()) if not self.at_end() else "the end of the text"
        context = self.text[max(0, self.pos - 20) : self.pos + 20]
        raise ShorthandError(
            f"shorthand syntax error at character {self.pos}: expected {expected}, found {seen} "
            f"(near {context!r})"
        )

    def expect(self, char: str) -> None:
        self.skip_spaces()
        if self.peek() != char:
            self.fail(repr(char))
        self.pos += 1

    def key(self) -> str:
        self.skip_spaces()
        start = self.pos
        while not self.at_end() and (self.peek().isalnum() or self.peek() in "_-."):
            self.pos += 1
        if self.pos == start:
            self.fail("a key name")
        return self.text[start : self.pos]

    def struct(self, closing: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        self.skip_spaces()
        if closing is not None and self.peek() == closing:
            return result
        while True:
            name = self.key()
            if name in result:
                raise ShorthandError(f"shorthand key {name!r} is given twice")
            self.expect("=")
            result[name] = self.value()
            self.skip_spaces()
            if self.peek() == ",":
                self.pos += 1
                continue
            return result

    def list(self) -> list[Any]:
        items: list[Any] = []
        self.skip_spaces()
        if self.peek() == "]":
            return items
        while True:
            items.append(self.value())
            self.skip_spaces()
            if self.peek() == ",":
                self.pos += 1
                continue
            return items

    def value(self) -> Any:
        self.skip_spaces()
        char = self.peek()
        if char == "{":
            self.pos += 1
            result = self.struct(closing="}")
            self.expect("}")
            return result
        if char == "[":
            self.pos += 1
            items = self.list()
            self.expect("]")
            return items
        if char in ("'", '"'):
            return self.quoted(char)
        return self.bare()

    def quoted(self, quote: str) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            if self.at_end():
                raise ShorthandError(f"shorthand string opened with {quote} is never closed")
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] in (quote, "\\"):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if char == quote:
                return "".join(out)
            out.append(char)

    def bare(self) -> str:
        start = self.pos
        while not self.at_end() and self.peek() not in _BARE_STOP:
            if self.peek() in "{[='\"":
                self.fail(
                    "a ',' or a closing bracket after a plain value (quote values with special characters)"
                )
            self.pos += 1
        return self.text[start : self.pos].strip()
