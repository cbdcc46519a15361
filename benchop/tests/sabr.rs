//! Off-catalogue checks of the SABR solvers: the 2-D ADI solvers (`fd-nu`, whose ladder was tuned on the
//! two BENCHOP–SLV sets, and `fd`) must reach 1e-4 on other parameter sets too, against an independent
//! method, a limit with a closed form, or another discretisation.

use benchop::model::{Model, Sabr};
use benchop::{Cancel, Instrument, MethodId, OptionKind, Points, Problem, Quantity, VanillaOption, relerr};

fn problem(m: Sabr, kind: OptionKind, t: f64, spot: f64, strikes: &[f64]) -> Problem {
    Problem::new(
        Model::Sabr(m),
        Instrument::Vanilla(VanillaOption::european(kind, strikes[0], t)),
        Quantity::Price,
        Points::Strikes {
            spot,
            strikes: strikes.to_vec(),
        },
    )
    .unwrap()
}

/// Tune `fd-nu` to 1e-4 against `reference` and return its estimate; fail with every input otherwise.
fn tuned_fd_nu(p: &Problem, reference: &[f64]) -> Vec<f64> {
    let t = benchop::tune::tune(MethodId::FdNu, p, reference, 1e-4, &Cancel::new()).unwrap();
    assert!(
        t.reached,
        "fd-nu relerr {:.2e} at `{}`\n  fd-nu {:?}\n  ref   {reference:?}",
        t.relerr, t.estimate.setting, t.estimate.values
    );
    t.estimate.values
}

/// Tune each of `methods` to 1e-4 against QMC (level 3: over volatility paths with the closed-form
/// conditional CEV price, ρ = 0 only) and require agreement within four QMC standard errors plus 1e-4.
fn assert_matches_qmc(p: &Problem, methods: &[MethodId]) {
    let q = MethodId::Qmc.price(p, 3, &Cancel::new()).unwrap().unwrap();
    let se = q.std_errors.unwrap();
    for &method in methods {
        let t = benchop::tune::tune(method, p, &q.values, 1e-4, &Cancel::new()).unwrap();
        for ((f, v), s) in t.estimate.values.iter().zip(&q.values).zip(&se) {
            assert!(
                (f - v).abs() <= 4.0 * s + 1e-4 * v,
                "{method} {:?} vs qmc {:?} ± {se:?} (`{}`)",
                t.estimate.values,
                q.values,
                t.estimate.setting
            );
        }
    }
}

#[test]
fn fd_nu_matches_conditional_qmc_with_a_large_vol_of_vol() {
    // ρ = 0, ν√T = 1.6 (the large-ν√T branch of the ladder): the 2-D PDE against QMC over volatility
    // paths with the closed-form conditional CEV price, within the QMC error plus the 1e-4 target.
    let m = Sabr {
        r: 0.0,
        alpha: 0.3,
        beta: 0.5,
        rho: 0.0,
        nu: 0.8,
    };
    let p = problem(m, OptionKind::Call, 4.0, 0.2, &[0.16, 0.2, 0.25]);
    assert_matches_qmc(&p, &[MethodId::FdNu]);
}

#[test]
fn fd_nu_agrees_with_a_much_finer_uniform_grid_with_correlation() {
    // ρ ≠ 0 and β ≠ ½, a put, small ν√T: the reference is `fd` (uniform grid, a different domain and
    // node placement) at its levels 10 and 11 (100 × 50 and 116 × 58 nodes before Richardson), which must
    // agree with each other within 2e-5 first.
    let m = Sabr {
        r: 0.01,
        alpha: 0.25,
        beta: 0.7,
        rho: -0.4,
        nu: 0.5,
    };
    let p = problem(m, OptionKind::Put, 2.0, 1.0, &[0.8, 1.0, 1.25]);
    let fine: Vec<f64> = MethodId::Fd
        .price(&p, 10, &Cancel::new())
        .unwrap()
        .unwrap()
        .values;
    let finer: Vec<f64> = MethodId::Fd
        .price(&p, 11, &Cancel::new())
        .unwrap()
        .unwrap()
        .values;
    assert!(
        relerr(&fine, &finer) < 2e-5,
        "fd not converged: {fine:?} {finer:?}"
    );
    tuned_fd_nu(&p, &finer);
}

#[test]
fn sabr_ladders_keep_the_tolerance_past_the_tuned_level() {
    // Tuning stops at the first level under 1e-4; the next levels must stay under it (the ladder converges
    // rather than touching the tolerance by chance), on both BENCHOP–SLV sets and both grids.
    for method in [MethodId::FdNu, MethodId::Fd] {
        for id in ["SLV-SABR-I", "SLV-SABR-II"] {
            let case = benchop::catalogue::case(id).unwrap();
            let t =
                benchop::tune::tune(method, &case.problem, &case.reference, 1e-4, &Cancel::new()).unwrap();
            assert!(
                t.reached,
                "{id} {method}: {:.2e} at `{}`",
                t.relerr, t.estimate.setting
            );
            for level in t.level + 1..t.level + 3 {
                let v = method
                    .price(&case.problem, level, &Cancel::new())
                    .unwrap()
                    .unwrap();
                let e = relerr(&v.values, &case.reference);
                assert!(
                    e <= 1e-4,
                    "{id} {method} level {level}: {e:.2e} at `{}`",
                    v.setting
                );
            }
        }
    }
}

#[test]
fn sabr_adi_with_vanishing_vol_of_vol_is_the_absorbed_cev_closed_form() {
    // ν → 0 freezes α: SABR is then the CEV model, whatever ρ, and conditional Monte Carlo with ρ = 0 has
    // no randomness left — it returns the closed-form absorbed CEV price. The ADI solver (with ρ ≠ 0,
    // which exercises the mixed derivative) must reach it, for a call and a put and several β.
    for (beta, kind) in [
        (0.5, OptionKind::Call),
        (0.7, OptionKind::Put),
        (0.3, OptionKind::Call),
    ] {
        let sabr = |rho| Sabr {
            r: 0.02,
            alpha: 0.3 * 0.8f64.powf(1.0 - beta),
            beta,
            rho,
            nu: 1e-6,
        };
        let strikes = [0.7, 0.8, 0.95];
        let cev = problem(sabr(0.0), kind, 1.5, 0.8, &strikes);
        let mc = MethodId::Mc.price(&cev, 0, &Cancel::new()).unwrap().unwrap();
        let (closed, se) = (mc.values, mc.std_errors.unwrap());
        assert!(
            se.iter().zip(&closed).all(|(s, v)| *s < 1e-7 * v),
            "β {beta}: {se:?}"
        );
        let p = problem(sabr(-0.5), kind, 1.5, 0.8, &strikes);
        // Both grids: fd-nu (sinh in F) and fd (uniform in F and ln α).
        for method in [MethodId::FdNu, MethodId::Fd] {
            let t = benchop::tune::tune(method, &p, &closed, 1e-4, &Cancel::new()).unwrap();
            assert!(
                t.reached,
                "β {beta} {kind:?}: {method} relerr {:.2e} at `{}`\n  fd  {:?}\n  cev {closed:?}",
                t.relerr, t.estimate.setting, t.estimate.values
            );
        }
    }
}

#[test]
fn sabr_adi_matches_conditional_qmc_off_the_catalogue() {
    // ρ = 0, β = 0.6, a put: two independent methods (2-D PDE; QMC over volatility paths with the
    // closed-form conditional CEV price) agree within the QMC error plus the 1e-4 target.
    let m = Sabr {
        r: 0.01,
        alpha: 0.25,
        beta: 0.6,
        rho: 0.0,
        nu: 0.5,
    };
    let p = problem(m, OptionKind::Put, 1.0, 1.0, &[0.85, 1.0, 1.2]);
    assert_matches_qmc(&p, &[MethodId::FdNu, MethodId::Fd]);
}
