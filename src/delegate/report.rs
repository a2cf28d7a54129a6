//! The partitioning report: each partition with its nodes, and every compute node left to
//! the interpreter with the reason.

use super::patterns::{Candidate, Reason};
use crate::ir::{Graph, Node};
use crate::program::StepSpec;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A compute node the delegate did not take.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    /// Node name.
    pub node: String,
    /// ONNX op type.
    pub op: &'static str,
    /// Category.
    pub reason: Reason,
    /// Details.
    pub detail: String,
}

impl Refused {
    /// A refusal of `node`.
    pub fn new(node: &Node, reason: Reason, detail: &str) -> Self {
        Refused {
            node: node.name.clone(),
            op: node.op.onnx_name(),
            reason,
            detail: detail.to_string(),
        }
    }
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PartitionInfo {
    /// Names of the compute nodes it lowers, in execution order.
    pub nodes: Vec<String>,
    /// Count of lowered nodes per ONNX op type.
    pub ops: BTreeMap<String, usize>,
}

/// What was delegated and what was not.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Report {
    /// Partitions in order.
    pub partitions: Vec<PartitionInfo>,
    /// Compute nodes left to the interpreter.
    pub refused: Vec<Refused>,
    /// Nodes the interpreter runs (compute and Q/DQ plumbing).
    pub interpreted_nodes: usize,
    /// Nodes in the source graph.
    pub graph_nodes: usize,
}

impl Report {
    /// Builds the report of a lowering.
    pub fn build(
        graph: &Graph,
        cands: &[Candidate],
        partition: &[usize],
        refused: Vec<Refused>,
        steps: &[StepSpec],
    ) -> Report {
        let count = partition.iter().max().map_or(0, |m| m + 1);
        let mut partitions = vec![PartitionInfo::default(); count];
        for (c, &p) in cands.iter().zip(partition) {
            let node = &graph.nodes[c.nodes[0]];
            partitions[p].nodes.push(node.name.clone());
            *partitions[p]
                .ops
                .entry(node.op.onnx_name().to_string())
                .or_default() += 1;
        }
        Report {
            partitions,
            refused,
            interpreted_nodes: steps
                .iter()
                .filter(|s| matches!(s, StepSpec::Interp { .. }))
                .count(),
            graph_nodes: graph.nodes.len(),
        }
    }

    /// Number of delegated compute nodes.
    pub fn delegated_nodes(&self) -> usize {
        self.partitions.iter().map(|p| p.nodes.len()).sum()
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} partition(s), {} compute node(s) delegated, {} compute node(s) not delegated, {} node(s) interpreted (of {})",
            self.partitions.len(),
            self.delegated_nodes(),
            self.refused.len(),
            self.interpreted_nodes,
            self.graph_nodes
        );
        for (i, p) in self.partitions.iter().enumerate() {
            let ops: Vec<String> = p.ops.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            let _ = writeln!(
                s,
                "  partition {i}: {} node(s): {}",
                p.nodes.len(),
                ops.join(", ")
            );
        }
        for r in &self.refused {
            let _ = writeln!(
                s,
                "  not delegated: `{}` ({}): {}: {}",
                r.node,
                r.op,
                r.reason.label(),
                r.detail
            );
        }
        s
    }
}
