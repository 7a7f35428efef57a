// Numerics every loss shares: the stable forms SPEC.md asks for, so that no
// finite logit, however large, turns into NaN or Inf.

// log(1 + t) for t >= 0. Plain log(1 + t) loses all of t's digits once 1 + t
// rounds to 1 (t < 6e-8); the ratio below restores them (Goldberg 1991).
fn log1p_pos(t: f32) -> f32 {
    let u = 1.0 + t;
    if (u == 1.0) {
        return t;
    }
    return log(u) * (t / (u - 1.0));
}

// σ(x), computed from e^{-|x|} so neither branch overflows.
fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, x >= 0.0);
}

// Everything a sigmoid loss needs about x from one exp and one log:
// p = σ(x), q = 1 − p = σ(−x), and softplus(±x) = −log(1 − p), −log p.
struct SigmoidParts {
    p: f32,
    q: f32,
    softplus_pos: f32,  // softplus(x)  = −log(1 − σ(x))
    softplus_neg: f32,  // softplus(−x) = −log σ(x)
}

fn sigmoid_parts(x: f32) -> SigmoidParts {
    let e = exp(-abs(x));
    let l = log1p_pos(e);
    let big = 1.0 / (1.0 + e);
    let small = e * big;
    let positive = x >= 0.0;
    return SigmoidParts(select(small, big, positive), select(big, small, positive), max(x, 0.0) + l, max(-x, 0.0) + l);
}

// q^γ from log q, 0 when q is 0 (log q = -inf) and γ > 0, 1 when γ is 0.
fn pow_from_log(log_q: f32, gamma: f32) -> f32 {
    if (gamma == 0.0) {
        return 1.0;
    }
    if (log_q < -3.0e38) {
        return 0.0;
    }
    return exp(gamma * log_q);
}
