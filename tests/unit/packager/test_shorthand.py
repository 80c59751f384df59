"""The AWS CLI shorthand parser replays old start-model-packaging-job --configuration values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.packager.shorthand import ShorthandError, parse_configuration, parse_shorthand

GUIDE_EXAMPLE = (
    "Greengrass={TargetPlatform={Os='LINUX',Arch='X86_64',Accelerator='NVIDIA'},"
    'CompilerOptions=\'{"gpu-code": "sm_75", "trt-ver": "7.1.3", "cuda-ver": "10.2"}\','
    "S3OutputLocation={Bucket='b',Prefix='p'},ComponentName='X',ComponentVersion='0.1.0',"
    "ComponentDescription='d',Tags=[{Key='k',Value='v'}]}"
)


def test_guide_example_parses_to_nested_structures() -> None:
    assert parse_shorthand(GUIDE_EXAMPLE) == {
        "Greengrass": {
            "TargetPlatform": {"Os": "LINUX", "Arch": "X86_64", "Accelerator": "NVIDIA"},
            "CompilerOptions": '{"gpu-code": "sm_75", "trt-ver": "7.1.3", "cuda-ver": "10.2"}',
            "S3OutputLocation": {"Bucket": "b", "Prefix": "p"},
            "ComponentName": "X",
            "ComponentVersion": "0.1.0",
            "ComponentDescription": "d",
            "Tags": [{"Key": "k", "Value": "v"}],
        }
    }


def test_json_form_gives_the_same_document() -> None:
    document = parse_shorthand(GUIDE_EXAMPLE)
    assert parse_configuration(json.dumps(document)) == document
    assert parse_configuration("  " + GUIDE_EXAMPLE) == document


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=b", {"A": "b"}),
        ("A = plain value , B=c", {"A": "plain value", "B": "c"}),
        ("A={}", {"A": {}}),
        ("A=[]", {"A": []}),
        ("A=[x, 'y,z', {K=v}]", {"A": ["x", "y,z", {"K": "v"}]}),
        ('A="it\'s"', {"A": "it's"}),
        ("A='a\\'b'", {"A": "a'b"}),
        ("A='{\"k\": [1, 2]}'", {"A": '{"k": [1, 2]}'}),
        ("Deep={A={B={C=d}}}", {"Deep": {"A": {"B": {"C": "d"}}}}),
        ("A=", {"A": ""}),
    ],
)
def test_shorthand_forms(text: str, expected: dict) -> None:
    assert parse_shorthand(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("A='open", "never closed"),
        ("A={B=c", "'}'"),
        ("A=[x", "']'"),
        ("=b", "key name"),
        ("A b", "'='"),
        ("A=b}", "','"),
        ("A=1,A=2", "given twice"),
        ("A=b=c", "quote values"),
    ],
)
def test_malformed_shorthand_names_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ShorthandError) as info:
        parse_shorthand(text)
    assert fragment in str(info.value)


def test_invalid_json_and_empty_text_are_rejected() -> None:
    with pytest.raises(ShorthandError, match="not valid JSON"):
        parse_configuration('{"Greengrass": ')
    with pytest.raises(ShorthandError, match="empty"):
        parse_configuration("   ")


_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)
_strings = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
_values = st.recursive(
    _strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, min_size=1, max_size=3),
    max_leaves=8,
)


def _render(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


@given(st.dictionaries(_keys, _values, min_size=1, max_size=4))
def test_rendered_documents_round_trip(document: dict) -> None:
    text = ",".join(f"{k}={_render(v)}" for k, v in document.items())
    assert parse_shorthand(text) == document
