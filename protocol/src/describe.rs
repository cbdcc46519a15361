//! Turning catalogue cases and methods into their API views.

use serde_json::{Map, Value, json};

use benchop::model::{LocalVolSurface, Model};
use benchop::{Barrier, Exercise, Instrument, MethodId, OptionKind, Points, catalogue};

use crate::api::{MethodView, ProblemView};

impl ProblemView {
    /// The API view of a catalogue case.
    pub fn from_case(case: &catalogue::Case) -> Self {
        let p = &case.problem;
        let mut params = Map::new();
        let mut put = |k: &str, v: Value| {
            params.insert(k.to_owned(), v);
        };
        match *p.model() {
            Model::BlackScholes(m) => {
                put("r", json!(m.r));
                put("sigma", json!(m.sigma));
            }
            Model::Heston(m) => {
                put("r", json!(m.r));
                put("v0", json!(m.v0));
                put("kappa", json!(m.kappa));
                put("theta", json!(m.theta));
                put("sigma_v", json!(m.sigma_v));
                put("rho", json!(m.rho));
            }
            Model::Merton(m) => {
                put("r", json!(m.r));
                put("sigma", json!(m.sigma));
                put("lambda", json!(m.lambda));
                put("gamma", json!(m.gamma));
                put("delta", json!(m.delta));
            }
            Model::LocalVol(m) => {
                put("r", json!(m.r));
                put(
                    "local_vol",
                    json!(match m.surface {
                        LocalVolSurface::Benchop3aI =>
                            "0.15 + 0.15(0.5 + 2t)(S/100 - 1.2)^2 / ((S/100)^2 + 1.44)",
                        LocalVolSurface::SviBenchop3aII =>
                            "Dupire local volatility of the BENCHOP 3aII SVI surface",
                        LocalVolSurface::Formula(_) => "a formula σ(S, t)",
                    }),
                );
            }
            Model::Sabr(m) => {
                put("r", json!(m.r));
                put("alpha", json!(m.alpha));
                put("beta", json!(m.beta));
                put("rho", json!(m.rho));
                put("nu", json!(m.nu));
            }
            Model::TwoAsset(m) => {
                put("r", json!(m.r));
                put("sigma1", json!(m.sigma1));
                put("sigma2", json!(m.sigma2));
                put("rho", json!(m.rho));
            }
        }
        match p.instrument() {
            Instrument::Vanilla(o) => {
                put(
                    "kind",
                    json!(if o.kind == OptionKind::Call { "call" } else { "put" }),
                );
                put(
                    "exercise",
                    json!(if o.exercise == Exercise::European {
                        "european"
                    } else {
                        "american"
                    }),
                );
                put("strike", json!(o.strike));
                put("maturity", json!(o.maturity));
                match o.barrier {
                    Some(Barrier::UpAndOut(b)) => put("up_and_out_barrier", json!(b)),
                    Some(Barrier::DownAndOut(b)) => put("down_and_out_barrier", json!(b)),
                    None => {}
                }
                if !o.dividends.is_empty() {
                    let d: Vec<_> = o
                        .dividends
                        .iter()
                        .map(|d| json!({"time": d.time, "fraction": d.fraction}))
                        .collect();
                    put("dividends", Value::Array(d));
                }
            }
            Instrument::Spread(o) => {
                put("kind", json!("spread_call"));
                put("strike", json!(o.strike));
                put("maturity", json!(o.maturity));
            }
        }
        let points = match p.points() {
            Points::Spots(v) => json!({ "spots": v }),
            Points::Strikes { spot, strikes } => json!({ "spot": spot, "strikes": strikes }),
            Points::SpotPairs(v) => json!({ "spot_pairs": v }),
        };
        ProblemView {
            id: case.id.to_owned(),
            title: case.title.to_owned(),
            set: case.set.to_owned(),
            model: p.model().family().to_owned(),
            parameters: params,
            quantity: p.quantity().name().to_owned(),
            points,
            reference: case.reference.clone(),
            reference_note: case.reference_note.to_owned(),
            methods: MethodId::ALL
                .into_iter()
                .filter(|m| m.applies_to(p))
                .map(|m| m.name().to_owned())
                .collect(),
        }
    }
}

impl MethodView {
    /// The API view of a method, with the catalogue cases it applies to.
    pub fn from_method(m: MethodId) -> Self {
        MethodView {
            id: m.name().to_owned(),
            description: m.description().to_owned(),
            stochastic: m.is_stochastic(),
            problems: catalogue::cases()
                .iter()
                .filter(|c| m.applies_to(&c.problem))
                .map(|c| c.id.to_owned())
                .collect(),
        }
    }
}
