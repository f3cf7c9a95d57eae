"""The torch thread: one thread runs every model call it is given, nested calls run inline."""

from __future__ import annotations

import threading

import pytest
import torch

from stream_guard.torch_thread import on_torch_thread, run_on_torch_thread, submit_to_torch_thread


def _where() -> int:
    return threading.get_ident()


def test_calls_from_any_thread_run_on_one_other_thread() -> None:
    idents: list[int] = []

    def call() -> None:
        idents.append(run_on_torch_thread(_where))

    callers = [threading.Thread(target=call) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    idents.append(run_on_torch_thread(_where))
    assert len(set(idents)) == 1
    assert idents[0] != threading.get_ident()
    assert not on_torch_thread()
    assert run_on_torch_thread(on_torch_thread)


def test_a_nested_call_runs_inline_instead_of_waiting_for_itself() -> None:
    def outer() -> tuple[int, int, bool]:
        inner = submit_to_torch_thread(_where)
        return threading.get_ident(), run_on_torch_thread(_where), inner.done()

    here, nested, done_at_once = run_on_torch_thread(outer)
    assert here == nested
    assert done_at_once


def test_results_and_errors_come_back_to_the_caller() -> None:
    result = run_on_torch_thread(torch.matmul, torch.eye(3), torch.full((3, 2), 2.0))
    assert torch.equal(result, torch.full((3, 2), 2.0))
    with pytest.raises(ZeroDivisionError):
        run_on_torch_thread(lambda: 1 / 0)

    def nested_failure() -> None:
        run_on_torch_thread(lambda: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        run_on_torch_thread(nested_failure)


def test_calls_run_in_submission_order() -> None:
    order: list[int] = []
    futures = [submit_to_torch_thread(order.append, i) for i in range(20)]
    for future in futures:
        future.result()
    assert order == list(range(20))
