"""The life of a job, as a transition table (pure; see DESIGN.md section 4).

A job is one request seen by this node. Its state changes only through
:func:`advance`, which looks the (state, step) pair up in :data:`TRANSITIONS`
and refuses anything else, so an impossible sequence (a result after a
cancellation, a second result) is an error at the point where it happens
rather than an event on the relay.

The engine persists each new state together with the events that announce it
(the outbox) in one transaction, and publishes only after the commit; see
``dvm/store.py``. :data:`ANNOUNCES` says what each state tells the customer.

States::

    received ──bid──> bidding ──lose──> declined
       │                 │
       ├──wait_input──> waiting_input ──┐     (chained job: input not there yet)
       ├──charge──────> payment_required┤     (price above 0)
       └──start───────> processing ─────┴──finish──> delivering ──delivered──> done

    any state before delivering: fail -> failed, cancel -> cancelled;
    waiting_input and payment_required: expire -> expired;
    received: decline -> declined (another local agent won, or not ours).
"""

from __future__ import annotations

import enum

from nips.nip90 import Status


class State(enum.StrEnum):
    RECEIVED = "received"
    BIDDING = "bidding"  # in a federated auction: committed, maybe revealed
    WAITING_INPUT = "waiting_input"  # a chained job waiting for its input's result
    PAYMENT_REQUIRED = "payment_required"
    PROCESSING = "processing"
    DELIVERING = "delivering"  # result signed and stored; publishing it
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DECLINED = "declined"  # not answered: no agent of ours, or we lost the auction
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in FINAL


class Step(enum.StrEnum):
    BID = "bid"
    LOSE = "lose"
    DECLINE = "decline"
    WAIT_INPUT = "wait_input"
    CHARGE = "charge"
    START = "start"
    FINISH = "finish"
    DELIVERED = "delivered"
    FAIL = "fail"
    CANCEL = "cancel"
    EXPIRE = "expire"


FINAL = frozenset({State.DONE, State.FAILED, State.CANCELLED, State.DECLINED, State.EXPIRED})

_S, _T = State, Step
# (state, step) -> next state. Order of the happy path: bid, wait for input,
# charge, start, finish, delivered; each may be skipped when it does not apply.
TRANSITIONS: dict[tuple[State, Step], State] = {
    (_S.RECEIVED, _T.BID): _S.BIDDING,
    (_S.RECEIVED, _T.DECLINE): _S.DECLINED,
    (_S.RECEIVED, _T.WAIT_INPUT): _S.WAITING_INPUT,
    (_S.RECEIVED, _T.CHARGE): _S.PAYMENT_REQUIRED,
    (_S.RECEIVED, _T.START): _S.PROCESSING,
    (_S.BIDDING, _T.LOSE): _S.DECLINED,
    (_S.BIDDING, _T.WAIT_INPUT): _S.WAITING_INPUT,
    (_S.BIDDING, _T.CHARGE): _S.PAYMENT_REQUIRED,
    (_S.BIDDING, _T.START): _S.PROCESSING,
    (_S.WAITING_INPUT, _T.CHARGE): _S.PAYMENT_REQUIRED,
    (_S.WAITING_INPUT, _T.START): _S.PROCESSING,
    (_S.WAITING_INPUT, _T.EXPIRE): _S.EXPIRED,
    (_S.PAYMENT_REQUIRED, _T.START): _S.PROCESSING,
    (_S.PAYMENT_REQUIRED, _T.EXPIRE): _S.EXPIRED,
    (_S.PROCESSING, _T.FINISH): _S.DELIVERING,
    (_S.DELIVERING, _T.DELIVERED): _S.DONE,
}
for _state in (_S.RECEIVED, _S.BIDDING, _S.WAITING_INPUT, _S.PAYMENT_REQUIRED, _S.PROCESSING):
    TRANSITIONS[(_state, _T.FAIL)] = _S.FAILED
    TRANSITIONS[(_state, _T.CANCEL)] = _S.CANCELLED

# What entering a state announces as kind 7000 feedback. Delivering announces
# the result event itself and no `success` feedback: the result says it, and
# an extra event per job costs every relay and client on the way (a fifth of
# the node's work for a small job); bidding announces a 7010 commitment;
# declined says nothing, so losers stay silent.
ANNOUNCES: dict[State, Status] = {
    State.PAYMENT_REQUIRED: Status.PAYMENT_REQUIRED,
    State.PROCESSING: Status.PROCESSING,
    State.FAILED: Status.ERROR,
    State.CANCELLED: Status.ERROR,
    State.EXPIRED: Status.ERROR,
}


class IllegalTransition(Exception):
    """Raised when a step does not apply to a job's current state (a bug in the caller)."""


def advance(state: State, step: Step) -> State:
    """The state after ``step``, or :class:`IllegalTransition`."""
    try:
        return TRANSITIONS[(state, step)]
    except KeyError:
        raise IllegalTransition(f"cannot {step.value} a job that is {state.value}") from None


def can(state: State, step: Step) -> bool:
    return (state, step) in TRANSITIONS
