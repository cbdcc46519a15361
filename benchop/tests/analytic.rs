//! Properties of the analytic and Fourier engines (closed form, COS, FFT, FGL): parity, limits, Greeks against
//! finite differences, monotonicity, and agreement between them on parameters off the catalogue; Bermudan COS
//! for American and barrier options, 2-D COS for spreads.

use benchop::method::{closed_form, cos, fft, fgl};
use benchop::model::{BlackScholes, Heston, Merton, Model, TwoAssetBlackScholes};
use benchop::{
    Barrier, Cancel, Dividend, Error, Instrument, MethodId, OptionKind, Points, Problem, Quantity,
    SpreadOption, VanillaOption, catalogue, relerr, tune,
};

const SPOTS: [f64; 5] = [70.0, 90.0, 100.0, 110.0, 140.0];

fn bs(r: f64, sigma: f64) -> Model {
    Model::BlackScholes(BlackScholes { r, sigma })
}

fn heston_4a() -> Heston {
    Heston {
        r: 0.03,
        v0: 0.0225,
        kappa: 2.0,
        theta: 0.0225,
        sigma_v: 0.25,
        rho: -0.5,
    }
}

fn heston_feller_violated() -> Heston {
    Heston {
        r: 0.01,
        v0: 0.09,
        kappa: 0.8,
        theta: 0.05,
        sigma_v: 0.9,
        rho: -0.7,
    }
}

fn merton_5a() -> Merton {
    Merton {
        r: 0.03,
        sigma: 0.15,
        lambda: 0.4,
        gamma: -0.5,
        delta: 0.4,
    }
}

fn european(kind: OptionKind, strike: f64, maturity: f64, dividends: &[Dividend]) -> Instrument {
    Instrument::Vanilla(VanillaOption {
        dividends: dividends.to_vec(),
        ..VanillaOption::european(kind, strike, maturity)
    })
}

fn problem(model: Model, instrument: Instrument, quantity: Quantity, spots: &[f64]) -> Problem {
    Problem::new(model, instrument, quantity, Points::Spots(spots.to_vec())).unwrap()
}

/// The most accurate (last) level of a method's ladder.
fn top(method: MethodId, p: &Problem) -> Vec<f64> {
    let level = match method {
        MethodId::Cos => cos::N_LADDER.len() - 1,
        MethodId::Fft => (fft::LOG2_N_RANGE.1 - fft::LOG2_N_RANGE.0) as usize,
        _ => 0,
    };
    method.price(p, level, &Cancel::new()).unwrap().unwrap().values
}

fn closed(p: &Problem) -> Vec<f64> {
    closed_form::price(p, &Cancel::new()).unwrap().values
}

/// |a − b| ≤ rel·|b| + abs for every pair, with every input in the failure message.
fn assert_close(what: &str, a: &[f64], b: &[f64], rel: f64, abs: f64) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= rel * y.abs() + abs,
            "{what}: point {i}: {x} vs {y} (diff {:e})",
            (x - y).abs()
        );
    }
}

/// The one-asset models the Fourier engines cover, with a maturity and a dividend schedule each.
fn model_zoo() -> Vec<(&'static str, Model, f64, Vec<Dividend>)> {
    let div = vec![
        Dividend {
            time: 0.2,
            fraction: 0.02,
        },
        Dividend {
            time: 0.6,
            fraction: 0.04,
        },
    ];
    vec![
        ("bsm", bs(0.04, 0.25), 0.8, vec![]),
        ("bsm+dividends", bs(0.02, 0.3), 0.9, div.clone()),
        ("heston-4a", Model::Heston(heston_4a()), 1.0, vec![]),
        (
            "heston-feller-violated",
            Model::Heston(heston_feller_violated()),
            2.0,
            vec![],
        ),
        ("heston+dividends", Model::Heston(heston_4a()), 0.9, div),
        ("merton-5a", Model::Merton(merton_5a()), 1.0, vec![]),
        (
            "merton-frequent-small",
            Model::Merton(Merton {
                r: 0.05,
                sigma: 0.1,
                lambda: 5.0,
                gamma: 0.02,
                delta: 0.05,
            }),
            0.5,
            vec![],
        ),
    ]
}

#[test]
fn closed_form_matches_the_published_references_to_near_machine_precision() {
    for case in catalogue::cases()
        .iter()
        .filter(|c| closed_form::applies(&c.problem) && closed_form::is_exact(&c.problem))
    {
        let values = closed(&case.problem);
        let err = relerr(&values, &case.reference);
        assert!(
            err < 1e-12,
            "{}: relerr {err:e}\n{values:?}\n{:?}",
            case.id,
            case.reference
        );
    }
}

#[test]
fn put_call_parity_holds_for_every_model_and_method() {
    for (name, model, t, divs) in model_zoo() {
        let k = 100.0;
        let call = problem(
            model,
            european(OptionKind::Call, k, t, &divs),
            Quantity::Price,
            &SPOTS,
        );
        let put = problem(
            model,
            european(OptionKind::Put, k, t, &divs),
            Quantity::Price,
            &SPOTS,
        );
        let factor: f64 = divs.iter().map(|d| 1.0 - d.fraction).product();
        let forward_gap: Vec<f64> = SPOTS
            .iter()
            .map(|s| s * factor - k * (-model.rate() * t).exp())
            .collect();
        for method in [MethodId::ClosedForm, MethodId::Cos, MethodId::Fft] {
            assert!(
                method.applies_to(&call) && method.applies_to(&put),
                "{name} {method}"
            );
            let (c, p) = (top(method, &call), top(method, &put));
            let gap: Vec<f64> = c.iter().zip(&p).map(|(c, p)| c - p).collect();
            assert_close(
                &format!("{name} {method} C − P"),
                &gap,
                &forward_gap,
                0.0,
                1e-9 * 140.0,
            );
        }
    }
}

#[test]
fn greeks_match_finite_differences_of_prices() {
    let divs = [Dividend {
        time: 0.3,
        fraction: 0.05,
    }];
    for (sigma, t, d) in [(0.2, 1.0, &[][..]), (0.35, 0.4, &divs[..]), (0.05, 0.25, &[][..])] {
        for kind in [OptionKind::Call, OptionKind::Put] {
            let (r, k) = (0.03, 100.0);
            let option = match european(kind, k, t, d) {
                Instrument::Vanilla(o) => o,
                Instrument::Spread(_) => unreachable!(),
            };
            let m = BlackScholes { r, sigma };
            let price = |s: f64, m: &BlackScholes| {
                closed_form::black_scholes(m, &option, s, Quantity::Price).unwrap()
            };
            for s in [85.0, 100.0, 115.0] {
                let (hd, hs, hv) = (1e-5 * s, 1e-4 * s, 1e-5);
                let fd_delta = (price(s + hd, &m) - price(s - hd, &m)) / (2.0 * hd);
                let fd_gamma = (price(s + hs, &m) - 2.0 * price(s, &m) + price(s - hs, &m)) / (hs * hs);
                let up = BlackScholes {
                    sigma: sigma + hv,
                    ..m
                };
                let down = BlackScholes {
                    sigma: sigma - hv,
                    ..m
                };
                let fd_vega = (price(s, &up) - price(s, &down)) / (2.0 * hv);
                let greek = |q| closed_form::black_scholes(&m, &option, s, q).unwrap();
                let what = format!("{kind:?} σ={sigma} T={t} S={s}");
                assert_close(
                    &format!("{what} delta"),
                    &[greek(Quantity::Delta)],
                    &[fd_delta],
                    1e-7,
                    1e-9,
                );
                assert_close(
                    &format!("{what} gamma"),
                    &[greek(Quantity::Gamma)],
                    &[fd_gamma],
                    1e-4,
                    1e-7,
                );
                assert_close(
                    &format!("{what} vega"),
                    &[greek(Quantity::Vega)],
                    &[fd_vega],
                    1e-7,
                    1e-8,
                );
            }
            // COS differentiates its series analytically: it must agree with the closed form.
            for q in [Quantity::Delta, Quantity::Gamma, Quantity::Vega] {
                let p = problem(bs(r, sigma), european(kind, k, t, d), q, &[85.0, 100.0, 115.0]);
                let c = cos::price(
                    &p,
                    &cos::CosConfig {
                        n_terms: 512,
                        truncation_l: 10.0,
                    },
                    &Cancel::new(),
                )
                .unwrap();
                assert_close(
                    &format!("cos {kind:?} {q:?} σ={sigma}"),
                    &c.values,
                    &closed(&p),
                    1e-9,
                    1e-11,
                );
            }
        }
    }
}

#[test]
fn heston_with_vanishing_vol_of_variance_is_black_scholes() {
    // The price moves by O(ρσᵥ) and O(σᵥ²): σᵥ = 1e-9 also checks that the formulation stays stable.
    for rho in [0.0, -0.6] {
        let h = Heston {
            r: 0.03,
            v0: 0.04,
            kappa: 1.5,
            theta: 0.04,
            sigma_v: 1e-9,
            rho,
        };
        for kind in [OptionKind::Call, OptionKind::Put] {
            let inst = european(kind, 100.0, 1.5, &[]);
            let ph = problem(Model::Heston(h), inst.clone(), Quantity::Price, &SPOTS);
            let pb = problem(bs(0.03, 0.2), inst, Quantity::Price, &SPOTS);
            let reference = closed(&pb);
            let what = format!("ρ={rho} {kind:?}");
            assert_close(
                &format!("{what} heston closed form"),
                &closed(&ph),
                &reference,
                1e-8,
                1e-10,
            );
            assert_close(
                &format!("{what} heston cos"),
                &top(MethodId::Cos, &ph),
                &reference,
                1e-8,
                1e-10,
            );
            assert_close(
                &format!("{what} heston fft"),
                &top(MethodId::Fft, &ph),
                &reference,
                1e-8,
                1e-10,
            );
        }
    }
}

#[test]
fn merton_without_jumps_is_black_scholes() {
    let no_jumps = [
        Merton {
            r: 0.03,
            sigma: 0.2,
            lambda: 0.0,
            gamma: -0.3,
            delta: 0.2,
        },
        // Jumps of size zero: k̄ = 0 and every Black term is the same.
        Merton {
            r: 0.03,
            sigma: 0.2,
            lambda: 3.0,
            gamma: 0.0,
            delta: 0.0,
        },
    ];
    for m in no_jumps {
        for kind in [OptionKind::Call, OptionKind::Put] {
            let inst = european(kind, 100.0, 0.7, &[]);
            let pm = problem(Model::Merton(m), inst.clone(), Quantity::Price, &SPOTS);
            let reference = closed(&problem(bs(0.03, 0.2), inst, Quantity::Price, &SPOTS));
            assert_close("merton closed form", &closed(&pm), &reference, 1e-13, 1e-13);
            assert_close("merton cos", &top(MethodId::Cos, &pm), &reference, 1e-9, 1e-11);
            assert_close("merton fft", &top(MethodId::Fft, &pm), &reference, 1e-9, 1e-11);
        }
    }
}

#[test]
fn prices_are_monotone_and_convex_in_strike() {
    let strikes: Vec<f64> = (0..=16).map(|i| 60.0 + 5.0 * i as f64).collect();
    for (name, model, t, divs) in model_zoo() {
        for kind in [OptionKind::Call, OptionKind::Put] {
            let v: Vec<f64> = strikes
                .iter()
                .map(|&k| {
                    closed(&problem(
                        model,
                        european(kind, k, t, &divs),
                        Quantity::Price,
                        &[100.0],
                    ))[0]
                })
                .collect();
            for i in 1..v.len() {
                let step = v[i] - v[i - 1];
                let ok = match kind {
                    OptionKind::Call => step <= 1e-12,
                    OptionKind::Put => step >= -1e-12,
                };
                assert!(ok, "{name} {kind:?}: not monotone at K = {}: {v:?}", strikes[i]);
                if i + 1 < v.len() {
                    assert!(
                        v[i + 1] - 2.0 * v[i] + v[i - 1] >= -1e-10,
                        "{name} {kind:?}: not convex at {}",
                        strikes[i]
                    );
                }
            }
        }
    }
}

#[test]
fn fourier_methods_agree_with_the_closed_forms_off_the_catalogue() {
    for (name, model, t, divs) in model_zoo() {
        for (kind, k) in [(OptionKind::Call, 95.0), (OptionKind::Put, 105.0)] {
            let p = problem(
                model,
                european(kind, k, t, &divs),
                Quantity::Price,
                &[80.0, 100.0, 125.0],
            );
            let reference = closed(&p);
            for method in [MethodId::Cos, MethodId::Fft] {
                let tuned = tune::tune(method, &p, &reference, 1e-7, &Cancel::new()).unwrap();
                assert!(
                    tuned.reached,
                    "{name} {kind:?} {method}: relerr {:e} at {}",
                    tuned.relerr, tuned.estimate.setting
                );
            }
        }
    }
}

#[test]
fn heston_engines_agree_across_a_sweep_of_hard_parameters() {
    // Short and long maturities, Feller violated, strong correlation of either sign.
    for &t in &[0.05, 1.0, 5.0] {
        for &sigma_v in &[0.1, 1.0] {
            for &rho in &[-0.9, 0.0, 0.6] {
                for &kappa in &[0.2, 3.0] {
                    let h = Heston {
                        r: 0.02,
                        v0: 0.04,
                        kappa,
                        theta: 0.09,
                        sigma_v,
                        rho,
                    };
                    let p = problem(
                        Model::Heston(h),
                        european(OptionKind::Call, 100.0, t, &[]),
                        Quantity::Price,
                        &[80.0, 100.0, 125.0],
                    );
                    let reference = closed(&p);
                    let what = format!("T={t} σv={sigma_v} ρ={rho} κ={kappa}");
                    if fft::applies(&p) {
                        assert_close(
                            &format!("{what} fft"),
                            &top(MethodId::Fft, &p),
                            &reference,
                            1e-8,
                            1e-9,
                        );
                    }
                    assert_close(
                        &format!("{what} cos"),
                        &top(MethodId::Cos, &p),
                        &reference,
                        1e-6,
                        1e-8,
                    );
                }
            }
        }
    }
}

/// Knock-out price by the method of images: the density of ln(S_T/S) killed at b = ln(H/S) is
/// n(x; νT, σ²T) − e^{2νb/σ²} n(x − 2b; νT, σ²T) on the surviving side (Harrison 1985), integrated against
/// the payoff with composite Simpson on each side of the kink.
fn barrier_by_images(r: f64, sigma: f64, option: &VanillaOption, spot: f64) -> f64 {
    let t = option.maturity;
    let barrier = option.barrier.unwrap();
    let (nu, sd) = (r - 0.5 * sigma * sigma, sigma * t.sqrt());
    let b = (barrier.level() / spot).ln();
    let reflect = (2.0 * nu * b / (sigma * sigma)).exp();
    let n = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt() / sd;
    let f = |x: f64| {
        let density = n((x - nu * t) / sd) - reflect * n((x - 2.0 * b - nu * t) / sd);
        option.kind.payoff(spot * x.exp(), option.strike) * density
    };
    let (lo, hi) = match barrier {
        Barrier::UpAndOut(_) => (nu * t - 12.0 * sd, b),
        Barrier::DownAndOut(_) => (b, nu * t + 12.0 * sd),
    };
    let kink = (option.strike / spot).ln().clamp(lo, hi);
    let simpson = |a: f64, c: f64| {
        let m = 4000;
        let h = (c - a) / m as f64;
        let mut s = f(a) + f(c);
        for i in 1..m {
            s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    };
    (-r * t).exp() * (simpson(lo, kink) + simpson(kink, hi))
}

#[test]
fn barrier_formulas_match_the_method_of_images_in_every_branch() {
    let (r, sigma, t) = (0.05, 0.25, 0.75);
    let m = BlackScholes { r, sigma };
    let cases = [
        (Barrier::UpAndOut(120.0), 110.0),
        (Barrier::UpAndOut(120.0), 130.0),
        (Barrier::DownAndOut(85.0), 90.0),
        (Barrier::DownAndOut(85.0), 80.0),
    ];
    for (barrier, k) in cases {
        for kind in [OptionKind::Call, OptionKind::Put] {
            let option = VanillaOption {
                barrier: Some(barrier),
                ..VanillaOption::european(kind, k, t)
            };
            for s in [95.0, 100.0, 105.0] {
                let formula = closed_form::barrier(&m, &option, s).unwrap();
                let images = barrier_by_images(r, sigma, &option, s);
                assert_close(
                    &format!("{barrier:?} {kind:?} K={k} S={s}"),
                    &[formula],
                    &[images],
                    1e-9,
                    1e-11,
                );
            }
        }
    }
}

#[test]
fn knock_outs_with_a_remote_barrier_are_vanilla_and_knocked_out_spots_are_worthless() {
    let m = BlackScholes { r: 0.03, sigma: 0.2 };
    for kind in [OptionKind::Call, OptionKind::Put] {
        let vanilla = VanillaOption::european(kind, 100.0, 1.0);
        let plain = closed_form::black_scholes(&m, &vanilla, 100.0, Quantity::Price).unwrap();
        for barrier in [Barrier::UpAndOut(1e4), Barrier::DownAndOut(1e-2)] {
            let o = VanillaOption {
                barrier: Some(barrier),
                ..vanilla.clone()
            };
            assert_close(
                &format!("{kind:?} {barrier:?}"),
                &[closed_form::barrier(&m, &o, 100.0).unwrap()],
                &[plain],
                1e-12,
                1e-12,
            );
        }
        let up = VanillaOption {
            barrier: Some(Barrier::UpAndOut(120.0)),
            ..vanilla.clone()
        };
        let down = VanillaOption {
            barrier: Some(Barrier::DownAndOut(80.0)),
            ..vanilla.clone()
        };
        assert_eq!(closed_form::barrier(&m, &up, 121.0).unwrap(), 0.0);
        assert_eq!(closed_form::barrier(&m, &down, 80.0).unwrap(), 0.0);
    }
}

#[test]
fn margrabe_is_homogeneous_and_satisfies_exchange_parity() {
    let m = TwoAssetBlackScholes {
        r: 0.05,
        sigma1: 0.3,
        sigma2: 0.2,
        rho: 0.4,
    };
    let swapped = TwoAssetBlackScholes {
        sigma1: m.sigma2,
        sigma2: m.sigma1,
        ..m
    };
    let o = SpreadOption {
        strike: 0.0,
        maturity: 2.0,
    };
    for [s1, s2] in [[100.0, 90.0], [80.0, 120.0], [100.0, 100.0]] {
        let v = closed_form::margrabe(&m, &o, [s1, s2]).unwrap();
        let scaled = closed_form::margrabe(&m, &o, [3.0 * s1, 3.0 * s2]).unwrap();
        let reverse = closed_form::margrabe(&swapped, &o, [s2, s1]).unwrap();
        assert_close("homogeneous", &[scaled], &[3.0 * v], 1e-13, 0.0);
        assert_close("exchange parity", &[v - reverse], &[s1 - s2], 0.0, 1e-12);
    }
    assert!(
        closed_form::margrabe(
            &m,
            &SpreadOption {
                strike: 5.0,
                maturity: 1.0
            },
            [100.0, 90.0]
        )
        .is_err()
    );
}

#[test]
fn ladders_reach_the_benchmark_tolerance_at_the_expected_settings() {
    let cheapest = |method: MethodId, id: &str| {
        let case = catalogue::case(id).unwrap();
        let t = tune::tune(method, &case.problem, &case.reference, 1e-4, &Cancel::new()).unwrap();
        assert!(t.reached, "{method} {id}: relerr {:e}", t.relerr);
        t.estimate.setting
    };
    // Fang & Oosterlee report N ≈ 19 (1aI), 28 (4a), 70 (5a) for 1e-4; our ladder steps are coarser.
    let n_of = |s: String| {
        s.split(['=', ','])
            .nth(1)
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    assert!(n_of(cheapest(MethodId::Cos, "1aI")) <= 32);
    assert!(n_of(cheapest(MethodId::Cos, "4a")) <= 64);
    assert!(n_of(cheapest(MethodId::Cos, "5a")) <= 128);
    assert!(n_of(cheapest(MethodId::Cos, "1aII")) <= 64);
    assert!(n_of(cheapest(MethodId::Fft, "1aI")) <= 512);
    assert!(n_of(cheapest(MethodId::Fft, "4a")) <= 1024);
    assert!(n_of(cheapest(MethodId::Fft, "1aII")) <= 16384);
}

#[test]
fn invalid_settings_and_inapplicable_problems_are_errors_not_panics() {
    let case = catalogue::case("1aI").unwrap();
    let cancel = Cancel::new();
    for config in [
        cos::CosConfig {
            n_terms: 0,
            truncation_l: 10.0,
        },
        cos::CosConfig {
            n_terms: 64,
            truncation_l: -1.0,
        },
    ] {
        assert!(matches!(
            cos::price(&case.problem, &config, &cancel),
            Err(Error::InvalidParameter { .. })
        ));
    }
    for config in [
        fft::FftConfig {
            n: 255,
            eta: 0.25,
            alpha: 1.5,
        },
        fft::FftConfig {
            n: 256,
            eta: 0.0,
            alpha: 1.5,
        },
        fft::FftConfig {
            n: 256,
            eta: 0.25,
            alpha: f64::NAN,
        },
    ] {
        assert!(matches!(
            fft::price(&case.problem, &config, &cancel),
            Err(Error::InvalidParameter { .. })
        ));
    }
    let american = &catalogue::case("1bI").unwrap().problem;
    assert!(matches!(
        closed_form::price(american, &cancel),
        Err(Error::NotApplicable { .. })
    ));
    // COS prices American options (Bermudan COS), but not under local volatility.
    assert!(cos::price_level(american, 0, &cancel).is_ok_and(|e| e.is_some()));
    let local_vol = &catalogue::case("3aI").unwrap().problem;
    assert!(matches!(
        cos::price_level(local_vol, 0, &cancel),
        Err(Error::NotApplicable { .. })
    ));
    let delta = &catalogue::case("1aI-Delta").unwrap().problem;
    assert!(matches!(
        fft::price_level(delta, 0, &cancel),
        Err(Error::NotApplicable { .. })
    ));
    assert!(
        closed_form::price_level(&case.problem, 1, &cancel)
            .unwrap()
            .is_none()
    );
    assert!(
        cos::price_level(&case.problem, cos::N_LADDER.len(), &cancel)
            .unwrap()
            .is_none()
    );
    // A Heston moment explosion before the maturity rules the FFT's damping out instead of returning garbage.
    let exploding = Heston {
        r: 0.0,
        v0: 0.04,
        kappa: 0.1,
        theta: 0.04,
        sigma_v: 2.0,
        rho: 0.9,
    };
    let p = problem(
        Model::Heston(exploding),
        european(OptionKind::Call, 100.0, 10.0, &[]),
        Quantity::Price,
        &[100.0],
    );
    assert!(!fft::applies(&p));
    assert!(closed_form::price(&p, &cancel).is_ok_and(|e| e.values[0].is_finite()));
}

#[test]
fn cancelled_flag_stops_the_kernels() {
    let cancel = Cancel::new();
    cancel.cancel();
    let case = catalogue::case("4a").unwrap();
    assert!(matches!(
        closed_form::price(&case.problem, &cancel),
        Err(Error::Cancelled(_))
    ));
    assert!(matches!(
        cos::price_level(&case.problem, 3, &cancel),
        Err(Error::Cancelled(_))
    ));
    assert!(matches!(
        fft::price_level(&case.problem, 3, &cancel),
        Err(Error::Cancelled(_))
    ));
}

#[test]
fn extreme_parameters_give_finite_values_or_errors_never_panics() {
    let cancel = Cancel::new();
    let models = [
        Model::Heston(Heston {
            r: 0.05,
            v0: 1.5,
            kappa: 0.01,
            theta: 2.0,
            sigma_v: 5.0,
            rho: 0.95,
        }),
        Model::Heston(Heston {
            r: -0.01,
            v0: 1e-6,
            kappa: 50.0,
            theta: 1e-6,
            sigma_v: 1e-3,
            rho: -1.0,
        }),
        Model::Merton(Merton {
            r: 0.1,
            sigma: 1e-3,
            lambda: 200.0,
            gamma: 0.3,
            delta: 1e-3,
        }),
        bs(0.5, 3.0),
        bs(-0.02, 1e-4),
    ];
    for model in models {
        for t in [1e-3, 30.0] {
            let p = problem(
                model,
                european(OptionKind::Put, 100.0, t, &[]),
                Quantity::Price,
                &[1.0, 100.0, 1e4],
            );
            for method in [MethodId::ClosedForm, MethodId::Cos, MethodId::Fft] {
                if !method.applies_to(&p) {
                    continue;
                }
                for level in [0, 3, 100] {
                    match method.price(&p, level, &cancel) {
                        Ok(Some(e)) => assert!(e.values.iter().all(|v| v.is_finite()), "{method} {model:?}"),
                        Ok(None) | Err(Error::Numerical(_) | Error::NotApplicable { .. }) => {}
                        Err(e) => panic!("{method} {model:?} T={t}: {e}"),
                    }
                }
            }
        }
    }
}

/// The value at the last level of `method`'s ladder (the most accurate one).
fn last_level(method: MethodId, p: &Problem) -> (Vec<f64>, String) {
    let cancel = Cancel::new();
    let mut last = None;
    for level in 0.. {
        match method.price(p, level, &cancel).unwrap() {
            Some(e) => last = Some(e),
            None => break,
        }
    }
    let e = last.unwrap();
    (e.values, e.setting)
}

#[test]
fn bermudan_cos_american_puts_lie_between_european_and_strike_and_match_fd_and_tree() {
    // Off the catalogue: r = 0.05, σ = 0.3, K = 95, T = 0.75.
    let model = bs(0.05, 0.3);
    let spots = [70.0, 90.0, 95.0, 100.0, 130.0];
    let american = problem(
        model,
        Instrument::Vanilla(VanillaOption::american(OptionKind::Put, 95.0, 0.75)),
        Quantity::Price,
        &spots,
    );
    let european = closed(&problem(
        model,
        european(OptionKind::Put, 95.0, 0.75, &[]),
        Quantity::Price,
        &spots,
    ));
    let mut previous: Option<Vec<f64>> = None;
    for level in 0.. {
        let Some(e) = MethodId::Cos.price(&american, level, &Cancel::new()).unwrap() else {
            break;
        };
        for ((v, eu), s) in e.values.iter().zip(&european).zip(&spots) {
            assert!(
                *v >= eu - 1e-6,
                "level {level} S={s}: American {v} < European {eu}"
            );
            assert!(*v <= 95.0, "level {level} S={s}: American {v} > K");
            assert!(
                *v >= (95.0 - s).max(0.0) - 1e-9,
                "level {level} S={s}: below intrinsic"
            );
        }
        previous = Some(e.values);
    }
    let cos_top = previous.unwrap();
    let (tree, tree_setting) = last_level(MethodId::Tree, &american);
    assert_close(
        &format!("cos vs tree ({tree_setting})"),
        &cos_top,
        &tree,
        2e-5,
        1e-5,
    );
    let fd = MethodId::Fd
        .price(&american, 11, &Cancel::new())
        .unwrap()
        .unwrap();
    assert_close(
        &format!("cos vs fd ({})", fd.setting),
        &cos_top,
        &fd.values,
        2e-4,
        1e-4,
    );
}

#[test]
fn bermudan_cos_american_call_without_dividends_is_european_and_with_dividends_matches_the_tree() {
    let model = bs(0.04, 0.25);
    let spots = [80.0, 100.0, 120.0];
    let plain = problem(
        model,
        Instrument::Vanilla(VanillaOption::american(OptionKind::Call, 100.0, 1.0)),
        Quantity::Price,
        &spots,
    );
    let european_values = closed(&problem(
        model,
        european(OptionKind::Call, 100.0, 1.0, &[]),
        Quantity::Price,
        &spots,
    ));
    assert_close(
        "American call = European",
        &last_level(MethodId::Cos, &plain).0,
        &european_values,
        1e-6,
        1e-6,
    );
    let divs = vec![
        Dividend {
            time: 0.3,
            fraction: 0.02,
        },
        Dividend {
            time: 0.7,
            fraction: 0.04,
        },
    ];
    let with_dividends = problem(
        model,
        Instrument::Vanilla(VanillaOption {
            exercise: benchop::Exercise::American,
            ..VanillaOption {
                dividends: divs.clone(),
                ..VanillaOption::european(OptionKind::Call, 100.0, 1.0)
            }
        }),
        Quantity::Price,
        &spots,
    );
    let cos_values = last_level(MethodId::Cos, &with_dividends).0;
    let (tree, setting) = last_level(MethodId::Tree, &with_dividends);
    assert_close(
        &format!("dividend call cos vs tree ({setting})"),
        &cos_values,
        &tree,
        5e-5,
        1e-5,
    );
    let european_div = closed(&problem(
        model,
        european(OptionKind::Call, 100.0, 1.0, &divs),
        Quantity::Price,
        &spots,
    ));
    for (a, e) in cos_values.iter().zip(&european_div) {
        assert!(a >= e, "American {a} below European {e}");
    }
    // An American put with dividends is outside the Bermudan COS coverage: honest `applies`.
    let put_div = problem(
        model,
        Instrument::Vanilla(VanillaOption {
            exercise: benchop::Exercise::American,
            kind: OptionKind::Put,
            dividends: divs,
            ..VanillaOption::european(OptionKind::Put, 100.0, 1.0)
        }),
        Quantity::Price,
        &spots,
    );
    assert!(!cos::applies(&put_div));
}

#[test]
fn bermudan_cos_barriers_stay_below_vanilla_and_converge_to_the_closed_form() {
    let model = bs(0.05, 0.25);
    let spots = [85.0, 100.0, 115.0];
    for (kind, barrier) in [
        (OptionKind::Call, Barrier::UpAndOut(130.0)),
        (OptionKind::Call, Barrier::UpAndOut(120.0)),
    ] {
        let p = problem(
            model,
            Instrument::Vanilla(VanillaOption {
                barrier: Some(barrier),
                ..VanillaOption::european(kind, 100.0, 0.75)
            }),
            Quantity::Price,
            &spots,
        );
        let vanilla = closed(&problem(
            model,
            european(kind, 100.0, 0.75, &[]),
            Quantity::Price,
            &spots,
        ));
        let reference = closed(&p);
        let mut errors = Vec::new();
        for level in 0.. {
            let Some(e) = MethodId::Cos.price(&p, level, &Cancel::new()).unwrap() else {
                break;
            };
            for (v, van) in e.values.iter().zip(&vanilla) {
                assert!(*v <= van + 1e-9, "{kind:?} {barrier:?}: {v} above vanilla {van}");
            }
            errors.push(relerr(&e.values, &reference));
        }
        let last = *errors.last().unwrap();
        assert!(last < 1e-4, "{kind:?} {barrier:?}: errors {errors:?}");
        assert!(
            last < errors[0],
            "{kind:?} {barrier:?}: no convergence {errors:?}"
        );
    }
    // Down-and-out barriers are not claimed by COS (the closed form still prices them).
    let down = problem(
        model,
        Instrument::Vanilla(VanillaOption {
            barrier: Some(Barrier::DownAndOut(80.0)),
            ..VanillaOption::european(OptionKind::Put, 100.0, 0.75)
        }),
        Quantity::Price,
        &spots,
    );
    assert!(!cos::applies(&down) && closed_form::applies(&down));
}

#[test]
fn two_dimensional_cos_matches_margrabe_and_monte_carlo() {
    let model = TwoAssetBlackScholes {
        r: 0.04,
        sigma1: 0.3,
        sigma2: 0.2,
        rho: -0.3,
    };
    let pairs = vec![[100.0, 90.0], [95.0, 105.0], [120.0, 100.0]];
    let exchange = Problem::new(
        Model::TwoAsset(model),
        Instrument::Spread(SpreadOption {
            strike: 0.0,
            maturity: 1.5,
        }),
        Quantity::Price,
        Points::SpotPairs(pairs.clone()),
    )
    .unwrap();
    let t = tune::tune(MethodId::Cos, &exchange, &closed(&exchange), 1e-8, &Cancel::new()).unwrap();
    assert!(
        t.reached,
        "2-D COS vs Margrabe: relerr {:e} at {}",
        t.relerr, t.estimate.setting
    );
    // K > 0 has no closed form: Monte Carlo within four standard errors.
    let spread = Problem::new(
        Model::TwoAsset(model),
        Instrument::Spread(SpreadOption {
            strike: 8.0,
            maturity: 1.5,
        }),
        Quantity::Price,
        Points::SpotPairs(pairs),
    )
    .unwrap();
    let (cos_values, _) = last_level(MethodId::Cos, &spread);
    let mc = MethodId::Mc.price(&spread, 3, &Cancel::new()).unwrap().unwrap();
    let se = mc.std_errors.unwrap();
    for ((c, m), s) in cos_values.iter().zip(&mc.values).zip(&se) {
        assert!(
            (c - m).abs() <= 4.0 * s,
            "2-D COS {c} vs MC {m} ± {s} ({})",
            mc.setting
        );
    }
    // Converged: the two finest levels agree.
    let n = cos::SPREAD_N_LADDER.len();
    let a = MethodId::Cos
        .price(&spread, n - 2, &Cancel::new())
        .unwrap()
        .unwrap();
    assert_close("2-D COS levels", &a.values, &cos_values, 1e-9, 1e-10);
}

#[test]
fn fgl_matches_the_closed_forms_off_the_catalogue() {
    for (name, model, t, divs) in model_zoo() {
        for (kind, k) in [(OptionKind::Call, 95.0), (OptionKind::Put, 105.0)] {
            let p = problem(
                model,
                european(kind, k, t, &divs),
                Quantity::Price,
                &[60.0, 80.0, 100.0, 125.0, 160.0],
            );
            assert!(fgl::applies(&p), "{name}");
            let reference = closed(&p);
            let tuned = tune::tune(MethodId::Fgl, &p, &reference, 1e-4, &Cancel::new()).unwrap();
            assert!(
                tuned.reached,
                "{name} {kind:?} fgl: relerr {:e} at {}",
                tuned.relerr, tuned.estimate.setting
            );
        }
    }
    // Tiny total volatility: the saddle-point contour adapts.
    let p = problem(
        bs(0.02, 0.005),
        european(OptionKind::Call, 100.0, 0.1, &[]),
        Quantity::Price,
        &[99.0, 99.9, 100.0, 100.5],
    );
    let t = tune::tune(MethodId::Fgl, &p, &closed(&p), 1e-6, &Cancel::new()).unwrap();
    assert!(t.reached, "tiny σ: relerr {:e}", t.relerr);
    assert!(matches!(
        fgl::price(&p, 0, &Cancel::new()),
        Err(Error::InvalidParameter { .. })
    ));
}
