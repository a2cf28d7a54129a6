//! The partitioning report as data through the C API, called as a C host would: on the
//! digits CNN with a MaxPool whose output qparams differ from its input's (refused with
//! `XQ_REASON_QPARAMS`), the node records, the summary and the JSON agree with the text
//! report; they survive save → load; a program file without the report data section keeps
//! its text report and answers the data queries with `XQ_ERROR_UNSUPPORTED`.

mod common;

use common::c_api::*;
use std::ffi::c_void;
use std::mem::size_of;
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use xq::ffi::*;
use xq::ir::{Op, Tensor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed QDQ digits CNN with the MaxPool's output requantized to another scale, as
/// ONNX bytes (the refusal of `delegate_partition.rs`).
fn refused_maxpool_onnx() -> Vec<u8> {
    let mut g = xq::onnx::load_file(root().join("tests/fixtures/delegate/digits_cnn_qdq.onnx")).unwrap();
    let pool = g
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::MaxPool(_)))
        .unwrap();
    let pool_out = g.nodes[pool].outputs[0].clone();
    let q = g.consumers(&pool_out)[0];
    let old_scale = g.nodes[q].inputs[1].clone();
    let s = g.initializers[&old_scale].as_f32().unwrap()[0];
    g.initializers
        .insert("other_scale".into(), Tensor::scalar_f32(s * 1.5));
    g.nodes[q].inputs[1] = "other_scale".into();
    let dq = g.consumers(&g.nodes[q].outputs[0].clone())[0];
    g.nodes[dq].inputs[1] = "other_scale".into();
    xq::onnx::to_bytes(&g).unwrap()
}

/// Compiles the refused-MaxPool model with the defaults.
fn compile_refused_maxpool() -> *mut xq_program {
    let bytes = refused_maxpool_onnx();
    let mut m = null_mut();
    // SAFETY: `bytes` readable for its length; writable out.
    ok(unsafe { xq_model_load_buffer(bytes.as_ptr() as *const c_void, bytes.len(), &mut m) });
    let dims = [1i64, 1, 8, 8];
    // SAFETY: live model; NUL-terminated name; `dims` holds 4 values.
    ok(unsafe { xq_model_fix_input_shape(m, c"input".as_ptr(), dims.as_ptr(), 4) });
    let mut p = null_mut();
    // SAFETY: live model; NULL config (defaults); writable out.
    ok(unsafe { xq_program_compile_with_config(m, null(), &mut p) });
    // SAFETY: live model, freed once.
    unsafe { xq_model_free(m) };
    p
}

fn summary(p: *const xq_program) -> xq_report_summary {
    let mut s = xq_report_summary {
        struct_size: size_of::<xq_report_summary>(),
        ..Default::default()
    };
    // SAFETY: live program; `s` writable for its struct_size.
    ok(unsafe { xq_program_report_summary(p, &mut s) });
    assert_eq!(s.struct_size, size_of::<xq_report_summary>());
    s
}

/// A node record with owned strings.
#[derive(Clone, Debug, PartialEq)]
struct Node {
    name: String,
    op_type: String,
    partition: i32,
    reason: i32,
    detail: String,
}

fn empty_node() -> xq_report_node {
    xq_report_node {
        struct_size: size_of::<xq_report_node>(),
        name: null(),
        op_type: null(),
        partition: 0,
        reason: 0,
        detail: null(),
    }
}

fn nodes(p: *const xq_program) -> Vec<Node> {
    let mut count = 0;
    // SAFETY: live program; writable out.
    ok(unsafe { xq_program_report_node_count(p, &mut count) });
    (0..count)
        .map(|i| {
            let mut n = empty_node();
            // SAFETY: live program; `n` writable for its struct_size.
            ok(unsafe { xq_program_report_node(p, i, &mut n) });
            Node {
                name: text(n.name),
                op_type: text(n.op_type),
                partition: n.partition,
                reason: n.reason,
                detail: text(n.detail),
            }
        })
        .collect()
}

fn json(p: *const xq_program) -> String {
    let mut j = null();
    // SAFETY: live program; writable out.
    ok(unsafe { xq_program_report_json(p, &mut j) });
    text(j)
}

/// Everything the data queries return, for comparisons across save → load.
fn all_data(p: *const xq_program) -> (xq_report_summary, Vec<Node>, String) {
    (summary(p), nodes(p), json(p))
}

fn free(p: *mut xq_program) {
    // SAFETY: a live program, freed once by each caller.
    unsafe { xq_program_free(p) };
}

#[test]
fn refused_maxpool_record_matches_the_text_report() {
    let p = compile_refused_maxpool();
    let report = report_text(p);
    let s = summary(p);
    let first = report.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "{} partition(s), {} compute node(s) delegated, {} compute node(s) not delegated, \
             {} node(s) interpreted (of {})",
            s.partitions, s.delegated_nodes, s.refused_nodes, s.interpreted_nodes, s.graph_nodes
        )
    );
    assert_eq!((s.partitions, s.refused_nodes), (2, 1), "{report}");

    let records = nodes(p);
    assert_eq!(records.len(), s.delegated_nodes + s.refused_nodes);
    let refused: Vec<&Node> = records.iter().filter(|n| n.partition < 0).collect();
    assert_eq!(refused.len(), 1);
    let pool = refused[0];
    assert_eq!(pool.op_type, "MaxPool");
    assert_eq!(pool.reason, xq_reason::XQ_REASON_QPARAMS as i32);
    assert_eq!(text(xq_reason_name(pool.reason)), "XQ_REASON_QPARAMS");
    assert!(!pool.detail.is_empty());
    let line = format!(
        "  not delegated: `{}` ({}): qparams: {}",
        pool.name, pool.op_type, pool.detail
    );
    assert!(report.lines().any(|l| l == line), "no line {line:?} in\n{report}");

    // Delegated records: no reason, partitions in range, and per partition the same node
    // count as the text's "partition i: n node(s)" line.
    for n in records.iter().filter(|n| n.partition >= 0) {
        assert_eq!(
            (n.reason, n.detail.as_str()),
            (xq_reason::XQ_REASON_NONE as i32, "")
        );
        assert!((n.partition as usize) < s.partitions);
    }
    for i in 0..s.partitions {
        let count = records.iter().filter(|n| n.partition == i as i32).count();
        let prefix = format!("  partition {i}: {count} node(s): ");
        assert!(
            report.lines().any(|l| l.starts_with(&prefix)),
            "{prefix:?} in\n{report}"
        );
    }
    // Graph order: the pool sits between the two partitions.
    let at = records.iter().position(|n| n.partition < 0).unwrap();
    assert!(records[..at].iter().all(|n| n.partition == 0));
    assert!(records[at + 1..].iter().all(|n| n.partition == 1));
    free(p);
}

#[test]
fn json_parses_and_equals_the_accessors() {
    let p = compile_refused_maxpool();
    let (s, records, j) = all_data(p);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_else(|e| panic!("{e}:\n{j}"));
    assert_eq!(v["version"], 1);
    for (key, want) in [
        ("partitions", s.partitions),
        ("delegated_nodes", s.delegated_nodes),
        ("refused_nodes", s.refused_nodes),
        ("interpreted_nodes", s.interpreted_nodes),
        ("graph_nodes", s.graph_nodes),
    ] {
        assert_eq!(v[key].as_u64(), Some(want as u64), "{key}");
    }
    let arr = v["nodes"].as_array().unwrap();
    assert_eq!(arr.len(), records.len());
    for (o, n) in arr.iter().zip(&records) {
        let parsed = Node {
            name: o["name"].as_str().unwrap().into(),
            op_type: o["op_type"].as_str().unwrap().into(),
            partition: o["partition"].as_i64().unwrap() as i32,
            reason: o["reason"].as_i64().unwrap() as i32,
            detail: o["detail"].as_str().unwrap().into(),
        };
        assert_eq!(&parsed, n);
        assert_eq!(o["reason_name"].as_str().unwrap(), text(xq_reason_name(n.reason)));
    }
    free(p);
}

#[test]
fn report_data_survives_save_and_load() {
    let p = compile_refused_maxpool();
    let want = all_data(p);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refused.xq");
    let c_path = c_path(&path);
    // SAFETY: live program; NUL-terminated path.
    ok(unsafe { xq_program_save(p, c_path.as_ptr()) });
    let (mut from_file, mut from_buffer) = (null_mut(), null_mut());
    // SAFETY: NUL-terminated path; NULL config; writable out.
    ok(unsafe { xq_program_load_file_with_config(c_path.as_ptr(), null(), &mut from_file) });
    let bytes = std::fs::read(&path).unwrap();
    // SAFETY: `bytes` readable for its length; NULL config; writable out.
    ok(unsafe {
        xq_program_load_buffer_with_config(
            bytes.as_ptr() as *const c_void,
            bytes.len(),
            null(),
            &mut from_buffer,
        )
    });
    for loaded in [from_file, from_buffer] {
        assert_eq!(all_data(loaded), want);
        assert_eq!(report_text(loaded), report_text(p));
        free(loaded);
    }
    free(p);
}

/// Asserts every data query of `p` fails with `XQ_ERROR_UNSUPPORTED`, naming the cause.
fn data_is_unsupported(p: *const xq_program) {
    let mut s = xq_report_summary {
        struct_size: size_of::<xq_report_summary>(),
        ..Default::default()
    };
    let (mut count, mut n, mut j) = (0, empty_node(), null());
    // SAFETY: live program; writable outs (each call fails before writing).
    let statuses = unsafe {
        [
            xq_program_report_summary(p, &mut s),
            xq_program_report_node_count(p, &mut count),
            xq_program_report_node(p, 0, &mut n),
            xq_program_report_json(p, &mut j),
        ]
    };
    for status in statuses {
        assert_eq!(status, xq_status::XQ_ERROR_UNSUPPORTED);
    }
    // SAFETY: as above.
    let msg = fails(
        unsafe { xq_program_report_json(p, &mut j) },
        xq_status::XQ_ERROR_UNSUPPORTED,
    );
    assert!(msg.contains("predates report data; recompile it"), "{msg}");
    assert!(
        j.is_null() && count == 0 && n.name.is_null(),
        "nothing written on failure"
    );
}

/// Loads `bytes` as a program (copied buffer).
fn load_buffer(bytes: &[u8]) -> *mut xq_program {
    let mut p = null_mut();
    // SAFETY: `bytes` readable for its length; NULL config; writable out.
    ok(unsafe {
        xq_program_load_buffer_with_config(bytes.as_ptr() as *const c_void, bytes.len(), null(), &mut p)
    });
    p
}

#[test]
fn files_without_the_section_keep_the_text_and_refuse_the_data() {
    // A file saved, then stripped of its report data section (kind 5).
    let p = compile_refused_maxpool();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.xq");
    let c_path = c_path(&path);
    // SAFETY: live program; NUL-terminated path.
    ok(unsafe { xq_program_save(p, c_path.as_ptr()) });
    let full = std::fs::read(&path).unwrap();
    let reader = xq::format::ContainerReader::parse(&full).unwrap();
    assert!(reader
        .sections()
        .iter()
        .any(|s| s.kind == 5 && s.name == "report_data"));
    let mut w = xq::format::ContainerWriter::new();
    for s in reader.sections().iter().filter(|s| s.kind != 5) {
        w.add(s.clone()).unwrap();
    }
    let stripped = load_buffer(&w.to_bytes());
    assert_eq!(report_text(stripped), report_text(p));
    data_is_unsupported(stripped);
    free(stripped);
    free(p);

    // A committed program file written before the section existed.
    let old = root().join("fuzz/corpus/program_load/digits_cnn_qdq.xq");
    let bytes = std::fs::read(&old).unwrap();
    assert!(xq::format::ContainerReader::parse(&bytes)
        .unwrap()
        .sections()
        .iter()
        .all(|s| s.kind != 5));
    let p = load_buffer(&bytes);
    assert!(report_text(p).contains("partition(s)"));
    data_is_unsupported(p);
    free(p);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let p = compile_refused_maxpool();
    let mut count = 0;
    // SAFETY: live program; writable out.
    ok(unsafe { xq_program_report_node_count(p, &mut count) });

    let mut n = empty_node();
    // SAFETY: live program; `n` writable for its struct_size.
    let msg = fails(
        unsafe { xq_program_report_node(p, count, &mut n) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(msg.contains("index") && msg.contains("out of range"), "{msg}");
    // SAFETY: as above.
    fails(
        unsafe { xq_program_report_node(p, usize::MAX, &mut n) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(n.name.is_null(), "nothing written on failure");

    // struct_size below the struct (or absurdly large) is refused before anything is written.
    for size in [0, 8, size_of::<xq_report_node>() - 1, 1 << 20] {
        let mut small = empty_node();
        small.struct_size = size;
        // SAFETY: live program; `small` is a whole struct, so any accepted size below it is
        // writable (the call refuses these sizes before writing).
        let msg = fails(
            unsafe { xq_program_report_node(p, 0, &mut small) },
            xq_status::XQ_ERROR_INVALID_ARGUMENT,
        );
        assert!(msg.contains("struct_size"), "{msg}");
        assert!(small.name.is_null());
    }
    let mut s = xq_report_summary {
        struct_size: 16,
        ..Default::default()
    };
    // SAFETY: live program; the size is refused before any write.
    let msg = fails(
        unsafe { xq_program_report_summary(p, &mut s) },
        xq_status::XQ_ERROR_INVALID_ARGUMENT,
    );
    assert!(msg.contains("struct_size"), "{msg}");
    assert_eq!(s.partitions, 0);

    // NULL handles and outs.
    // SAFETY: NULL is refused before any use.
    unsafe {
        fails(
            xq_program_report_summary(null(), &mut s),
            xq_status::XQ_ERROR_NULL_POINTER,
        );
        fails(
            xq_program_report_summary(p, null_mut()),
            xq_status::XQ_ERROR_NULL_POINTER,
        );
        fails(
            xq_program_report_node_count(null(), &mut count),
            xq_status::XQ_ERROR_NULL_POINTER,
        );
        fails(
            xq_program_report_node_count(p, null_mut()),
            xq_status::XQ_ERROR_NULL_POINTER,
        );
        fails(
            xq_program_report_node(null(), 0, &mut n),
            xq_status::XQ_ERROR_NULL_POINTER,
        );
        fails(
            xq_program_report_node(p, 0, null_mut()),
            xq_status::XQ_ERROR_NULL_POINTER,
        );
        let mut j = null();
        fails(
            xq_program_report_json(null(), &mut j),
            xq_status::XQ_ERROR_NULL_POINTER,
        );
        fails(
            xq_program_report_json(p, null_mut()),
            xq_status::XQ_ERROR_NULL_POINTER,
        );
    }
    // Unknown reason codes have a name too.
    assert_eq!(text(xq_reason_name(-1)), "XQ_UNKNOWN_REASON");
    assert_eq!(text(xq_reason_name(1000)), "XQ_UNKNOWN_REASON");
    free(p);
}

/// A newer caller's struct (with a field this libxq does not know) is accepted: the known
/// fields are written and the rest of its bytes zeroed.
#[test]
fn larger_structs_get_their_unknown_tail_zeroed() {
    #[repr(C)]
    struct Grown {
        node: xq_report_node,
        future: u64,
    }
    let p = compile_refused_maxpool();
    let mut g = Grown {
        node: xq_report_node {
            struct_size: size_of::<Grown>(),
            ..empty_node()
        },
        future: u64::MAX,
    };
    // SAFETY: live program; `g` is writable for `size_of::<Grown>()` bytes.
    ok(unsafe { xq_program_report_node(p, 0, &mut g.node) });
    assert_eq!(g.node.struct_size, size_of::<Grown>());
    assert_eq!(g.future, 0);
    assert!(!text(g.node.name).is_empty() || !text(g.node.op_type).is_empty());
    free(p);
}
