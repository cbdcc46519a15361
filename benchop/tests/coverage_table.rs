//! The method × case table in the crate docs (src/lib.rs) is generated from `MethodId::applies_to`;
//! this test fails when the two disagree, printing the table to paste.

use benchop::{MethodId, catalogue};

const GROUPS: [(&str, &[&str]); 12] = [
    ("1a I/II", &["1aI", "1aII"]),
    (
        "Greeks",
        &[
            "1aI-Delta",
            "1aI-Gamma",
            "1aI-Vega",
            "1aII-Delta",
            "1aII-Gamma",
            "1aII-Vega",
        ],
    ),
    ("1b I/II", &["1bI", "1bII"]),
    ("1c I/II", &["1cI", "1cII"]),
    ("2a", &["2a"]),
    ("2b", &["2b"]),
    ("3a I/II", &["3aI", "3aII"]),
    ("4a", &["4a"]),
    ("5a", &["5a"]),
    ("6a", &["6a"]),
    ("SLV-Heston", &["SLV-Heston"]),
    ("SABR I/II", &["SLV-SABR-I", "SLV-SABR-II"]),
];

fn table() -> String {
    let mut out = String::from("//! | method |");
    for (g, _) in GROUPS {
        out += &format!(" {g} |");
    }
    out += "\n//! |---|";
    out += &"---|".repeat(GROUPS.len());
    out += "\n";
    for m in MethodId::ALL {
        out += &format!("//! | {} |", m.name());
        for (_, ids) in GROUPS {
            let covered: Vec<&str> = ids
                .iter()
                .copied()
                .filter(|id| m.applies_to(&catalogue::case(id).unwrap().problem))
                .collect();
            let mark = if covered.is_empty() {
                String::new()
            } else if covered.len() == ids.len() {
                (if m.is_stochastic() { "±" } else { "✓" }).to_owned()
            } else {
                covered.join(", ")
            };
            out += &format!(" {mark} |");
        }
        out += "\n";
    }
    out
}

#[test]
fn the_coverage_table_in_the_crate_docs_is_true() {
    let lib = include_str!("../src/lib.rs");
    let expected = table();
    assert!(
        lib.contains(&expected),
        "src/lib.rs's coverage table is stale; replace it with:\n{expected}"
    );
}
