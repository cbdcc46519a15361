//! Every (case, method) pair the methods claim (`MethodId::applies_to`) is checked against the published
//! reference values: deterministic methods must reach relerr ≤ 1e-4 on their ladder; Monte Carlo must
//! agree with the reference within four standard errors at its most accurate level.

use benchop::{Cancel, MethodId, catalogue, tune};

const TOL: f64 = 1e-4;

fn report(case: &catalogue::Case, method: MethodId, t: &tune::Tuned) -> String {
    format!(
        "case {} method {} level {} setting `{}`: relerr {:.3e}\n  computed  {:?}\n  reference {:?}\n  std err   {:?}",
        case.id,
        method,
        t.level,
        t.estimate.setting,
        t.relerr,
        t.estimate.values,
        case.reference,
        t.estimate.std_errors
    )
}

#[test]
fn every_claimed_deterministic_pair_reaches_the_benchmark_tolerance() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in catalogue::cases() {
        for method in MethodId::ALL.into_iter().filter(|m| !m.is_stochastic()) {
            if !method.applies_to(&case.problem) {
                continue;
            }
            checked += 1;
            match tune::tune(method, &case.problem, &case.reference, TOL, &Cancel::new()) {
                Ok(t) if t.reached => {}
                Ok(t) => failures.push(report(case, method, &t)),
                Err(e) => failures.push(format!("case {} method {}: error {e}", case.id, method)),
            }
        }
    }
    assert!(checked > 0, "no method claims any case");
    assert!(
        failures.is_empty(),
        "{} of {checked} claimed pairs miss 1e-4:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn stochastic_methods_agree_with_the_reference_within_four_standard_errors() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in catalogue::cases() {
        for method in MethodId::ALL
            .into_iter()
            .filter(|m| m.is_stochastic() && m.applies_to(&case.problem))
        {
            checked += 1;
            // A loose tolerance keeps the ladder short; the check is statistical, not the tolerance.
            let t = tune::tune(method, &case.problem, &case.reference, 1e-2, &Cancel::new())
                .unwrap_or_else(|e| panic!("case {} {method}: {e}", case.id));
            let se = t
                .estimate
                .std_errors
                .clone()
                .expect("stochastic methods report standard errors");
            for ((v, r), s) in t.estimate.values.iter().zip(&case.reference).zip(&se) {
                assert!(*s > 0.0 && s.is_finite(), "{}", report(case, method, &t));
                if (v - r).abs() > 4.0 * s + 1e-12 * r.abs() {
                    failures.push(report(case, method, &t));
                    break;
                }
            }
        }
    }
    assert!(checked > 0, "no stochastic method claims any case");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_headline_cases_have_three_methods_reaching_the_tolerance() {
    for id in ["1aI", "1bI", "4a", "1cI", "2a", "5a"] {
        let case = catalogue::case(id).unwrap();
        let reached: Vec<_> = MethodId::ALL
            .into_iter()
            .filter(|m| m.applies_to(&case.problem))
            .filter(|m| {
                tune::tune(*m, &case.problem, &case.reference, TOL, &Cancel::new()).is_ok_and(|t| t.reached)
            })
            .collect();
        assert!(reached.len() >= 3, "case {id}: only {reached:?} reach {TOL}");
    }
}

#[test]
fn methods_agree_with_each_other_on_a_custom_problem() {
    use benchop::model::{BlackScholes, Model};
    use benchop::{Instrument, OptionKind, Points, Problem, Quantity, VanillaOption};
    // Off the catalogue: a put with other parameters; the closed form is the reference.
    let problem = Problem::new(
        Model::BlackScholes(BlackScholes { r: 0.05, sigma: 0.3 }),
        Instrument::Vanilla(VanillaOption::european(OptionKind::Put, 95.0, 0.75)),
        Quantity::Price,
        Points::Spots(vec![80.0, 95.0, 120.0]),
    )
    .unwrap();
    let reference = MethodId::ClosedForm
        .price(&problem, 0, &Cancel::new())
        .unwrap()
        .unwrap()
        .values;
    for method in MethodId::ALL
        .into_iter()
        .filter(|m| !m.is_stochastic() && m.applies_to(&problem))
    {
        let t = tune::tune(method, &problem, &reference, TOL, &Cancel::new()).unwrap();
        assert!(
            t.reached,
            "{method}: relerr {:.3e} at `{}`",
            t.relerr, t.estimate.setting
        );
    }
}

#[test]
fn a_cancelled_flag_stops_every_method() {
    let cancel = Cancel::new();
    cancel.cancel();
    for case in catalogue::cases() {
        for method in MethodId::ALL.into_iter().filter(|m| m.applies_to(&case.problem)) {
            let r = tune::tune(method, &case.problem, &case.reference, TOL, &cancel);
            assert!(
                matches!(r, Err(benchop::Error::Cancelled(_))),
                "{} {method}: {r:?}",
                case.id
            );
        }
    }
}
