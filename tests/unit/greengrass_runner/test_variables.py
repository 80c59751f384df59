"""Recipe variable substitution, including cross-component forms and unresolved variables."""

from __future__ import annotations

from edge_agent.greengrass_runner.variables import ComponentPaths, interpolate, resolve_pointer

OWN = ComponentPaths(
    "/gg/packages/artifacts/A/1.0.0",
    "/gg/packages/artifacts-unarchived/A/1.0.0",
    "/gg/work/A",
    {"Message": "hi", "Nested": {"port": 8080, "on": True, "none": None}, "List": ["a", "b"], "a/b": "slash"},
)
DEP = ComponentPaths(
    "/gg/packages/artifacts/B/2.0.0", "/gg/u/B", "/gg/work/B", {"Socket": "unix:///tmp/s.sock"}
)


def run(text: str) -> tuple[str, list[str]]:
    problems: list[str] = []
    return interpolate(text, OWN, {"com.example.B": DEP}, "/gg", "thing-1", problems.append), problems


def test_own_variables() -> None:
    text, problems = run(
        "{artifacts:path}/x.py {artifacts:decompressedPath}/m {work:path} {kernel:rootPath} {iot:thingName}"
    )
    assert (
        text
        == "/gg/packages/artifacts/A/1.0.0/x.py /gg/packages/artifacts-unarchived/A/1.0.0/m /gg/work/A /gg thing-1"
    )
    assert problems == []


def test_configuration_pointers_render_like_the_nucleus() -> None:
    text, _ = run(
        "{configuration:/Message} {configuration:/Nested/port} {configuration:/Nested/on} "
        "{configuration:/Nested/none} {configuration:/List/1} {configuration:/a~1b}"
    )
    assert text == "hi 8080 true null b slash"
    text, _ = run("{configuration:/Nested}")
    assert text == '{"port":8080,"on":true,"none":null}'


def test_dependency_variables_and_unresolved_forms_stay() -> None:
    text, problems = run(
        "{com.example.B:configuration:/Socket} {com.example.B:work:path} {com.example.B:artifacts:path}"
    )
    assert text == "unix:///tmp/s.sock /gg/work/B /gg/packages/artifacts/B/2.0.0"
    text, problems = run('{configuration:/Missing} {com.example.C:work:path} ${HOME} {} {"json": 1}')
    assert text == '{configuration:/Missing} {com.example.C:work:path} ${HOME} {} {"json": 1}'
    assert len(problems) == 2 and "not a direct dependency" in problems[1]


def test_resolve_pointer_root() -> None:
    assert resolve_pointer({"a": 1}, "") == {"a": 1}
