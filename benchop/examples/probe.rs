//! Temporary probe: walk a method's ladder on a case and print relerr and min time per level.
use benchop::{Cancel, MethodId, catalogue, relerr};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = catalogue::case(&args[1]).unwrap();
    let m = MethodId::from_name(&args[2]).unwrap();
    let max: usize = args.get(3).map_or(20, |s| s.parse().unwrap());
    let reps: usize = args.get(4).map_or(1, |s| s.parse().unwrap());
    for level in 0..max {
        let mut best = f64::INFINITY;
        let mut est = None;
        for _ in 0..reps {
            let t0 = std::time::Instant::now();
            let Some(e) = m.price(&case.problem, level, &Cancel::new()).unwrap() else {
                return;
            };
            best = best.min(t0.elapsed().as_secs_f64());
            est = Some(e);
        }
        let e = est.unwrap();
        println!(
            "L{level} {:>10.3}ms relerr {:.3e} {:?} | {}",
            best * 1e3,
            relerr(&e.values, &case.reference),
            e.values,
            e.setting
        );
    }
}
