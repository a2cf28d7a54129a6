//! Einsum equations: parsing (`"bhqd,bhkd->bhqk"`, implicit outputs, `...`, repeated labels
//! for diagonals) and, given the operand shapes, the plan every evaluation follows: one size
//! per label and, per operand, the stride each label steps by.

use crate::{Error, Result};

/// One axis of an operand or of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Term {
    /// A letter (`a`–`z`, `A`–`Z`).
    Letter(u8),
    /// `...`: the axes the letters leave, broadcast across operands.
    Ellipsis,
}

/// A parsed equation: the terms of each operand and of the output (`None` = implicit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equation {
    inputs: Vec<Vec<Term>>,
    output: Option<Vec<Term>>,
}

fn bad(equation: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidModel(format!("Einsum equation `{equation}`: {why}"))
}

/// The terms of one operand or of the output.
fn terms(equation: &str, part: &str) -> Result<Vec<Term>> {
    let mut out = Vec::new();
    let mut rest = part.trim().as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        if c.is_ascii_alphabetic() {
            out.push(Term::Letter(c));
            rest = tail;
        } else if rest.starts_with(b"...") {
            if out.contains(&Term::Ellipsis) {
                return Err(bad(equation, "an operand has two ellipses"));
            }
            out.push(Term::Ellipsis);
            rest = &rest[3..];
        } else if c == b' ' {
            rest = tail;
        } else {
            return Err(bad(equation, format!("unexpected character `{}`", c as char)));
        }
    }
    Ok(out)
}

impl Equation {
    /// Parses an equation; fails on characters other than letters, `...`, `,`, `->` and
    /// spaces, on an output letter no operand has, and on a repeated output letter.
    pub fn parse(equation: &str) -> Result<Equation> {
        let (lhs, rhs) = match equation.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (equation, None),
        };
        let inputs = lhs
            .split(',')
            .map(|p| terms(equation, p))
            .collect::<Result<Vec<_>>>()?;
        let output = rhs.map(|r| terms(equation, r)).transpose()?;
        if let Some(out) = &output {
            for (i, t) in out.iter().enumerate() {
                if out[..i].contains(t) {
                    return Err(bad(equation, "the output repeats a label"));
                }
                if let Term::Letter(c) = t {
                    if !inputs.iter().any(|v| v.contains(t)) {
                        return Err(bad(
                            equation,
                            format!("output label `{}` is in no operand", *c as char),
                        ));
                    }
                }
            }
        }
        Ok(Equation { inputs, output })
    }

    /// The number of operands the equation names.
    pub fn operands(&self) -> usize {
        self.inputs.len()
    }
}

/// How to evaluate an equation on operands of given shapes. Labels are numbered: the
/// broadcast ellipsis axes first, then the letters in the order they appear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The size of every label.
    pub sizes: Vec<usize>,
    /// The labels of the output's axes, in order.
    pub output: Vec<usize>,
    /// The labels summed over (in no output axis).
    pub summed: Vec<usize>,
    /// Per operand, per label: the element stride one step of the label moves (the sum of
    /// the strides of the operand's axes with that label; 0 for labels it lacks and for
    /// broadcast axes of length 1).
    pub strides: Vec<Vec<usize>>,
    /// Per operand: the label of each of its axes.
    pub axes: Vec<Vec<usize>>,
}

impl Plan {
    /// The output's shape.
    pub fn output_shape(&self) -> Vec<usize> {
        self.output.iter().map(|&l| self.sizes[l]).collect()
    }
}

/// Plans `eq` over operands of the given shapes: every letter has one size everywhere it
/// appears, ellipsis axes broadcast (numpy rules), ranks match the terms.
pub fn plan(equation: &str, shapes: &[&[usize]]) -> Result<Plan> {
    let eq = Equation::parse(equation)?;
    if shapes.len() != eq.inputs.len() {
        return Err(bad(
            equation,
            format!(
                "names {} operands but the node has {}",
                eq.inputs.len(),
                shapes.len()
            ),
        ));
    }
    let shape_err = |why: String| Error::ShapeMismatch(format!("Einsum `{equation}`: {why}"));
    // The ellipsis rank of each operand, and the broadcast ellipsis shape.
    let mut ell_ranks = Vec::with_capacity(shapes.len());
    for (terms, shape) in eq.inputs.iter().zip(shapes) {
        let letters = terms.iter().filter(|t| matches!(t, Term::Letter(_))).count();
        let has_ell = terms.contains(&Term::Ellipsis);
        if shape.len() < letters || (!has_ell && shape.len() != letters) {
            return Err(shape_err(format!(
                "an operand of shape {shape:?} does not fit its terms"
            )));
        }
        ell_ranks.push(shape.len() - letters);
    }
    let ell_rank = ell_ranks.iter().copied().max().unwrap_or(0);
    let mut sizes = vec![1usize; ell_rank];
    let mut letters: Vec<u8> = Vec::new();
    let mut label_of = |c: u8, sizes: &mut Vec<usize>| -> usize {
        match letters.iter().position(|&l| l == c) {
            Some(i) => ell_rank + i,
            None => {
                letters.push(c);
                sizes.push(0);
                ell_rank + letters.len() - 1
            }
        }
    };
    let mut strides = Vec::with_capacity(shapes.len());
    let mut axis_labels = Vec::with_capacity(shapes.len());
    for ((terms, shape), &er) in eq.inputs.iter().zip(shapes).zip(&ell_ranks) {
        let mut labels = Vec::with_capacity(shape.len());
        for t in terms {
            match t {
                Term::Letter(c) => labels.push(label_of(*c, &mut sizes)),
                Term::Ellipsis => labels.extend(ell_rank - er..ell_rank),
            }
        }
        for (&l, &d) in labels.iter().zip(shape.iter()) {
            if l < ell_rank {
                if sizes[l] == 1 {
                    sizes[l] = d;
                } else if d != 1 && d != sizes[l] {
                    return Err(shape_err(format!(
                        "ellipsis axes {d} and {} do not broadcast",
                        sizes[l]
                    )));
                }
            }
        }
        axis_labels.push(labels);
    }
    // Letters: one size everywhere (the first occurrence sets it; a size of 0 is legal).
    let mut set = vec![false; sizes.len()];
    for (labels, shape) in axis_labels.iter().zip(shapes) {
        for (&l, &d) in labels.iter().zip(shape.iter()) {
            if l < ell_rank {
                continue;
            }
            if !set[l] {
                sizes[l] = d;
                set[l] = true;
            } else if sizes[l] != d {
                let c = letters[l - ell_rank] as char;
                return Err(shape_err(format!("label `{c}` has sizes {} and {d}", sizes[l])));
            }
        }
    }
    for (labels, shape) in axis_labels.iter().zip(shapes) {
        let mut st = vec![0usize; sizes.len()];
        let mut s = 1usize;
        for (&l, &d) in labels.iter().zip(shape.iter()).rev() {
            if !(l < ell_rank && d == 1) {
                st[l] += s;
            }
            s = s.saturating_mul(d);
        }
        strides.push(st);
    }
    let output: Vec<usize> = match &eq.output {
        Some(out) => {
            let mut v = Vec::new();
            for t in out {
                match t {
                    // Every output letter is in an operand (checked by `parse`).
                    Term::Letter(c) => v.push(ell_rank + letters.iter().position(|l| l == c).unwrap_or(0)),
                    Term::Ellipsis => v.extend(0..ell_rank),
                }
            }
            v
        }
        None => {
            let count = |c: u8| {
                eq.inputs
                    .iter()
                    .flatten()
                    .filter(|t| **t == Term::Letter(c))
                    .count()
            };
            let mut once: Vec<u8> = letters.iter().copied().filter(|&c| count(c) == 1).collect();
            once.sort_unstable();
            (0..ell_rank)
                .chain(
                    once.iter()
                        .map(|c| ell_rank + letters.iter().position(|l| l == c).unwrap_or(0)),
                )
                .collect()
        }
    };
    let summed = (0..sizes.len()).filter(|l| !output.contains(l)).collect();
    Ok(Plan {
        sizes,
        output,
        summed,
        strides,
        axes: axis_labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_matmul_plan() {
        let p = plan("bhqd,bhkd->bhqk", &[&[2, 3, 4, 5], &[2, 3, 6, 5]]).unwrap();
        assert_eq!(p.output_shape(), vec![2, 3, 4, 6]);
        assert_eq!(p.summed.len(), 1);
    }

    #[test]
    fn implicit_output_and_ellipsis() {
        let p = plan("...ij,...jk", &[&[7, 2, 3], &[3, 4]]).unwrap();
        assert_eq!(p.output_shape(), vec![7, 2, 4]);
        let p = plan("ii", &[&[3, 3]]).unwrap();
        assert_eq!(p.output_shape(), Vec::<usize>::new());
    }

    #[test]
    fn bad_equations_fail() {
        assert!(plan("ij,jk->ik", &[&[2, 3], &[4, 5]]).is_err());
        assert!(plan("ij->ijj", &[&[2, 3]]).is_err());
        assert!(plan("ij->x", &[&[2, 3]]).is_err());
        assert!(plan("i$j", &[&[2, 3]]).is_err());
        assert!(plan("ij", &[&[2, 3, 4]]).is_err());
        assert!(plan("ij,jk", &[&[2, 3]]).is_err());
    }
}
