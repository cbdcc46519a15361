//! American options in the closed-form method: puts by the Andersen–Lake–Offengenden fixed-point
//! method, calls and puts whose early exercise never pays by the European formula. Checked against the
//! BENCHOP references and the converged 1bI values, against finite differences and the tree off the
//! catalogue (including parameters where the plain smooth-pasting iteration diverges), and for the
//! no-arbitrage bounds at every ladder level.

use benchop::method::closed_form;
use benchop::model::{BlackScholes, Model};
use benchop::{
    Cancel, Error, Exercise, Instrument, MethodId, OptionKind, Points, Problem, Quantity, VanillaOption,
    catalogue, relerr, tune,
};

/// 1bI to ten decimals: three independent methods agree on these (shared/BENCHOP.md); the published
/// values are 5e-6 to 1e-5 below them.
const CONVERGED_1BI: [f64; 3] = [10.7265416158, 4.8206437862, 1.8282251049];

fn problem(
    kind: OptionKind,
    exercise: Exercise,
    k: f64,
    t: f64,
    r: f64,
    sigma: f64,
    spots: &[f64],
) -> Problem {
    Problem::new(
        Model::BlackScholes(BlackScholes { r, sigma }),
        Instrument::Vanilla(VanillaOption {
            exercise,
            ..VanillaOption::european(kind, k, t)
        }),
        Quantity::Price,
        Points::Spots(spots.to_vec()),
    )
    .unwrap()
}

fn american_put(k: f64, t: f64, r: f64, sigma: f64, spots: &[f64]) -> Problem {
    problem(OptionKind::Put, Exercise::American, k, t, r, sigma, spots)
}

/// Every level of the closed form's ladder, raw (not lifted to the exercise value as
/// `MethodId::price` does).
fn ladder(p: &Problem) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for level in 0.. {
        match closed_form::price_level(p, level, &Cancel::new()).unwrap() {
            Some(e) => out.push(e.values),
            None => return out,
        }
    }
    unreachable!()
}

fn values(method: MethodId, p: &Problem, level: usize) -> Vec<f64> {
    method.price(p, level, &Cancel::new()).unwrap().unwrap().values
}

#[test]
fn benchop_1b_reaches_the_tolerance_at_one_of_the_two_cheapest_levels() {
    for id in ["1bI", "1bII"] {
        let case = catalogue::case(id).unwrap();
        assert!(MethodId::ClosedForm.applies_to(&case.problem));
        let t = tune::tune(
            MethodId::ClosedForm,
            &case.problem,
            &case.reference,
            1e-4,
            &Cancel::new(),
        )
        .unwrap();
        assert!(
            t.reached && t.level <= 1,
            "{id}: level {} `{}` relerr {:e}: {:?}",
            t.level,
            t.estimate.setting,
            t.relerr,
            t.estimate.values
        );
    }
    // 1bI against its converged values too, at the same cheap level.
    let case = catalogue::case("1bI").unwrap();
    let t = tune::tune(
        MethodId::ClosedForm,
        &case.problem,
        &CONVERGED_1BI,
        1e-4,
        &Cancel::new(),
    )
    .unwrap();
    assert!(
        t.reached && t.level <= 1,
        "{}: {:e}",
        t.estimate.setting,
        t.relerr
    );
}

#[test]
fn the_ladder_converges_to_the_converged_1bi_values() {
    let case = catalogue::case("1bI").unwrap();
    let levels = ladder(&case.problem);
    let errors: Vec<f64> = levels.iter().map(|v| relerr(v, &CONVERGED_1BI)).collect();
    // Observed: 4e-5, 3e-6, 2e-7, 2e-8, 3e-9, 2e-10, 4e-11, then the ten decimals of the reference.
    let bounds = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10];
    for (level, (err, bound)) in errors.iter().zip(bounds).enumerate() {
        assert!(
            err < &bound,
            "level {level}: relerr {err:e} ≥ {bound:e} ({errors:?})"
        );
    }
    let finest = levels.last().unwrap();
    assert!(
        relerr(finest, &CONVERGED_1BI) < 1e-10,
        "finest {finest:?} vs {CONVERGED_1BI:?}"
    );
    assert!(relerr(&levels[levels.len() - 2], finest) < 1e-11);
}

#[test]
fn benchop_1bii_is_immediate_exercise_at_every_level() {
    let case = catalogue::case("1bII").unwrap();
    for v in ladder(&case.problem) {
        assert_eq!(v, [3.0, 2.0, 1.0]);
    }
}

/// Off the catalogue: finite differences on a strike-concentrated grid converge to the closed form's
/// finest level along their ladder, and the Richardson-extrapolated tree agrees with it.
#[test]
fn finite_differences_and_the_tree_converge_to_it_off_the_catalogue() {
    for (k, t, r, sigma, spots) in [
        (95.0, 1.0, 0.05, 0.3, [80.0, 95.0, 110.0]),
        (110.0, 2.0, 0.06, 0.35, [70.0, 100.0, 140.0]),
        (100.0, 0.25, 0.01, 0.4, [80.0, 95.0, 110.0]),
        (100.0, 0.5, 0.08, 0.2, [85.0, 100.0, 115.0]),
    ] {
        let p = american_put(k, t, r, sigma, &spots);
        let alo = ladder(&p);
        let finest = alo.last().unwrap();
        assert!(relerr(&alo[alo.len() - 2], finest) < 1e-10);
        let fd: Vec<f64> = [5, 9, 13]
            .into_iter()
            .map(|level| relerr(&values(MethodId::FdNu, &p, level), finest))
            .collect();
        assert!(
            fd[2] < fd[1] && fd[1] < fd[0] && fd[2] < 5e-6,
            "K={k} T={t} r={r} σ={sigma}: fd-nu errors {fd:?} against {finest:?}"
        );
        let tree = relerr(&values(MethodId::Tree, &p, 12), finest);
        assert!(tree < 1e-5, "K={k} T={t} r={r} σ={sigma}: tree {tree:e}");
    }
}

/// Where ω = 2r/σ² and c²T = (r − σ²/2)²T/σ² are large the plain smooth-pasting iteration diverges
/// (to relative errors of 1e-3..1, see `american_fp.rs`); the weighted iteration still converges, to
/// the values finite differences find.
#[test]
fn hard_parameters_converge_and_match_finite_differences() {
    // σ = 0.01 as in 1bII, with spots just above B∞ = 99.95; and r = 0.5 over five years.
    for (p, method, level, tol) in [
        (
            american_put(100.0, 0.25, 0.1, 0.01, &[99.96, 99.99, 100.2]),
            MethodId::Fd,
            13,
            3e-6,
        ),
        (
            american_put(100.0, 5.0, 0.5, 0.2, &[97.0, 105.0, 120.0]),
            MethodId::FdNu,
            13,
            1e-4,
        ),
    ] {
        let alo = ladder(&p);
        let finest = alo.last().unwrap();
        let step = relerr(&alo[alo.len() - 2], finest);
        assert!(step < 1e-8, "{p:?}: finest levels differ by {step:e}");
        let other = values(method, &p, level);
        assert!(
            relerr(&other, finest) < tol,
            "{p:?}: {method} {other:?} vs {finest:?}"
        );
    }
}

#[test]
fn american_puts_lie_between_the_european_and_the_strike_at_every_level() {
    let spots: Vec<f64> = (1..=30).map(|i| 5.0 * i as f64).collect();
    for (k, t, r, sigma) in [
        (100.0, 1.0, 0.03, 0.15),
        (100.0, 0.1, 0.02, 0.6),
        (80.0, 3.0, 0.07, 0.25),
        (100.0, 5.0, 0.5, 0.2),
        (100.0, 0.25, 0.1, 0.01),
    ] {
        let american = american_put(k, t, r, sigma, &spots);
        let european = values(
            MethodId::ClosedForm,
            &problem(OptionKind::Put, Exercise::European, k, t, r, sigma, &spots),
            0,
        );
        for (level, v) in ladder(&american).iter().enumerate() {
            for ((&a, &e), &s) in v.iter().zip(&european).zip(&spots) {
                let what = format!("K={k} T={t} r={r} σ={sigma} level {level} S={s}");
                assert!(a >= e - 1e-12 * k, "{what}: American {a} < European {e}");
                assert!(a >= k - s - 1e-12 * k, "{what}: American {a} < exercise value");
                assert!(a <= k, "{what}: American {a} > K");
            }
            for (w, s) in v.windows(2).zip(spots.windows(2)) {
                assert!(
                    w[1] <= w[0] + 1e-12 * k,
                    "level {level}: not falling from S={} to S={}",
                    s[0],
                    s[1]
                );
            }
        }
    }
}

#[test]
fn american_options_that_are_never_exercised_early_are_priced_as_european() {
    let spots = [80.0, 100.0, 120.0];
    for (kind, r) in [
        (OptionKind::Call, 0.03),
        (OptionKind::Call, 0.0),
        (OptionKind::Put, 0.0),
        (OptionKind::Put, -0.01),
    ] {
        let american = problem(kind, Exercise::American, 100.0, 1.0, r, 0.25, &spots);
        let european = problem(kind, Exercise::European, 100.0, 1.0, r, 0.25, &spots);
        let e = closed_form::price_level(&american, 0, &Cancel::new())
            .unwrap()
            .unwrap();
        assert_eq!(
            e.values,
            values(MethodId::ClosedForm, &european, 0),
            "{kind:?} r={r}"
        );
        assert!(closed_form::price(&american, &Cancel::new()).is_ok());
        assert!(
            closed_form::price_level(&american, 1, &Cancel::new())
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn what_the_american_closed_form_does_not_cover_is_refused() {
    let cancel = Cancel::new();
    // A call at r < 0 may be exercised early, and the put method does not cover it.
    let call = problem(
        OptionKind::Call,
        Exercise::American,
        100.0,
        1.0,
        -0.01,
        0.25,
        &[100.0],
    );
    assert!(!closed_form::applies(&call));
    // Discrete dividends on an American put.
    let with_dividend = Problem::new(
        Model::BlackScholes(BlackScholes { r: 0.05, sigma: 0.2 }),
        Instrument::Vanilla(VanillaOption {
            dividends: vec![benchop::Dividend {
                time: 0.5,
                fraction: 0.02,
            }],
            ..VanillaOption::american(OptionKind::Put, 100.0, 1.0)
        }),
        Quantity::Price,
        Points::Spots(vec![100.0]),
    )
    .unwrap();
    assert!(!closed_form::applies(&with_dividend));
    assert!(matches!(
        closed_form::price_level(&with_dividend, 0, &cancel),
        Err(Error::NotApplicable { .. })
    ));
    // No discrete dividends (2b); Greeks of American options cannot even be posed.
    let case = catalogue::case("1bI").unwrap();
    assert!(
        Problem::new(
            *case.problem.model(),
            case.problem.instrument().clone(),
            Quantity::Delta,
            Points::Spots(vec![100.0]),
        )
        .is_err()
    );
    assert!(!closed_form::applies(&catalogue::case("2b").unwrap().problem));
    // An American put with r > 0 has no formula: `price` refuses, `price_level` runs the ladder.
    assert!(matches!(
        closed_form::price(&case.problem, &cancel),
        Err(Error::NotApplicable { .. })
    ));
    assert!(
        closed_form::price_level(&case.problem, 8, &cancel)
            .unwrap()
            .is_some()
    );
    assert!(
        closed_form::price_level(&case.problem, 9, &cancel)
            .unwrap()
            .is_none()
    );
}
