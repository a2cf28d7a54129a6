//! Decoding a Llama-style decoder token by token with its KV cache
//! (`tests/fixtures/transformers/llama_tiny_kv_dynamo.onnx`, the default export of
//! `scripts/fixtures/transformers_export.py`: `past_key_values.*` in, `present.*` out).
//!
//! One program, compiled once with symbolic batch, sequence and cache lengths, runs the
//! prefill (a past of length 0) and every decode step; the logits of each step equal those of
//! the whole sequence run at once, float and dynamic int8 alike, and through the C API as
//! through the Rust API. The int8 decoder's next-token choice agrees with the float one's.

mod common;

use common::c_api::*;
use std::path::PathBuf;
use std::ptr::null_mut;
use xq::delegate::{lower, PartitionMode};
use xq::ffi::*;
use xq::ir::{Graph, Tensor};
use xq::quant::{ActivationMode, QuantConfig, Quantizer};
use xq::runtime::{Program, ProgramOptions};

/// Vocabulary and cache geometry of the tiny fixture.
const VOCAB: usize = 384;
const LAYERS: usize = 2;
const KV_HEADS: usize = 2;
const HEAD: usize = 8;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformers")
}

fn kv_graph() -> Graph {
    xq::onnx::load_file(fixtures().join("llama_tiny_kv_dynamo.onnx")).expect("import the KV export")
}

/// Token ids of English text: row `row` of the fixture tokens, `len` of them.
fn tokens(row: usize, len: usize) -> Vec<i64> {
    let all = xq::npy::read(fixtures().join("tokens.npy"))
        .unwrap()
        .to_i64_vec()
        .unwrap();
    all[row * 128..row * 128 + len].to_vec()
}

fn dynamic_int8(graph: &Graph) -> Graph {
    let mut q = Quantizer::new(Some(QuantConfig {
        activations: ActivationMode::Dynamic,
        ..QuantConfig::default()
    }))
    .unwrap();
    q.prepare(graph).unwrap();
    q.convert().unwrap()
}

/// The program of `graph`, compiled once with every length symbolic.
fn compile(graph: &Graph, mode: PartitionMode) -> Program {
    let (spec, report) = lower(graph, mode).unwrap_or_else(|e| panic!("compile with symbolic lengths: {e}"));
    if mode != PartitionMode::None {
        assert!(
            report.text().contains("MatMul (dynamic)"),
            "the linears should run as dynamic int8 steps:\n{}",
            report.text()
        );
    }
    Program::new(spec, ProgramOptions { threads: 2 }).unwrap()
}

/// One call of the decoder: `ids` at positions `start..`, after a cache of `start` positions.
fn step_inputs(ids: &[i64], start: usize, past: Vec<Tensor>) -> Vec<Tensor> {
    let s = ids.len();
    let mut inputs = vec![
        Tensor::from_i64(vec![1, s], ids.to_vec()).unwrap(),
        Tensor::from_i64(vec![1, start + s], vec![1; start + s]).unwrap(),
        Tensor::from_i64(vec![1, s], (start as i64..(start + s) as i64).collect()).unwrap(),
    ];
    inputs.extend(past);
    inputs
}

fn empty_cache() -> Vec<Tensor> {
    (0..2 * LAYERS)
        .map(|_| Tensor::from_f32(vec![1, KV_HEADS, 0, HEAD], Vec::new()).unwrap())
        .collect()
}

/// Logits of every position of `ids`: a prefill of `prompt` tokens, then one call per token,
/// each handing the previous call's `present.*` back as `past_key_values.*`.
fn decode_logits(p: &Program, ids: &[i64], prompt: usize) -> Vec<f32> {
    let mut out = p.execute(&step_inputs(&ids[..prompt], 0, empty_cache())).unwrap();
    let mut logits = out[0].as_f32().unwrap().to_vec();
    for t in prompt..ids.len() {
        let past: Vec<Tensor> = out.drain(1..).collect();
        assert_eq!(
            past[0].dims(),
            [1, KV_HEADS, t, HEAD],
            "the cache grows by one position per token"
        );
        out = p.execute(&step_inputs(&ids[t..t + 1], t, past)).unwrap();
        assert_eq!(out[0].dims(), [1, 1, VOCAB]);
        logits.extend_from_slice(out[0].as_f32().unwrap());
    }
    logits
}

fn worst_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

fn argmax_rows(logits: &[f32]) -> Vec<usize> {
    logits
        .chunks_exact(VOCAB)
        .map(|r| (0..VOCAB).fold(0, |best, i| if r[i] > r[best] { i } else { best }))
        .collect()
}

#[test]
fn a_float_decoder_steps_with_its_cache_and_matches_the_whole_sequence() {
    let graph = kv_graph();
    let p = compile(&graph, PartitionMode::None);
    let ids = tokens(0, 24);
    let whole = p.execute(&step_inputs(&ids, 0, empty_cache())).unwrap();
    let stepped = decode_logits(&p, &ids, 10);
    let worst = worst_difference(&stepped, whole[0].as_f32().unwrap());
    assert!(
        worst <= 1e-5,
        "token-by-token logits differ from the whole sequence's by {worst}"
    );

    // The export without a cache (same weights) agrees: the cache changes nothing.
    let plain = xq::onnx::load_file(fixtures().join("llama_tiny_sdpa_dynamo.onnx")).unwrap();
    let want = xq::interp::run_once(
        &plain,
        &[
            Tensor::from_i64(vec![1, 24], ids.clone()).unwrap(),
            Tensor::from_i64(vec![1, 24], vec![1; 24]).unwrap(),
        ],
    )
    .unwrap();
    let worst = worst_difference(&stepped, want[0].as_f32().unwrap());
    assert!(
        worst <= 1e-5,
        "the KV export differs from the plain export by {worst}"
    );
}

#[test]
fn a_dynamic_int8_decoder_compiles_once_and_runs_every_length() {
    let graph = kv_graph();
    let float = compile(&graph, PartitionMode::None);
    let int8 = compile(&dynamic_int8(&graph), PartitionMode::All);
    let (mut agree, mut total) = (0usize, 0usize);
    for (row, (len, prompt)) in [(24, 10), (40, 1), (17, 16)].into_iter().enumerate() {
        let ids = tokens(row, len);
        let whole = int8.execute(&step_inputs(&ids, 0, empty_cache())).unwrap();
        let stepped = decode_logits(&int8, &ids, prompt);
        // Activations are quantized per row (per token), so a token's linears see the same
        // int8 row whether it comes alone or with the others; only the attention's float
        // sums over the cache differ in order.
        let worst = worst_difference(&stepped, whole[0].as_f32().unwrap());
        assert!(
            worst <= 1e-4,
            "row {row}: int8 stepped logits differ from the whole sequence's by {worst}"
        );

        let reference = float.execute(&step_inputs(&ids, 0, empty_cache())).unwrap();
        let (q, f) = (argmax_rows(&stepped), argmax_rows(reference[0].as_f32().unwrap()));
        agree += q.iter().zip(&f).filter(|(a, b)| a == b).count();
        total += q.len();
    }
    eprintln!("int8 vs float next-token agreement: {agree} of {total}");
    assert!(
        agree * 100 >= total * 99,
        "int8 next-token choices agree with float on {agree} of {total} positions (need 99%)"
    );
}

#[test]
fn a_model_without_run_time_quantization_still_needs_fixed_shapes_to_delegate() {
    // Only run-time quantized graphs compile with symbolic lengths; anything else keeps the
    // clear error naming the input and the fix.
    let Err(err) = lower(&kv_graph(), PartitionMode::All) else {
        panic!("a float graph with symbolic dims was delegated");
    };
    let msg = err.to_string();
    assert!(msg.contains("input_ids") && msg.contains("--shape"), "{msg}");
}

#[test]
fn a_cache_of_the_wrong_head_size_is_an_error() {
    let int8 = compile(&dynamic_int8(&kv_graph()), PartitionMode::All);
    let ids = tokens(1, 4);
    let mut past = empty_cache();
    past[0] = Tensor::from_f32(
        vec![1, KV_HEADS, 2, HEAD + 1],
        vec![0.0; 2 * KV_HEADS * (HEAD + 1)],
    )
    .unwrap();
    let Err(err) = int8.execute(&step_inputs(&ids, 2, past)) else {
        panic!("a cache of the wrong head size was accepted");
    };
    assert!(!err.to_string().is_empty());
}

/// The C API host's loop: one program, compiled without fixing any shape, fed its own
/// `present.*` outputs back as `past_key_values.*` while greedy decoding.
#[test]
fn the_c_api_compiles_a_dynamic_decoder_once_and_greedy_decodes_with_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let qdq_path = dir.path().join("llama_kv_dyn.onnx");
    xq::onnx::save_file(&dynamic_int8(&kv_graph()), &qdq_path).unwrap();
    let m = load_model_file(&qdq_path);
    // SAFETY: all-zero bytes are a valid config; `xq_program_config_init` fills the defaults.
    let mut config: xq_program_config = unsafe { std::mem::zeroed() };
    // SAFETY: `config` is writable for its size.
    ok(unsafe { xq_program_config_init(&mut config, std::mem::size_of::<xq_program_config>()) });
    config.threads = 2;
    let mut p = null_mut();
    // SAFETY: live model, initialized config, writable out.
    ok(unsafe { xq_program_compile_with_config(m, &config, &mut p) });

    let prompt = tokens(2, 6);
    let new_tokens = 10;
    let capacity = prompt.len() + new_tokens;
    // Two cache buffers per layer part, swapped each step: the outputs of one call are the
    // inputs of the next.
    let cache_len = KV_HEADS * capacity * HEAD;
    let mut caches = vec![vec![vec![0f32; cache_len]; 2 * LAYERS]; 2];
    let mut cache_dims = [[[1i64, KV_HEADS as i64, 0, HEAD as i64]; 2 * LAYERS]; 2];
    let mut logits = vec![0f32; prompt.len() * VOCAB];
    let mut generated = prompt.clone();
    let mut past_len = 0usize;
    let mut cur = 0usize;
    for step in 0..new_tokens {
        let mut ids: Vec<i64> = generated[past_len..].to_vec();
        let s = ids.len();
        let mut mask = vec![1i64; past_len + s];
        let mut positions: Vec<i64> = (past_len as i64..(past_len + s) as i64).collect();
        let (mut d_ids, mut d_mask, mut d_pos) = ([1, s as i64], [1, (past_len + s) as i64], [1, s as i64]);
        let (ins, outs) = caches.split_at_mut(1);
        let (src, dst) = if cur == 0 {
            (&mut ins[0], &mut outs[0])
        } else {
            (&mut outs[0], &mut ins[0])
        };
        let (dims_in, dims_out) = cache_dims.split_at_mut(1);
        let (src_dims, dst_dims) = if cur == 0 {
            (&mut dims_in[0], &mut dims_out[0])
        } else {
            (&mut dims_out[0], &mut dims_in[0])
        };
        let mut inputs = vec![
            i64_tensor(&mut d_ids, &mut ids),
            i64_tensor(&mut d_mask, &mut mask),
            i64_tensor(&mut d_pos, &mut positions),
        ];
        for (buf, dims) in src.iter_mut().zip(src_dims.iter_mut()) {
            dims[2] = past_len as i64;
            let used = KV_HEADS * past_len * HEAD;
            inputs.push(f32_tensor(dims, &mut buf[..used]));
        }
        let mut d_logits = [0i64; 3];
        let mut outputs = vec![f32_tensor(&mut d_logits, &mut logits[..s * VOCAB])];
        for (buf, dims) in dst.iter_mut().zip(dst_dims.iter_mut()) {
            outputs.push(f32_tensor(dims, buf));
        }
        // SAFETY: live program; descriptors over live buffers of the stated sizes.
        ok(unsafe {
            xq_execute(
                p,
                inputs.as_ptr(),
                inputs.len(),
                outputs.as_mut_ptr(),
                outputs.len(),
            )
        });
        assert_eq!(d_logits, [1, s as i64, VOCAB as i64], "step {step}");
        assert!(
            dst_dims.iter().all(|d| d[2] == (past_len + s) as i64),
            "step {step}: {dst_dims:?}"
        );
        let last = &logits[(s - 1) * VOCAB..s * VOCAB];
        let next = (0..VOCAB).fold(0, |best, i| if last[i] > last[best] { i } else { best });
        generated.push(next as i64);
        past_len += s;
        cur = 1 - cur;
    }
    // SAFETY: handles from this test, freed once.
    unsafe {
        xq_program_free(p);
        xq_model_free(m);
    }

    // The same greedy choices recomputed without the cache, the whole sequence each time.
    let int8 = compile(&dynamic_int8(&kv_graph()), PartitionMode::All);
    let whole = int8
        .execute(&step_inputs(&generated[..capacity - 1], 0, empty_cache()))
        .unwrap();
    let choices = argmax_rows(whole[0].as_f32().unwrap());
    assert_eq!(
        &choices[prompt.len() - 1..],
        generated[prompt.len()..]
            .iter()
            .map(|&t| t as usize)
            .collect::<Vec<_>>(),
        "greedy decoding with the cache chose other tokens than without it"
    );
}
