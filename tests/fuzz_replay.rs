//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same harness
//! functions the cargo-fuzz targets run (`xq::fuzzing`), so every input the fuzzers kept —
//! including the reproducers of the bugs they found — stays a regression test on stable.
//! A harness returning normally is a pass; errors are expected, panics are failures.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

fn replay(target: &str, harness: fn(&[u8])) {
    let files = corpus(target);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let outcome = std::panic::catch_unwind(|| harness(&data));
        assert!(outcome.is_ok(), "{target}: {} panicked", f.display());
    }
    println!("{target}: {} inputs replayed", files.len());
}

#[test]
fn onnx_import_corpus() {
    replay("onnx_import", xq::fuzzing::onnx_import);
}

#[test]
fn program_load_corpus() {
    replay("program_load", xq::fuzzing::program_load);
}

#[test]
fn quantize_execute_corpus() {
    replay("quantize_execute", xq::fuzzing::quantize_execute);
}
