"""Parse filter text with the packaged grammar; syntax errors become FilterError."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from queries.errors import MAX_DEPTH, MAX_FILTER, SYNTAX_EXAMPLES, FilterError

_TOKEN_NAMES = {
    "WORD": "a word", "STRING": "a quoted string", "OP": "an operator",
    "WORD_OP": "an operator", "IN": "'in'", "LSQB": "'['", "RSQB": "']'",
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "_AND": "'and'", "_OR": "'or'",
    "_NOT": "'not'", "$END": "the end",
}


@cache
def parser() -> Lark:
    """The LALR parser over queries/filter.lark, built once per process."""
    grammar = resources.files("queries").joinpath("filter.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True)


def parse(text: str) -> Tree:
    if len(text) > MAX_FILTER:
        raise FilterError.at_offset("too_long", text, MAX_FILTER, limit=MAX_FILTER)
    try:
        tree = parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    _check_depth(text, tree)
    return tree


def _check_depth(text: str, tree: Tree) -> None:
    stack: list[tuple[Tree | Token, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Tree):
            if depth > MAX_DEPTH:
                offset = node.meta.start_pos if not node.meta.empty else 0
                raise FilterError.at_offset("too_deep", text, offset, limit=MAX_DEPTH)
            stack.extend((child, depth + 1) for child in node.children)


def _syntax_error(text: str, exc: UnexpectedInput) -> FilterError:
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream]
        if char in "\"'":
            return FilterError.at_offset("unclosed_quote", text, exc.pos_in_stream, quote=char)
        return FilterError.at_offset("unexpected_character", text, exc.pos_in_stream, char=char)
    code = exc.match_examples(parser().parse, SYNTAX_EXAMPLES, use_accepts=True)
    offset = _offset(text, exc)
    at_end = offset >= len(text.rstrip())
    if code is None and at_end and "RPAR" in _expected(exc):
        code = "unclosed_paren"  # wherever the parser stood, a '(' is left open
    if code == "unclosed_paren":
        offset = _unclosed_paren(text)
    if code is None:
        token = getattr(exc, "token", None)
        found = "end of filter" if isinstance(exc, UnexpectedEOF) or token is None else str(token)
        expected = sorted(_TOKEN_NAMES.get(name, name) for name in _expected(exc))
        return FilterError.at_offset(
            "unexpected", text, offset, token=found, expected=", ".join(dict.fromkeys(expected))
        )
    return FilterError.at_offset(code, text, offset)


def _offset(text: str, exc: UnexpectedInput) -> int:
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or token is None or token.type == "$END":
        return len(text.rstrip())
    return token.start_pos if token.start_pos is not None else len(text)


def _expected(exc: UnexpectedInput) -> set[str]:
    if isinstance(exc, UnexpectedToken):
        return set(exc.accepts or exc.expected)
    return set(getattr(exc, "expected", ()))


def _unclosed_paren(text: str) -> int:
    """Offset of the last '(' left open, skipping quoted strings."""
    opened: list[int] = []
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            opened.append(i)
        elif char == ")" and opened:
            opened.pop()
        i += 1
    return opened[-1] if opened else len(text)
