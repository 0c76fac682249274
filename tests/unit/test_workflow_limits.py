"""Reading and ordering a workflow take bounded time and memory whatever its shape (issue #31).

The system tier runs hostile files through the command line (tests/system/test_reliability_files.py);
these check the pieces in-process, in milliseconds: the nesting count on the text (strings do not
count, escapes are honoured), keys given twice, the graph order without recursion, Reroute chains.
"""
import json
import sys

import pytest

from mgld_vsr.runner import graph as headless
from mgld_vsr.runner import preflight
from mgld_vsr.runner.preflight import WorkflowError


def _nested(depth: int) -> str:
    """An object whose value is nested ``depth`` levels deep in all (the object counts as one)."""
    return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def test_nesting_up_to_the_limit_is_read_and_beyond_it_refused_before_parsing(monkeypatch):
    assert preflight.parse_workflow(_nested(preflight.MAX_NESTING)) == {"a": json.loads(_nested(preflight.MAX_NESTING))["a"]}
    calls = []
    monkeypatch.setattr(preflight.json, "loads", lambda *a, **k: calls.append(1))
    with pytest.raises(WorkflowError, match=f"more than {preflight.MAX_NESTING} levels deep"):
        preflight.parse_workflow(_nested(preflight.MAX_NESTING + 1))
    with pytest.raises(WorkflowError, match="levels deep"):
        preflight.parse_workflow("[" * 100_000)  # deeper than Python's recursion limit: no RecursionError
    assert calls == []  # refused from the text, json never ran


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"1": {"class_type": "Note", "inputs": {"text": "[" * 5000 + '\\" {{{ "' + "}" * 300}}})
    assert preflight.parse_workflow(text)["1"]["inputs"]["text"].startswith("[[[")


def test_a_key_given_twice_is_refused():
    with pytest.raises(WorkflowError, match="two nodes share the id 3"):
        preflight.parse_workflow('{"3": {"class_type": "A", "inputs": {}}, "3": {"class_type": "B", "inputs": {}}}')
    with pytest.raises(WorkflowError, match="has the key 'seed' twice"):
        preflight.parse_workflow('{"3": {"class_type": "A", "inputs": {"seed": 1, "seed": 2}}}')


def _chain(length: int) -> dict:
    return {str(i): {"class_type": "X", "inputs": {"x": [str(i - 1), 0]} if i > 1 else {}} for i in range(length, 0, -1)}


def test_the_order_of_a_long_chain_needs_no_recursion():
    length = 4 * sys.getrecursionlimit()
    assert headless.topological_order(_chain(length)) == [str(i) for i in range(1, length + 1)]


def test_a_cycle_is_refused_naming_a_node_on_it():
    api = _chain(5)
    api["1"]["inputs"]["x"] = ["5", 0]
    with pytest.raises(WorkflowError, match="cycle through node [1-5]"):
        headless.topological_order(api)


def test_the_order_puts_sources_first_and_otherwise_follows_the_ids():
    api = {"10": {"class_type": "X", "inputs": {"a": ["2", 0], "b": ["x", 0]}}, "2": {"class_type": "X", "inputs": {}},
           "x": {"class_type": "X", "inputs": {}}, "3": {"class_type": "X", "inputs": {}}}
    assert headless.topological_order(api) == ["2", "3", "x", "10"]


def test_a_long_chain_of_reroutes_resolves_once_each():
    length = 3000
    nodes = {1: {"id": 1, "type": "Source"}}
    links = {}
    for i in range(2, length + 2):
        links[i] = (i - 1, 0, i, 0)
        nodes[i] = {"id": i, "type": "Reroute", "inputs": [{"link": i}]}
    resolved: dict = {}
    for i in range(2, length + 2):  # every link out of the chain, as to_api resolves them
        assert preflight.resolve_reroutes(i, 0, nodes, links, resolved) == (1, 0)
    assert len(resolved) == length
