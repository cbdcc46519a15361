//! Properties every price must have, on random parameters (proptest): put–call parity, no-arbitrage
//! bounds, monotonicity in strike and volatility, American ≥ European, knock-out ≤ vanilla, and Greeks
//! equal to finite differences of prices. Each property is checked on the methods that claim the case.

use benchop::model::{BlackScholes, Model};
use benchop::{Barrier, Cancel, Instrument, MethodId, OptionKind, Points, Problem, Quantity, VanillaOption};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
struct Params {
    s: f64,
    k: f64,
    t: f64,
    r: f64,
    sigma: f64,
}

fn params() -> impl Strategy<Value = Params> {
    (60.0..140.0, 80.0..120.0, 0.1..2.0, 0.0..0.08, 0.1..0.5).prop_map(|(s, k, t, r, sigma)| Params {
        s,
        k,
        t,
        r,
        sigma,
    })
}

fn problem(p: Params, option: VanillaOption, q: Quantity) -> Problem {
    Problem::new(
        Model::BlackScholes(BlackScholes {
            r: p.r,
            sigma: p.sigma,
        }),
        Instrument::Vanilla(option),
        q,
        Points::Spots(vec![p.s]),
    )
    .unwrap()
}

/// Deepest ladder level [`price`] walks to: deterministic, unlike a time budget (a slow level caused by
/// the machine, not the method, once stopped the walk early and produced a false failure).
const MAX_LEVEL: usize = 10;

/// A converged value from `method`: walk its ladder until two successive levels agree to 1e-8
/// relative, or until [`MAX_LEVEL`] (its most accurate affordable value).
fn price(method: MethodId, problem: &Problem) -> f64 {
    let cancel = Cancel::new();
    let mut last: Option<f64> = None;
    for level in 0..=MAX_LEVEL {
        let Some(e) = method.price(problem, level, &cancel).unwrap() else {
            break;
        };
        let v = e.values[0];
        if last.is_some_and(|p| (v - p).abs() <= 1e-8 * v.abs().max(1e-3)) {
            return v;
        }
        last = Some(v);
    }
    last.unwrap()
}

/// Local runs explore new random parameters every time (that is how the exercise-value bug below was
/// found); CI (`CI` set) replays one fixed seed so a landing never depends on luck.
fn config() -> ProptestConfig {
    let rng_seed = if std::env::var_os("CI").is_some() {
        proptest::test_runner::RngSeed::Fixed(20_151_215)
    } else {
        proptest::test_runner::RngSeed::Random
    };
    ProptestConfig {
        cases: 48,
        rng_seed,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn put_call_parity_and_no_arbitrage_bounds(p in params()) {
        let call = problem(p, VanillaOption::european(OptionKind::Call, p.k, p.t), Quantity::Price);
        let put = problem(p, VanillaOption::european(OptionKind::Put, p.k, p.t), Quantity::Price);
        let discounted_k = p.k * (-p.r * p.t).exp();
        for m in [MethodId::ClosedForm, MethodId::Cos, MethodId::Fft] {
            if !m.applies_to(&call) || !m.applies_to(&put) {
                continue;
            }
            let (c, v) = (price(m, &call), price(m, &put));
            prop_assert!((c - v - (p.s - discounted_k)).abs() < 1e-6 * p.s, "{m}: C={c} P={v} {p:?}");
            prop_assert!(c >= (p.s - discounted_k).max(0.0) - 1e-8 && c <= p.s + 1e-8, "{m}: C={c} {p:?}");
            prop_assert!(v >= (discounted_k - p.s).max(0.0) - 1e-8 && v <= discounted_k + 1e-8, "{m}: P={v} {p:?}");
        }
    }

    #[test]
    fn calls_fall_with_strike_and_rise_with_volatility(p in params(), dk in 1.0..10.0, dv in 0.01..0.1) {
        let base = price(MethodId::Cos, &problem(p, VanillaOption::european(OptionKind::Call, p.k, p.t), Quantity::Price));
        let higher_k = price(MethodId::Cos, &problem(p, VanillaOption::european(OptionKind::Call, p.k + dk, p.t), Quantity::Price));
        let more_vol = Params { sigma: p.sigma + dv, ..p };
        let higher_v = price(MethodId::Cos, &problem(more_vol, VanillaOption::european(OptionKind::Call, p.k, p.t), Quantity::Price));
        prop_assert!(higher_k < base + 1e-9, "strike: {base} → {higher_k} {p:?}");
        prop_assert!(higher_v > base - 1e-9, "volatility: {base} → {higher_v} {p:?}");
    }

    #[test]
    fn american_puts_are_worth_at_least_european_and_intrinsic(p in params()) {
        let european = price(MethodId::ClosedForm, &problem(p, VanillaOption::european(OptionKind::Put, p.k, p.t), Quantity::Price));
        let american = problem(p, VanillaOption::american(OptionKind::Put, p.k, p.t), Quantity::Price);
        for m in MethodId::ALL.into_iter().filter(|m| !m.is_stochastic() && m.applies_to(&american)) {
            let a = price(m, &american);
            prop_assert!(a >= european - 1e-4 * european.max(1.0), "{m}: American {a} < European {european} {p:?}");
            prop_assert!(a >= (p.k - p.s).max(0.0) - 1e-6, "{m}: American {a} below intrinsic {p:?}");
        }
    }

    #[test]
    fn knock_out_is_worth_at_most_the_vanilla(p in params(), above in 1.05..1.6) {
        let barrier = p.s.max(p.k) * above;
        let vanilla = price(MethodId::ClosedForm, &problem(p, VanillaOption::european(OptionKind::Call, p.k, p.t), Quantity::Price));
        let ko = problem(p, VanillaOption { barrier: Some(Barrier::UpAndOut(barrier)), ..VanillaOption::european(OptionKind::Call, p.k, p.t) }, Quantity::Price);
        for m in MethodId::ALL.into_iter().filter(|m| !m.is_stochastic() && m.applies_to(&ko)) {
            let v = price(m, &ko);
            prop_assert!(v <= vanilla + 1e-6 && v >= -1e-9, "{m}: knock-out {v} vs vanilla {vanilla} {p:?}");
        }
    }

    #[test]
    fn greeks_are_finite_differences_of_prices(p in params()) {
        let option = VanillaOption::european(OptionKind::Call, p.k, p.t);
        let at = |s: f64, sigma: f64| {
            price(MethodId::ClosedForm, &problem(Params { s, sigma, ..p }, option.clone(), Quantity::Price))
        };
        let (h, hv) = (1e-3 * p.s, 1e-5);
        let fd_delta = (at(p.s + h, p.sigma) - at(p.s - h, p.sigma)) / (2.0 * h);
        let fd_gamma = (at(p.s + h, p.sigma) - 2.0 * at(p.s, p.sigma) + at(p.s - h, p.sigma)) / (h * h);
        let fd_vega = (at(p.s, p.sigma + hv) - at(p.s, p.sigma - hv)) / (2.0 * hv);
        for m in [MethodId::ClosedForm, MethodId::Cos, MethodId::Fd, MethodId::FdNu] {
            let q = |quantity| problem(p, option.clone(), quantity);
            if !m.applies_to(&q(Quantity::Delta)) {
                continue;
            }
            let delta = price(m, &q(Quantity::Delta));
            let gamma = price(m, &q(Quantity::Gamma));
            let vega = price(m, &q(Quantity::Vega));
            prop_assert!((delta - fd_delta).abs() < 2e-4, "{m}: delta {delta} vs {fd_delta} {p:?}");
            prop_assert!((gamma - fd_gamma).abs() < 2e-4 + 1e-3 * fd_gamma.abs(), "{m}: gamma {gamma} vs {fd_gamma} {p:?}");
            prop_assert!((vega - fd_vega).abs() < 1e-3 * fd_vega.abs().max(1.0), "{m}: vega {vega} vs {fd_vega} {p:?}");
        }
    }
}

/// Found by the property above: deep in the exercise region, interpolation and Richardson extrapolation
/// put fd-nu 1.8e-5 below the exercise value. Every level of every deterministic method must respect it.
#[test]
fn american_values_never_fall_below_the_exercise_value_at_any_level() {
    let p = Params {
        s: 63.36813827008611,
        k: 80.44870681720973,
        t: 1.1440885632521816,
        r: 0.042522421440095395,
        sigma: 0.20195744821680167,
    };
    let american = problem(
        p,
        VanillaOption::american(OptionKind::Put, p.k, p.t),
        Quantity::Price,
    );
    let intrinsic = p.k - p.s;
    for m in MethodId::ALL
        .into_iter()
        .filter(|m| !m.is_stochastic() && m.applies_to(&american))
    {
        for level in 0..6 {
            let Some(e) = m.price(&american, level, &Cancel::new()).unwrap() else {
                break;
            };
            assert!(
                e.values[0] >= intrinsic,
                "{m} level {level}: {} < {intrinsic}",
                e.values[0]
            );
        }
    }
}
