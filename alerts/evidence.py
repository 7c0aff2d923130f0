"""Evidence of a level shift over the last two buckets: the sum of their *clipped* log-likelihood ratios. Pure
functions over plain numbers.

Per bucket, with the series' expected count mu and its own dispersion k (negative binomial; Poisson when k is None),
the log-likelihood ratio of "the level is ``rho`` x mu" against "the level is mu" is

    LLR(x) = x ln(rho) + (k + x) ln((k + mu) / (k + rho mu))        (Poisson: x ln(rho) - (rho - 1) mu)

clipped; the evidence is the sum over this bucket and the previous one. The drop side uses rho =
``DROP_TO`` (a -80 % level) and, for an empty bucket, the larger evidence for a stop (-ln P(0)); the spike side uses
rho = ``SPIKE_TO``. Two buckets, not a CUSUM: at a low dispersion (k ~ 3) a normal bucket takes back almost none of a
burst's evidence, and an unbounded memory would add a burst to whatever mild excess follows it.

Why clipped (Huber's censored likelihood-ratio test): real series have isolated zero buckets and single-bucket bursts
every few days. Unclipped, one such bucket carries more evidence than two buckets at 20 % of the level (at k = 30 an
empty bucket is worth ~48 nats, a bucket at 20 % ~24), so a tail calibrated on the series' own history would learn
to ignore exactly what it should catch. Each bucket counts for at most half the evidence an alert needs (``cap``), or
for as much as the other bucket when that is more: one bucket can never alert alone, two buckets each as extreme as
the alternative do, and two buckets far beyond it (a stop of a busy series) score far beyond it too, so a near miss
in the series' history (a zero next to a low bucket) does not make every later stop "common here".

Under the model E[exp(LLR)] = 1 (the stop alternative at x = 0 adds at most 1) and the two buckets are independent,
so beyond the cap P(evidence >= h) <= P(both >= h/2) <= e^-h (x4 for drops), and below it clipping only lowers it:
as a score in log10 units the model tail is about 10^-s, the prior the other score streams calibrate against; the
series' own history then overrules it.
"""


from __future__ import annotations

import math

DROP_TO = 0.2  # the drop the test is tuned to: the level falls to 20 %
SPIKE_TO = 3.0  # the spike it is tuned to: the level triples
LN10 = math.log(10.0)


def cap_for(alarm_p: float) -> float:
    """Half the evidence (nats) an alert needs: no single bucket alerts, two buckets at the alternative can."""
    return 0.5 * math.log(1.0 / alarm_p)


def llr(x: float, mu: float, k: float | None, rho: float) -> float:
    """ln P(x | level rho mu) - ln P(x | level mu) for one bucket."""
    if k is None:
        return x * math.log(rho) - (rho - 1.0) * mu
    return x * math.log(rho) + (k + x) * math.log((k + mu) / (k + rho * mu))


def stop_llr(mu: float, k: float | None) -> float:
    """-ln P(0 | mu): the evidence of an empty bucket for "the source stopped"."""
    return mu if k is None else k * math.log1p(mu / k)


def drop_llr(x: float, mu: float, k: float | None) -> float:
    """One bucket's evidence of a drop (or, when empty, of a stop), unclipped."""
    inc = llr(x, mu, k, DROP_TO)
    return max(inc, stop_llr(mu, k)) if x <= 0 else inc


def spike_llr(x: float, mu: float, k: float | None) -> float:
    return llr(x, mu, k, SPIKE_TO)


def score(previous: float, current: float, cap: float) -> float:
    """The evidence of the last two buckets (their unclipped LLRs) as a score in log10 units: each counts for at most
    max(cap, the lesser of the two); a bucket speaking against the shift for at most -cap; 0 when they add up
    against it."""
    top = max(cap, min(previous, current))
    return max(0.0, min(max(previous, -cap), top) + min(max(current, -cap), top)) / LN10
