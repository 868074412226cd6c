"""The suite's own settings (tests/conftest.py)."""

from __future__ import annotations

import torch


def test_every_test_runs_on_one_torch_thread_by_default():
    assert torch.get_num_threads() == 1


def test_a_test_may_change_the_count_and_the_next_starts_on_one_again():
    torch.set_num_threads(2)
    assert torch.get_num_threads() == 2


def test_the_count_is_back_to_one():
    assert torch.get_num_threads() == 1
