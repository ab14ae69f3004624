"""How many touches buyers take to answer, from deals whose sellers may have stopped first.

Of the deals that did get an answer, the share that got it only after the k-th touch says little
about buyers: a seller who gives up after two touches never sees an answer that would have come
after the fifth, so the very giving-up it should measure hides those answers (it censors them).
Kaplan-Meier over touches counts each deal for as long as someone was still following it up:

- A deal is *at risk* at t (t = 0: before its first touch) when it had at least t touches and no
  answer before them.
- It *answers at* t when the buyer answered (a reply, a booked meeting, or the deal won) with t
  touches sent.
- It is *censored at* c when it stopped with c touches and no answer: the seller lost it, the
  buyer opted out, or it is still open. It counts as at risk at c (someone waited after its c-th
  touch and heard nothing) and not after, the usual convention (an answer and a stop at the same
  count: the answer first).
- The hazard at t is answers / at risk; the share not answered after k touches is
  S(k) = prod over t <= k of (1 - hazard(t)); its variance is Greenwood's.

What a seller who gives up after k touches loses is the share of the answers that would still
have come: of the answers that come within `horizon` touches (the most touches enough deals were
followed up to), those after the k-th: (S(k) - S(horizon)) / (1 - S(horizon)). Its 95% interval is
the delta method over the hazards (each binomial, asymptotically independent: the variance
Greenwood's formula rests on), on the logit scale so that it stays within 0 and 1.

This is right when stopping says nothing about the buyer (non-informative censoring): a seller
who stops because the buyer had gone quiet for good, or a buyer who opts out instead of
answering, makes the estimate optimistic about later answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class AtTouch:
    """The deals at one number of touches: at risk, answering there, stopping there."""

    touches: int
    at_risk: int
    answered: int
    censored: int

    @property
    def hazard(self) -> float:
        return self.answered / self.at_risk if self.at_risk else 0.0


def life_table(answered: Mapping[int, int], censored: Mapping[int, int]) -> list[AtTouch]:
    """From the deals answered and censored at each number of touches, every count 0..max."""
    most = max([*answered, *censored], default=-1)
    rows = []
    left = sum(answered.values()) + sum(censored.values())
    for t in range(most + 1):
        a, c = answered.get(t, 0), censored.get(t, 0)
        rows.append(AtTouch(t, left, a, c))
        left -= a + c
    return rows


def survival(table: list[AtTouch]) -> list[float]:
    """S(t) for t = 0..len(table) - 1: the share of buyers not answered after t touches."""
    out, s = [], 1.0
    for row in table:
        s *= 1 - row.hazard
        out.append(s)
    return out


def greenwood_se(table: list[AtTouch]) -> list[float]:
    """The standard error of each S(t), by Greenwood's formula."""
    out, total = [], 0.0
    for s, row in zip(survival(table), table, strict=True):
        if row.at_risk > row.answered:
            total += row.answered / (row.at_risk * (row.at_risk - row.answered))
        out.append(s * math.sqrt(total) if s > 0 else 0.0)
    return out


def horizon(table: list[AtTouch], min_at_risk: int) -> int | None:
    """The most touches at which at least `min_at_risk` deals were still at risk."""
    known = [row.touches for row in table if row.at_risk >= min_at_risk]
    return max(known) if known else None


@dataclass(frozen=True)
class Share:
    value: float
    interval: tuple[float, float]


def answers_after(table: list[AtTouch], k: int, within: int) -> Share | None:
    """Of the answers that come within `within` touches, the share that comes after the k-th
    (k < within), with its 95% interval; None when none comes within `within`."""
    if not 0 <= k < within < len(table):
        raise ValueError(f"need 0 <= k < within < {len(table)}: k={k}, within={within}")
    hazards = [row.hazard for row in table[: within + 1]]

    def share(h: list[float]) -> float | None:
        s_k = math.prod(1 - x for x in h[: k + 1])
        s_h = math.prod(1 - x for x in h)
        return None if s_h >= 1 else (s_k - s_h) / (1 - s_h)

    g = share(hazards)
    if g is None:
        return None
    variance = 0.0
    for j, row in enumerate(table[: within + 1]):
        h = hazards[j]
        if not row.at_risk or h in (0.0, 1.0):
            continue  # a hazard of 0 or 1 has no binomial variance (as in Greenwood's formula)
        variance += _partial(hazards, j, k) ** 2 * h * (1 - h) / row.at_risk
    return Share(g, _logit_interval(g, math.sqrt(variance)))


def _partial(h: list[float], j: int, k: int) -> float:
    """d share / d hazard(j), for share = 1 - F(k) / F(H), F(t) = 1 - S(t), H = len(h) - 1."""

    def without(t: int) -> float:  # the product of 1 - hazard up to t, hazard j left out
        return math.prod(1 - x for i, x in enumerate(h[: t + 1]) if i != j)

    last = len(h) - 1
    f_k = 1 - math.prod(1 - x for x in h[: k + 1])
    f_h = 1 - math.prod(1 - x for x in h)
    df_k = without(k) if j <= k else 0.0
    df_h = without(last)
    return -(df_k * f_h - f_k * df_h) / (f_h * f_h)


def _logit_interval(g: float, se: float) -> tuple[float, float]:
    if se == 0 or g <= 0 or g >= 1:
        return max(0.0, g - Z95 * se), min(1.0, g + Z95 * se)
    centre, half = math.log(g / (1 - g)), Z95 * se / (g * (1 - g))
    return 1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half)))
