"""Tests for dvm/jobs.py: the job state machine as a transition table."""

from __future__ import annotations

import itertools

import pytest

from dvm.jobs import ANNOUNCES, FINAL, TRANSITIONS, IllegalTransition, State, Step, advance, can
from nips.nip90 import Status

S, T = State, Step

# The diagram of the module docstring, written out by hand.
DOCUMENTED: dict[tuple[State, Step], State] = {
    (S.RECEIVED, T.BID): S.BIDDING,
    (S.RECEIVED, T.DECLINE): S.DECLINED,
    (S.RECEIVED, T.WAIT_INPUT): S.WAITING_INPUT,
    (S.RECEIVED, T.CHARGE): S.PAYMENT_REQUIRED,
    (S.RECEIVED, T.START): S.PROCESSING,
    (S.RECEIVED, T.FAIL): S.FAILED,
    (S.RECEIVED, T.CANCEL): S.CANCELLED,
    (S.BIDDING, T.LOSE): S.DECLINED,
    (S.BIDDING, T.WAIT_INPUT): S.WAITING_INPUT,
    (S.BIDDING, T.CHARGE): S.PAYMENT_REQUIRED,
    (S.BIDDING, T.START): S.PROCESSING,
    (S.BIDDING, T.FAIL): S.FAILED,
    (S.BIDDING, T.CANCEL): S.CANCELLED,
    (S.WAITING_INPUT, T.CHARGE): S.PAYMENT_REQUIRED,
    (S.WAITING_INPUT, T.START): S.PROCESSING,
    (S.WAITING_INPUT, T.EXPIRE): S.EXPIRED,
    (S.WAITING_INPUT, T.FAIL): S.FAILED,
    (S.WAITING_INPUT, T.CANCEL): S.CANCELLED,
    (S.PAYMENT_REQUIRED, T.START): S.PROCESSING,
    (S.PAYMENT_REQUIRED, T.EXPIRE): S.EXPIRED,
    (S.PAYMENT_REQUIRED, T.FAIL): S.FAILED,
    (S.PAYMENT_REQUIRED, T.CANCEL): S.CANCELLED,
    (S.PROCESSING, T.FINISH): S.DELIVERING,
    (S.PROCESSING, T.FAIL): S.FAILED,
    (S.PROCESSING, T.CANCEL): S.CANCELLED,
    (S.DELIVERING, T.DELIVERED): S.DONE,
}

ILLEGAL = [pair for pair in itertools.product(State, Step) if pair not in DOCUMENTED]


def test_the_table_is_the_documented_diagram():
    assert TRANSITIONS == DOCUMENTED


@pytest.mark.parametrize(("pair", "after"), DOCUMENTED.items(), ids=lambda v: str(v))
def test_allowed_step_gives_the_documented_state(pair, after):
    state, step = pair
    assert can(state, step)
    assert advance(state, step) is after


@pytest.mark.parametrize(("state", "step"), ILLEGAL, ids=str)
def test_every_other_step_is_illegal(state, step):
    assert not can(state, step)
    with pytest.raises(IllegalTransition) as raised:
        advance(state, step)
    assert step.value in str(raised.value) and state.value in str(raised.value)


@pytest.mark.parametrize(
    ("state", "step", "message"),
    [
        (S.CANCELLED, T.FINISH, "cannot finish a job that is cancelled"),
        (S.DONE, T.DELIVERED, "cannot delivered a job that is done"),
        (S.RECEIVED, T.FINISH, "cannot finish a job that is received"),
        (S.DELIVERING, T.CANCEL, "cannot cancel a job that is delivering"),
        (S.PROCESSING, T.EXPIRE, "cannot expire a job that is processing"),
        (S.BIDDING, T.DECLINE, "cannot decline a job that is bidding"),
        (S.RECEIVED, T.LOSE, "cannot lose a job that is received"),
    ],
)
def test_illegal_step_says_which_step_and_state(state, step, message):
    with pytest.raises(IllegalTransition, match=f"^{message}$"):
        advance(state, step)


def test_final_states():
    assert {S.DONE, S.FAILED, S.CANCELLED, S.DECLINED, S.EXPIRED} == FINAL
    assert {s for s in State if s.is_final} == FINAL


@pytest.mark.parametrize("state", sorted(FINAL))
def test_final_states_allow_no_step(state):
    for step in Step:
        assert not can(state, step)
        with pytest.raises(IllegalTransition):
            advance(state, step)


def test_a_result_is_delivered_once():
    state = S.RECEIVED
    for step in (T.START, T.FINISH, T.DELIVERED):
        state = advance(state, step)
    assert state is S.DONE
    with pytest.raises(IllegalTransition):
        advance(state, T.DELIVERED)


def test_a_job_being_delivered_can_no_longer_fail_or_be_cancelled():
    assert not can(S.DELIVERING, T.FAIL)
    assert not can(S.DELIVERING, T.CANCEL)


def _reachable(start: State) -> set[State]:
    seen, todo = {start}, [start]
    while todo:
        state = todo.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is state and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize("state", [s for s in State if not s.is_final])
def test_every_open_state_can_end(state):
    reachable = _reachable(state)
    assert S.DONE in reachable
    assert reachable & FINAL


def test_every_state_is_reachable_from_received():
    assert _reachable(S.RECEIVED) == set(State)


def test_only_final_states_are_dead_ends():
    sources = {state for state, _ in TRANSITIONS}
    assert set(State) - sources == FINAL


@pytest.mark.parametrize(
    "state", [S.DONE, S.DECLINED, S.RECEIVED, S.BIDDING, S.WAITING_INPUT, S.DELIVERING]
)
def test_states_that_announce_no_feedback(state):
    assert state not in ANNOUNCES


def test_what_each_state_announces():
    assert ANNOUNCES == {
        S.PAYMENT_REQUIRED: Status.PAYMENT_REQUIRED,
        S.PROCESSING: Status.PROCESSING,
        S.FAILED: Status.ERROR,
        S.CANCELLED: Status.ERROR,
        S.EXPIRED: Status.ERROR,
    }
