//! The partitioning report as data: why a node was not delegated ([`Reason`]), one record
//! per compute node ([`ReportNode`]) and the counts of the text report ([`ReportData`]).
//!
//! The delegate writes it while lowering; the program file stores it in its own optional
//! section ([`ReportData::encode`] / [`ReportData::decode`]), so a host can list every node
//! with its partition or its reason ([`ReportData::json`] gives it as JSON).
//!
//! Reason codes are part of the file format and of the C API: they are never renumbered and
//! new ones are only appended, so a reader must accept codes it does not know.

use super::codec::{Dec, Enc};
use crate::{Error, Result};
use std::fmt::Write;

/// Why a node was left to the interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No int8 kernel implements the operator.
    UnsupportedOp,
    /// An operand has an element type the kernels do not take.
    Dtype,
    /// A shape is unknown or not supported (rank, broadcast, axis).
    Shape,
    /// An attribute value is not supported.
    Attribute,
    /// Quantization parameters are missing, per-axis where per-tensor is needed, or differ
    /// where they must be equal.
    QParams,
    /// A weight (or bias) is not a constant.
    NonConstantWeight,
    /// The node's inputs or outputs are not quantized (no DQ before / Q after).
    NotQuantized,
}

impl Reason {
    /// Every reason, in code order (codes 1, 2, ...).
    pub const ALL: [Reason; 7] = [
        Reason::UnsupportedOp,
        Reason::Dtype,
        Reason::Shape,
        Reason::Attribute,
        Reason::QParams,
        Reason::NonConstantWeight,
        Reason::NotQuantized,
    ];

    /// A short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Reason::UnsupportedOp => "unsupported op",
            Reason::Dtype => "dtype",
            Reason::Shape => "shape",
            Reason::Attribute => "attribute",
            Reason::QParams => "qparams",
            Reason::NonConstantWeight => "non-constant weight",
            Reason::NotQuantized => "not quantized",
        }
    }

    /// The stable code of the reason (1 and up; 0 means "delegated", no reason). Codes are
    /// stored in program files and returned by the C API: never renumbered, only appended.
    pub fn code(self) -> u32 {
        match self {
            Reason::UnsupportedOp => 1,
            Reason::Dtype => 2,
            Reason::Shape => 3,
            Reason::Attribute => 4,
            Reason::QParams => 5,
            Reason::NonConstantWeight => 6,
            Reason::NotQuantized => 7,
        }
    }

    /// The reason of a code, if this build knows it.
    pub fn from_code(code: u32) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The name of the reason in the C API and in JSON (`"XQ_REASON_QPARAMS"`).
    pub fn name(self) -> &'static str {
        match self {
            Reason::UnsupportedOp => "XQ_REASON_UNSUPPORTED_OP",
            Reason::Dtype => "XQ_REASON_DTYPE",
            Reason::Shape => "XQ_REASON_SHAPE",
            Reason::Attribute => "XQ_REASON_ATTRIBUTE",
            Reason::QParams => "XQ_REASON_QPARAMS",
            Reason::NonConstantWeight => "XQ_REASON_NON_CONSTANT_WEIGHT",
            Reason::NotQuantized => "XQ_REASON_NOT_QUANTIZED",
        }
    }
}

/// The name of a reason code: `"XQ_REASON_NONE"` for 0, the reason's [`Reason::name`], or
/// `"XQ_UNKNOWN_REASON"` for a code this build does not know (appended by a newer libxq).
pub fn reason_code_name(code: u32) -> &'static str {
    match code {
        0 => "XQ_REASON_NONE",
        c => Reason::from_code(c).map_or("XQ_UNKNOWN_REASON", Reason::name),
    }
}

/// One compute node of the source graph: delegated to a partition, or left to the
/// interpreter for a reason.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportNode {
    /// Node name (may be empty: ONNX does not require names).
    pub name: String,
    /// ONNX op type.
    pub op_type: String,
    /// The partition that lowers it; `None` when it is not delegated.
    pub partition: Option<usize>,
    /// Why it is not delegated, as a [`Reason::code`]; 0 when delegated. A program file of a
    /// newer libxq may hold codes this build does not know.
    pub reason: u32,
    /// Details of the refusal for a user (empty when delegated).
    pub detail: String,
}

impl ReportNode {
    /// The reason, when the node is not delegated and this build knows the code.
    pub fn reason(&self) -> Option<Reason> {
        Reason::from_code(self.reason)
    }
}

/// The partitioning report as data: the counts of the text report's first line, and one
/// record per compute node (delegated or refused) in graph order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ReportData {
    /// Number of partitions.
    pub partitions: usize,
    /// Nodes the interpreter runs (compute and Q/DQ plumbing).
    pub interpreted_nodes: usize,
    /// Nodes in the source graph.
    pub graph_nodes: usize,
    /// The compute nodes, in graph order.
    pub nodes: Vec<ReportNode>,
}

/// Version of the `report_data` section's encoding. A reader skips a section of another
/// version, as if the file predated report data.
pub const REPORT_DATA_ENCODING: u32 = 1;

/// Smallest encoding of one node: three empty strings, the partition and the reason.
const MIN_NODE_BYTES: usize = 8 + 8 + 8 + 8 + 4;

impl ReportData {
    /// Number of delegated compute nodes.
    pub fn delegated_nodes(&self) -> usize {
        self.nodes.iter().filter(|n| n.partition.is_some()).count()
    }

    /// Number of compute nodes left to the interpreter.
    pub fn refused_nodes(&self) -> usize {
        self.nodes.len() - self.delegated_nodes()
    }

    /// The little-endian bytes of the `report_data` section.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.0.extend(REPORT_DATA_ENCODING.to_le_bytes());
        e.u64(self.partitions);
        e.u64(self.interpreted_nodes);
        e.u64(self.graph_nodes);
        e.u64(self.nodes.len());
        for n in &self.nodes {
            e.str(&n.name);
            e.str(&n.op_type);
            e.u64(n.partition.map_or(0, |p| p + 1));
            e.0.extend(n.reason.to_le_bytes());
            e.str(&n.detail);
        }
        e.0
    }

    /// Parses the bytes of a `report_data` section; `None` for an encoding version this build
    /// does not read. Every count is checked against the bytes that remain.
    pub fn decode(bytes: &[u8]) -> Result<Option<ReportData>> {
        // The decoder names the program section in its errors; this is the report's.
        Self::decode_inner(bytes).map_err(|e| match e {
            Error::CorruptFile(m) => {
                let what = m.strip_prefix("program section is corrupt: ").unwrap_or(&m);
                Error::CorruptFile(format!("report_data section is corrupt: {what}"))
            }
            e => e,
        })
    }

    fn decode_inner(bytes: &[u8]) -> Result<Option<ReportData>> {
        let mut d = Dec::new(bytes);
        let version = d.take(4)?;
        if u32::from_le_bytes(version.try_into().expect("4 bytes")) != REPORT_DATA_ENCODING {
            return Ok(None);
        }
        let (partitions, interpreted_nodes, graph_nodes) = (d.u64()?, d.u64()?, d.u64()?);
        let count = d.count(MIN_NODE_BYTES)?;
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            let name = d.str()?;
            let op_type = d.str()?;
            let partition = d.u64()?.checked_sub(1);
            let reason = d.i32()? as u32;
            let detail = d.str()?;
            if partition.is_some() != (reason == 0) {
                return Err(crate::program::codec::corrupt(
                    "a node is both delegated and refused",
                ));
            }
            nodes.push(ReportNode {
                name,
                op_type,
                partition,
                reason,
                detail,
            });
        }
        if !d.is_empty() {
            return Err(crate::program::codec::corrupt("trailing bytes"));
        }
        Ok(Some(ReportData {
            partitions,
            interpreted_nodes,
            graph_nodes,
            nodes,
        }))
    }

    /// The report as a JSON object: `version` (1), the counts, and `nodes`, each with `name`,
    /// `op_type`, `partition` (-1: not delegated), `reason` (the code), `reason_name` and
    /// `detail`. Object keys are only ever added.
    pub fn json(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"version\": 1, \"partitions\": {}, \"delegated_nodes\": {}, \"refused_nodes\": {}, \
             \"interpreted_nodes\": {}, \"graph_nodes\": {}, \"nodes\": [",
            self.partitions,
            self.delegated_nodes(),
            self.refused_nodes(),
            self.interpreted_nodes,
            self.graph_nodes
        );
        for (i, n) in self.nodes.iter().enumerate() {
            s.push_str(if i == 0 { "\n  " } else { ",\n  " });
            s.push_str("{\"name\": ");
            json_string(&mut s, &n.name);
            s.push_str(", \"op_type\": ");
            json_string(&mut s, &n.op_type);
            let partition = n.partition.map_or(-1, |p| p as i64);
            let _ = write!(
                s,
                ", \"partition\": {partition}, \"reason\": {}, \"reason_name\": ",
                n.reason
            );
            json_string(&mut s, reason_code_name(n.reason));
            s.push_str(", \"detail\": ");
            json_string(&mut s, &n.detail);
            s.push('}');
        }
        s.push_str(if self.nodes.is_empty() { "]}\n" } else { "\n]}\n" });
        s
    }
}

/// Appends `v` as a JSON string: quotes, backslashes and control characters escaped (RFC
/// 8259); everything else, non-ASCII included, is written as UTF-8.
fn json_string(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReportData {
        ReportData {
            partitions: 2,
            interpreted_nodes: 3,
            graph_nodes: 9,
            nodes: vec![
                ReportNode {
                    name: "conv".into(),
                    op_type: "Conv".into(),
                    partition: Some(0),
                    reason: 0,
                    detail: String::new(),
                },
                ReportNode {
                    name: "po\"ol\\\n\u{1}é".into(),
                    op_type: "MaxPool".into(),
                    partition: None,
                    reason: Reason::QParams.code(),
                    detail: "scales differ".into(),
                },
                ReportNode {
                    name: "fc".into(),
                    op_type: "Gemm".into(),
                    partition: Some(1),
                    reason: 0,
                    detail: String::new(),
                },
            ],
        }
    }

    #[test]
    fn codes_are_stable_and_dense() {
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(r.code() as usize, i + 1);
            assert_eq!(Reason::from_code(r.code()), Some(r));
            assert_eq!(reason_code_name(r.code()), r.name());
        }
        assert_eq!(Reason::from_code(0), None);
        assert_eq!(reason_code_name(0), "XQ_REASON_NONE");
        assert_eq!(reason_code_name(99), "XQ_UNKNOWN_REASON");
    }

    #[test]
    fn encoding_round_trips() {
        let r = sample();
        assert_eq!(ReportData::decode(&r.encode()).unwrap(), Some(r.clone()));
        assert_eq!((r.delegated_nodes(), r.refused_nodes()), (2, 1));
        let empty = ReportData::default();
        assert_eq!(ReportData::decode(&empty.encode()).unwrap(), Some(empty));
    }

    #[test]
    fn another_version_is_skipped() {
        let mut b = sample().encode();
        b[0] = 2;
        assert_eq!(ReportData::decode(&b).unwrap(), None);
    }

    #[test]
    fn truncated_and_inconsistent_bytes_are_corrupt() {
        let b = sample().encode();
        for n in 0..b.len() {
            let e = ReportData::decode(&b[..n]).unwrap_err();
            assert!(
                matches!(&e, Error::CorruptFile(m) if m.starts_with("report_data section is corrupt")),
                "{n}: {e}"
            );
        }
        let mut trailing = b.clone();
        trailing.push(0);
        assert!(ReportData::decode(&trailing).is_err());
        let mut r = sample();
        r.nodes[0].reason = 3;
        assert!(ReportData::decode(&r.encode()).is_err());
        let mut huge = b[..28].to_vec();
        huge.extend(u64::MAX.to_le_bytes());
        assert!(ReportData::decode(&huge).is_err());
    }

    #[test]
    fn json_escapes_strings() {
        let j = sample().json();
        assert!(j.starts_with("{\"version\": 1, \"partitions\": 2, \"delegated_nodes\": 2"));
        assert!(j.contains(r#""name": "po\"ol\\\n\u0001é""#), "{j}");
        assert!(j.contains(r#""partition": -1, "reason": 5, "reason_name": "XQ_REASON_QPARAMS""#));
        assert_eq!(ReportData::default().json(), "{\"version\": 1, \"partitions\": 0, \"delegated_nodes\": 0, \"refused_nodes\": 0, \"interpreted_nodes\": 0, \"graph_nodes\": 0, \"nodes\": []}\n");
    }
}
