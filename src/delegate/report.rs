//! The partitioning report: each partition with its nodes, and every compute node left to
//! the interpreter with the reason; as text, and as the data a program carries
//! ([`Report::data`]).

use super::patterns::{Candidate, Reason};
use crate::ir::{Graph, Node};
use crate::program::{ReportData, ReportNode, StepSpec};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A compute node the delegate did not take.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    /// Index of the node in the graph.
    pub index: usize,
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
    /// A refusal of `node`, the graph's node `index`.
    pub fn new(index: usize, node: &Node, reason: Reason, detail: &str) -> Self {
        Refused {
            index,
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
    /// Graph indices of the same nodes.
    pub indices: Vec<usize>,
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
            partitions[p].indices.push(c.nodes[0]);
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

    /// The report as data: the counts, and one record per compute node (delegated or
    /// refused) in graph order, with the same details as [`Report::text`].
    pub fn data(&self, graph: &Graph) -> ReportData {
        let op_type = |i: usize| graph.nodes.get(i).map_or("", |n| n.op.onnx_name()).to_string();
        let mut nodes: Vec<(usize, ReportNode)> = Vec::new();
        for (p, info) in self.partitions.iter().enumerate() {
            for (&i, name) in info.indices.iter().zip(&info.nodes) {
                let node = ReportNode {
                    name: name.clone(),
                    op_type: op_type(i),
                    partition: Some(p),
                    reason: 0,
                    detail: String::new(),
                };
                nodes.push((i, node));
            }
        }
        for r in &self.refused {
            let node = ReportNode {
                name: r.node.clone(),
                op_type: r.op.to_string(),
                partition: None,
                reason: r.reason.code(),
                detail: r.detail.clone(),
            };
            nodes.push((r.index, node));
        }
        nodes.sort_by_key(|(i, _)| *i);
        ReportData {
            partitions: self.partitions.len(),
            interpreted_nodes: self.interpreted_nodes,
            graph_nodes: self.graph_nodes,
            nodes: nodes.into_iter().map(|(_, n)| n).collect(),
        }
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
