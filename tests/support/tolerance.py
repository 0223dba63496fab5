"""How close two fp32 computations of the same model output must be.

Two routes to one fp32 output (another batch shape or padding, a context shared by its choices or read per
choice, a fused GEMM or two, merged weights or an adapter beside them) add the same terms in other orders,
and the order a CPU kernel takes depends on the CPU (AVX2, AVX-512 and AMX kernels block their sums
differently). Each rounding is relative to the size of the numbers summed, so the difference grows with
the outputs: an absolute bound that holds on one CPU fails on another (log-likelihoods of about 100 nats
differed by 1.53e-5 against a bound of 1e-5).

FP32_RTOL = 1e-5 is about 84 ulps of fp32 (eps = 2**-23, about 1.19e-7). Measured on a 2-core AVX-512
machine, in ulps of the outputs' size: shared-context against per-choice scores 1.2, scores through the
HTTP server against in process 0.7, a merged model against base + adapter 3, stacked LoRA against PEFT
logits 18. It leaves room for other kernels and stays far below what a fault moves: a token more or less in
a log-likelihood is a whole log-probability (several nats), and the tests' adapters move the logits by
tenths of their size.
"""

FP32_RTOL = 1e-5


def flat(rows: list[list[float]]) -> list[float]:
    return [x for row in rows for x in row]


def scaled_max_diff(got, want) -> float:
    """max |got - want| over max |want|, for tensors of logits: a logit near 0 is rounded at the scale of
    the others (each is a dot product of the same hidden state), so the size of the whole set is the
    scale, not the logit's own."""
    return ((got - want).abs().max() / want.abs().max()).item()
