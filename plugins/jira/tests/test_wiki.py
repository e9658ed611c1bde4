"""Markdown -> Jira wiki markup (REST v2 / Data Center): structure maps over, text never becomes markup."""

from __future__ import annotations

import re

import pytest
from cxbridge_jira.wiki import WIKI_SPECIAL, escape_wiki, markdown_to_wiki
from hypothesis import given, settings
from hypothesis import strategies as st

MD_PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def md_escape(value: str) -> str:
    """Markdown source whose paragraph text is exactly ``value`` (every ASCII punctuation backslash-escaped)."""
    return "".join("\\" + ch if ch in MD_PUNCTUATION else ch for ch in value)


_TOKEN = re.compile(r"\\(.)|&#(\d+);|(.)", re.DOTALL)


def unescape(wiki: str) -> str:
    """What Jira's renderer shows for escaped text: backslash escapes and numeric entities resolved."""
    return "".join(m[1] or (chr(int(m[2])) if m[2] else m[3]) for m in _TOKEN.finditer(wiki))


def assert_inert(wiki: str) -> None:
    """Every wiki special character is escaped, every backslash escapes one, no line can open a block."""
    i = 0
    while i < len(wiki):
        ch = wiki[i]
        if ch == "\\":
            assert wiki[i + 1 : i + 2] in WIKI_SPECIAL, f"stray backslash at {i} in {wiki!r}"
            i += 2
            continue
        entity = re.match(r"&#\d+;", wiki[i:])
        if entity:  # the entities the escaper writes (backslash, h/b at a line start)
            i += entity.end()
            continue
        assert ch not in WIKI_SPECIAL, f"unescaped {ch!r} at {i} in {wiki!r}"
        i += 1
    assert not re.search(r"(?im)(^|\s)(h[1-6]|bq)\.", wiki), wiki


# -- escaping -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("[x|http://evil]", "\\[x\\|http://evil\\]"),
        ("{html}<script>alert(1)</script>{html}", "\\{html\\}<script>alert\\(1\\)</script>\\{html\\}"),
        ("!image.png!", "\\!image.png\\!"),
        ("----", "\\-\\-\\-\\-"),
        (
            "*bold* _it_ +ins+ ^sup^ ~sub~ ??cite?? -strike-",
            "\\*bold\\* \\_it\\_ \\+ins\\+ \\^sup\\^ \\~sub\\~ \\?\\?cite\\?\\? \\-strike\\-",
        ),
        (
            "[~admin] [^attachment.txt] {color:red}x{color}",
            "\\[\\~admin\\] \\[\\^attachment.txt\\] \\{color:red\\}x\\{color\\}",
        ),
        ("|| a || b ||", "\\|\\| a \\|\\| b \\|\\|"),
        ("# not a list", "\\# not a list"),
        ("h1. Title", "&#104;1. Title"),
        ("bq. quote", "&#98;q. quote"),
        ("x\nH3. y", "x\n&#72;3. y"),
        ("C:\\temp\\*x", "C:&#92;temp&#92;\\*x"),
        ("100% (@team)", "100\\% \\(\\@team\\)"),
        ("plain words", "plain words"),
    ],
)
def test_escape_wiki(value: str, escaped: str) -> None:
    """Each wiki construct in a value is written so that it renders as the literal text."""
    assert escape_wiki(value) == escaped
    assert unescape(escaped) == value


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=200))
def test_escaped_text_is_inert_and_lossless(value: str) -> None:
    """Any text escapes to wiki that holds no markup and renders back to the same text."""
    escaped = escape_wiki(value)
    assert_inert(escaped)
    assert unescape(escaped) == value


line_text = (
    st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Cn", "Zl", "Zp")), min_size=1, max_size=80)
    .map(str.strip)
    .filter(bool)
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(line_text)
def test_paragraph_text_comes_out_escaped(value: str) -> None:
    """A Markdown paragraph holding any text becomes exactly that text, escaped."""
    assert markdown_to_wiki(md_escape(value)) == escape_wiki(value)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=300))
def test_any_markdown_converts(value: str) -> None:
    """Arbitrary input converts without error and without control characters."""
    out = markdown_to_wiki(value)
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", out)


# -- structure -----------------------------------------------------------------------------------------------------


def test_empty_input() -> None:
    """Nothing in, nothing out."""
    assert markdown_to_wiki("") == ""
    assert markdown_to_wiki("  \n\n ") == ""


def test_headings_and_inline_marks() -> None:
    """Headings become hN., bold *x*, italic _x_, strike -x-, code {{x}}."""
    assert markdown_to_wiki("# One\n\n###### Six") == "h1. One\n\nh6. Six"
    assert markdown_to_wiki("A **bold** _it_ ~~gone~~ `a{b}` **both _in_**") == (
        "A *bold* _it_ -gone- {{a\\{b\\}}} *both* *_in_*"
    )


def test_marker_spaces_stay_outside() -> None:
    """Jira needs the marker on the word: surrounding spaces move outside the markers."""
    assert markdown_to_wiki("a** b **c") == "a** b **c".replace("*", "\\*")
    assert markdown_to_wiki("x **b** y") == "x *b* y"


def test_links() -> None:
    """http(s) links become [text|url]; the URL cannot end the link; other schemes leave the text."""
    assert markdown_to_wiki("[the ticket](https://acme.zendesk.com/agent/tickets/1)") == (
        "[the ticket|https://acme.zendesk.com/agent/tickets/1]"
    )
    assert markdown_to_wiki("[x](https://h.example/a]b|c{d}!e)") == "[x|https://h.example/a%5Db%7Cc%7Bd%7D%21e]"
    assert markdown_to_wiki("[*bold link*](http://h.example)") == "[_bold link_|http://h.example]"
    assert markdown_to_wiki("[a \\] b \\| c \\[](http://h.example)") == "[a &#93; b &#124; c &#91;|http://h.example]"
    assert markdown_to_wiki("[mail](mailto:a@b.example)") == "mail"
    assert markdown_to_wiki("![shot](https://img.example/a.png)") == "[shot|https://img.example/a.png]"


def test_lists() -> None:
    """Bullets *, numbers #, nesting by repetition, mixed nesting."""
    md = "- a\n  - b\n    1. c\n- d\n\n1. one\n2. two\n   - sub"
    assert markdown_to_wiki(md) == "* a\n** b\n**# c\n* d\n\n# one\n# two\n#* sub"


def test_list_item_values_are_escaped() -> None:
    """A list item's text is escaped like any other text."""
    assert markdown_to_wiki("- \\* not nested\n- h1\\. no") == "* \\* not nested\n* &#104;1. no"


def test_code_blocks() -> None:
    """Fenced code is a {code} block (known languages kept); text that could close it uses {noformat}."""
    assert markdown_to_wiki("```python\nprint('[x|y]')\n```") == "{code:python}\nprint('[x|y]')\n{code}"
    assert markdown_to_wiki("```py\nx\n```") == "{code:python}\nx\n{code}"
    assert markdown_to_wiki("```evil}{html}\nx\n```") == "{code}\nx\n{code}"
    assert markdown_to_wiki("```\na {code} b\n```") == "{noformat}\na {code} b\n{noformat}"
    assert markdown_to_wiki("```\n{code}{noformat}[x|http://evil]\n```") == (
        "{{\\{code\\}\\{noformat\\}\\[x\\|http://evil\\]}}"
    )


def test_quotes() -> None:
    """Block quotes use {quote}; nested quotes flatten; a code block that could close the quote is escaped."""
    assert markdown_to_wiki("> said\n> more") == "{quote}\nsaid\nmore\n{quote}"
    assert markdown_to_wiki("> a\n>\n> > b") == "{quote}\na\n\nb\n{quote}"
    assert markdown_to_wiki("> ```\n> {quote}\n> ```") == "{quote}\n{{\\{quote\\}}}\n{quote}"


def test_rule_and_table() -> None:
    """Rules are ----; tables use || for header cells and | for body cells."""
    assert markdown_to_wiki("a\n\n---\n\nb") == "a\n\n----\n\nb"
    assert markdown_to_wiki("| A | B |\n|---|---|\n| 1 \\| 2 | [x] |") == "||A||B||\n|1 &#124; 2|&#91;x&#93;|"


def test_line_breaks() -> None:
    """Breaks inside a paragraph are newlines; in list items and cells they are Jira's \\\\ break."""
    assert markdown_to_wiki("one\ntwo") == "one\ntwo"
    assert markdown_to_wiki("- one  \n  two") == "* one \\\\ two"


def test_html_stays_text() -> None:
    """Raw HTML is text; wiki macros written in a value stay text."""
    assert markdown_to_wiki("<b>x</b> {html}<i>y</i>{html}") == "<b>x</b> \\{html\\}<i>y</i>\\{html\\}"
