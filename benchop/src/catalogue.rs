//! The BENCHOP problem catalogue (von Sydow et al. 2015; BENCHOP–SLV 2019) with published reference values.
//!
//! Case ids (`1aI`, `1bII`, `1aI-Delta`, `4a`, …) are the public problem ids of the API and the CLI.

use std::sync::LazyLock;

use crate::instrument::{Barrier, Dividend, Instrument, OptionKind, SpreadOption, VanillaOption};
use crate::model::{
    BlackScholes, Heston, LocalVol, LocalVolSurface, Merton, Model, Sabr, TwoAssetBlackScholes,
};
use crate::problem::{Points, Problem, Quantity};

/// One benchmark case: a problem and its published reference values.
#[derive(Debug, Clone)]
pub struct Case {
    /// Public id, e.g. `1aI`.
    pub id: &'static str,
    /// One-line description.
    pub title: &'static str,
    /// Which benchmark set it comes from: `2015-I`, `2015-II`, or `SLV-2019`.
    pub set: &'static str,
    /// The problem.
    pub problem: Problem,
    /// Reference value at each evaluation point, as published.
    pub reference: Vec<f64>,
    /// Where the reference comes from and how far it can be trusted.
    pub reference_note: &'static str,
}

/// Every case of the catalogue, in the order of shared/BENCHOP.md.
///
/// ```
/// let ids: Vec<_> = benchop::catalogue::cases().iter().map(|c| c.id).collect();
/// assert!(ids.contains(&"1aI") && ids.contains(&"6a"));
/// ```
pub fn cases() -> &'static [Case] {
    &CASES
}

/// Look a case up by id; exact match first, then ASCII case-insensitive (ids are unique either way).
///
/// ```
/// assert_eq!(benchop::catalogue::case("1bi").unwrap().id, "1bI");
/// assert!(benchop::catalogue::case("9z").is_none());
/// ```
pub fn case(id: &str) -> Option<&'static Case> {
    CASES
        .iter()
        .find(|c| c.id == id)
        .or_else(|| CASES.iter().find(|c| c.id.eq_ignore_ascii_case(id)))
}

const PUBLISHED: &str = "published BENCHOP reference value";

static CASES: LazyLock<Vec<Case>> = LazyLock::new(build);

fn bs(r: f64, sigma: f64) -> Model {
    Model::BlackScholes(BlackScholes { r, sigma })
}

fn spots(v: &[f64]) -> Points {
    Points::Spots(v.to_vec())
}

// References are kept digit for digit as published, even where f64 cannot hold every digit.
#[allow(clippy::too_many_lines, clippy::excessive_precision)]
fn build() -> Vec<Case> {
    let set_i = bs(0.03, 0.15);
    let set_ii = bs(0.1, 0.01);
    let pts_i = [90.0, 100.0, 110.0];
    let pts_ii = [97.0, 98.0, 99.0];
    let call = |t| VanillaOption::european(OptionKind::Call, 100.0, t);
    let euro_i = Instrument::Vanilla(call(1.0));
    let euro_ii = Instrument::Vanilla(call(0.25));
    let amer_i = Instrument::Vanilla(VanillaOption::american(OptionKind::Put, 100.0, 1.0));
    let amer_ii = Instrument::Vanilla(VanillaOption::american(OptionKind::Put, 100.0, 0.25));
    let barrier = |t| {
        Instrument::Vanilla(VanillaOption {
            barrier: Some(Barrier::UpAndOut(125.0)),
            ..call(t)
        })
    };
    let dividend = vec![Dividend {
        time: 0.4,
        fraction: 0.03,
    }];

    let mut out = Vec::new();
    let mut push = |id, title, set, model, instrument, quantity, points, reference: &[f64], note| {
        let problem = match Problem::new(model, instrument, quantity, points) {
            Ok(p) => p,
            // The catalogue is static data checked by the test suite; a failure here is a typo in this file.
            Err(e) => panic!("catalogue case {id} is invalid: {e}"),
        };
        out.push(Case {
            id,
            title,
            set,
            problem,
            reference: reference.to_vec(),
            reference_note: note,
        });
    };

    push(
        "1aI",
        "European call, BSM, standard parameters",
        "2015-I",
        set_i,
        euro_i.clone(),
        Quantity::Price,
        spots(&pts_i),
        &[2.758443856146076, 7.485087593912603, 14.702019669720769],
        PUBLISHED,
    );
    push(
        "1bI",
        "American put, BSM, standard parameters",
        "2015-I",
        set_i,
        amer_i,
        Quantity::Price,
        spots(&pts_i),
        &[10.726486710094511, 4.820608184813253, 1.828207584020458],
        "published BENCHOP reference value; converged values are 5e-6 to 1e-5 higher \
         (10.7265416158, 4.8206437862, 1.8282251049): fine for 1e-4, not below ~1e-5",
    );
    push(
        "1cI",
        "Up-and-out barrier call (B = 125), BSM, standard parameters",
        "2015-I",
        set_i,
        barrier(1.0),
        Quantity::Price,
        spots(&pts_i),
        &[1.822512255945242, 3.294086516281595, 3.221591131246868],
        PUBLISHED,
    );
    push(
        "1aII",
        "European call, BSM, challenging parameters (σ = 0.01)",
        "2015-II",
        set_ii,
        euro_ii.clone(),
        Quantity::Price,
        spots(&pts_ii),
        &[0.033913177006141, 0.512978189232598, 1.469203342553328],
        PUBLISHED,
    );
    push(
        "1bII",
        "American put, BSM, challenging parameters (σ = 0.01)",
        "2015-II",
        set_ii,
        amer_ii,
        Quantity::Price,
        spots(&pts_ii),
        &[3.000000000000682, 2.000000000010786, 1.000000000010715],
        PUBLISHED,
    );
    push(
        "1cII",
        "Up-and-out barrier call (B = 125), BSM, challenging parameters",
        "2015-II",
        set_ii,
        barrier(0.25),
        Quantity::Price,
        spots(&pts_ii),
        &[0.033913177006134, 0.512978189232598, 1.469203342553328],
        PUBLISHED,
    );
    let greeks: [(&str, &str, Quantity, &[f64]); 3] = [
        (
            "1aI-Delta",
            "Delta of the 1aI European call",
            Quantity::Delta,
            &[0.334542751969886, 0.608341880846395, 0.818694517094515],
        ),
        (
            "1aI-Gamma",
            "Gamma of the 1aI European call",
            Quantity::Gamma,
            &[0.026971755100040, 0.025609261020380, 0.015975258690289],
        ),
        (
            "1aI-Vega",
            "Vega of the 1aI European call",
            Quantity::Vega,
            &[32.770682446548165, 38.413891530570481, 28.995094522875153],
        ),
    ];
    for (id, title, q, reference) in greeks {
        push(
            id,
            title,
            "2015-I",
            set_i,
            euro_i.clone(),
            q,
            spots(&pts_i),
            reference,
            PUBLISHED,
        );
    }
    let greeks_ii: [(&str, &str, Quantity, &[f64]); 3] = [
        (
            "1aII-Delta",
            "Delta of the 1aII European call",
            Quantity::Delta,
            &[0.138001659888508, 0.831964783803436, 0.998616182178259],
        ),
        (
            "1aII-Gamma",
            "Gamma of the 1aII European call",
            Quantity::Gamma,
            &[0.454451267361807, 0.512594211115861, 0.009158543351289],
        ),
        (
            "1aII-Vega",
            "Vega of the 1aII European call",
            Quantity::Vega,
            &[10.689829936518105, 12.307387008891816, 0.224407208464969],
        ),
    ];
    for (id, title, q, reference) in greeks_ii {
        push(
            id,
            title,
            "2015-II",
            set_ii,
            euro_ii.clone(),
            q,
            spots(&pts_ii),
            reference,
            PUBLISHED,
        );
    }
    let div_call = VanillaOption {
        dividends: dividend.clone(),
        ..call(0.5)
    };
    push(
        "2a",
        "European call, one discrete proportional dividend (3% at t = 0.4)",
        "2015-I",
        set_i,
        Instrument::Vanilla(div_call.clone()),
        Quantity::Price,
        spots(&pts_i),
        &[0.623811094545539, 3.422712192881193, 9.607009109943803],
        PUBLISHED,
    );
    push(
        "2b",
        "American call, one discrete proportional dividend (3% at t = 0.4)",
        "2015-I",
        set_i,
        Instrument::Vanilla(VanillaOption {
            exercise: crate::Exercise::American,
            ..div_call
        }),
        Quantity::Price,
        spots(&pts_i),
        &[0.837358764004664, 4.484034330080377, 11.877216586990031],
        PUBLISHED,
    );
    push(
        "3aI",
        "European call, local volatility σ(S,t) = 0.15 + 0.15(0.5 + 2t)(S/100 − 1.2)²/((S/100)² + 1.44)",
        "2015-I",
        Model::LocalVol(LocalVol {
            r: 0.03,
            surface: LocalVolSurface::Benchop3aI,
        }),
        euro_i.clone(),
        Quantity::Price,
        spots(&pts_i),
        &[2.95517, 7.64217, 14.78425],
        "published BENCHOP reference value, 6 significant digits: enough for 1e-4, not below ~2e-5",
    );
    // 3aII: the SVI surface depends on S₀, so the published case is three problems with one point each;
    // the catalogue keeps them together and kernels anchor the surface at each point's S₀.
    push(
        "3aII",
        "European call, Dupire local volatility from an SVI implied-variance surface",
        "2015-II",
        Model::LocalVol(LocalVol {
            r: 0.03,
            surface: LocalVolSurface::SviBenchop3aII,
        }),
        Instrument::Vanilla(call(0.5)),
        Quantity::Price,
        spots(&pts_i),
        &[2.1433, 6.8740, 14.2983],
        "published BENCHOP reference value, 5 significant digits: enough for 1e-4, not below ~2e-5; \
         the surface is anchored at each evaluation point's own S₀",
    );
    push(
        "4a",
        "European call, Heston stochastic volatility",
        "2015-I",
        Model::Heston(Heston {
            r: 0.03,
            v0: 0.0225,
            kappa: 2.0,
            theta: 0.0225,
            sigma_v: 0.25,
            rho: -0.5,
        }),
        euro_i.clone(),
        Quantity::Price,
        spots(&pts_i),
        &[2.302535842814927, 7.379832496149447, 14.974005277144057],
        PUBLISHED,
    );
    push(
        "5a",
        "European call, Merton jump diffusion",
        "2015-I",
        Model::Merton(Merton {
            r: 0.03,
            sigma: 0.15,
            lambda: 0.4,
            gamma: -0.5,
            delta: 0.4,
        }),
        euro_i,
        Quantity::Price,
        spots(&pts_i),
        &[7.542526012669795, 14.336250885310660, 22.359969565189871],
        PUBLISHED,
    );
    push(
        "6a",
        "European spread (exchange) call max(S₁ − S₂, 0), two-asset BSM",
        "2015-I",
        Model::TwoAsset(TwoAssetBlackScholes {
            r: 0.03,
            sigma1: 0.15,
            sigma2: 0.15,
            rho: 0.5,
        }),
        Instrument::Spread(SpreadOption {
            strike: 0.0,
            maturity: 1.0,
        }),
        Quantity::Price,
        Points::SpotPairs(vec![
            [100.0, 90.0],
            [100.0, 100.0],
            [100.0, 110.0],
            [90.0, 100.0],
            [110.0, 100.0],
        ]),
        &[
            12.021727425647768,
            5.978528810578943,
            2.500244806693065,
            2.021727425647768,
            12.500244806693061,
        ],
        PUBLISHED,
    );
    push(
        "SLV-Heston",
        "European call, Heston with the Feller condition violated (BENCHOP–SLV)",
        "SLV-2019",
        Model::Heston(Heston {
            r: 0.0,
            v0: 0.114,
            kappa: 2.58,
            theta: 0.043,
            sigma_v: 1.0,
            rho: -0.36,
        }),
        Instrument::Vanilla(call(1.0)),
        Quantity::Price,
        spots(&[75.0, 100.0, 125.0]),
        &[0.908502728459621, 9.046650119220969, 28.514786399298796],
        PUBLISHED,
    );
    let sabr_strikes = |s0: f64, t: f64| -> Vec<f64> {
        [-1.0, 0.0, 1.0]
            .iter()
            .map(|d: &f64| s0 * (0.1 * t.sqrt() * d).exp())
            .collect()
    };
    push(
        "SLV-SABR-I",
        "European call, SABR set I (BENCHOP–SLV)",
        "SLV-2019",
        Model::Sabr(Sabr {
            r: 0.0,
            alpha: 0.5,
            beta: 0.5,
            rho: 0.0,
            nu: 0.4,
        }),
        Instrument::Vanilla(call(2.0)),
        Quantity::Price,
        Points::Strikes {
            spot: 0.5,
            strikes: sabr_strikes(0.5, 2.0),
        },
        &[0.221383196830866, 0.193836689413803, 0.166240814653231],
        PUBLISHED,
    );
    push(
        "SLV-SABR-II",
        "European call, SABR set II (BENCHOP–SLV)",
        "SLV-2019",
        Model::Sabr(Sabr {
            r: 0.0,
            alpha: 0.4,
            beta: 0.5,
            rho: -0.6,
            nu: 0.8,
        }),
        Instrument::Vanilla(call(10.0)),
        Quantity::Price,
        Points::Strikes {
            spot: 0.07,
            strikes: sabr_strikes(0.07, 10.0),
        },
        &[0.052450313614407, 0.046585753491306, 0.039291470612989],
        PUBLISHED,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_one_reference_per_point_and_a_unique_id() {
        let all = cases();
        assert_eq!(all.len(), 22, "19 cases of the 2015 set plus 3 of BENCHOP–SLV");
        for c in all {
            assert_eq!(c.reference.len(), c.problem.points().len(), "case {}", c.id);
            assert!(
                c.reference.iter().all(|v| v.is_finite() && *v > 0.0),
                "case {}",
                c.id
            );
            let same = all.iter().filter(|d| d.id.eq_ignore_ascii_case(c.id)).count();
            assert_eq!(same, 1, "id {} is not unique ignoring case", c.id);
        }
    }
}
