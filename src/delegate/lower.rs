//! Lowering: turns the matched patterns of a QDQ graph into a [`ProgramSpec`] — int8 values,
//! kernel steps, partition-boundary conversions and the nodes left to the interpreter — in
//! the graph's topological order.

use super::patterns::{Candidate, DynamicCandidate, Matcher, Reason};
use super::report::{Refused, Report};
use crate::ir::op::UnaryOp;
use crate::ir::{Graph, Op, TensorInfo};
use crate::program::steps::resize::ResizeTaps;
use crate::program::{
    ConvSpec, FullyConnectedSpec, Im2colSpec, KernelSpec, ProgramSpec, ReshapeSpec, StepSpec, ValueSpec,
};
use crate::qscheme::QWeights;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet};

/// How the graph is cut into partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionMode {
    /// Every supported pattern is delegated; connected patterns share one partition
    /// (int8 tensors flow between them in the arena).
    #[default]
    All,
    /// Every supported pattern is delegated as its own partition with `f32` boundaries
    /// (for debugging and per-operator comparisons).
    PerOp,
    /// Nothing is delegated: the whole graph runs in the interpreter.
    None,
}

/// Input channels below which a dense convolution is lowered as im2col + GEMM: with few
/// channels per tap, one dense row of all taps feeds the GEMM microkernel far better than
/// one short segment per tap.
const SMALL_CHANNELS: usize = 8;

/// Rewrites a dense convolution with few input channels (e.g. an RGB stem) into an
/// [`KernelSpec::Im2col`] step and a fully connected step over its rows.
fn small_channel_conv_as_gemm(
    k: &KernelSpec,
    values: &mut Vec<ValueSpec>,
) -> Option<(KernelSpec, KernelSpec)> {
    let KernelSpec::Conv(ConvSpec {
        input,
        output,
        window,
        groups: 1,
        depthwise: false,
        weights,
        bias,
        range,
    }) = k
    else {
        return None;
    };
    let x = &values[*input];
    let y = &values[*output];
    let c = x.dims[1];
    let taps = window.kernel.0 * window.kernel.1;
    if c >= SMALL_CHANNELS || taps == 1 || y.dims.len() != 4 {
        return None;
    }
    let k_real = taps * c;
    let k_padded = k_real.div_ceil(4) * 4;
    let n = y.dims[1];
    let pixels = y.dims[0] * y.dims[2] * y.dims[3];
    let mut w = vec![0i8; n * k_padded];
    for o in 0..n {
        w[o * k_padded..][..k_real].copy_from_slice(&weights.values[o * k_real..][..k_real]);
    }
    values.push(ValueSpec {
        name: format!("{}__xq_im2col", x.name),
        dims: vec![pixels, k_padded],
        q: x.q,
        unsigned: x.unsigned,
    });
    let rows = values.len() - 1;
    Some((
        KernelSpec::Im2col(Im2colSpec {
            input: *input,
            output: rows,
            window: *window,
            k_padded,
        }),
        KernelSpec::FullyConnected(FullyConnectedSpec {
            input: rows,
            output: *output,
            n,
            k: k_padded,
            weights: QWeights::new(w, weights.scales.clone()),
            bias: bias.clone(),
            range: *range,
        }),
    ))
}

/// Rewrites a fully connected step whose input is rank 4 (stored NHWC, while the product
/// runs over the last logical axis, e.g. a linear after a channels-last permute) into
/// logical rows: a reshape into a `[rows, k]` value, the product into `[rows, n]`, and (for
/// a rank-4 output) a reshape back.
fn rank4_fully_connected_as_rows(k: &KernelSpec, values: &mut Vec<ValueSpec>) -> Option<Vec<KernelSpec>> {
    let KernelSpec::FullyConnected(FullyConnectedSpec {
        input,
        output,
        n,
        k: depth,
        ..
    }) = k
    else {
        return None;
    };
    let (x, y) = (values[*input].clone(), values[*output].clone());
    if !x.is_nhwc() || *depth == 0 {
        return None;
    }
    let rows = x.numel() / depth;
    let mut add_value = |base: &ValueSpec, dims: Vec<usize>| {
        values.push(ValueSpec {
            name: format!("{}__xq_rows", base.name),
            dims,
            q: base.q,
            unsigned: base.unsigned,
        });
        values.len() - 1
    };
    let x_rows = add_value(&x, vec![rows, *depth]);
    let y_rows = if y.is_nhwc() {
        Some(add_value(&y, vec![rows, *n]))
    } else {
        None
    };
    let mut product = k.clone();
    if let KernelSpec::FullyConnected(FullyConnectedSpec { input, output, .. }) = &mut product {
        *input = x_rows;
        *output = y_rows.unwrap_or(*output);
    }
    let mut steps = vec![
        KernelSpec::Reshape(ReshapeSpec {
            input: *input,
            output: x_rows,
        }),
        product,
    ];
    if let Some(y_rows) = y_rows {
        steps.push(KernelSpec::Reshape(ReshapeSpec {
            input: y_rows,
            output: *output,
        }));
    }
    Some(steps)
}

/// Smallest union-find for grouping patterns into partitions.
struct Groups(Vec<usize>);

impl Groups {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Partitions and lowers a validated QDQ graph with concrete shapes. A graph without
/// outputs or nodes is refused, and so (unless `mode` is [`PartitionMode::None`], which the
/// interpreter runs at any size) is one whose inputs have unfixed dims.
pub fn lower(graph: &Graph, mode: PartitionMode) -> Result<(ProgramSpec, Report)> {
    check_compilable(graph, mode)?;
    let m = Matcher::new(graph);
    let (matches, refused) = match_patterns(graph, &m, mode);
    let (values, value_of) = pattern_values(graph, &m, &matches.cands)?;
    let partition = partition_patterns(&matches.cands, &value_of, mode);
    let mut emit = Emitter::new(graph, &m, mode, &matches, &value_of, &partition, values);
    for i in 0..graph.nodes.len() {
        emit.node(i);
    }
    let Emitter {
        mut values,
        mut steps,
        fallback_nodes,
        dynamic_partitions,
        extra_interp_steps,
        ..
    } = emit;
    super::move_plan::plan_moves(&mut steps, &mut values);
    let fallback = fallback_graph(graph, fallback_nodes, &steps)?;
    let mut report = Report::build(graph, &matches.cands, &partition, refused, &steps);
    add_exits(&mut report, graph, &matches, &partition);
    report.interpreted_nodes -= extra_interp_steps;
    add_dynamic_partitions(&mut report, graph, dynamic_partitions);
    let spec = ProgramSpec {
        inputs: graph.inputs.clone(),
        outputs: graph.outputs.clone(),
        values,
        steps,
        fallback,
        report: report.text(),
        report_data: Some(report.data(graph)),
    };
    spec.check_dataflow()
        .map_err(|why| Error::InvalidModel(format!("the model cannot be compiled: {why}")))?;
    Ok((spec, report))
}

/// The patterns taken in a graph.
struct Matches {
    /// Per node: covered by a taken pattern (static or dynamic).
    taken: Vec<bool>,
    /// Static patterns, in the order of their compute nodes.
    cands: Vec<Candidate>,
    /// Compute node → index into `cands`.
    cand_at: HashMap<usize, usize>,
    /// Dynamic patterns by their first node.
    dynamic_at: HashMap<usize, DynamicCandidate>,
    /// Resize nodes that are a partition's exit: the int8 tensor a pattern writes that each
    /// resizes into its float output, and the taps.
    exits: HashMap<usize, (String, ResizeTaps)>,
}

/// Matches the nodes of `graph` against the patterns (none with [`PartitionMode::None`]):
/// dynamic patterns first, from their DynamicQuantizeLinear, then static ones in node order;
/// a pattern is taken only when none of its nodes is taken yet. Returns the patterns taken
/// and the refused nodes that no pattern covers.
fn match_patterns(graph: &Graph, m: &Matcher, mode: PartitionMode) -> (Matches, Vec<Refused>) {
    let n_nodes = graph.nodes.len();
    let mut matches = Matches {
        taken: vec![false; n_nodes],
        cands: Vec::new(),
        cand_at: HashMap::new(),
        dynamic_at: HashMap::new(),
        exits: HashMap::new(),
    };
    let taken = &mut matches.taken;
    if mode != PartitionMode::None {
        for i in 0..n_nodes {
            if matches!(graph.nodes[i].op, Op::DynamicQuantizeLinear) {
                if let Ok(c) = m.match_dynamic(i) {
                    if c.nodes.iter().all(|&n| !taken[n]) {
                        for &n in &c.nodes {
                            taken[n] = true;
                        }
                        matches.dynamic_at.insert(c.nodes[0], c);
                    }
                }
            }
        }
    }
    let mut refused = Vec::new();
    for i in 0..n_nodes {
        let node = &graph.nodes[i];
        if taken[i] || matches!(node.op, Op::QuantizeLinear(_) | Op::DequantizeLinear(_)) {
            continue;
        }
        let matched = if mode == PartitionMode::None {
            Err(super::patterns::Refusal {
                reason: Reason::UnsupportedOp,
                detail: "delegation disabled".into(),
            })
        } else {
            m.match_node(i).and_then(|c| concrete_values(graph, c))
        };
        match matched {
            Ok(c) if c.nodes.iter().all(|&n| !taken[n]) => {
                for &n in &c.nodes {
                    taken[n] = true;
                }
                matches.cand_at.insert(i, matches.cands.len());
                matches.cands.push(c);
            }
            Ok(_) => refused.push((
                i,
                Refused::new(
                    i,
                    node,
                    Reason::NotQuantized,
                    "output shared with another pattern",
                ),
            )),
            Err(r) => refused.push((i, Refused::new(i, node, r.reason, &r.detail))),
        }
    }
    // A refused Resize whose float output stays float reads a pattern's output through its
    // DequantizeLinear: it becomes that partition's exit.
    let made: HashSet<&str> = matches
        .cands
        .iter()
        .flat_map(|c| c.outputs().map(|(t, _)| t.as_str()))
        .collect();
    for (i, _) in &refused {
        if matches!(graph.nodes[*i].op, Op::Resize(_)) && !matches.taken[*i] {
            if let Ok((t, taps)) = m.resize_exit(&graph.nodes[*i]) {
                if made.contains(t.as_str()) {
                    matches.taken[*i] = true;
                    matches.exits.insert(*i, (t, taps));
                }
            }
        }
    }
    // A node refused on its own may be covered by a later pattern (a weight's Transpose).
    let refused = refused
        .into_iter()
        .filter(|(i, _)| !matches.taken[*i])
        .map(|(_, r)| r)
        .collect();
    (matches, refused)
}

/// The values of the patterns: every int8 tensor a pattern reads or writes, in pattern
/// order, with the qparams of the node that makes it; and each tensor's value index.
fn pattern_values(
    graph: &Graph,
    m: &Matcher,
    cands: &[Candidate],
) -> Result<(Vec<ValueSpec>, HashMap<String, usize>)> {
    let mut values: Vec<ValueSpec> = Vec::new();
    let mut value_of: HashMap<String, usize> = HashMap::new();
    for t in cands
        .iter()
        .flat_map(|c| c.inputs.iter().chain(c.outputs().map(|(t, _)| t)))
    {
        if value_of.contains_key(t) {
            continue;
        }
        let producer = m
            .producer(t)
            .ok_or_else(|| Error::Internal(format!("int8 tensor `{t}` has no producer")))?;
        let q = m.node_qparams(producer).map_err(|r| Error::Internal(r.detail))?;
        let dims = graph
            .tensor_info(t)
            .and_then(|i| i.concrete_shape())
            .ok_or_else(|| Error::Internal(format!("shape of `{t}` unknown")))?;
        values.push(ValueSpec {
            name: t.clone(),
            dims,
            q,
            unsigned: m.node_is_unsigned(producer),
        });
        value_of.insert(t.clone(), values.len() - 1);
    }
    Ok((values, value_of))
}

/// The partition of each pattern, numbered in pattern order: with [`PartitionMode::All`]
/// patterns connected through values share one; otherwise each pattern has its own.
fn partition_patterns(
    cands: &[Candidate],
    value_of: &HashMap<String, usize>,
    mode: PartitionMode,
) -> Vec<usize> {
    let mut groups = Groups((0..cands.len()).collect());
    if mode == PartitionMode::All {
        let mut touching: HashMap<usize, usize> = HashMap::new();
        for (ci, c) in cands.iter().enumerate() {
            for t in c.inputs.iter().chain(c.outputs().map(|(t, _)| t)) {
                if let Some(&other) = touching.get(&value_of[t]) {
                    groups.union(ci, other);
                } else {
                    touching.insert(value_of[t], ci);
                }
            }
        }
    }
    let mut partition_of_root: BTreeMap<usize, usize> = BTreeMap::new();
    let mut partition = vec![0usize; cands.len()];
    for (ci, slot) in partition.iter_mut().enumerate() {
        let root = groups.find(ci);
        let next = partition_of_root.len();
        *slot = *partition_of_root.entry(root).or_insert(next);
    }
    partition
}

/// Writes the steps of a graph, node by node in topological order: a pattern's kernel steps
/// at its compute node, boundary conversions at the quantize nodes, and interpreter steps
/// for the rest.
struct Emitter<'a> {
    graph: &'a Graph,
    m: &'a Matcher<'a>,
    mode: PartitionMode,
    matches: &'a Matches,
    value_of: &'a HashMap<String, usize>,
    partition: &'a [usize],
    /// The int8 tensors patterns write.
    kernel_made: HashSet<&'a str>,
    /// The values so far (per-op mode adds one per re-entered input).
    values: Vec<ValueSpec>,
    /// The steps so far.
    steps: Vec<StepSpec>,
    /// The interpreter's nodes so far.
    fallback_nodes: Vec<crate::ir::Node>,
    /// Names of the interpreter's nodes (unique).
    node_names: HashSet<String>,
    /// Per-op mode: tensors already dequantized at their producer's exit.
    per_op_exits: HashSet<String>,
    /// Each dynamic pattern's linear node and covered nodes.
    dynamic_partitions: Vec<(usize, Vec<usize>)>,
    /// Interpreter steps beyond one per graph node (expanded legacy Softmax).
    extra_interp_steps: usize,
}

impl<'a> Emitter<'a> {
    fn new(
        graph: &'a Graph,
        m: &'a Matcher<'a>,
        mode: PartitionMode,
        matches: &'a Matches,
        value_of: &'a HashMap<String, usize>,
        partition: &'a [usize],
        values: Vec<ValueSpec>,
    ) -> Self {
        Emitter {
            graph,
            m,
            mode,
            matches,
            value_of,
            partition,
            kernel_made: matches
                .cands
                .iter()
                .flat_map(|c| c.outputs().map(|(t, _)| t.as_str()))
                .collect(),
            values,
            steps: Vec::new(),
            fallback_nodes: Vec::new(),
            node_names: HashSet::new(),
            per_op_exits: HashSet::new(),
            dynamic_partitions: Vec::new(),
            extra_interp_steps: 0,
        }
    }

    /// The steps of node `i`.
    fn node(&mut self, i: usize) {
        let matches = self.matches;
        if let Some(c) = matches.dynamic_at.get(&i) {
            self.steps.push(c.step.clone());
            self.dynamic_partitions.push((c.anchor, c.nodes.clone()));
            return;
        }
        if let Some(&ci) = matches.cand_at.get(&i) {
            self.pattern(i, ci);
            return;
        }
        if let Some((t, taps)) = matches.exits.get(&i) {
            let node = &self.graph.nodes[i];
            self.steps.push(StepSpec::ResizeExit {
                node: node.name.clone(),
                value: self.value_of[t],
                tensor: node.outputs[0].clone(),
                resize: taps.clone(),
            });
            return;
        }
        if matches.taken[i] || self.boundary(i) {
            return;
        }
        self.interpreted(i);
    }

    /// Whether a DequantizeLinear node dequantizes value `v` with the value's own qparams
    /// (then it is a dequantize step; with other qparams it runs in the interpreter on the
    /// int8 tensor).
    fn dequantizes_value(&self, node: &crate::ir::Node, v: usize) -> bool {
        let value = &self.values[v];
        matches!(node.op, Op::DequantizeLinear(_))
            && self.m.node_qparams(node).is_ok_and(|q| q == value.q)
            && self.m.node_is_unsigned(node) == value.unsigned
    }

    /// Whether the int8 tensor `t` of value `v` is needed as a tensor: a graph output, or
    /// read by something else than a dequantize step of `v`.
    fn needs_tensor(&self, t: &str, v: usize) -> bool {
        self.graph.is_output(t)
            || self
                .m
                .consumers(t)
                .iter()
                .any(|&c| !self.dequantizes_value(&self.graph.nodes[c], v))
    }

    /// The kernel steps of pattern `ci` at its compute node `i`, and the exit of its output
    /// when something outside reads the int8 tensor.
    fn pattern(&mut self, i: usize, ci: usize) {
        let (graph, matches) = (self.graph, self.matches);
        let c = &matches.cands[ci];
        let ins: Vec<usize> = c.inputs.iter().map(|t| self.pattern_input(ci, t)).collect();
        for (output, drafted) in c.outputs() {
            let out = self.value_of[output];
            // The drafted kernel's inputs are placeholders 0, 1, ... into `ins`.
            let mut kernel = drafted.clone();
            kernel.remap_values(&mut |i| ins[i], &mut |_| out);
            let kernels = match small_channel_conv_as_gemm(&kernel, &mut self.values) {
                Some((im2col, gemm)) => vec![im2col, gemm],
                None => rank4_fully_connected_as_rows(&kernel, &mut self.values)
                    .or_else(|| super::multiplier::multiplier_conv_as_depthwise(&kernel, &mut self.values))
                    .unwrap_or_else(|| vec![kernel]),
            };
            for k in kernels {
                self.steps.push(StepSpec::Kernel {
                    partition: self.partition[ci],
                    node: graph.nodes[i].name.clone(),
                    kernel: k,
                });
            }
            if self.needs_tensor(output, out) {
                self.steps.push(StepSpec::Dequantize {
                    value: out,
                    tensor: output.clone(),
                    int8: true,
                });
            }
        }
    }

    /// The value pattern `ci` reads for its input tensor `t`: the tensor's value or, in
    /// per-op mode for a tensor another pattern makes, a fresh value entered from the `f32`
    /// exit of the producer's partition.
    fn pattern_input(&mut self, ci: usize, t: &String) -> usize {
        let v = self.value_of[t];
        if self.mode != PartitionMode::PerOp || !self.kernel_made.contains(t.as_str()) {
            return v;
        }
        let f32_name = format!("{t}__xq_f32");
        if self.per_op_exits.insert(t.clone()) {
            self.steps.push(StepSpec::Dequantize {
                value: v,
                tensor: f32_name.clone(),
                int8: false,
            });
        }
        let fresh = self.values.len();
        self.values.push(ValueSpec {
            name: format!("{t}__xq_op{ci}"),
            ..self.values[v].clone()
        });
        self.steps.push(StepSpec::Quantize {
            tensor: f32_name,
            value: fresh,
        });
        fresh
    }

    /// The steps of a quantize node at a partition boundary: a QuantizeLinear into a value
    /// (partition entry), a DequantizeLinear of a value with its qparams (partition exit), or
    /// nothing for the DequantizeLinear of a constant only patterns read. False for any other
    /// node.
    fn boundary(&mut self, i: usize) -> bool {
        let (graph, m, matches) = (self.graph, self.m, self.matches);
        let taken = &matches.taken;
        let node = &graph.nodes[i];
        let first_out = node.outputs.first().map(String::as_str).unwrap_or_default();
        let input0 = node.input(0).unwrap_or_default();
        match &node.op {
            Op::QuantizeLinear(_)
                if self.value_of.contains_key(first_out) && !self.kernel_made.contains(first_out) =>
            {
                let value = self.value_of[first_out];
                self.steps.push(StepSpec::Quantize {
                    tensor: input0.to_string(),
                    value,
                });
                if self.needs_tensor(first_out, value) {
                    self.steps.push(StepSpec::Dequantize {
                        value,
                        tensor: first_out.to_string(),
                        int8: true,
                    });
                }
                true
            }
            Op::DequantizeLinear(_)
                if self
                    .value_of
                    .get(input0)
                    .is_some_and(|&v| self.dequantizes_value(node, v)) =>
            {
                let needed = graph.is_output(first_out) || m.consumers(first_out).iter().any(|&c| !taken[c]);
                if needed {
                    self.steps.push(StepSpec::Dequantize {
                        value: self.value_of[input0],
                        tensor: first_out.to_string(),
                        int8: false,
                    });
                }
                true
            }
            Op::DequantizeLinear(_) => {
                graph.initializers.contains_key(input0)
                    && !self.value_of.contains_key(first_out)
                    && !graph.is_output(first_out)
                    && m.consumers(first_out).iter().all(|&c| taken[c])
            }
            _ => false,
        }
    }

    /// Node `i` as interpreter steps (renamed when its name is empty or taken), and, for a
    /// dequantized constant a pattern reads (binary operand), its quantization back into the
    /// value with the qparams it was dequantized with.
    fn interpreted(&mut self, i: usize) {
        let graph = self.graph;
        let node = &graph.nodes[i];
        let mut n = node.clone();
        if n.name.is_empty() || self.node_names.contains(&n.name) {
            n.name = format!("{}__xq{i}", n.op.onnx_name());
        }
        self.node_names.insert(n.name.clone());
        let expanded = legacy_softmax_expanded(graph, n, &mut self.node_names);
        self.extra_interp_steps += expanded.len() - 1;
        for n in expanded {
            self.steps.push(StepSpec::Interp { node: n.name.clone() });
            self.fallback_nodes.push(n);
        }
        let first_out = node.outputs.first().map(String::as_str).unwrap_or_default();
        if matches!(node.op, Op::DequantizeLinear(_)) && self.value_of.contains_key(first_out) {
            self.steps.push(StepSpec::Quantize {
                tensor: first_out.to_string(),
                value: self.value_of[first_out],
            });
        }
    }
}

/// Adds each Resize exit to the report, in the partition of the pattern whose output it reads.
fn add_exits(report: &mut Report, graph: &Graph, matches: &Matches, partition: &[usize]) {
    let mut exits: Vec<(&usize, &(String, ResizeTaps))> = matches.exits.iter().collect();
    exits.sort_by_key(|(i, _)| **i);
    for (&i, (t, _)) in exits {
        let Some(ci) = matches
            .cands
            .iter()
            .position(|c| c.outputs().any(|(o, _)| o == t))
        else {
            continue;
        };
        let (node, info) = (&graph.nodes[i], &mut report.partitions[partition[ci]]);
        info.nodes.push(node.name.clone());
        info.indices.push(i);
        *info.ops.entry(node.op.onnx_name().to_string()).or_default() += 1;
    }
}

/// Adds the dynamic partitions to the report: each lowers its linear node and a fused ReLU.
fn add_dynamic_partitions(report: &mut Report, graph: &Graph, dynamic: Vec<(usize, Vec<usize>)>) {
    for (anchor, covered) in dynamic {
        let node = &graph.nodes[anchor];
        let mut info = super::report::PartitionInfo {
            nodes: vec![node.name.clone()],
            indices: vec![anchor],
            ops: [(format!("{} (dynamic)", node.op.onnx_name()), 1)]
                .into_iter()
                .collect(),
        };
        for (i, relu) in covered.iter().map(|&i| (i, &graph.nodes[i])) {
            if matches!(relu.op, Op::Unary(UnaryOp::Relu)) {
                info.nodes.push(relu.name.clone());
                info.indices.push(i);
                *info.ops.entry("Relu".to_string()).or_insert(0) += 1;
            }
        }
        report.partitions.push(info);
    }
}

/// Refuses what cannot make a useful program: no outputs, no nodes, or (with delegation)
/// an input dim that is not fixed, since the delegate's kernels need concrete shapes.
fn check_compilable(graph: &Graph, mode: PartitionMode) -> Result<()> {
    if graph.outputs.is_empty() {
        return Err(Error::InvalidModel(
            "the model has no outputs: there is nothing to compile".into(),
        ));
    }
    if graph.nodes.is_empty() {
        return Err(Error::InvalidModel(
            "the model has no nodes: there is nothing to compile".into(),
        ));
    }
    if mode == PartitionMode::None || runs_at_any_length(graph) {
        return Ok(());
    }
    for input in &graph.inputs {
        let Some(dims) = &input.shape else {
            return Err(Error::InvalidState(format!(
                "input `{}` has an unknown rank and shape: fix the input shapes before compiling \
                 (C API: xq_model_fix_input_shape; CLI: --shape {}=D0,D1,...), or compile \
                 without delegation (XQ_PARTITION_NONE; CLI: --mode none)",
                input.name, input.name
            )));
        };
        if let Some((axis, sym)) = dims.iter().enumerate().find_map(|(i, d)| match d {
            crate::ir::Dim::Symbolic(s) => Some((i, s)),
            crate::ir::Dim::Known(_) => None,
        }) {
            return Err(Error::InvalidState(format!(
                "input `{}` has an unfixed dim {axis} (`{sym}`): fix the input shapes before \
                 compiling (C API: xq_model_fix_input_shape; CLI: --shape {}=D0,D1,...), or \
                 compile without delegation (XQ_PARTITION_NONE; CLI: --mode none)",
                input.name, input.name
            )));
        }
    }
    Ok(())
}

/// Whether `graph` is a dynamically quantized model (it quantizes activations at run time:
/// DynamicQuantizeLinear), which compiles with symbolic input dims: its linear layers need
/// only their weights' shapes, the interpreter runs the rest at whatever sizes the inputs
/// have, and any static int8 pattern whose tensors have no fixed shape is left to the
/// interpreter with its reason ([`concrete_values`]). This is what lets one compiled decoder
/// run every sequence and cache length. A statically quantized model still needs fixed
/// shapes (its int8 arena is planned at compile time).
fn runs_at_any_length(graph: &Graph) -> bool {
    graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::DynamicQuantizeLinear))
}

/// `c` when every int8 tensor it reads or writes has a fixed shape; else refused (only
/// possible in a graph compiled with symbolic dims, see [`runs_at_any_length`]).
fn concrete_values(graph: &Graph, c: Candidate) -> Result<Candidate, super::patterns::Refusal> {
    let unfixed = c
        .inputs
        .iter()
        .chain(c.outputs().map(|(t, _)| t))
        .find(|t| graph.tensor_info(t).and_then(|i| i.concrete_shape()).is_none());
    match unfixed {
        None => Ok(c),
        Some(t) => Err(super::patterns::Refusal {
            reason: Reason::Shape,
            detail: format!(
                "the shape of `{t}` depends on symbolic input dims (fix the input shapes to \
                 run it in int8: C API xq_model_fix_input_shape, CLI --shape)"
            ),
        }),
    }
}

/// An opset < 13 Softmax (`coerce_2d`) as the Shape → Flatten → Softmax(axis = -1) →
/// Reshape nodes it is equivalent to; any other node unchanged. The program file stores the
/// interpreter's nodes as opset-21 ONNX, where that Softmax has no single-node form: expanding
/// it here keeps the saved nodes one-to-one with the interpreter steps (the last node keeps
/// the original name and output). `names` holds the node names taken so far.
fn legacy_softmax_expanded(
    graph: &Graph,
    node: crate::ir::Node,
    names: &mut HashSet<String>,
) -> Vec<crate::ir::Node> {
    let Op::Softmax {
        axis,
        coerce_2d: true,
    } = node.op
    else {
        return vec![node];
    };
    let (Some(x), Some(y)) = (node.inputs.first().cloned(), node.outputs.first().cloned()) else {
        return vec![node];
    };
    let mut fresh_node = |suffix: &str| {
        let base = format!("{}_{suffix}", node.name);
        let name = (0..)
            .map(|i| {
                if i == 0 {
                    base.clone()
                } else {
                    format!("{base}_{i}")
                }
            })
            .find(|n| !names.contains(n))
            .unwrap_or_default();
        names.insert(name.clone());
        name
    };
    let tensors: Vec<String> = ["shape", "flat", "soft"]
        .iter()
        .map(|s| graph.fresh_name(&format!("{y}__xq_softmax_{s}")))
        .collect();
    let sub = |name: String, op: Op, inputs: Vec<String>, output: &str| crate::ir::Node {
        name,
        op,
        inputs,
        outputs: vec![output.to_string()],
    };
    vec![
        sub(
            fresh_node("shape"),
            Op::Shape { start: 0, end: None },
            vec![x.clone()],
            &tensors[0],
        ),
        sub(fresh_node("flatten"), Op::Flatten { axis }, vec![x], &tensors[1]),
        sub(
            fresh_node("softmax"),
            Op::Softmax {
                axis: -1,
                coerce_2d: false,
            },
            vec![tensors[1].clone()],
            &tensors[2],
        ),
        crate::ir::Node {
            op: Op::Reshape { allowzero: false },
            inputs: vec![tensors[2].clone(), tensors[0].clone()],
            outputs: vec![y],
            ..node
        },
    ]
}

/// The interpreter's graph: its nodes, the constants they read, inputs = tensors they read
/// from elsewhere, outputs = tensors they make that steps or the program need.
fn fallback_graph(graph: &Graph, nodes: Vec<crate::ir::Node>, steps: &[StepSpec]) -> Result<Graph> {
    let produced: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(String::as_str))
        .collect();
    let info = |t: &str| -> Result<TensorInfo> {
        graph
            .tensor_info(t)
            .ok_or_else(|| Error::InvalidModel(format!("type of `{t}` is unknown (run shape inference)")))
    };
    let mut inputs: Vec<TensorInfo> = Vec::new();
    let mut initializers = BTreeMap::new();
    let mut seen = HashSet::new();
    for n in &nodes {
        for t in n.inputs.iter().filter(|t| !t.is_empty()) {
            if produced.contains(t.as_str()) || !seen.insert(t.clone()) {
                continue;
            }
            if let Some(c) = graph.initializers.get(t) {
                initializers.insert(t.clone(), c.clone());
            } else {
                inputs.push(info(t)?);
            }
        }
    }
    // Constants that steps read directly (a QuantizeLinear of a constant the graph was not
    // simplified to fold) travel with the interpreter's constants.
    for s in steps {
        if let StepSpec::Quantize { tensor, .. } | StepSpec::DynamicLinear { input: tensor, .. } = s {
            if let Some(c) = graph.initializers.get(tensor) {
                initializers.insert(tensor.clone(), c.clone());
            }
        }
    }
    let mut outputs: Vec<TensorInfo> = Vec::new();
    let mut wanted: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            StepSpec::Quantize { tensor, .. } | StepSpec::DynamicLinear { input: tensor, .. } => {
                Some(tensor.as_str())
            }
            _ => None,
        })
        .collect();
    wanted.extend(graph.outputs.iter().map(|o| o.name.as_str()));
    let mut out_seen = HashSet::new();
    for t in wanted {
        if produced.contains(t) && out_seen.insert(t) {
            outputs.push(info(t)?);
        }
    }
    let mut value_info = std::collections::HashMap::new();
    for n in &nodes {
        for t in n.outputs.iter().filter(|t| !t.is_empty()) {
            if let Some(i) = graph.tensor_info(t) {
                value_info.insert(t.clone(), i);
            }
        }
    }
    Ok(Graph {
        name: format!("{}_fallback", graph.name),
        inputs,
        outputs,
        initializers,
        nodes,
        value_info,
    })
}
