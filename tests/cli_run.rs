//! `xq run` feeds any model: several inputs as `NAME=FILE.npy` of any element type (int64 token
//! ids, masks), symbolic dims fixed from the arrays, every output saved as `.npy`; bad inputs
//! give a message naming what the program expects and a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use xq::ir::{DType, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transformers")
        .join(name)
}

fn xq_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xq"))
        .arg("run")
        .args(args)
        .args(["--threads", "1", "--runs", "2"])
        .output()
        .unwrap()
}

fn i64_tensor(dims: Vec<usize>, values: &[i64]) -> Tensor {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Tensor::from_le_bytes(DType::I64, dims, &bytes).unwrap()
}

/// Token ids (two rows of the fixture text) and a mask with the second row right-padded.
fn token_inputs(dir: &Path) -> (Tensor, Tensor, String, String) {
    let all = xq::npy::read(fixture("tokens.npy")).unwrap();
    let ids = all.to_i64_vec().unwrap()[..2 * 32].to_vec();
    let ids = i64_tensor(vec![2, 32], &ids);
    let mut mask = vec![1i64; 64];
    mask[32 + 20..].iter_mut().for_each(|m| *m = 0);
    let mask = i64_tensor(vec![2, 32], &mask);
    let (ids_path, mask_path) = (dir.join("ids.npy"), dir.join("mask.npy"));
    xq::npy::write(&ids_path, &ids).unwrap();
    xq::npy::write(&mask_path, &mask).unwrap();
    (
        ids,
        mask,
        format!("input_ids={}", ids_path.display()),
        format!("attention_mask={}", mask_path.display()),
    )
}

fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn runs_a_two_input_token_model_and_saves_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("bert_tiny_eager_script.onnx");
    let (ids, mask, ids_arg, mask_arg) = token_inputs(dir.path());
    let saved = dir.path().join("out");
    let out = xq_run(&[
        model.to_str().unwrap(),
        "--input",
        &mask_arg,
        "--input",
        &ids_arg,
        "--save-npy",
        saved.to_str().unwrap(),
        "--profile",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("median_ms") && stdout.contains("us  total"),
        "{stdout}"
    );

    let graph = xq::onnx::load_file(&model).unwrap();
    let want = xq::interp::run_once(&graph, &[ids, mask]).unwrap();
    for (name, want) in ["last_hidden_state", "pooler_output"].iter().zip(&want) {
        let got = xq::npy::read(saved.join(format!("{name}.npy"))).unwrap();
        assert_eq!(got.dims(), want.dims(), "{name}");
        let (g, w) = (got.to_f32_vec().unwrap(), want.to_f32_vec().unwrap());
        let worst = g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{name}: differs from the interpreter by {worst}");
    }
}

#[test]
fn bad_inputs_name_what_the_program_expects() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("bert_tiny_eager_script.onnx");
    let model = model.to_str().unwrap();
    let (_, _, ids_arg, mask_arg) = token_inputs(dir.path());

    let err = failure(&xq_run(&[model, "--input", &ids_arg]));
    assert!(err.contains("attention_mask"), "missing input: {err}");

    let err = failure(&xq_run(&[
        model, "--input", &ids_arg, "--input", &mask_arg, "--input", &ids_arg,
    ]));
    assert!(err.contains("given twice"), "repeated input: {err}");

    let stray = format!("token_type_ids={}", dir.path().join("ids.npy").display());
    let err = failure(&xq_run(&[
        model, "--input", &ids_arg, "--input", &mask_arg, "--input", &stray,
    ]));
    assert!(err.contains("token_type_ids"), "unknown input: {err}");

    let floats = dir.path().join("float_ids.npy");
    xq::npy::write(&floats, &Tensor::from_f32(vec![2, 32], vec![1.0; 64]).unwrap()).unwrap();
    let float_arg = format!("input_ids={}", floats.display());
    let err = failure(&xq_run(&[model, "--input", &float_arg, "--input", &mask_arg]));
    assert!(err.contains("i64") && err.contains("f32"), "wrong dtype: {err}");

    let err = failure(&xq_run(&[
        model,
        "--input",
        dir.path().join("ids.npy").to_str().unwrap(),
    ]));
    assert!(err.contains("NAME=FILE"), "samples for a two-input model: {err}");

    let missing = format!("attention_mask={}", dir.path().join("nope.npy").display());
    let err = failure(&xq_run(&[model, "--input", &ids_arg, "--input", &missing]));
    assert!(err.contains("nope.npy"), "missing file: {err}");
}

/// An `.npz` of arrays named after the inputs (numpy's `savez_compressed`, committed as a
/// fixture) runs like the same arrays given as `NAME=FILE.npy`; a broken archive, an entry
/// that is not an array and a name given both ways are errors.
#[test]
fn an_npz_feeds_every_input_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("bert_tiny_eager_script.onnx");
    let model = model.to_str().unwrap();
    let npz = fixture("tokens_2x32.npz");
    let npz = npz.to_str().unwrap();
    let (_, _, ids_arg, mask_arg) = token_inputs(dir.path());
    let (from_npz, from_npy) = (dir.path().join("npz"), dir.path().join("npy"));
    let ok = |out: Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    ok(xq_run(&[
        model,
        "--input",
        npz,
        "--save-npy",
        from_npz.to_str().unwrap(),
    ]));
    ok(xq_run(&[
        model,
        "--input",
        &ids_arg,
        "--input",
        &mask_arg,
        "--save-npy",
        from_npy.to_str().unwrap(),
    ]));
    for name in ["last_hidden_state", "pooler_output"] {
        let a = xq::npy::read(from_npz.join(format!("{name}.npy"))).unwrap();
        let b = xq::npy::read(from_npy.join(format!("{name}.npy"))).unwrap();
        assert_eq!(a.dims(), b.dims(), "{name}");
        let same = a.to_f32_vec().unwrap() == b.to_f32_vec().unwrap();
        assert!(same, "{name}: the .npz run differs from the .npy run");
    }

    let err = failure(&xq_run(&[model, "--input", npz, "--input", &ids_arg]));
    assert!(
        err.contains("given twice"),
        "an array in the .npz and as NAME=FILE: {err}"
    );

    let broken = dir.path().join("broken.npz");
    std::fs::write(&broken, b"PK\x03\x04 not really a zip").unwrap();
    let err = failure(&xq_run(&[model, "--input", broken.to_str().unwrap()]));
    assert!(err.contains("broken.npz"), "a broken archive: {err}");

    // A zip whose entry is not an .npy array (a stored entry written by hand).
    let text = dir.path().join("text.npz");
    std::fs::write(&text, stored_zip("notes.txt", b"hello")).unwrap();
    let err = failure(&xq_run(&[model, "--input", text.to_str().unwrap()]));
    assert!(err.contains("notes.txt"), "an entry that is not an array: {err}");
}

/// A one-entry zip archive with the entry stored (no compression).
fn stored_zip(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    };
    let (n, len) = (name.len() as u16, data.len() as u32);
    let mut z = Vec::new();
    z.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    z.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&n.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(data);
    let central = z.len() as u32;
    z.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    z.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&n.to_le_bytes());
    z.extend_from_slice(&[0; 12]);
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    let central_len = z.len() as u32 - central;
    z.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    z.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend_from_slice(&central_len.to_le_bytes());
    z.extend_from_slice(&central.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z
}
