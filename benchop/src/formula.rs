//! Local volatility formulas σ(S, t) written by users, e.g. `0.2 + 0.1*exp(-t)*(S/100 - 1)^2`.
//!
//! A formula is parsed once into a fixed-size postfix program, so it is `Copy` like every other model
//! parameter and evaluates without allocating inside the kernels. The grammar: numbers, the variables
//! `S` (spot) and `t` (time), `+ - * / ^` (`^` binds tightest and to the right; unary minus binds looser
//! than `^`, so `-S^2` is `-(S^2)`), parentheses, and the functions `exp`, `ln` (or `log`), `sqrt`, `abs`,
//! `tanh`, `min(a, b)`, `max(a, b)`.

/// The most operations (numbers, variables, operators, functions) a formula may have.
pub const MAX_OPS: usize = 48;
/// The most numbers a formula may contain.
pub const MAX_CONSTS: usize = 12;

/// One postfix operation; `Const` pushes the next of the formula's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Const,
    S,
    T,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Neg,
    Exp,
    Ln,
    Sqrt,
    Abs,
    Tanh,
    Min,
    Max,
}

/// A parsed formula σ(S, t).
///
/// ```
/// use benchop::formula::Formula;
/// let f = Formula::parse("0.15 + 0.15*(0.5 + 2*t)*(S/100 - 1.2)^2/((S/100)^2 + 1.44)").unwrap();
/// assert!((f.eval(120.0, 0.3) - 0.15).abs() < 1e-15);
/// assert!(Formula::parse("0.2 +").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Formula {
    // Compact (≈ 150 bytes): it sits inside `Model`, which is copied around freely.
    ops: [Op; MAX_OPS],
    consts: [f64; MAX_CONSTS],
    len: u8,
    n_consts: u8,
}

/// Why a formula did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct FormulaError {
    /// 0-based character position.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl Formula {
    /// Parse a formula in `S` and `t`.
    pub fn parse(source: &str) -> Result<Self, FormulaError> {
        let chars: Vec<char> = source.chars().collect();
        let mut p = Parser {
            chars: &chars,
            pos: 0,
            out: Formula {
                ops: [Op::Const; MAX_OPS],
                consts: [0.0; MAX_CONSTS],
                len: 0,
                n_consts: 0,
            },
        };
        p.expr()?;
        p.skip_space();
        if p.pos < chars.len() {
            return Err(p.error(format!("unexpected `{}`", chars[p.pos])));
        }
        Ok(p.out)
    }

    /// σ(S, t). Never panics; a formula that divides by zero or takes the root of a negative number
    /// returns a non-finite value, which validation and the kernels refuse.
    pub fn eval(&self, s: f64, t: f64) -> f64 {
        let mut stack = [0.0_f64; MAX_OPS];
        let mut sp = 0usize;
        let mut next_const = self.consts.iter();
        for op in self.ops.iter().take(usize::from(self.len)) {
            // The parser emits well-formed postfix: operands are on the stack when an operator runs and the
            // depth never exceeds the number of operations. `get` keeps this total regardless.
            let binary = |stack: &mut [f64; MAX_OPS], sp: &mut usize, f: fn(f64, f64) -> f64| {
                if *sp >= 2 {
                    let (a, b) = (stack[*sp - 2], stack[*sp - 1]);
                    stack[*sp - 2] = f(a, b);
                    *sp -= 1;
                }
            };
            let unary = |stack: &mut [f64; MAX_OPS], sp: usize, f: fn(f64) -> f64| {
                if let Some(v) = sp.checked_sub(1).and_then(|i| stack.get_mut(i)) {
                    *v = f(*v);
                }
            };
            match *op {
                Op::Const | Op::S | Op::T => {
                    let v = match *op {
                        Op::S => s,
                        Op::T => t,
                        _ => next_const.next().copied().unwrap_or(f64::NAN),
                    };
                    if let Some(slot) = stack.get_mut(sp) {
                        *slot = v;
                        sp += 1;
                    }
                }
                Op::Add => binary(&mut stack, &mut sp, |a, b| a + b),
                Op::Sub => binary(&mut stack, &mut sp, |a, b| a - b),
                Op::Mul => binary(&mut stack, &mut sp, |a, b| a * b),
                Op::Div => binary(&mut stack, &mut sp, |a, b| a / b),
                Op::Pow => binary(&mut stack, &mut sp, f64::powf),
                Op::Min => binary(&mut stack, &mut sp, f64::min),
                Op::Max => binary(&mut stack, &mut sp, f64::max),
                Op::Neg => unary(&mut stack, sp, |a| -a),
                Op::Exp => unary(&mut stack, sp, f64::exp),
                Op::Ln => unary(&mut stack, sp, f64::ln),
                Op::Sqrt => unary(&mut stack, sp, f64::sqrt),
                Op::Abs => unary(&mut stack, sp, f64::abs),
                Op::Tanh => unary(&mut stack, sp, f64::tanh),
            }
        }
        if sp == 1 { stack[0] } else { f64::NAN }
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    out: Formula,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> FormulaError {
        FormulaError {
            position: self.pos,
            message: message.into(),
        }
    }

    fn emit(&mut self, op: Op) -> Result<(), FormulaError> {
        let Some(slot) = self.out.ops.get_mut(usize::from(self.out.len)) else {
            return Err(self.error(format!("the formula is too long (at most {MAX_OPS} operations)")));
        };
        *slot = op;
        self.out.len += 1;
        Ok(())
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.get(self.pos).copied()
    }

    fn expect(&mut self, c: char) -> Result<(), FormulaError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected `{c}`")))
        }
    }

    fn expr(&mut self) -> Result<(), FormulaError> {
        self.term()?;
        while let Some(c @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            self.term()?;
            self.emit(if c == '+' { Op::Add } else { Op::Sub })?;
        }
        Ok(())
    }

    fn term(&mut self) -> Result<(), FormulaError> {
        self.unary()?;
        while let Some(c @ ('*' | '/')) = self.peek() {
            self.pos += 1;
            self.unary()?;
            self.emit(if c == '*' { Op::Mul } else { Op::Div })?;
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<(), FormulaError> {
        match self.peek() {
            Some('-') => {
                self.pos += 1;
                self.unary()?;
                self.emit(Op::Neg)
            }
            Some('+') => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<(), FormulaError> {
        self.atom()?;
        if self.peek() == Some('^') {
            self.pos += 1;
            self.unary()?;
            self.emit(Op::Pow)?;
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<(), FormulaError> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                self.expr()?;
                self.expect(')')
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self
                    .chars
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().collect();
                match name.as_str() {
                    "S" => self.emit(Op::S),
                    "t" => self.emit(Op::T),
                    "exp" | "ln" | "log" | "sqrt" | "abs" | "tanh" => {
                        self.expect('(')?;
                        self.expr()?;
                        self.expect(')')?;
                        self.emit(match name.as_str() {
                            "exp" => Op::Exp,
                            "sqrt" => Op::Sqrt,
                            "abs" => Op::Abs,
                            "tanh" => Op::Tanh,
                            _ => Op::Ln,
                        })
                    }
                    "min" | "max" => {
                        self.expect('(')?;
                        self.expr()?;
                        self.expect(',')?;
                        self.expr()?;
                        self.expect(')')?;
                        self.emit(if name == "min" { Op::Min } else { Op::Max })
                    }
                    _ => {
                        self.pos = start;
                        Err(self.error(format!(
                            "unknown name `{name}`: use S, t, exp, ln, sqrt, abs, tanh, min, max"
                        )))
                    }
                }
            }
            Some(c) => Err(self.error(format!("unexpected `{c}`"))),
            None => Err(self.error("unexpected end of the formula")),
        }
    }

    fn number(&mut self) -> Result<(), FormulaError> {
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_digit() || *c == '.')
        {
            self.pos += 1;
        }
        // An exponent: 1e-3, 2.5E+2.
        if self.chars.get(self.pos).is_some_and(|c| *c == 'e' || *c == 'E') {
            let mark = self.pos;
            self.pos += 1;
            if self.chars.get(self.pos).is_some_and(|c| *c == '+' || *c == '-') {
                self.pos += 1;
            }
            if self.chars.get(self.pos).is_some_and(char::is_ascii_digit) {
                while self.chars.get(self.pos).is_some_and(char::is_ascii_digit) {
                    self.pos += 1;
                }
            } else {
                self.pos = mark;
            }
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let value: f64 = text.parse().map_err(|_| FormulaError {
            position: start,
            message: format!("`{text}` is not a number"),
        })?;
        let Some(slot) = self.out.consts.get_mut(usize::from(self.out.n_consts)) else {
            return Err(FormulaError {
                position: start,
                message: format!("too many numbers (at most {MAX_CONSTS})"),
            });
        };
        *slot = value;
        self.out.n_consts += 1;
        self.emit(Op::Const)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, s: f64, t: f64) -> f64 {
        Formula::parse(src).unwrap().eval(s, t)
    }

    #[test]
    fn precedence_and_functions_follow_the_usual_rules() {
        assert_eq!(eval("1 + 2 * 3", 0.0, 0.0), 7.0);
        assert_eq!(eval("(1 + 2) * 3", 0.0, 0.0), 9.0);
        assert_eq!(eval("2 ^ 3 ^ 2", 0.0, 0.0), 512.0);
        assert_eq!(eval("-S^2", 3.0, 0.0), -9.0);
        assert_eq!(eval("10 - 4 - 3", 0.0, 0.0), 3.0);
        assert_eq!(eval("S / 4 / 2", 16.0, 0.0), 2.0);
        assert_eq!(eval("2e-1 + 1.5E1 + t", 0.0, 0.25), 15.45);
        assert_eq!(eval("min(S, t) + max(S, t)", 2.0, 5.0), 7.0);
        assert!((eval("exp(ln(S)) + sqrt(abs(-t)) + tanh(0)", 3.0, 4.0) - 5.0).abs() < 1e-14);
        assert!((eval("log(exp(2))", 0.0, 0.0) - 2.0).abs() < 1e-15);
    }

    #[test]
    fn the_3ai_surface_written_as_a_formula_equals_the_built_in_one() {
        use crate::model::{LocalVol, LocalVolSurface};
        let f = Formula::parse("0.15 + 0.15*(0.5 + 2*t)*(S/100 - 1.2)^2/((S/100)^2 + 1.44)").unwrap();
        let lv = LocalVol {
            r: 0.03,
            surface: LocalVolSurface::Benchop3aI,
        };
        for s in [20.0, 90.0, 100.0, 133.0, 400.0] {
            for t in [0.0, 0.3, 1.0] {
                assert!(
                    (f.eval(s, t) - lv.sigma(s, t, 100.0)).abs() < 1e-15,
                    "S={s} t={t}"
                );
            }
        }
    }

    #[test]
    fn bad_formulas_say_where() {
        for (src, position) in [
            ("0.2 +", 5),
            ("0.2 * (S", 8),
            ("sigma", 0),
            ("0.2 $ S", 4),
            ("exp S", 4),
            ("min(S)", 5),
            ("1..2", 0),
            ("", 0),
        ] {
            let e = Formula::parse(src).unwrap_err();
            assert_eq!(e.position, position, "{src}: {e}");
        }
        let long = vec!["S"; MAX_OPS].join("+");
        assert!(Formula::parse(&long).unwrap_err().message.contains("too long"));
        let many = vec!["1"; MAX_CONSTS + 1].join("+");
        assert!(
            Formula::parse(&many)
                .unwrap_err()
                .message
                .contains("too many numbers")
        );
        assert!(std::mem::size_of::<Formula>() <= 160);
    }

    #[test]
    fn undefined_values_are_not_finite_rather_than_panics() {
        assert!(eval("1 / (S - S)", 1.0, 0.0).is_infinite());
        assert!(eval("sqrt(-S)", 1.0, 0.0).is_nan());
        assert!(eval("ln(t)", 1.0, -1.0).is_nan());
    }
}
