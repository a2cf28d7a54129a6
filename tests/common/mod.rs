//! Helpers shared by integration tests of several families (`mod common;` in each test
//! crate): the C API called as a C host calls it ([`c_api`]) and the SQNR metric.
#![allow(dead_code)]

pub mod c_api;

/// Signal-to-quantization-noise ratio of `test` against `reference`, in dB.
pub fn sqnr_db(reference: &[f32], test: &[f32]) -> f64 {
    assert_eq!(reference.len(), test.len());
    let signal: f64 = reference.iter().map(|&x| f64::from(x).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(test)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    10.0 * (signal / noise.max(1e-30)).log10()
}
